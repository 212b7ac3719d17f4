"""``otelkv migrations --loki`` against a Loki that lies, stalls, floods or tries to write to the
terminal (the adversarial probe's findings): every one ends in one line and exit 2, or a correct
table, within a bounded number of requests and bytes. A real loopback HTTP server; no timing is
asserted, only counts (requests served, bytes sent)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.test_cli import otelkv

RANGE = ("--from", "2026-12-07T09:00:00Z", "--to", "2026-12-07T11:00:00Z")
RANGE_END_NS = 1_796_637_600 * 10**9  # 2026-12-07T11:00:00Z


def summary(time_ns: int, i: int, **labels: str) -> dict[str, Any]:
    """One summary record's stream, as otelkv writes it (Loki's label names)."""
    stream = {
        "service_name": "kubevirt-events",
        "event_name": "kubevirt.migration.summary",
        "k8s_namespace_name": "ns",
        "kubevirt_vm_name": f"vm{i}",
        "kubevirt_migration_name": f"mig-{i}",
        "kubevirt_migration_uid": f"uid-{i}",
        "kubevirt_migration_phase": "Succeeded",
        "kubevirt_migration_source_node": "n1",
        "kubevirt_migration_target_node": "n2",
        "kubevirt_migration_start_time": "2026-12-07T10:00:00Z",
        "kubevirt_migration_end_time": "2026-12-07T10:00:30Z",
        **labels,
    }
    return {"stream": stream, "values": [[str(time_ns), "summary"]]}


def result(streams: list[dict[str, Any]]) -> bytes:
    return json.dumps({"status": "success", "data": {"resultType": "streams", "result": streams}}).encode()


Query = dict[str, str]
#: How the hostile Loki answers a query: (status, headers, body chunks).
Answer = Callable[[Query], tuple[int, dict[str, str], Iterator[bytes]]]


class Hostile:
    """A Loki query API that answers every summary query with ``answer`` (other queries: nothing);
    counts the requests served and the bytes sent."""

    def __init__(self, answer: Answer) -> None:
        self.requests = 0
        self.sent = 0
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                hostile.requests += 1
                query = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
                if "summary" in query.get("query", ""):
                    status, headers, chunks = answer(query)
                else:
                    status, headers, chunks = whole(result([]))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    for chunk in chunks:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        hostile.sent += len(chunk)
                except OSError:
                    self.close_connection = True  # otelkv hung up: what the test wants

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def whole(body: bytes, status: int = 200, **headers: str) -> tuple[int, dict[str, str], Iterator[bytes]]:
    return status, {"Content-Length": str(len(body)), **headers}, iter([body])


def run(answer: Answer, *args: str) -> tuple[subprocess.CompletedProcess[str], Hostile]:
    hostile = Hostile(answer)
    try:
        done = otelkv("migrations", "--loki", hostile.url, "--tenant", "t", *RANGE, *args, timeout=120)
    finally:
        hostile.stop()
    return done, hostile


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("otelkv: "), done.stderr[-2000:]
    return done.stderr


# -- 1 (high): paging always progresses, and a run's work is bounded ----------------------------


def test_a_loki_that_ignores_start_is_named_after_two_pages() -> None:
    """Finding 1: the same full page forever made otelkv loop with unbounded memory."""
    base = RANGE_END_NS - 10**12

    def same_page(q: Query) -> Any:
        return whole(result([summary(base + i, i) for i in range(int(q["limit"]))]))

    done, hostile = run(same_page, "--batch", "10")
    stderr = one_line_error(done)
    assert "answered the same page again: it does not honour start=" in stderr
    assert hostile.requests <= 2


def test_a_loki_that_answers_entries_before_start_is_named() -> None:
    """Finding 1: entries up to and at ``start`` (new ones each time) never moved paging on."""

    def backwards(q: Query) -> Any:
        start, limit = int(q["start"]), int(q["limit"])
        stamp = time.monotonic_ns()  # only to make each page's entries new ones
        return whole(result([summary(start - limit + 1 + i, stamp + i) for i in range(limit)]))

    done, hostile = run(backwards, "--batch", "10")
    assert "answered a full page with nothing after its start: it does not honour start=" in one_line_error(done)
    assert hostile.requests <= 3


def test_the_entries_of_one_run_are_bounded_by_max_entries() -> None:
    """Finding 1: an honest-looking Loki with no end of entries stops at --max-entries."""

    def endless(q: Query) -> Any:
        start, limit = int(q["start"]), int(q["limit"])
        return whole(result([summary(start + 1 + i, start + i) for i in range(limit)]))

    done, hostile = run(endless, "--batch", "10", "--max-entries", "50")
    stderr = one_line_error(done)
    assert "more than 50 entries" in stderr and "--max-entries" in stderr
    assert hostile.requests <= 6


def test_entries_outside_the_range_asked_are_dropped() -> None:
    """A Loki answering entries before --from and at or after --to: they are not rows."""

    def outside(q: Query) -> Any:
        start, end = int(q["start"]), int(q["end"])
        return whole(result([summary(start - 1, 1), summary(start, 2), summary(end, 3)]))

    done, _ = run(outside, "-o", "json")
    assert done.returncode == 0, done.stderr
    assert [m["vm"] for m in json.loads(done.stdout)] == ["vm2"]


# -- 2, 3 (medium): time and size of one answer --------------------------------------------------


def test_a_slow_answer_stops_at_the_timeout() -> None:
    """Finding 2: one byte at a time kept otelkv reading long past --timeout."""
    body = result([]) + b" " * 100_000

    def slow(q: Query) -> Any:
        def trickle() -> Iterator[bytes]:
            for byte in body:
                time.sleep(0.01)
                yield bytes([byte])

        return 200, {"Content-Length": str(len(body))}, trickle()

    done, hostile = run(slow, "--timeout", "1")
    assert "did not finish its answer within 1 seconds (--timeout)" in one_line_error(done)
    assert hostile.sent < len(body)


def test_an_answer_larger_than_the_limit_is_refused_by_its_length() -> None:
    """Finding 3: a 400 MB answer took 1.69 GB; a Content-Length past 64 MiB is refused unread."""

    def huge(q: Query) -> Any:
        return 200, {"Content-Length": str(400 * 2**20)}, iter([b'{"status":"success"'])

    done, _ = run(huge)
    assert "answered more than 64 MiB for one query" in one_line_error(done)


def test_an_answer_larger_than_the_limit_is_refused_while_read() -> None:
    """Finding 3: without a Content-Length, reading stops past 64 MiB."""
    chunk = b"A" * 2**20

    def endless(q: Query) -> Any:
        return 200, {"Connection": "close"}, iter([b'{"status":"success","data":"', *([chunk] * 200)])

    done, hostile = run(endless)
    assert "answered more than 64 MiB for one query" in one_line_error(done)
    assert hostile.sent < 200 * len(chunk)


def test_an_entry_with_too_many_labels_is_refused() -> None:
    """Finding 3: 200,000 labels in one stream cost 152 MB."""
    many = {f"l{i}": "v" for i in range(257)}
    done, _ = run(lambda q: whole(result([summary(RANGE_END_NS - 10**9, 1, **many)])))
    assert "an entry with more than 256 labels and metadata" in one_line_error(done)


# -- 4 (medium): absurd answers and flags are one line ---------------------------------------------


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (result([summary(10**25, 1)]), "timestamp that is not nanoseconds since 1970"),
        (result([summary(2**63, 1)]), "timestamp that is not nanoseconds since 1970"),
        (b"[" * 200_000 + b"]" * 200_000, "JSON nested too deeply"),
        (b"[" + b"[]," * 1_000_001 + b"[]]", "more than 2000000 JSON values (counted as [, { and commas)"),
        (b"{" + b'"a":0,' * 2_000_001 + b'"b":0}', "more than 2000000 JSON values"),
        (b"\xff\xfe not json", "not a query result"),
    ],
    ids=["huge-timestamp", "past-int64", "deep", "many-containers", "many-members", "undecodable"],
)
def test_an_absurd_answer_is_one_line(body: bytes, said: str) -> None:
    """Finding 4: these were exit 70 tracebacks (ValueError: year out of range, RecursionError)."""
    done, _ = run(lambda q: whole(body))
    assert said in one_line_error(done)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--timeout", "1e308"), "--timeout: must be more than 0 and at most 3600 seconds"),
        (("--timeout", "0"), "--timeout: must be more than 0"),
        (("--max-entries", "0"), "--max-entries: must be 1-100000000"),
        (("--from", "0001-01-01T00:00:00Z", "--to", "0001-01-01T12:00:00Z"), "must be 1970-01-01 or later"),
        (("--to", "0001-01-01T00:30:00Z"), "--to: must be 1970-01-01 or later"),
    ],
    ids=["timeout-huge", "timeout-zero", "max-entries", "year-one", "to-year-one"],
)
def test_absurd_flags_are_one_line(args: tuple[str, ...], said: str) -> None:
    """Finding 4: --timeout 1e308 and a range in year 1 were OverflowError tracebacks."""
    done = otelkv("migrations", "--loki", "http://127.0.0.1:9", "--tenant", "t", *args)
    assert done.returncode == 2, done.stderr
    assert said in done.stderr and "Traceback" not in done.stderr


def test_a_loki_that_never_answers_names_the_timeout_and_a_closed_port_the_url() -> None:
    """The headers not coming within --timeout is said with --timeout; nobody listening, --loki."""
    silent = Hostile(lambda q: whole(b""))
    silent._server.RequestHandlerClass.do_GET = lambda self: time.sleep(30)  # type: ignore[attr-defined]
    try:
        done = otelkv("migrations", "--loki", silent.url, "--tenant", "t", *RANGE, "--timeout", "1")
    finally:
        silent.stop()
    assert "timed out (--timeout)" in one_line_error(done)
    closed = otelkv("migrations", "--loki", silent.url, "--tenant", "t", *RANGE)
    assert "connection refused (--loki)" in one_line_error(closed)


def test_the_max_entries_default_is_loki_querys() -> None:
    from otelkv.commands import loki_query, migrations_flags  # noqa: PLC0415

    assert migrations_flags.MAX_ENTRIES == loki_query.MAX_ENTRIES


# -- 5 (medium): nothing from Loki reaches the terminal raw ---------------------------------------

ESCAPE = "\x1b]0;PWNED\x07\x1b[2J\x1b[31m\u202e"


def test_an_error_body_is_shown_escaped() -> None:
    """Finding 5: a 500's body went raw to stderr (a title set, the screen cleared)."""
    done, _ = run(lambda q: whole(ESCAPE.encode() + b"boom", status=500))
    stderr = one_line_error(done)
    assert "\x1b" not in stderr and "\x07" not in stderr and "\u202e" not in stderr
    assert "answered 500: \\x1b]0;PWNED\\x07\\x1b[2J\\x1b[31m\\u202eboom" in stderr


