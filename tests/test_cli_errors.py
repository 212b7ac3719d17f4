"""No tracebacks, ever: every bad input to every subcommand is one line naming what was wrong, exit 2.

The table runs in-process through ``main()`` (what the ``otelkv`` script calls); the listen
cases run ``otelkv serve`` as a process, since they hold real sockets. Hypothesis feeds arbitrary
bytes to ``migrations`` and ``check-config``, as files and on stdin.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from otelkv import config
from otelkv.commands import main
from tests.conftest import EXAMPLE
from tests.test_cli import otelkv

SECRET = "s3cr3t-in-the-url"


@dataclass(frozen=True)
class Case:
    """One bad invocation: the files it needs (name → bytes), its arguments, and what stderr says."""

    name: str
    args: tuple[str, ...]
    says: str
    files: tuple[tuple[str, bytes], ...] = ()


EVENTS = EXAMPLE.read_bytes()
#: Nine levels of nine aliases: 9**9 strings if anything expanded it naively.
BOMB = b"a: &a [x, x, x, x, x, x, x, x, x]\n" + b"".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n".encode() for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)
CASES = [
    # issue 20: config values that routed data wrong or crashed, and error messages that misled
    Case(
        "a text key given a YAML 1.1 octal number",
        ("check-config", "--offline", "{cfg}"),
        "forward.tenant: must be text, got the number 83",
        (("cfg", b"forward: {tenant: 0123}\n"),),
    ),
    Case(
        "a superscript digit in a port",
        ("check-config", "--offline", "{cfg}"),
        "grpc_listen: must be HOST:PORT",
        (("cfg", "grpc_listen: '0.0.0.0:\u00b2'\n".encode()),),
    ),
    Case(
        "a superscript digit in a whole number",
        ("check-config", "--offline", "{cfg}"),
        "delivery.queue_max_records: must be a whole number",
        (("cfg", "delivery: {queue_max_records: '\u00b2'}\n".encode()),),
    ),
    Case("a port out of range", ("serve", "--grpc-listen", "127.0.0.1:99999"), "port out of range (0-65535)"),
    Case(
        "a YAML alias loop",
        ("check-config", "--offline", "{cfg}"),
        "a YAML alias refers to a node that holds it",
        (("cfg", b"a: &a [*a]\nlog_level: info\n"),),
    ),
    Case("a mistyped top-level flag", ("--versoin",), "unrecognized option --versoin"),
    Case("a mistyped serve flag", ("serve", "--foward", "x"), "(see otelkv serve --help)"),
    Case("dead-letter without an action", ("dead-letter",), "required: action (see"),
    Case("an unknown log level", ("serve", "--log-level", "verbose"), "invalid choice: 'verbose'"),
    Case(
        "an integer of 5,000 digits in events",
        ("migrations", "{ev}"),
        "exceeds the limit (4300 digits)",
        (("ev", b'{"items": [{"count": ' + b"9" * 5000 + b"}]}"),),
    ),
    Case(
        "a count past 64 bits in a replayed event",
        ("replay", "{ev}", "--to", "127.0.0.1:1"),
        "(in time order): Value out of range",
        (("ev", EVENTS.replace(b'"count": 1', b'"count": 99999999999999999999999', 1)),),
    ),
    Case(
        "an integer of 5,000 digits in the configuration",
        ("check-config", "--offline", "{cfg}"),
        "not valid YAML: exceeds the limit (4300 digits)",
        (("cfg", b"max_message_bytes: " + b"9" * 5000 + b"\n"),),
    ),
    Case("an endless configuration file", ("check-config", "/dev/zero"), "/dev/zero: larger than 1 MiB"),
    Case(
        "a --since too far back", ("migrations", "--since", "99999999999w", "{ev}"), "too far back", (("ev", EVENTS),)
    ),
    Case("a negative --since", ("migrations", "--since=-2h", "{ev}"), "cannot be negative", (("ev", EVENTS),)),
    Case(
        "a cut event file",
        ("migrations", "{ev}"),
        "cut short: the JSON ends at line",
        (("ev", EVENTS[: len(EVENTS) // 2]),),
    ),
    Case(
        "check-config on a binary file",
        ("check-config", "{bin}"),
        "bin: not UTF-8 text (byte 0)",
        (("bin", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),),
    ),
    Case("check-config on NUL bytes", ("check-config", "{nul}"), "nul: binary data", (("nul", b"a: 1\x00\n"),)),
    Case(
        "check-config with integer keys",
        ("check-config", "{int}"),
        "config: forward.1: keys must be strings",
        (("int", b"forward:\n  1: stdout\n"),),
    ),
    Case(
        "check-config with top-level integer keys",
        ("check-config", "{int}"),
        "config: 1: keys must be strings",
        (("int", b"1: 2\n3: 4\n"),),
    ),
    Case(
        "check-config on a YAML syntax error",
        ("check-config", "{bad}"),
        "bad:3:10: not valid YAML: expected ','",
        (("bad", b"forward:\n  endpoint: [unclosed\nlog_level: info\n"),),
    ),
    Case("check-config on a missing file", ("check-config", "{dir}/missing.yaml"), "missing.yaml: cannot read"),
    Case("check-config on a directory", ("check-config", "{dir}"), "cannot read"),
    Case(
        "check-config with a section set to a list",
        ("check-config", "{lst}"),
        "forward: must be a mapping",
        (("lst", b"forward: [1, 2]\n"),),
    ),
    Case(
        "check-config with a credentialed URL",
        ("check-config", "{url}"),
        "forward.endpoint: credentials in the URL",
        (("url", f"forward: {{endpoint: 'https://otelkv:{SECRET}@loki/otlp'}}\n".encode()),),
    ),
    Case(
        "migrations on Latin-1",
        ("migrations", "{latin}"),
        "latin: not UTF-8 text (byte 15)",
        (("latin", b'{"items": ["caf\xe9"]}'),),
    ),
    Case(
        "migrations on a bad UTF-16 file",
        ("migrations", "{u16}"),
        "u16: not UTF-16 text",
        (("u16", b"\xff\xfe{\x00\x00\xd8"),),
    ),
    Case(
        "migrations with metadata a string",
        ("migrations", "{meta}"),
        "meta: no Kubernetes Events in it",
        (("meta", b'{"items":[{"metadata":"x"}]}'),),
    ),
    Case(
        "migrations on unrelated JSON",
        ("migrations", "{other}"),
        "no Kubernetes Events in it",
        (("other", b'{"items":[{"apiVersion": "v1", "kind": "Pod"}]}'),),
    ),
    Case("migrations on empty stdin", ("migrations",), "stdin: empty; expected Kubernetes Events"),
    Case("migrations on a number", ("migrations", "{num}"), "expected Kubernetes Events", (("num", b"42\n"),)),
    Case("migrations on deep nesting", ("migrations", "{deep}"), "deep", (("deep", b"[" * 100_000),)),
    Case("check-config on a YAML alias bomb", ("check-config", "{bomb}"), "config: a: unknown key", (("bomb", BOMB),)),
    Case(
        "migrations on a YAML alias bomb",
        ("migrations", "{bomb}"),
        "bomb:2: neither JSON nor YAML (aliases",
        (("bomb", BOMB + b"items: [*i]\n"),),
    ),
    Case("migrations on a missing file", ("migrations", "{dir}/none.json"), "none.json: No such file"),
    Case("migrations with an unknown output", ("migrations", "--output", "xml"), "invalid choice: 'xml'"),
    Case(
        "replay on non-UTF-8", ("replay", "{latin}", "--to", "127.0.0.1:1"), "not UTF-8 text", (("latin", b"\xff\xff"),)
    ),
    Case(
        "replay --batch 0",
        ("replay", "{ev}", "--to", "127.0.0.1:1", "--batch", "0"),
        "argument --batch: must be at least 1, got 0",
        (("ev", EVENTS),),
    ),
    Case(
        "replay --batch -1",
        ("replay", "{ev}", "--to", "127.0.0.1:1", "--batch", "-1"),
        "argument --batch: must be at least 1, got -1",
        (("ev", EVENTS),),
    ),
    Case(
        "replay --batch x",
        ("replay", "{ev}", "--to", "127.0.0.1:1", "--batch", "x"),
        "must be a whole number",
        (("ev", EVENTS),),
    ),
    Case(
        "replay --timeout 0",
        ("replay", "{ev}", "--to", "127.0.0.1:1", "--timeout", "0"),
        "--timeout: must be a positive number",
        (("ev", EVENTS),),
    ),
    Case(
        "replay --timeout nan",
        ("replay", "{ev}", "--to", "127.0.0.1:1", "--timeout", "nan"),
        "--timeout: must be a positive number",
        (("ev", EVENTS),),
    ),
    Case(
        "replay --to without a port",
        ("replay", "{ev}", "--to", "127.0.0.1"),
        "argument --to: must be HOST:PORT (for instance 127.0.0.1:4319), got '127.0.0.1'",
        (("ev", EVENTS),),
    ),
    Case(
        "replay --to a URL",
        ("replay", "{ev}", "--to", "http://127.0.0.1:4319"),
        "argument --to: give HOST:PORT of otelkv's OTLP/gRPC listener, not a URL",
        (("ev", EVENTS),),
    ),
    Case("replay --to port 0", ("replay", "{ev}", "--to", "127.0.0.1:0"), "port must be 1-65535", (("ev", EVENTS),)),
    Case(
        "replay to nothing",
        ("replay", "{ev}", "--to", "127.0.0.1:1"),
        "cannot reach otelkv serve at 127.0.0.1:1: connection refused",
        (("ev", EVENTS),),
    ),
    Case(
        "dead-letter list without a store",
        ("dead-letter", "list", "--config", "{cfg}"),
        "delivery.store_path: no store at",
        (("cfg", b"delivery: {store_path: '{dir}/typo.db'}\n"),),
    ),
    Case(
        "dead-letter replay without a store",
        ("dead-letter", "replay", "--config", "{cfg}"),
        "delivery.store_path: no store at",
        (("cfg", b"delivery: {store_path: '{dir}/typo.db'}\n"),),
    ),
    Case(
        "dead-letter list, no store_path",
        ("dead-letter", "list", "--config", "{cfg}"),
        "delivery.store_path: not set",
        (("cfg", b"log_level: info\n"),),
    ),
    Case("dead-letter with a bad id", ("dead-letter", "replay", "x"), "argument ids: invalid int value: 'x'"),
    Case(
        "serve with a bad forward flag",
        ("serve", "--forward", f"http://u:{SECRET}@loki/otlp"),
        "--forward (forward.endpoint): credentials in the URL",
    ),
    Case(
        "serve with a bad listen flag",
        ("serve", "--grpc-listen", "4319"),
        "--grpc-listen (grpc_listen): must be HOST:PORT",
    ),
    Case("an unknown subcommand", ("serv",), "invalid choice: 'serv'"),
]


def _run(args: list[str], stdin: bytes = b"") -> tuple[int, str, str]:
    """``main(args)`` with its stdout and stderr captured, ``SystemExit`` (argparse) turned into its code."""
    out, err = io.StringIO(), io.StringIO()
    stdin_stream = io.TextIOWrapper(io.BytesIO(stdin))
    saved = sys.stdin
    sys.stdin = stdin_stream
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 2
    finally:
        sys.stdin = saved
    return code, out.getvalue(), err.getvalue()


def _assert_one_clean_line(code: int, stderr: str) -> None:
    assert "Traceback" not in stderr
    assert "internal error" not in stderr, stderr
    assert code in (0, 2), (code, stderr)
    if code:
        assert stderr.count("\n") == 1 and stderr.startswith("otelkv"), stderr


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line_naming_it_exit_2(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTELKV_CONFIG", raising=False)
    for name, content in case.files:
        (tmp_path / name).write_bytes(content.replace(b"{dir}", str(tmp_path).encode()))
    args = [arg.format(dir=tmp_path, **{name: tmp_path / name for name, _ in case.files}) for arg in case.args]
    code, _, stderr = _run(args)
    assert code == 2, stderr
    _assert_one_clean_line(code, stderr)
    assert case.says in stderr
    assert SECRET not in stderr


def _utf16_with_bom(text: str) -> bytes:
    return "\ufeff".encode("utf-16-le") + text.encode("utf-16-le")  # what PowerShell's `>` writes


@pytest.mark.parametrize(
    "encode",
    [_utf16_with_bom, lambda t: t.encode("utf-16"), lambda t: t.encode("utf-8-sig")],
    ids=["utf-16-le (PowerShell)", "utf-16 native", "utf-8 with BOM"],
)
def test_migrations_reads_utf16_and_bom_files_like_utf8(encode: object, tmp_path: Path) -> None:
    assert callable(encode)
    path = tmp_path / "events.json"
    path.write_bytes(encode(EVENTS.decode()))
    code, out, err = _run(["migrations", str(path), "--output", "jsonl"])
    assert code == 0, err
    expected = _run(["migrations", str(EXAMPLE), "--output", "jsonl"])[1]
    assert out == expected and len(out.splitlines()) == 4


def test_migrations_reads_kubectl_yaml(tmp_path: Path) -> None:
    import yaml  # noqa: PLC0415

    path = tmp_path / "events.yaml"
    path.write_text(yaml.safe_dump(json.loads(EVENTS)))  # as `kubectl get events -A -o yaml` prints it
    code, out, err = _run(["migrations", str(path), "--output", "jsonl"])
    assert code == 0, err
    assert out == _run(["migrations", str(EXAMPLE), "--output", "jsonl"])[1]


@given(data=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
@example(b'{"items":[{"metadata":"x"}]}')
@example(b"\xff\xfe{\x00")
@example(b"- 1\n- [2]\n")
@example(b"{1: 2}")
@example(b"[[[[[[[[[[[[")
@example(b'{"items": [{"involvedObject": 3, "metadata": {"name": 4}, "lastTimestamp": []}]}')
@example(b"apiVersion: v1\nitems:\n- involvedObject: {kind: VirtualMachineInstance}\n  firstTimestamp: 2024\n")
def test_migrations_never_tracebacks_on_any_bytes(data: bytes) -> None:
    code, _, stderr = _run(["migrations", "-"], stdin=data)
    _assert_one_clean_line(code, stderr)


@given(data=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
@example(data=b"1: 2")
@example(data=b"forward: {timeout: .nan}")
@example(data=b"forward: {headers: {1: 2}}")
@example(data=b"forward: {timeout: 1e400}")
@example(data=b"max_message_bytes: 99999999999999999999999999999999999999999999999999999")
@example(data=b"delivery: {retry: {max_elapsed: 1000000000000000000000000000h}}")
@example(data=b"forward: {endpoint: 'http://[::1'}")
@example(data=b"forward: {endpoint: 'http://h:99999/x'}")
@example(data=b"forward: {tenant: '${env:'}")
@example(data=b"enrich: {kinds: [1, null]}")
def test_check_config_never_tracebacks_on_any_bytes(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("cfg") / "otelkv.yaml"
    path.write_bytes(data)
    code, _, stderr = _run(["check-config", str(path)])
    _assert_one_clean_line(code, stderr)


# -- serve: the listen addresses, with real sockets ------------------------------------------------


@pytest.fixture
def taken() -> object:
    """A loopback port another socket listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield f"127.0.0.1:{holder.getsockname()[1]}"


