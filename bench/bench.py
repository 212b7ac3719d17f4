"""otelkv's benchmark: throughput, CPU and memory, measured side by side in one run.

    .venv/bin/python bench/bench.py [--records 20000] [--rate 10000] [--seconds 10]

On the same batches of k8s_events-shaped records (the example stream, made into many distinct
VMs), it prints:

1. records/s for bare protobuf decode + encode (the floor), enrichment on the Python reference
   path (decode + enrich + encode) and on the native core (decode, as the receivers do to validate,
   + the core + its bytes), interleaved, best of 3 (``--enrich-only`` runs it alone; with
   ``--compare DIR`` it also measures the checkout in DIR, in its own processes, interleaved), and
   end to end (OTLP/gRPC into ``otelkv serve`` in its own process → OTLP/HTTP out to a local sink);
2. the enrichment/floor ratios (targets: at most 8x on the native core, 20x on the reference path);
3. the duplicate window with its 50,000 keys full: µs a key for the old plain-dict eviction
   and for :class:`otelkv.pipeline.DeliveredKeys`, side by side (``--dedup-only``: just this);
4. at a steady ``--rate`` records/s for ``--seconds``, in requests of 1,000 and of 100 records:
   otelkv's CPU (% of one core, from /proc), CPU seconds per 10,000 records and peak RSS (VmHWM) —
   targets 30% (1,000 a request) and 40% (100), 120 MiB — with the native core and with
   ``OTELKV_NO_EXTENSIONS=1``;
5. a light sidecar (``--startup-only`` runs it alone): start-up time (process start to the
   first /healthz 200, or SERVING for ``readiness`` on the gRPC health listener where there is no
   HTTP listener) and idle RSS (with its anonymous and file-backed parts) of ``otelkv serve`` with
   the default stdout target, an http:// target and the sidecar's configuration (targets 45 MiB,
   22 MiB anonymous), median of ``--starts`` starts,
   otelkv's .pyc compiled first (as in the image); ``--compare DIR`` measures another checkout
   (``git archive main | tar -x -C DIR``) in the same run, interleaved, for before/after ratios;
6. pass-through (``--passthrough-only`` runs it alone): records of other kinds (Pod events, as
   the k8s_events receiver sends them): the reference, the Python short path and the native core
   against the floor (target: at most 1.3x);
7. the hostile mix of issue 8 item 4 against the default limits (``--memory-only`` runs it alone;
   ``BENCH_MIX=grpc,http,idle,drip`` picks parts of it), on both cores (``--compare DIR``: DIR's
   too, interleaved): peak RSS at most 150 MiB, 20 % under the 192 Mi limit (docs/reliability.md#memory).

With ``--write-docs`` (``make bench``), a full run rewrites docs/performance.md's table of targets
from what it measured (bench/targets_table.py).

Figures are only comparable within one run: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gzip
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

ROOT = Path(__file__).resolve().parent.parent
#: The checkout whose otelkv is measured (``--compare`` runs this script again on another one).
sys.path.insert(0, os.environ.get("OTELKV_BENCH_CHECKOUT") or str(ROOT))

import targets_table as report  # noqa: E402 - beside this script (on sys.path), whichever checkout is measured

from otelkv.commands.event_file import in_time_order  # noqa: E402
from otelkv.commands.replay import batches  # noqa: E402
from otelkv.kubevirt import MigrationTracker  # noqa: E402
from otelkv.otlp.enrich import EnrichOptions, enrich  # noqa: E402
from otelkv.pipeline import DeliveredKeys  # noqa: E402

BATCH = 1000  # the collector-config's send_batch_max_size


def make_events(count: int, offset: int = 0) -> list[dict[str, Any]]:
    """``count`` KubeVirt events: the example stream's, copied onto many distinct VMs."""
    base = [
        e
        for e in json.loads((ROOT / "examples" / "kubevirt-events.json").read_text())["items"]
        if e["involvedObject"]["kind"].startswith("VirtualMachineInstance")
    ]
    vms = {e["involvedObject"]["name"] for e in base if e["involvedObject"]["kind"] == "VirtualMachineInstance"}
    uids = {e["involvedObject"]["uid"] for e in base if e["involvedObject"]["kind"].endswith("Migration")}
    out = []
    for i in range(offset, offset + count // len(base) + 1):
        for event in base:
            e = copy.deepcopy(event)
            e["metadata"]["uid"] = f"{e['metadata']['uid']}-{i}"
            e["involvedObject"]["name"] = f"{e['involvedObject']['name']}-{i}"
            e["involvedObject"]["uid"] = f"{e['involvedObject']['uid']}-{i}"
            for vm in vms:
                e["message"] = e["message"].replace(f"virt-launcher-{vm}-", f"virt-launcher-{vm}-{i}-")
            for uid in uids:
                e["message"] = e["message"].replace(f"uid {uid} ", f"uid {uid}-{i} ")
            out.append(e)
    return in_time_order(out)[:count]


def rate(fn: Any, payloads: list[bytes], records: int, repeat: int = 3) -> float:
    """Best records/s of ``repeat`` runs of ``fn`` over every payload."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for payload in payloads:
            fn(payload)
        best = min(best, time.perf_counter() - start)
    return records / best


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def proc(pid: int) -> tuple[float, int]:
    """CPU seconds (user + system) and peak RSS bytes of process ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    hwm = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmHWM"))
    return cpu, int(hwm.split()[1]) * 1024


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=10_000, help="records/s for the steady-load part")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--dedup-only", action="store_true", help="only the duplicate-window phase")
    parser.add_argument("--memory-only", action="store_true", help="only the hostile-load memory phase")
    parser.add_argument("--startup-only", action="store_true", help="only the start-up time and idle RSS phase")
    parser.add_argument("--starts", type=int, default=5, help="starts of each kind in the start-up phase")
    parser.add_argument("--passthrough-only", action="store_true", help="only the pass-through phase")
    parser.add_argument("--enrich-only", action="store_true", help="only the enrichment phase (with --compare)")
    parser.add_argument("--enrich-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--steady-only", action="store_true", help="only end to end and the steady load, both cores")
    parser.add_argument(
        "--compare", type=Path, metavar="DIR", help="another otelkv checkout for the start-up and enrichment phases"
    )
    parser.add_argument(
        "--write-docs", action="store_true", help="after a full run, rewrite docs/performance.md's table of targets"
    )
    return parser.parse_args()


