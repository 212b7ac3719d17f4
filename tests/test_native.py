"""Which enrichment core runs (issue 13 item 2): the choice, and how otelkv reports it.

``otelkv.otlp.native`` decides once per process between the compiled ``otelkv.otlp._wire`` and the
pure-Python reference; ``otelkv --version``, the "otelkv serving" log line and the
``otelkv_build_info`` metric say which one runs. How it gets built: tests/test_native_build.py.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import types
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otelkv import __version__, commands
from otelkv.otlp import native
from otelkv.server import Service
from otelkv.telemetry.metrics import Telemetry
from tests.conftest import ROOT, make_config, why_no_compiler
from tests.loki_sink import LokiSink

#: A child otelkv that sees this tree (as tests/test_cli.py runs it), and no OTELKV_* from outside.
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("OTELKV_")},
    "PYTHONPATH": str(ROOT),
    "PYTHONUNBUFFERED": "1",
}


@pytest.fixture
def undecided() -> Iterator[None]:
    """No choice made yet in this process; the one from before restored after."""
    previous = native.select(None)
    yield
    native.select(previous)


# -- the choice ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "true", "yes", "anything"])
def test_no_extensions_forces_the_reference_path(value: str) -> None:
    chosen = native.decide({native.NO_EXTENSIONS_ENV: value})
    assert chosen.module is None and chosen.name == "python"
    assert chosen.describe() == f"python (reference; OTELKV_NO_EXTENSIONS={value})"


@pytest.mark.parametrize("value", ["", "0"])
def test_no_extensions_empty_or_0_leaves_the_choice_to_the_build(value: str) -> None:
    assert not native.disabled({native.NO_EXTENSIONS_ENV: value})
    assert native.decide({native.NO_EXTENSIONS_ENV: value}) == native.decide({})


def test_the_core_is_the_compiled_module_with_the_expected_abi(core: native.Choice) -> None:
    """The ``core`` fixture (tests/conftest.py) gives the test the path it names, process-wide."""
    assert native.core() is core.module
    assert native.description() == core.describe()
    if core.name == "native":
        assert core.module is not None and core.module.__name__ == "otelkv.otlp._wire"
        assert core.module.ABI_VERSION == native.ABI_VERSION == 5
        assert core.describe() == "native (otelkv.otlp._wire)"
    else:
        assert core.module is None and core.describe() == "python (reference; chosen by the test)"


def test_a_core_with_another_abi_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    older = types.ModuleType(native.MODULE)
    older.ABI_VERSION = 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, native.MODULE, older)
    chosen = native.decide({})
    assert chosen.module is None
    assert chosen.reason == (
        f"no compiled core: otelkv.otlp._wire has ABI_VERSION 0, this otelkv calls "
        f"{native.ABI_VERSION} (rebuild it: pip install .)"
    )
    del older.ABI_VERSION
    assert "has ABI_VERSION None" in native.decide({}).reason


def test_a_core_that_does_not_import_is_the_reference_path_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, native.MODULE, None)  # what a failed import leaves: ImportError
    chosen = native.decide({})
    assert chosen.module is None
    assert chosen.describe().startswith("python (reference; no compiled core: import of otelkv.otlp._wire halted")


def test_the_choice_is_made_once_per_process(undecided: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.NO_EXTENSIONS_ENV, "1")
    first = native.choice()
    assert first.module is None and native.core() is None
    monkeypatch.delenv(native.NO_EXTENSIONS_ENV)
    assert native.choice() is first and native.core() is None  # read once, not on every call
    assert native.select(None) is first
    assert native.choice() == native.decide({})  # decided again, from the environment as it is now


def test_setup_py_reads_the_same_variable_with_the_same_rule() -> None:
    setup_py = (ROOT / "setup.py").read_text()
    assert f'NO_EXTENSIONS_ENV = "{native.NO_EXTENSIONS_ENV}"' in setup_py
    assert 'os.environ.get(NO_EXTENSIONS_ENV, "") not in ("", "0")' in setup_py
    assert 'Extension("otelkv.otlp._wire", ["otelkv/otlp/_wire.c"]' in setup_py and native.MODULE == "otelkv.otlp._wire"


# -- reporting: --version, the start-up log line, the metric -------------------------------------


def test_version_names_the_core(core: native.Choice, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        commands.main(["--version"])
    assert exit_.value.code == 0
    expected = {"native": "(core: native)", "python": "(core: python; chosen by the test)"}[core.name]
    assert capsys.readouterr().out == f"otelkv {__version__} {expected}\n"


def test_version_says_why_the_reference_path_runs() -> None:
    env = {**ENV, native.NO_EXTENSIONS_ENV: "1"}
    done = subprocess.run(
        [sys.executable, "-m", "otelkv", "--version"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    assert done.stdout == f"otelkv {__version__} (core: python; OTELKV_NO_EXTENSIONS=1)\n"


def build_info(metrics: str) -> dict[str, str]:
    """The labels of the one ``otelkv_build_info`` sample, whose value must be 1."""
    [(labels, value)] = re.findall(r"^otelkv_build_info\{([^}]*)\} (\S+)$", metrics, re.M)
    assert float(value) == 1.0
    return dict(re.findall(r'(\w+)="([^"]*)"', labels))


def test_build_info_metric_names_version_and_core(core: native.Choice) -> None:
    telemetry = Telemetry()
    text = telemetry.prometheus_text().decode()
    telemetry.shutdown()
    assert build_info(text) == {"core": core.name, "version": __version__}
    assert "# TYPE otelkv_build_info gauge" in text


def test_serve_logs_the_core_at_start_up(core: native.Choice, sink: LokiSink, caplog: pytest.LogCaptureFixture) -> None:
    service = Service(make_config(sink.url))
    with caplog.at_level(logging.INFO, logger="otelkv.server"):
        service.start()
    try:
        [serving] = [r for r in caplog.records if r.getMessage() == "otelkv serving"]
        assert serving.core == core.describe()  # type: ignore[attr-defined]
        with urllib.request.urlopen(f"http://127.0.0.1:{service.http_port}/metrics", timeout=10) as response:
            assert build_info(response.read().decode())["core"] == core.name
    finally:
        service.stop(1)


@pytest.mark.parametrize("disabled", [False, True], ids=["as-built", "OTELKV_NO_EXTENSIONS=1"])
def test_otelkv_serve_reports_its_core_in_log_and_metrics(disabled: bool) -> None:
    """The real command, in a child process: the environment it starts with decides."""
    expected = native.decide({native.NO_EXTENSIONS_ENV: "1"} if disabled else {})
    if not disabled and why_no_compiler() is None:
        assert expected.name == "native", expected.reason  # make test builds it where it can
    env = {**ENV, native.NO_EXTENSIONS_ENV: "1"} if disabled else ENV
    serve = subprocess.Popen(
        [sys.executable, "-m", "otelkv", "serve", "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert serve.stderr is not None
        serving = next(json.loads(line) for line in serve.stderr if '"otelkv serving"' in line)
        assert serving["core"] == expected.describe()
        with urllib.request.urlopen(f"http://127.0.0.1:{serving['http_port']}/metrics", timeout=10) as response:
            assert build_info(response.read().decode()) == {"core": expected.name, "version": __version__}
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.communicate(timeout=30)


def test_the_docs_show_what_otelkv_prints(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/performance.md quotes ``otelkv --version`` on both paths; serve.md lists the metric."""
    shown = (ROOT / "docs" / "performance.md").read_text()
    for chosen in (
        native.decide({native.NO_EXTENSIONS_ENV: "1"}),
        native.Choice(module=types.ModuleType(native.MODULE)),
    ):
        previous = native.select(chosen)
        try:
            with pytest.raises(SystemExit):
                commands.main(["--version"])
        finally:
            native.select(previous)
        assert capsys.readouterr().out in shown, chosen
        assert f"`{chosen.describe()}`" in shown or chosen.name == "python"
    assert "`python (reference; <why>)`" in shown
    assert "`otelkv_build_info`" in (ROOT / "docs" / "serve.md").read_text()