@pytest.mark.parametrize(
    ("flag", "address", "says"),
    [
        ("--grpc-listen", "{taken}", "--grpc-listen (grpc_listen): cannot listen on {taken}: address already in use"),
        ("--http-listen", "{taken}", "--http-listen (http_listen): cannot listen on {taken}: address already in use"),
        ("--grpc-listen", "192.0.2.1:4319", "cannot listen on 192.0.2.1:4319: not an address of this machine"),
        ("--grpc-listen", "no-such-host.invalid:4319", "cannot listen on no-such-host.invalid:4319: cannot resolve"),
    ],
    ids=["grpc in use", "http in use", "not this machine", "unresolvable"],
)
def test_serve_names_the_listen_address_it_cannot_use(flag: str, address: str, says: str, taken: str) -> None:
    other = "--http-listen" if flag == "--grpc-listen" else "--grpc-listen"
    done = otelkv("serve", flag, address.format(taken=taken), other, "127.0.0.1:0")
    assert done.returncode == 2
    assert done.stderr.startswith("otelkv: ") and done.stderr.count("\n") == 1, done.stderr
    assert says.format(taken=taken) in done.stderr


def _keys(node: dict[str, object], prefix: str = "") -> list[str]:
    out: list[str] = []
    for name, value in node.items():
        out += _keys(value, f"{prefix}{name}.") if isinstance(value, dict) and value else [f"{prefix}{name}"]
    return out


