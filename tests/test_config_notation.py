"""The Collector's notation in otelkv's configuration: durations, sizes, ``${env:NAME}``; where a
value came from (file, variable, flag) named in its error; what ``check-config`` checks."""

from __future__ import annotations

import os
import socket
import sqlite3
from pathlib import Path

import pytest

from otelkv import config
from otelkv.commands import main
from otelkv.config import notation
from otelkv.delivery.store import Store
from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5s", 5.0),
        ("500ms", 0.5),
        ("1h30m", 5400.0),
        ("1.5", 1.5),
        ("2m0.5s", 120.5),
        ("250us", 0.00025),
        ("3", 3.0),
        (" 4s ", 4.0),
    ],
)
def test_durations_as_go_reads_them(text: str, seconds: float) -> None:
    assert notation.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5 seconds", "s", "", "5x", "nan", "inf", "1e400", "5s5"])
def test_not_durations(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|finite"):
        notation.parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("16MiB", 16 * 1024**2),
        ("512KiB", 512 * 1024),
        ("1GB", 10**9),
        ("1024", 1024),
        ("64Mi", 64 * 1024**2),
        ("2k", 2000),
        ("1.5KiB", 1536),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert notation.parse_size(text) == size


def test_a_config_in_the_collectors_notation(tmp_path: Path) -> None:
    path = tmp_path / "otelkv.yaml"
    path.write_text(
        "max_message_bytes: 4MiB\nshutdown_grace_seconds: 20s\n"
        "forward: {timeout: 3500ms, endpoint: 'http://${env:LOKI_HOST}/otlp', tenant: '${TENANT}'}\n"
        "delivery: {max_inflight_bytes: 64MiB, retry: {initial_interval: 500ms, max_elapsed: 1h}}\n"
        "enrich: {service_name: '${env:SERVICE:-kubevirt-events}', migration_ttl_seconds: 6h}\n"
    )
    cfg = config.load(path, environ={"LOKI_HOST": "loki-gateway.loki.svc", "TENANT": "kubevirt"})
    assert cfg.max_message_bytes == 4 * 1024**2 and cfg.delivery.max_inflight_bytes == 64 * 1024**2
    assert cfg.shutdown_grace_seconds == 20.0 and cfg.forward.timeout == 3.5
    assert cfg.delivery.retry.initial_interval == 0.5 and cfg.delivery.retry.max_elapsed == 3600.0
    assert cfg.forward.endpoint == "http://loki-gateway.loki.svc/otlp" and cfg.forward.tenant == "kubevirt"
    assert cfg.enrich.service_name == "kubevirt-events" and cfg.enrich.migration_ttl_seconds == 6 * 3600.0


def test_dollar_dollar_is_a_literal_dollar(tmp_path: Path) -> None:
    path = tmp_path / "otelkv.yaml"
    path.write_text("forward: {headers: {X-Price: '$$5 ${env:A}'}}\n")
    assert config.load(path, environ={"A": "a"}).forward.headers == {"X-Price": "$5 a"}


@pytest.mark.parametrize(
    ("environ", "flags", "says"),
    [
        ({"OTELKV_FORWARD_ENDPOINT": "ftp://loki"}, {}, "OTELKV_FORWARD_ENDPOINT (forward.endpoint): must be stdout"),
        ({"OTELKV_FORWARD_TIMEOUT": "soon"}, {}, "OTELKV_FORWARD_TIMEOUT (forward.timeout): not a duration"),
        ({"OTELKV_MAX_MESSAGE_BYTES": "16 megs"}, {}, "OTELKV_MAX_MESSAGE_BYTES (max_message_bytes): not a size"),
        ({}, {"forward.endpoint": "ftp://loki"}, "--forward (forward.endpoint): must be stdout"),
    ],
)
def test_a_value_set_by_variable_or_flag_is_reported_under_that_name(
    environ: dict[str, str], flags: dict[str, str], says: str
) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.load(environ=environ, overrides=flags, flags={"forward.endpoint": "--forward"})
    assert str(caught.value).startswith(says)


def test_a_value_from_the_file_is_reported_under_its_key(tmp_path: Path) -> None:
    path = tmp_path / "otelkv.yaml"
    path.write_text("forward: {timeout: soon}\n")
    with pytest.raises(config.ConfigError, match=r"^forward\.timeout: not a duration"):
        config.load(path, environ={})


def test_check_config_checks_the_store_as_serve_would(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "not-a-db").write_text("hello, I am a text file, not SQLite" * 10)
    for store, says in [
        (tmp_path / "missing-dir" / "q.db", "no writable directory"),
        (tmp_path, "not a file otelkv can write"),
    ]:
        path = tmp_path / "otelkv.yaml"
        path.write_text(f"delivery: {{mode: queue, store_path: '{store}'}}\n")
        assert main(["check-config", str(path)]) == 2
        assert f"delivery.store_path: cannot open {str(store)!r}: {says}" in capsys.readouterr().err
        assert main(["check-config", "--offline", str(path)]) == 0  # another machine's volume
        capsys.readouterr()


def test_check_config_says_serve_will_set_a_damaged_store_aside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # serve moves a damaged store aside and starts afresh (no crash loop), so check-config passes
    # it, with a warning naming what serve will do. A store is otelkv's by its marker beside it.
    store = tmp_path / "q.db"
    store.write_text("hello, I was a store once, now I am damaged" * 10)
    (tmp_path / "q.db.state").write_text('{"generation": "g", "records": 3, "batches": 1, "dead_letters": 0}')
    path = tmp_path / "otelkv.yaml"
    path.write_text(f"delivery: {{mode: queue, store_path: '{store}'}}\n")
    assert main(["check-config", str(path)]) == 0
    assert "is damaged or not an SQLite file (file is not a database); serve will move it aside" in caplog.text
    assert store.read_text().startswith("hello")  # check-config itself changes nothing


def test_a_store_path_naming_a_file_that_never_was_a_store_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Found by probing: a mistyped store_path naming a text file (the config itself, a log) had
    # it renamed to <file>.damaged-<time> by serve and by dead-letter list. Now: exit 2, untouched.
    victim = tmp_path / "notes.txt"
    victim.write_text("my notes, not a database\n" * 20)
    path = tmp_path / "otelkv.yaml"
    path.write_text(f"delivery: {{mode: queue, store_path: '{victim}'}}\n")
    for command in (["check-config", str(path)], ["dead-letter", "list", "--config", str(path)]):
        assert main(command) == 2
        assert f"delivery.store_path: cannot open {str(victim)!r}: file is not a database" in capsys.readouterr().err
    with pytest.raises(sqlite3.DatabaseError, match="not an otelkv store"):
        Store(str(victim), max_bytes=1 << 20, max_records=100, max_dead_letters=10)
    assert victim.read_text().startswith("my notes") and sorted(p.name for p in tmp_path.iterdir()) == [
        "notes.txt",
        "otelkv.yaml",
    ]


def test_check_config_offline_passes_the_shipped_basic_auth_example(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LOKI_PASSWORD", raising=False)
    example = str(ROOT / "examples" / "otelkv-basic-auth.yaml")
    assert main(["check-config", example]) == 2  # online: the variable is not set here
    assert "forward.auth.password_env: environment variable 'LOKI_PASSWORD' is not set" in capsys.readouterr().err
    assert main(["check-config", "--offline", example]) == 0
    assert "password_env: LOKI_PASSWORD" in capsys.readouterr().out


def test_offline_keeps_unset_references_as_written(tmp_path: Path) -> None:
    path = tmp_path / "otelkv.yaml"
    path.write_text("forward: {tenant: '${env:OTELKV_TEST_UNSET_TENANT}'}\n")
    assert "OTELKV_TEST_UNSET_TENANT" not in os.environ
    assert config.load(path, environ={}, offline=True).forward.tenant == "${env:OTELKV_TEST_UNSET_TENANT}"


def test_check_config_checks_the_listen_addresses_unless_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "otelkv.yaml"
    path.write_text("grpc_listen: 192.0.2.1:4319\n")  # TEST-NET-1: no interface here has it
    assert main(["check-config", str(path)]) == 2
    assert "grpc_listen: cannot listen on 192.0.2.1:4319: not an address of this machine" in capsys.readouterr().err
    assert main(["check-config", "--offline", str(path)]) == 0
    capsys.readouterr()
    with socket.socket() as running:  # a serve already holding the port: not an error for check-config
        running.bind(("127.0.0.1", 0))
        running.listen()
        path.write_text(f"http_listen: 127.0.0.1:{running.getsockname()[1]}\n")
        assert main(["check-config", str(path)]) == 0


@pytest.mark.parametrize("content", [" s3cr3tv\n", "  \n", "s3cr\n3tv\n"])
def test_check_config_reads_the_receive_token_as_serve_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    # Found by probing: check-config passed token files that serve then refused at start.
    token = tmp_path / "token"
    token.write_text(content)
    path = tmp_path / "otelkv.yaml"
    path.write_text(f"receive: {{auth: {{bearer_token_file: '{token}'}}}}\n")
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "receive.auth.bearer_token_file" in err and str(token) in err and "s3cr" not in err
