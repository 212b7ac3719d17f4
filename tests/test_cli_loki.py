"""``otelkv migrations --loki``: the round trip serve → Loki (the ingest double) → Loki's query API
(the query double, FACTS §3b) → the table, and what a user is told when Loki says no."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE
from tests.loki_query import LokiQueryDouble
from tests.loki_sink import Entry, LokiSink
from tests.test_cli import Serving, otelkv

TENANT = "kubevirt"
RANGE = ("--from", "2026-11-20T08:00:00Z", "--to", "2026-11-20T11:00:00Z")


def unfinished_example(tmp_path: Path) -> Path:
    """The example with fedora-vm's migration cut before its end: it is still running."""
    items = json.loads(EXAMPLE.read_text())["items"]
    ending = ("Migrated", "SuccessfulMigration")
    fedora = ("fedora-vm", "kubevirt-migrate-vm-x7k2p")
    kept = [e for e in items if not (e["reason"] in ending and e["involvedObject"]["name"] in fedora)]
    assert len(kept) < len(items)
    path = tmp_path / "events.json"
    path.write_text(json.dumps({"items": kept}))
    return path


def served(events: Path) -> LokiSink:
    """A sink holding what ``otelkv serve`` forwarded of ``events`` (replayed to it)."""
    sink = LokiSink().start()
    serving = Serving("--forward", sink.url, "--tenant", TENANT)
    try:
        replayed = otelkv("replay", str(events), "--to", serving.grpc)
        assert replayed.returncode == 0, replayed.stderr
        code, _, _ = serving.terminate()
        assert code == 0
    finally:
        sink.stop()
    return sink


@pytest.fixture(scope="module")
def example_loki() -> Iterator[LokiQueryDouble]:
    sink = served(EXAMPLE)
    double = LokiQueryDouble(sink.stored).start()
    yield double
    double.stop()


def test_the_round_trip_prints_the_rows_the_events_give(example_loki: LokiQueryDouble) -> None:
    from_events = otelkv("migrations", str(EXAMPLE))
    from_loki = otelkv("migrations", "--loki", example_loki.url, "--tenant", TENANT, *RANGE)
    assert from_loki.returncode == 0, from_loki.stderr
    assert from_loki.stdout == from_events.stdout
    assert "4 migrations: 2 succeeded, 2 failed" in from_loki.stdout
    assert "evacuation" in from_loki.stdout and "workload-update" in from_loki.stdout
    queries = [r["params"]["query"] for r in example_loki.requests]
    assert any("kubevirt.migration.summary" in q for q in queries)
    assert all(r["headers"].get("X-Scope-OrgID") == TENANT for r in example_loki.requests)
    assert all(r["headers"].get("X-Loki-Response-Encoding-Flags") == "categorize-labels" for r in example_loki.requests)


def test_a_running_migration_comes_back_from_its_events(tmp_path: Path) -> None:
    events = unfinished_example(tmp_path)
    sink = served(events)
    double = LokiQueryDouble(sink.stored).start()
    try:
        from_loki = otelkv("migrations", "--loki", double.url, "--tenant", TENANT, *RANGE, "-o", "json")
    finally:
        double.stop()
    from_events = otelkv("migrations", str(events), "-o", "json")
    assert from_loki.returncode == 0, from_loki.stderr
    loki_rows, event_rows = json.loads(from_loki.stdout), json.loads(from_events.stdout)
    running = [m for m in loki_rows if m["vm"] == "fedora-vm"]
    assert [m["phase"] for m in running] not in ([], ["Succeeded"], ["Failed"])
    assert loki_rows == event_rows