KEYS = _keys(config.to_dict(config.Config()))
VALUES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "5s",
            "16MiB",
            "${env:HOME}",
            "${env:NOPE_NOT_SET}",
            "http://u:p@h/x",
            "grpc://h:1",
            "http://[::1",
            "127.0.0.1:0",
            "0.0.0.0:99999",
            "queue",
            "stdout",
            "1e400",
            "-1",
        ]
    )
    | st.lists(st.text(max_size=5), max_size=3)
    | st.dictionaries(st.text(max_size=5), st.text(max_size=5))
)


@given(settings=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6), offline=st.booleans())
def test_check_config_never_tracebacks_on_any_known_key(
    settings: dict[str, object], offline: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data: dict[str, object] = {}
    for key, value in settings.items():
        node = data
        *parents, last = key.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})  # type: ignore[assignment]
        node[last] = value
    path = tmp_path_factory.mktemp("cfg") / "otelkv.yaml"
    path.write_text(yaml.safe_dump(data))
    code, _, stderr = _run(["check-config", *(["--offline"] if offline else []), str(path)])
    _assert_one_clean_line(code, stderr)


EVENT_KEYS = [
    "involvedObject",
    "regarding",
    "object",
    "reason",
    "message",
    "note",
    "metadata",
    "lastTimestamp",
    "firstTimestamp",
    "eventTime",
    "count",
    "source",
    "series",
    "type",
    "reportingComponent",
    "reportingController",
    "kind",
    "apiVersion",
    "k8s.event.reason",
    "k8s.object.kind",
    "timestamp",
]
INNER_KEYS = st.sampled_from([*EVENT_KEYS, "name", "namespace", "uid", "host", "component"])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["VirtualMachineInstance", "Migrated", "2026-11-20T09:06:00Z", "node01"])
)
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(INNER_KEYS, inner, max_size=4), max_leaves=20
)