def test_requests_are_counted_by_the_core_that_enriched_them(core: native.Choice, sink: LokiSink) -> None:
    """With the compiled core, a request it leaves to the reference path (here: a map body) counts
    as ``python``: an operator sees how much traffic takes the slower path."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub  # noqa: PLC0415

    from tests.migration_objects import any_value  # noqa: PLC0415
    from tests.otlp_requests import POOL  # noqa: PLC0415
    from tests.test_telemetry import samples  # noqa: PLC0415

    svc = Service(make_config(sink.url))
    svc.start()
    try:
        plain = ExportLogsServiceRequest(resource_logs=POOL[:3])
        mapped = ExportLogsServiceRequest(resource_logs=POOL[3:5])
        mapped.resource_logs[0].scope_logs[0].log_records[0].body.CopyFrom(any_value({"a": "b"}))
        with grpc.insecure_channel(f"127.0.0.1:{svc.grpc_port}") as channel:
            stub = LogsServiceStub(channel)
            stub.Export(plain, timeout=10)
            stub.Export(mapped, timeout=10)
        counted = samples(svc.telemetry.prometheus_text().decode(), "otelkv_requests_enriched_total")
    finally:
        svc.stop(1)
    if core.name == "native":
        assert counted == {'{core="native"}': 1.0, '{core="python"}': 1.0}
    else:
        assert counted == {'{core="python"}': 2.0}


def test_the_core_hands_over_the_values_the_reader_reads() -> None:
    """_wire.c's FIELD_KEYS is otelkv.kubevirt.k8s.COLLECTOR_FIELDS, in C (its comment says so), and
    the attributes a resource gives (all but the record's own fields and start time) COLLECTOR_KEYS."""
    import re  # noqa: PLC0415

    from otelkv.kubevirt.k8s import COLLECTOR_FIELDS, COLLECTOR_KEYS  # noqa: PLC0415

    source = (ROOT / "otelkv" / "otlp" / "_wire.c").read_text()
    block = source.split("static const char *const FIELD_KEYS[NFIELDS] = {", 1)[1].split("};", 1)[0]
    assert tuple(re.findall(r'"([^"]+)"', block)) == COLLECTOR_FIELDS
    own = {"body", "severity_text", "timestamp", "k8s.event.start_time"}
    assert {k for k in COLLECTOR_FIELDS if k not in own} == set(COLLECTOR_KEYS)