def test_filters_and_outputs_work_on_loki_too(example_loki: LokiQueryDouble) -> None:
    for args in (("--trigger", "evacuation"), ("--phase", "failed"), ("--namespace", "tenant-a")):
        from_events = otelkv("migrations", str(EXAMPLE), "-o", "jsonl", *args)
        from_loki = otelkv("migrations", "--loki", example_loki.url, "--tenant", TENANT, *RANGE, "-o", "jsonl", *args)
        assert from_loki.stdout == from_events.stdout and from_loki.stdout, args
    drains = otelkv("migrations", "--loki", example_loki.url, "--tenant", TENANT, *RANGE, "--by-node")
    assert drains.stdout == otelkv("migrations", str(EXAMPLE), "--by-node").stdout
    assert "not migratable" in drains.stdout


def test_paging_in_small_batches_gets_every_record_once(example_loki: LokiQueryDouble) -> None:
    whole = otelkv("migrations", "--loki", example_loki.url, "--tenant", TENANT, *RANGE, "-o", "json")
    before = len(example_loki.requests)
    paged = otelkv("migrations", "--loki", example_loki.url, "--tenant", TENANT, *RANGE, "-o", "json", "--batch", "5")
    assert paged.returncode == 0, paged.stderr
    assert json.loads(paged.stdout) == json.loads(whole.stdout) and len(json.loads(paged.stdout)) == 4
    asked = example_loki.requests[before:]
    assert len(asked) > 8 and all(r["params"]["limit"] == "5" for r in asked)
    assert all(r["params"]["direction"] == "forward" for r in asked)
    starts = [int(r["params"]["start"]) for r in asked]
    assert len(set(starts)) > 4  # each page starts at the last timestamp of the one before


def test_more_entries_at_one_timestamp_than_a_batch_is_one_line(example_loki: LokiQueryDouble) -> None:
    stderr = one_line_error(
        otelkv("migrations", "--loki", example_loki.url, "--tenant", TENANT, *RANGE, "--batch", "2")
    )
    assert "more than 2 entries share the timestamp" in stderr and "--batch" in stderr


# -- what a user is told ----------------------------------------------------------------------


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stdout
    stderr = done.stderr
    assert stderr.count("\n") == 1 and stderr.startswith("otelkv: "), stderr
    return stderr


def test_no_tenant_is_refused_and_the_flag_named(example_loki: LokiQueryDouble) -> None:
    stderr = one_line_error(otelkv("migrations", "--loki", example_loki.url, *RANGE))
    assert "401" in stderr and "no org id" in stderr and "--tenant" in stderr


def test_a_tenant_with_no_data_says_so(example_loki: LokiQueryDouble) -> None:
    stderr = one_line_error(otelkv("migrations", "--loki", example_loki.url, "--tenant", "nobody", *RANGE))
    assert "no otelkv records" in stderr and "'nobody'" in stderr


def test_forbidden_is_one_line(example_loki: LokiQueryDouble) -> None:
    example_loki.script.append((403, b"forbidden\n"))
    stderr = one_line_error(otelkv("migrations", "--loki", example_loki.url, "--tenant", TENANT, *RANGE))
    assert "403" in stderr and "credentials" in stderr


def test_a_range_past_max_query_length_names_the_limit(example_loki: LokiQueryDouble) -> None:
    done = otelkv(
        "migrations", "--loki", example_loki.url, "--tenant", TENANT, "--from", "2026-10-01T00:00:00Z", "--to",
        "2026-11-21T00:00:00Z",
    )  # fmt: skip
    stderr = one_line_error(done)
    assert "max_query_length" in stderr and "--since" in stderr


def test_a_batch_past_max_entries_names_the_limit(example_loki: LokiQueryDouble) -> None:
    small = LokiQueryDouble(lambda: [], max_entries_limit_per_query=100).start()
    try:
        done = otelkv("migrations", "--loki", small.url, "--tenant", TENANT, *RANGE, "--batch", "500")
    finally:
        small.stop()
    stderr = one_line_error(done)
    assert "max_entries_limit_per_query" in stderr and "--batch" in stderr and "500 > 100" in stderr