def escaping(q: Query) -> Any:
    labels = {
        "kubevirt_vm_name": "vm" + ESCAPE,
        "k8s_namespace_name": "ns" + ESCAPE,
        "kubevirt_migration_name": "kubevirt-evacuation-" + ESCAPE,
        "kubevirt_migration_phase": "Failed",
        "kubevirt_migration_failure_reason": "r" + ESCAPE,
        "kubevirt_migration_source_node": "n" + ESCAPE,
        "kubevirt_migration_target_node": "t" + ESCAPE,
        "k8s_cluster_name": "c" + ESCAPE,
    }
    return whole(result([summary(RANGE_END_NS - 10**9, 1, **labels), summary(RANGE_END_NS - 10**9 + 1, 2)]))


@pytest.mark.parametrize("view", [(), ("--wide",), ("--timeline",), ("--by-node",)], ids=str)
def test_names_from_loki_are_shown_escaped(view: tuple[str, ...]) -> None:
    """Finding 5: names, nodes, reasons and clusters from Loki's labels went raw to the table,
    --wide, --timeline and --by-node (and --timeline cut them inside a sequence)."""
    done, _ = run(escaping, *view)
    assert done.returncode == 0, done.stderr
    for raw in ("\x1b", "\x07", "\u202e"):
        assert raw not in done.stdout, view
    assert "\\x1b]0;PWNED\\x07" in done.stdout


