"""A secret sentinel in every place a secret can be configured never comes out anywhere.

Places: a bearer token file, a password in an environment variable, a header value (directly and
through ``${env:NAME}``), credentials in the endpoint URL (from the file, the variable and the
flag). Outputs: ``otelkv serve``'s stdout and stderr at debug level (every level's lines), the
stdout forwarder's records, ``check-config``, ``/metrics``, ``/readyz``, the gRPC status and
trailers and the OTLP/HTTP bodies a client gets while the target fails, ``replay``'s output,
and the dead-letter listing.

The failing target is :class:`EchoingTarget`: not Loki, but the worst proxy in front of it, one
that echoes the request headers (so the credentials) in its error body.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otelkv.commands.replay import batches
from tests.conftest import EXAMPLE, ROOT

SENTINEL = "sentinel-5ec2e7-do-not-print"
FORMS = (
    SENTINEL,
    base64.b64encode(f"otelkv:{SENTINEL}".encode()).decode(),
    base64.b64encode(SENTINEL.encode()).decode(),
)
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "OTELKV_TEST_SENTINEL": SENTINEL}
ENV.pop("OTELKV_CONFIG", None)


def assert_clean(where: str, text: str | bytes) -> None:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for form in FORMS:
        assert form not in text, f"the secret leaks in {where}: {text[:2000]}"


class EchoingTarget:
    """An HTTP target answering every POST with ``status`` and the request's headers in the body."""

    def __init__(self, status: int) -> None:
        answer = status

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = f"refused; you sent: {dict(self.headers.items())}".encode()
                self.send_response(answer)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/otlp"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class Setup:
    name: str
    forward: dict[str, Any]


SETUPS = [
    Setup("token file and header", {"auth": {"bearer_token_file": "{token_file}"}, "headers": {"X-Api-Key": SENTINEL}}),
    Setup("password variable", {"auth": {"username": "otelkv", "password_env": "OTELKV_TEST_SENTINEL"}}),
    Setup(
        "header through ${env:}",
        {
            "headers": {"X-Api-Key": "key ${env:OTELKV_TEST_SENTINEL}"},
            "auth": {"bearer_token_env": "OTELKV_TEST_SENTINEL"},
        },
    ),
]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otelkv", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env or ENV,
        cwd=ROOT,
        timeout=60,
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "token").write_text(SENTINEL + "\n")  # as `echo $TOKEN > file` writes it
    return tmp_path


def write_config(workdir: Path, setup: Setup, endpoint: str) -> Path:
    forward = json.loads(json.dumps(setup.forward).replace("{token_file}", str(workdir / "token")))
    data = {
        "grpc_listen": "127.0.0.1:0",
        "http_listen": "127.0.0.1:0",
        "log_level": "debug",
        "forward": {"endpoint": endpoint, "timeout": 1, "tenant": "kubevirt", **forward},
        "delivery": {"store_path": str(workdir / "otelkv.db")},
    }
    path = workdir / "otelkv.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class Serve:
    """``otelkv serve --config`` in a child process; ports from its start-up log."""

    def __init__(self, config: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "otelkv", "serve", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
            cwd=ROOT,
        )
        assert self.process.stderr is not None
        self.stderr: list[str] = []
        for line in self.process.stderr:
            self.stderr.append(line)
            record = json.loads(line)
            if record.get("message", record.get("msg")) == "otelkv serving":
                self.grpc = f"127.0.0.1:{record['grpc_port']}"
                self.http = f"http://127.0.0.1:{record['http_port']}"
                break
        else:
            pytest.fail(f"otelkv serve did not start: {self.stderr}")

    def stop(self) -> tuple[str, str]:
        self.process.send_signal(signal.SIGTERM)
        stdout, stderr = self.process.communicate(timeout=30)
        return stdout, "".join(self.stderr) + stderr


def talk_to(serving: Serve) -> dict[str, str]:
    """Everything a client gets back from otelkv while the target fails: gRPC, OTLP/HTTP, health, metrics."""
    seen: dict[str, str] = {}
    request = next(batches(json.loads(EXAMPLE.read_text())["items"], 100))
    with grpc.insecure_channel(serving.grpc) as channel:
        try:
            answer, call = LogsServiceStub(channel).Export.with_call(request, timeout=10)
            seen["grpc answer"] = str(answer) + str(call.trailing_metadata())
        except grpc.RpcError as error:
            seen["grpc status"] = f"{error.code()} {error.details()} {error.trailing_metadata()} {error}"
    post = urllib.request.Request(
        f"{serving.http}/v1/logs",
        data=request.SerializeToString(),
        method="POST",
        headers={"Content-Type": "application/x-protobuf"},
    )
    gets = {path: urllib.request.Request(f"{serving.http}/{path}") for path in ("readyz", "metrics")}
    for name, req in [("http export", post), *gets.items()]:
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                seen[name] = str(response.headers) + response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            seen[name] = str(error.headers) + error.read().decode("utf-8", "replace")
    return seen