def test_an_unreachable_loki_is_one_line() -> None:
    double = LokiQueryDouble(list).start()
    double.stop()  # the port is closed now
    stderr = one_line_error(otelkv("migrations", "--loki", double.url, "--tenant", TENANT, *RANGE))
    assert "cannot reach Loki at" in stderr and "refused" in stderr


def test_credentials_come_from_files_and_the_environment(tmp_path: Path) -> None:
    entry = Entry(TENANT, {"service_name": "kubevirt-events"}, {"event_name": "x"}, "x", 1_795_165_200 * 10**9)
    double = LokiQueryDouble(lambda: [entry]).start()
    (tmp_path / "password").write_text("s3cret\n")
    try:
        done = otelkv(
            "migrations", "--loki", double.url, "--tenant", "${env:OTELKV_UNSET:-from-env}", "--username", "grafana",
            "--password-file", str(tmp_path / "password"), *RANGE,
        )  # fmt: skip
        token = otelkv(
            "migrations", "--loki", double.url, "--tenant", TENANT, "--bearer-token-file", str(tmp_path / "none"),
            *RANGE,
        )  # fmt: skip
    finally:
        double.stop()
    import base64  # noqa: PLC0415

    sent = double.requests[0]["headers"]
    assert sent["Authorization"] == "Basic " + base64.b64encode(b"grafana:s3cret").decode()
    assert sent["X-Scope-OrgID"] == "from-env"  # ${env:…:-default}, as forward's settings take it
    assert "s3cret" not in done.stderr
    assert "--bearer-token-file: cannot read" in one_line_error(token)


def test_loki_flags_without_loki_are_refused() -> None:
    stderr = one_line_error(otelkv("migrations", str(EXAMPLE), "--tenant", TENANT))
    assert "--tenant: only with --loki" in stderr


def test_a_loki_that_merges_metadata_into_labels_gives_the_same_table(example_loki: LokiQueryDouble) -> None:
    merging = LokiQueryDouble(example_loki.entries, categorize_labels=False).start()
    try:
        merged = otelkv("migrations", "--loki", merging.url, "--tenant", TENANT, *RANGE)
    finally:
        merging.stop()
    assert merged.returncode == 0, merged.stderr
    assert merged.stdout == otelkv("migrations", str(EXAMPLE)).stdout


def test_old_migrations_are_their_summaries(example_loki: LokiQueryDouble) -> None:
    """Past the events' look-back (24 h before --to) a migration is its summary record: the same
    row, but for an end up to the tracker's reorder window (10 s) earlier (loki_history's docstring)."""
    later = ("--from", "2026-11-20T08:00:00Z", "--to", "2026-11-22T00:00:00Z")
    old = otelkv("migrations", "--loki", example_loki.url, "--tenant", TENANT, *later, "-o", "json")
    assert old.returncode == 0, old.stderr
    queries = [r["params"] for r in example_loki.requests if "event_name" not in r["params"]["query"]]
    assert queries and int(queries[-1]["start"]) == 1_795_219_200 * 10**9  # 2026-11-21T00:00Z: 24 h before --to
    from_events = json.loads(otelkv("migrations", str(EXAMPLE), "-o", "json").stdout)
    from_summaries = json.loads(old.stdout)
    assert len(from_summaries) == len(from_events) == 4
    for summary, events in zip(from_summaries, from_events, strict=True):
        assert {k: v for k, v in summary.items() if k not in ("ended", "duration_seconds")} == {
            k: v for k, v in events.items() if k not in ("ended", "duration_seconds")
        }
        assert 0 <= events["duration_seconds"] - summary["duration_seconds"] <= 10