def main() -> int:
    args = _arguments()
    if args.memory_only:
        return memory(args.seconds, args.compare)
    if args.startup_only:
        return startup(args.starts, args.compare)
    if args.passthrough_only:
        return passthrough(args.records)
    if args.enrich_child:  # the figures as JSON on stdout; what it says on stderr
        with contextlib.redirect_stdout(sys.stderr):
            rates = enrichment(args.records)
        print(json.dumps(rates))
        return 0
    if args.enrich_only:
        return compare_enrichment(args.records, args.compare)
    if args.steady_only:
        floor = enrichment(args.records)["floor"]
        for core, extra in (("native", {}), ("python", {"OTELKV_NO_EXTENSIONS": "1"})):
            steady_load(args, floor, core, extra)
        return 0
    dedup_window()
    if args.dedup_only:
        return 0

    events = make_events(args.records)
    payloads = [r.SerializeToString() for r in batches(events, BATCH)]
    n = len(events)
    print(
        f"{n} k8s_events-shaped KubeVirt records in {len(payloads)} requests of {BATCH}, "
        f"{sum(map(len, payloads)) / n:.0f} bytes/record on the wire"
    )
    rates = enrichment(n)
    floor = rates["floor"]
    passthrough(n)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for core, extra in (("native", {}), ("python", {"OTELKV_NO_EXTENSIONS": "1"})):
        steady_load(args, floor, core, extra)
    overload(env, payloads, args.seconds)
    startup(args.starts, args.compare)
    memory(args.seconds, args.compare)
    if args.write_docs:
        report.write(ROOT / "docs" / "performance.md", report.FIGURES, time.strftime("%Y-%m-%d", time.gmtime()))
        print("docs/performance.md: the table of targets rewritten from this run")
    return 0