def test_json_keeps_the_data_as_it_is() -> None:
    done, _ = run(escaping, "-o", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["vm"] == "vm" + ESCAPE


# -- 6 (low): redirects, and summaries that name no VM -----------------------------------------------


def test_a_redirect_is_named_and_not_followed() -> None:
    """Finding 6: a 302 was "answered 302: no message"; it must say where, and not go there
    (the credentials would follow)."""
    elsewhere = Hostile(lambda q: whole(result([])))
    try:
        done, _ = run(lambda q: whole(b"", status=302, Location=f"{elsewhere.url}/loki/api/v1/query_range"))
    finally:
        elsewhere.stop()
    stderr = one_line_error(done)
    assert f"answered 302, redirecting to {elsewhere.url}/loki/api/v1/query_range" in stderr
    assert "does not follow redirects" in stderr
    assert elsewhere.requests == 0


def test_a_summary_without_a_vm_is_skipped_and_counted() -> None:
    """Finding 6: a summary with no VM label became a bogus ``?/?`` row."""
    nameless = summary(RANGE_END_NS - 10**9, 1)
    del nameless["stream"]["kubevirt_vm_name"]
    done, _ = run(lambda q: whole(result([nameless, summary(RANGE_END_NS - 10**9 + 1, 2)])))
    assert done.returncode == 0, done.stderr
    assert "?/?" not in done.stdout and "ns/vm2" in done.stdout
    assert done.stderr == "otelkv: skipped 1 summary record that names no VM\n"