def test_the_progress_line_shows_only_after_a_second_and_is_cleared() -> None:
    import io  # noqa: PLC0415

    from otelkv.commands.loki_query import Progress  # noqa: PLC0415

    clock = iter([0.0, 0.5, 2.0])
    out = io.StringIO()
    progress = Progress(out, clock=lambda: next(clock))
    progress.update("summaries", 1000, 1_795_165_200 * 10**9)  # at 0.5 s: nothing yet
    assert out.getvalue() == ""
    progress.update("summaries", 2000, 1_795_165_200 * 10**9)  # at 2 s
    assert "reading summaries from Loki: 2000 entries, up to 2026-11-20 09:00:00 UTC" in out.getvalue()
    progress.done()
    assert out.getvalue().endswith("\r\x1b[K")
    silent = Progress(None, clock=lambda: 5.0)
    silent.update("events", 1, 0)
    assert not silent.shown


def test_two_clusters_get_a_cluster_column_and_never_mix(example_loki: LokiQueryDouble) -> None:
    """The same namespaces and VMs in two clusters (label k8s_cluster_name, from the collector's
    k8s.cluster.name): eight migrations, not four merged ones, and --cluster picks one."""
    from dataclasses import replace  # noqa: PLC0415

    stored = example_loki.entries()
    both = [replace(e, labels={**e.labels, "k8s_cluster_name": c}) for c in ("east", "west") for e in stored]
    double = LokiQueryDouble(lambda: both).start()
    try:
        table = otelkv("migrations", "--loki", double.url, "--tenant", TENANT, *RANGE)
        east = otelkv("migrations", "--loki", double.url, "--tenant", TENANT, *RANGE, "--cluster", "east", "-o", "json")
    finally:
        double.stop()
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:2] == ["CLUSTER", "VM"] and lines[-1].startswith("8 migrations: 4 succeeded, 4 failed")
    assert sorted(line.split()[0] for line in lines[2:-1]) == ["east"] * 4 + ["west"] * 4
    from_events = json.loads(otelkv("migrations", str(EXAMPLE), "-o", "json").stdout)
    assert json.loads(east.stdout) == [{**m, "cluster": "east"} for m in from_events]


def test_bad_ranges_urls_and_files_are_one_line(example_loki: LokiQueryDouble, tmp_path: Path) -> None:
    backwards = otelkv(
        "migrations", "--loki", example_loki.url, "--from", "2026-11-21T00:00:00Z", "--to", "2026-11-20T00:00:00Z"
    )
    assert "must be before --to" in one_line_error(backwards)
    otlp = otelkv("migrations", "--loki", example_loki.url + "/otlp", "--tenant", TENANT, *RANGE)
    assert "404" in one_line_error(otlp) and "without /otlp" in otlp.stderr
    scheme = otelkv("migrations", "--loki", "loki:3100", *RANGE)
    assert "--loki: must be http(s)://" in one_line_error(scheme)
    ca = otelkv("migrations", "--loki", example_loki.url, "--ca-file", str(tmp_path / "no.pem"), *RANGE)
    assert "--ca-file: no such file" in one_line_error(ca)
    both = otelkv("migrations", str(EXAMPLE), "--loki", example_loki.url, *RANGE)
    assert "give no file too" in one_line_error(both)
    unset = otelkv("migrations", "--loki", "${env:OTELKV_NO_SUCH_VARIABLE}", *RANGE)
    assert one_line_error(unset) == "otelkv: --loki: environment variable 'OTELKV_NO_SUCH_VARIABLE' is not set\n"


def test_drains_past_the_events_look_back_keep_their_warnings(example_loki: LokiQueryDouble) -> None:
    later = ("--from", "2026-11-20T08:00:00Z", "--to", "2026-11-22T00:00:00Z")
    before = len(example_loki.requests)
    drains = otelkv("migrations", "--loki", example_loki.url, "--tenant", TENANT, *later, "--by-node")
    assert drains.returncode == 0, drains.stderr
    assert drains.stdout == otelkv("migrations", str(EXAMPLE), "--by-node").stdout
    assert any("not migratable" in r["params"]["query"] for r in example_loki.requests[before:])