def enrichment(n: int) -> dict[str, float]:
    """Records/s of the floor, the Python reference path and the native core (when this checkout
    has one), each over the same requests with a tracker of its own, interleaved, best of 3."""
    payloads = [r.SerializeToString() for r in batches(make_events(n), BATCH)]
    try:
        from otelkv.otlp.native import core  # noqa: PLC0415 - absent from older checkouts
        from otelkv.otlp.wire import enrich_wire  # noqa: PLC0415
    except ImportError:
        native = None
    else:
        native = core()

    def python(tracker: MigrationTracker) -> Any:
        def run(payload: bytes) -> bytes:
            request = ExportLogsServiceRequest.FromString(payload)
            return enrich(request, tracker, EnrichOptions(), set[Any]().__contains__).request.SerializeToString()

        return run

    def compiled(tracker: MigrationTracker) -> Any:
        def run(payload: bytes) -> bytes:
            assert native is not None
            ExportLogsServiceRequest.FromString(payload)  # the receivers decode to validate
            result = enrich_wire(payload, tracker, EnrichOptions(), set[Any]().__contains__, core=native)
            assert result is not None, "the core declined the collector's stream"
            return result.payload

        return run

    best = {"floor": 0.0, "python": 0.0, **({"native": 0.0} if native else {})}
    for _ in range(3):  # a fresh tracker each run: each must see every event once
        best["floor"] = max(
            best["floor"],
            rate(lambda p: ExportLogsServiceRequest.FromString(p).SerializeToString(), payloads, n, repeat=1),
        )
        best["python"] = max(best["python"], rate(python(MigrationTracker()), payloads, n, repeat=1))
        if native:
            best["native"] = max(best["native"], rate(compiled(MigrationTracker()), payloads, n, repeat=1))
    for name in ("floor", "python", "native"):
        if name in best:
            print(f"enrichment {name:>6} {best[name]:>10,.0f} records/s   {best['floor'] / best[name]:.2f}x the floor")
            report.note(name, best[name])
    return best