@given(
    items=st.lists(st.dictionaries(st.sampled_from(EVENT_KEYS), JSON, max_size=6), max_size=5),
    output=st.sampled_from(["table", "json", "jsonl"]),
)
def test_migrations_never_tracebacks_on_event_shaped_json(items: list[dict[str, object]], output: str) -> None:
    code, _, stderr = _run(["migrations", "--output", output], stdin=json.dumps({"items": items}).encode())
    _assert_one_clean_line(code, stderr)


def test_a_missing_file_named_by_otelkv_config_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTELKV_CONFIG", "/nope.yaml")
    code, _, stderr = _run(["check-config", "--offline", ""])  # no file given: the variable's is read
    assert code == 2 and "OTELKV_CONFIG=/nope.yaml: cannot read" in stderr, stderr


@pytest.mark.parametrize("spelling", ["warn", "WARN", "Warning", "DEBUG", "info", "Error"])
def test_log_levels_take_the_collectors_spellings_in_any_case(spelling: str, tmp_path: Path) -> None:
    path = tmp_path / "otelkv.yaml"
    path.write_text(f"log_level: {spelling}\n")
    loaded = config.load(path, environ={})
    assert loaded.log_level == {"warn": "warning"}.get(spelling.lower(), spelling.lower())
    assert config.load(environ={"OTELKV_LOG_LEVEL": spelling}).log_level == loaded.log_level
    from otelkv.commands.parser import build_parser  # noqa: PLC0415

    assert build_parser().parse_args(["serve", "--log-level", spelling]).log_level == spelling.lower()