@pytest.mark.parametrize("status", [401, 400, 422], ids=["401 retryable", "400 partly refused", "422 refused"])
@pytest.mark.parametrize("setup", SETUPS, ids=[s.name for s in SETUPS])
def test_the_secret_never_comes_out(setup: Setup, status: int, workdir: Path) -> None:
    target = EchoingTarget(status)
    try:
        config = write_config(workdir, setup, target.url)
        checked = run("check-config", str(config))
        assert checked.returncode == 0, checked.stderr
        assert_clean("check-config", checked.stdout + checked.stderr)
        serving = Serve(config)
        try:
            for where, text in talk_to(serving).items():
                assert_clean(where, text)
            replayed = run("replay", str(EXAMPLE), "--to", serving.grpc, "--timeout", "5")
            assert_clean("replay", replayed.stdout + replayed.stderr)
        finally:
            stdout, stderr = serving.stop()
        assert_clean("serve stdout", stdout)
        assert_clean("serve stderr (debug)", stderr)
        assert "debug" in stderr  # the debug lines were there to look at
        listed = run("dead-letter", "list", "--config", str(config))
        assert listed.returncode == 0, listed.stderr
        if status == 422:
            assert "422" in listed.stdout  # the refused batch is a dead letter, its error shown
        assert_clean("dead-letter list", listed.stdout + listed.stderr)
    finally:
        target.stop()


def test_the_stdout_forwarder_prints_records_not_credentials(workdir: Path) -> None:
    config = write_config(workdir, SETUPS[0], "stdout")
    serving = Serve(config)
    try:
        seen = talk_to(serving)
    finally:
        stdout, stderr = serving.stop()
    assert "grpc answer" in seen and '"kubevirt.vm.name"' in stdout
    for where, text in [*seen.items(), ("stdout", stdout), ("stderr", stderr)]:
        assert_clean(where, text)


@pytest.fixture
def userinfo_urls() -> list[str]:
    return [
        f"http://otelkv:{SENTINEL}@127.0.0.1:1/otlp",
        f"grpc://{SENTINEL}@127.0.0.1:4317",
        f"https://{SENTINEL}@[::1",
    ]


def test_credentials_in_the_url_are_refused_without_being_echoed(workdir: Path, userinfo_urls: list[str]) -> None:
    for url in userinfo_urls:
        config = workdir / "url.yaml"
        config.write_text(yaml.safe_dump({"forward": {"endpoint": url}}))
        for done in [
            run("check-config", str(config)),
            run("serve", "--config", str(config)),
            run("serve", "--forward", url),
            run("serve", env={**ENV, "OTELKV_FORWARD_ENDPOINT": url}),
            run("dead-letter", "list", "--config", str(config)),
        ]:
            assert done.returncode == 2
            assert "forward.endpoint): credentials in the URL" in done.stderr.replace("endpoint:", "endpoint):")
            assert "forward.auth" in done.stderr
            assert_clean(f"{done.args}", done.stdout + done.stderr)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (f"{SENTINEL}\nsecond-line\n", "holds a line break"),
        (f"{SENTINEL}\rmore\r\n", "holds a line break"),
        ("\n", "is empty"),
        (b"\xff\xfe\x00", "is not UTF-8 text"),
    ],
    ids=["inner LF", "inner CR", "empty", "binary"],
)
def test_a_bad_token_file_is_refused_naming_the_file_never_the_content(
    content: str | bytes, says: str, workdir: Path
) -> None:
    token = workdir / "token"
    token.write_bytes(content.encode() if isinstance(content, str) else content)
    config = write_config(workdir, SETUPS[0], "http://127.0.0.1:1/otlp")
    for done in [run("check-config", str(config)), run("serve", "--config", str(config))]:
        assert done.returncode == 2
        assert done.stderr == f"otelkv: config: forward.auth.bearer_token_file: {str(token)!r} {says}" + (
            " or another control character inside the value; a header cannot carry it (one trailing newline is fine)\n"
            if "break" in says
            else "\n"
        )
        assert_clean("the error", done.stdout + done.stderr)


@pytest.mark.parametrize("ending", ["\n", "\r\n", ""])
def test_a_token_with_one_trailing_newline_is_used_without_it(ending: str, workdir: Path) -> None:
    from otelkv import config as configuration  # noqa: PLC0415
    from otelkv.forward.targets import _authorization  # noqa: PLC0415

    (workdir / "token").write_text(SENTINEL + ending, newline="")
    cfg = configuration.load(write_config(workdir, SETUPS[0], "http://127.0.0.1:1/otlp"), environ={})
    assert _authorization(cfg.forward.auth) == f"Bearer {SENTINEL}"


def test_check_config_redacts_header_values_but_the_tenant(workdir: Path) -> None:
    # the tenant given as a header (forward.tenant unset), shown as it is harmless
    setup = Setup("headers", {"tenant": None, "headers": {"X-Api-Key": SENTINEL, "X-Scope-OrgID": "team-a"}})
    done = run("check-config", str(write_config(workdir, setup, "http://127.0.0.1:1/otlp")))
    assert done.returncode == 0, done.stderr
    headers = yaml.safe_load(done.stdout)["forward"]["headers"]
    assert headers == {"X-Api-Key": "<redacted>", "X-Scope-OrgID": "team-a"}