def compare_enrichment(n: int, compare: Path | None) -> int:
    """:func:`enrichment` of this checkout and (``--compare``) another, each in its own processes,
    alternating, 3 times; the best of each path, as ratios to each process's own floor."""
    roots = {"this": ROOT, **({"compare": compare.resolve()} if compare else {})}
    best: dict[tuple[str, str], float] = {}
    for _ in range(3):
        for name, root in roots.items():
            env = {**os.environ, "OTELKV_BENCH_CHECKOUT": str(root), "PYTHONPATH": str(root)}
            out = subprocess.run(
                [sys.executable, __file__, "--enrich-child", "--records", str(n)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            rates = json.loads(out.stdout)
            for path in ("python", "native"):
                if path in rates:
                    ratio = rates["floor"] / rates[path]
                    best[name, path] = min(best.get((name, path), float("inf")), ratio)
    for (name, path), ratio in best.items():
        print(f"enrichment {name:>7} {path:>6}: {ratio:.2f}x the floor (best of 3 processes)")
    return 0


def steady_load(args: argparse.Namespace, floor: float, core: str, extra: dict[str, str]) -> None:
    """End to end into ``otelkv serve`` (with ``extra`` in its environment), then a steady
    ``--rate`` for ``--seconds`` twice: in requests of ``rate / 10`` records (1,000: the
    collector's batch) and of ``rate / 100`` (100: a collector that sends smaller batches more
    often); otelkv's CPU and peak RSS for each."""
    n = args.records
    sink, serve = _serve_against(_Sink, env=extra)
    try:
        port = _wait_for_port(serve)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = LogsServiceStub(channel)
            fresh = list(batches(make_events(n, offset=10**6), BATCH))
            start = time.perf_counter()
            for request in fresh:
                stub.Export(request, timeout=30, compression=grpc.Compression.Gzip)
            e2e = n / (time.perf_counter() - start)
            print(f"[{core}] end to end (gRPC→HTTP)  {e2e:>10,.0f} records/s   {floor / e2e:.2f}x the floor")
            for run, per_request in enumerate((max(1, args.rate // 10), max(1, args.rate // 100))):
                _steady(stub, serve.pid, args, core, per_request=per_request, offset=(2 + run) * 10**6)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(30)
        sink.shutdown()


def _steady(stub: Any, pid: int, args: argparse.Namespace, core: str, *, per_request: int, offset: int) -> None:
    """``--rate`` records/s for ``--seconds`` in requests of ``per_request`` records, paced: the CPU
    of process ``pid`` (% of one core, from /proc) and its peak RSS."""
    steady = list(batches(make_events(int(args.rate * args.seconds), offset=offset), per_request))
    per_second = args.rate / per_request
    cpu0, _ = proc(pid)
    start = time.perf_counter()
    for i, request in enumerate(steady):
        time.sleep(max(0.0, start + i / per_second - time.perf_counter()))
        stub.Export(request, timeout=30, compression=grpc.Compression.Gzip)
    wall = time.perf_counter() - start
    cpu1, hwm = proc(pid)
    sent = sum(len(r.resource_logs) for r in steady)
    cpu = 100 * (cpu1 - cpu0) / wall
    if core == "native":
        report.note(f"cpu_{per_request}", cpu)
        report.note(f"cpu_{per_request}_rate", sent / wall)
    print(
        f"[{core}] steady {sent / wall:,.0f} records/s for {wall:.1f}s, {per_request} a request: otelkv CPU "
        f"{cpu:.1f}% of one core, {10_000 * (cpu1 - cpu0) / sent:.3f} CPU s per 10,000 records, "
        f"peak RSS {hwm / 2**20:.0f} MiB"
    )


def passthrough(count: int) -> int:
    """Records that are not KubeVirt events (the same events, made Pod events): the reference path
    (``pass_through=False``), the Python short path and the native core (decode, as the receivers
    do, + the core + its bytes) against the floor, interleaved, best of 3 each."""
    events = make_events(count)
    for e in events:
        e["involvedObject"]["kind"] = "Pod"
    payloads = [r.SerializeToString() for r in batches(events, BATCH)]
    from otelkv.otlp.native import core  # noqa: PLC0415 - the bench's own checkout has it
    from otelkv.otlp.wire import enrich_wire  # noqa: PLC0415

    native = core()

    def enriched(short: bool) -> Any:
        def run(payload: bytes) -> bytes:
            request = ExportLogsServiceRequest.FromString(payload)
            result = enrich(request, tracker, EnrichOptions(), set[Any]().__contains__, pass_through=short)
            return result.request.SerializeToString()

        return run

    def compiled(payload: bytes) -> bytes:
        assert native is not None
        ExportLogsServiceRequest.FromString(payload)
        result = enrich_wire(payload, tracker, EnrichOptions(), set[Any]().__contains__, core=native)
        assert result is not None
        return result.payload

    tracker = MigrationTracker()
    paths = {
        "floor": lambda p: ExportLogsServiceRequest.FromString(p).SerializeToString(),
        "reference": enriched(False),
        "short": enriched(True),
    }
    if native:
        paths["native"] = compiled
    best = dict.fromkeys(paths, 0.0)
    for _ in range(3):
        for name, path in paths.items():
            best[name] = max(best[name], rate(path, payloads, len(events), repeat=1))
    floor = best["floor"]
    report.note("passthrough_floor", floor)
    if native:
        report.note("passthrough", best["native"])
    print(
        f"pass-through (Pod events): floor {floor:,.0f} records/s; "
        + "; ".join(
            f"{name} {best[name]:,.0f} records/s, {floor / best[name]:.2f}x" for name in paths if name != "floor"
        )
    )
    return 0


class _PlainDictKeys:
    """The duplicate window as it was before issue 13: a dict, oldest deleted via ``next(iter())``."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._keys: dict[Any, None] = {}

    def add(self, key: Any) -> None:
        self._keys[key] = None
        if len(self._keys) > self._size:
            del self._keys[next(iter(self._keys))]


def dedup_window(size: int = 50_000, adds: int = 200_000) -> None:
    """µs a key added to a full window (the default ``enrich.dedup_window``), old and new, same keys.

    ``adds`` spans several windows: the plain dict's cost grows with the deleted slots at its front
    until it is rebuilt, so a short run would show only its cheap start.
    """
    keys = [(f"uid-{i}", 1) for i in range(size + adds)]
    figures = {}
    for name, window in (("plain dict (before)", _PlainDictKeys(size)), ("DeliveredKeys", DeliveredKeys(size))):
        for key in keys[:size]:
            window.add(key)
        start = time.perf_counter()
        for key in keys[size:]:
            window.add(key)
        figures[name] = (time.perf_counter() - start) / adds * 1e6
    old, new = figures.values()
    print(
        f"dedup window full ({size:,} keys), {adds:,} adds: plain dict {old:.2f} µs/key, "
        f"DeliveredKeys {new:.2f} µs/key, {old / new:.0f}x"
    )


def _serve_against(
    handler: type[BaseHTTPRequestHandler],
    *args: str,
    env: dict[str, str] | None = None,
) -> tuple[ThreadingHTTPServer, subprocess.Popen[str]]:
    """A local sink with ``handler`` and ``otelkv serve`` (its own process, ports of the system's
    choosing, ``args`` added, ``env`` added to its environment) forwarding to it."""
    sink = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "otelkv",
            "serve",
            *args,
            "--grpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--forward",
            f"http://127.0.0.1:{sink.server_address[1]}/otlp",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    return sink, serve


def _rss(pid: int) -> int:
    line = next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith("VmRSS"))
    return int(line.split()[1]) * 1024


def overload(env: dict[str, str], payloads: list[bytes], seconds: float) -> None:
    """16 clients send without pause to otelkv in front of a slow target (0.5 s a request), with a
    24 MiB in-flight cap (12 x the 2 MiB max_message_bytes): RSS, sampled every 0.25 s, should
    stay flat while requests are refused."""

    class Slow(_Sink):
        def do_POST(self) -> None:
            time.sleep(0.5)
            super().do_POST()

    sink = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    config = Path(tempfile.mkdtemp()) / "otelkv.yaml"
    config.write_text(f"max_message_bytes: {2**21}\ndelivery: {{max_inflight_bytes: {24 * 2**20}}}\n")
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "otelkv",
            "serve",
            "--config",
            str(config),
            "--grpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--forward",
            f"http://127.0.0.1:{sink.server_address[1]}/otlp",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    stop = threading.Event()
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    try:
        port = _wait_for_port(serve)

        def client() -> None:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = LogsServiceStub(channel)
                i = 0
                while not stop.is_set():
                    try:
                        stub.Export(ExportLogsServiceRequest.FromString(payloads[i % len(payloads)]), timeout=10)
                        name = "OK"
                    except grpc.RpcError as error:
                        name = error.code().name if isinstance(error, grpc.Call) else "error"
                    with lock:
                        outcomes[name] = outcomes.get(name, 0) + 1
                    i += 1

        threads = [threading.Thread(target=client, daemon=True) for _ in range(16)]
        for t in threads:
            t.start()
        samples = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(0.25)
            samples.append(_rss(serve.pid))
        stop.set()
        for t in threads:
            t.join(15)
        settled = samples[len(samples) // 4 :]  # after the first quarter (start-up, imports)
        print(
            f"overload: 16 clients for {seconds:.0f}s against a 0.5 s target, in-flight cap 24 MiB: {outcomes}; "
            f"RSS {min(settled) / 2**20:.0f}-{max(settled) / 2**20:.0f} MiB after warm-up, "
            f"peak {proc(serve.pid)[1] / 2**20:.0f} MiB"
        )
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(30)
        sink.shutdown()


def memory(seconds: float, compare: Path | None = None) -> int:
    """Issue 8 item 4's load mix against otelkv with its default limits, in front of a slow target:
    16 HTTP clients sending gzip'ed requests that inflate to ~4 MiB, 4 gRPC clients sending ~4 MiB
    requests, 3,000 idle gRPC connections, 2,000 HTTP connections dripping a body. Peak RSS
    (VmHWM) must stay at most 150 MiB, 20 % under the Deployment's 192 Mi limit, on both cores:
    each is run in turn (and ``compare``'s checkout beside this one, interleaved)."""
    roots = [("now", ROOT)] + ([("before", compare.resolve())] if compare else [])
    peaks: dict[tuple[str, str], int] = {}
    for core, extra in (("native", {}), ("python", {"OTELKV_NO_EXTENSIONS": "1"})):
        for name, root in roots:
            peak = _hostile_mix(seconds, f"{name} {core}", root, extra)
            peaks[name, core] = peak
        report.note(f"hostile_{core}", peaks["now", core] / 2**20)
    print("memory: peak RSS (VmHWM) of the hostile mix, budget 150 MiB (192 Mi limit, 20 % to spare):")
    for core in ("native", "python"):
        figures = ", ".join(f"{name} {peaks[name, core] / 2**20:.0f} MiB" for name, _ in roots)
        print(f"  {core:6}: {figures}")
    return 0


def _hostile_mix(seconds: float, label: str, root: Path, env: dict[str, str]) -> int:  # noqa: PLR0915 - one scenario
    """One run of the mix (``BENCH_MIX`` picks its parts) against the ``otelkv serve`` of the
    checkout ``root`` with ``env`` added to its environment; prints what happened and returns the
    peak RSS (VmHWM) in bytes."""
    from tests.test_serve_limits import PREFACE, large_request  # noqa: PLC0415

    class Slow(_Sink):
        def do_POST(self) -> None:
            time.sleep(0.5)
            super().do_POST()

    sink, serve = _serve_checkout(Slow, root, env)
    stop = threading.Event()
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    sockets: list[socket.socket] = []
    request = large_request(4 * 2**20 - 1024)
    body = gzip.compress(request.SerializeToString())
    try:
        ports = _wait_for_ports(serve)
        grpc_port, http_port = ports["grpc_port"], ports["http_port"]
        baseline = _rss(serve.pid)

        def count(name: str) -> None:
            with lock:
                outcomes[name] = outcomes.get(name, 0) + 1

        def grpc_client() -> None:
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                stub = LogsServiceStub(channel)
                while not stop.is_set():
                    try:
                        stub.Export(request, timeout=10)
                        count("grpc OK")
                    except grpc.RpcError as error:
                        count(f"grpc {error.code().name}" if isinstance(error, grpc.Call) else "grpc error")

        def http_client() -> None:
            while not stop.is_set():
                try:
                    connection = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
                    connection.request(
                        "POST",
                        "/v1/logs",
                        body=body,
                        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
                    )
                    count(f"http {connection.getresponse().status}")
                    connection.close()
                except OSError:
                    count("http connection error")

        mix = os.environ.get("BENCH_MIX", "grpc,http,idle,drip").split(",")
        threads = [threading.Thread(target=grpc_client, daemon=True) for _ in range(4 * ("grpc" in mix))]
        threads += [threading.Thread(target=http_client, daemon=True) for _ in range(16 * ("http" in mix))]
        for t in threads:
            t.start()
        for _ in range(3000 * ("idle" in mix)):  # idle gRPC connections
            with contextlib.suppress(OSError):
                raw = socket.create_connection(("127.0.0.1", grpc_port), timeout=1)
                raw.sendall(PREFACE)
                sockets.append(raw)
        drips = []
        for _ in range(2000 * ("drip" in mix)):  # slow HTTP uploads
            with contextlib.suppress(OSError):
                raw = socket.create_connection(("127.0.0.1", http_port), timeout=1)
                raw.sendall(
                    b"POST /v1/logs HTTP/1.1\r\nContent-Type: application/x-protobuf\r\n"
                    b"Content-Length: 4000000\r\n\r\nx"
                )
                drips.append(raw)
        sockets += drips
        end = time.monotonic() + seconds
        samples = []
        while time.monotonic() < end:
            time.sleep(0.25)
            samples.append(_rss(serve.pid))
            for raw in drips[:: max(1, len(drips) // 50)]:
                with contextlib.suppress(OSError):
                    raw.send(b"x")
        stop.set()
        for t in threads:
            t.join(15)
        peak = proc(serve.pid)[1]
        print(
            f"memory [{label}]: hostile mix for {seconds:.0f}s with the default limits: "
            f"{dict(sorted(outcomes.items()))}; RSS at start {baseline / 2**20:.0f} MiB, "
            f"{min(samples) / 2**20:.0f}-{max(samples) / 2**20:.0f} MiB under load, peak (VmHWM) {peak / 2**20:.0f} MiB"
        )
    finally:
        for raw in sockets:
            raw.close()
        serve.send_signal(signal.SIGTERM)
        serve.wait(30)
        sink.shutdown()
    return peak


def _serve_checkout(
    handler: type[BaseHTTPRequestHandler], root: Path, env: dict[str, str]
) -> tuple[ThreadingHTTPServer, subprocess.Popen[str]]:
    """A local sink with ``handler`` and the ``otelkv serve`` of the checkout ``root`` (run from
    it: ``-m`` looks in the working directory first) with ``env`` added, forwarding to the sink."""
    sink = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    listen = ["--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "otelkv",
            "serve",
            *listen,
            "--forward",
            f"http://127.0.0.1:{sink.server_address[1]}/otlp",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root), **env},
        cwd=root,
    )
    return sink, serve


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and its two parts, RssAnon (the process's own memory) and RssFile (mapped files: the
    shared libraries' code, clean and shared with any other process mapping them), in bytes."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    wanted = ("VmRSS", "RssAnon", "RssFile")
    return {ln.split(":")[0]: int(ln.split()[1]) * 1024 for ln in lines if ln.startswith(wanted)}


#: The sidecar's configuration as collector-config/values-sidecar.yaml runs it (OTLP on loopback, a
#: store), for a checkout that has the gRPC health listener (``admin_grpc_listen``): no HTTP
#: listener, the kubelet's probes on gRPC health, its metrics pushed to the collector over OTLP.
#: (The admin listeners take the pod's address there; loopback here, the same memory.)
SIDECAR = """
grpc_listen: 127.0.0.1:0
http_listen: ""
admin_grpc_listen: 127.0.0.1:0
metrics_otlp_endpoint: 127.0.0.1:{metrics_port}
forward: {{endpoint: "{forward}", tenant: kubevirt}}
delivery: {{store_path: "{store}"}}
"""
#: The same for a checkout before it: OTLP/HTTP on loopback too, probes and /metrics on the HTTP
#: admin listener (the values file of that time).
SIDECAR_HTTP = """
grpc_listen: 127.0.0.1:0
http_listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
forward: {{endpoint: "{forward}", tenant: kubevirt}}
delivery: {{store_path: "{store}"}}
"""


def _sidecar_file(root: Path, directory: Path, forward: str, metrics_port: int) -> list[str]:
    """``--config`` with the sidecar's configuration for the checkout in ``root`` (SIDECAR if it has
    the gRPC health listener, else SIDECAR_HTTP), its store in a fresh ``directory``."""
    grpc_health = "admin_grpc_listen" in (root / "otelkv/config/schema.py").read_text()
    store = directory / f"store-{time.monotonic_ns()}" / "otelkv.db"
    store.parent.mkdir()
    text = (SIDECAR if grpc_health else SIDECAR_HTTP).format(forward=forward, store=store, metrics_port=metrics_port)
    path = store.parent / "otelkv.yaml"
    path.write_text(text)
    return ["--config", str(path)]


def _ready(ports: dict[str, int]) -> bool:
    """Whether the service says it is ready: ``/healthz`` 200 on its HTTP admin (or OTLP/HTTP)
    listener, else SERVING for ``readiness`` on its gRPC health listener."""
    http_port = ports.get("admin_port") or ports.get("http_port")
    if http_port:
        with contextlib.suppress(OSError):
            connection = http.client.HTTPConnection("127.0.0.1", http_port, timeout=1)
            connection.request("GET", "/healthz")
            return connection.getresponse().status == 200
        return False
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: PLC0415 - this phase only

    with grpc.insecure_channel(f"127.0.0.1:{ports['admin_grpc_port']}") as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)
        with contextlib.suppress(grpc.RpcError):
            answer = stub.Check(health_pb2.HealthCheckRequest(service="readiness"), timeout=1)
            return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)
    return False


def _start_once(root: Path, arguments: list[str]) -> tuple[float, dict[str, int]]:
    """Seconds from process start to the first ready answer (:func:`_ready`), and the memory one
    second later."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    start = time.perf_counter()
    serve = subprocess.Popen(
        [sys.executable, "-m", "otelkv", "serve", *arguments],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=root,
    )
    try:
        ports = _wait_for_ports(serve)
        for _ in range(1000):  # bounded: 10 s
            if _ready(ports):
                break
            time.sleep(0.01)
        ready = time.perf_counter() - start
        time.sleep(1.0)  # idle: what the pod holds between bursts
        return ready, _memory(serve.pid)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(30)


def _metrics_sink() -> tuple[grpc.Server, int]:
    """An OTLP/gRPC metrics receiver that takes every push (the collector's, in the sidecar)."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - this phase only

    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc  # noqa: PLC0415

    class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            return metrics_service_pb2.ExportMetricsServiceResponse()

    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def startup(starts: int, compare: Path | None) -> int:
    """Start-up time and idle RSS, median of ``starts``: the stdout and http:// targets (OTLP on
    gRPC and HTTP, health on HTTP), and the sidecar's configuration as each checkout deploys it
    (:data:`SIDECAR`, :data:`SIDECAR_HTTP`); the checkouts interleaved, so that both see the same
    machine."""
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    metrics, metrics_port = _metrics_sink()
    forward = f"http://127.0.0.1:{sink.server_address[1]}/otlp"
    listen = ["--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]
    targets = ["stdout", "http", "sidecar"]
    roots = {"this": ROOT, **({"compare": compare.resolve()} if compare else {})}
    for root in roots.values():  # as in the image (pip compiles at install): no compiling at each start
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(root / "otelkv")], check=True)
    figures: dict[tuple[str, str], list[tuple[float, dict[str, int]]]] = {}
    try:
        with tempfile.TemporaryDirectory() as directory:
            for _ in range(starts):
                for target in targets:
                    for name, root in roots.items():
                        arguments = {
                            "stdout": listen,
                            "http": [*listen, "--forward", forward],
                            "sidecar": _sidecar_file(root, Path(directory), forward, metrics_port),
                        }[target]
                        figures.setdefault((name, target), []).append(_start_once(root, arguments))
    finally:
        sink.shutdown()
        metrics.stop(0)
    median: dict[tuple[str, str], tuple[float, dict[str, float]]] = {}
    mid = starts // 2
    for key, runs in figures.items():
        parts = {part: sorted(r[1][part] for r in runs)[mid] / 2**20 for part in ("VmRSS", "RssAnon", "RssFile")}
        median[key] = (sorted(r[0] for r in runs)[mid], parts)
        print(
            f"start-up {key[0]:>7} {key[1]:>7}: ready in {median[key][0]:.3f} s, idle RSS {parts['VmRSS']:.1f} MiB "
            f"(anon {parts['RssAnon']:.1f} + file {parts['RssFile']:.1f}; median of {len(runs)})"
        )
    report.note("idle_rss", median["this", "sidecar"][1]["VmRSS"])
    report.note("idle_anon", median["this", "sidecar"][1]["RssAnon"])
    if compare:
        for target in targets:
            (t_new, r_new), (t_old, r_old) = median["this", target], median["compare", target]
            rss, anon = r_new["VmRSS"] / r_old["VmRSS"], r_new["RssAnon"] / r_old["RssAnon"]
            print(f"start-up {target}: this/compare time {t_new / t_old:.2f}, idle RSS {rss:.2f} (anon {anon:.2f})")
    return 0


def _wait_for_port(serve: subprocess.Popen[str]) -> int:
    return _wait_for_ports(serve)["grpc_port"]


def _wait_for_ports(serve: subprocess.Popen[str]) -> dict[str, int]:
    """The ports ``otelkv serve`` logged it listens on (``grpc_port``, ``http_port``, ``admin_port``,
    ``admin_grpc_port``: those it has)."""
    assert serve.stderr is not None
    for line in serve.stderr:
        if '"otelkv serving"' in line:
            logged = json.loads(line)
            threading.Thread(target=serve.stderr.read, daemon=True).start()  # never block its writes
            names = ("grpc_port", "http_port", "admin_port", "admin_grpc_port")
            return {name: int(logged[name]) for name in names if logged.get(name)}
    raise SystemExit("otelkv serve did not start")


if __name__ == "__main__":
    sys.exit(main())