TEXT_KEYS = ["forward.tenant", "grpc_listen", "forward.endpoint", "enrich.service_name"]
NUMBER_KEYS = ["delivery.queue_max_records", "enrich.max_migrations", "receive.grpc.workers"]


@given(
    key=st.sampled_from(TEXT_KEYS + NUMBER_KEYS),
    value=st.text(max_size=12) | st.integers() | st.floats() | st.booleans() | st.none(),
    where=st.sampled_from(["file", "environment"]),
)
def test_value_conversion_answers_every_value_with_a_value_or_one_config_error(
    key: str, value: object, where: str
) -> None:
    """Hypothesis over the conversion of a value, from the file or from an OTELKV_* variable: a
    value or a ConfigError naming the key, never another exception (``'\u00b2'.isdigit()`` was True)."""
    environ: dict[str, str] = {}
    data: dict[str, object] = {}
    if where == "environment":
        name = next((n for n, k in config.ENVIRONMENT.items() if k == key), None)
        if name is None or not isinstance(value, str) or not value:
            return
        environ[name] = value
    else:
        node = data
        *parents, last = key.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})  # type: ignore[assignment]
        node[last] = value
    try:
        loaded = config.load(environ=environ, overrides=_flatten(data))
    except config.ConfigError:
        return  # one error, naming a key (the bad-input table checks the wording)
    got = loaded
    for part in key.split("."):
        got = getattr(got, part)
    if key in TEXT_KEYS and value is not None:
        assert isinstance(got, str)


def _flatten(data: dict[str, object], prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for name, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat
