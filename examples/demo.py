"""``make demo``: otelkv serve on its embedded default, fed the recorded example stream.

1. starts ``otelkv serve`` (forward target: stdout — no cluster, no Loki) on free loopback ports;
2. replays ``examples/kubevirt-events.json`` into it over OTLP/gRPC, shaped exactly as the
   collector's ``k8s_events`` receiver shapes events;
3. stops it with SIGTERM, then shows a few of the records it wrote as they are (JSON lines on
   stdout), the enriched ones as a table (RECORD says which is a migration's one summary; TRIGGER
   who started it), the summary lines, and the migration table.

``make demo`` installs only otelkv's runtime dependencies for this (not the test tools).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from tabulate import tabulate

HERE = Path(__file__).parent
EVENTS = HERE / "kubevirt-events.json"
OTELKV = [sys.executable, "-m", "otelkv"]


def main() -> int:
    serve = subprocess.Popen(
        [*OTELKV, "serve", "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert serve.stderr is not None
    ports = {}
    for line in serve.stderr:
        log = json.loads(line)
        if log.get("msg", log.get("message")) == "otelkv serving":
            ports = log
            break
    if not ports:
        print("otelkv serve did not start", file=sys.stderr)
        return 1
    address = f"127.0.0.1:{ports['grpc_port']}"
    print(f"$ otelkv serve                      # gRPC {address}, HTTP :{ports['http_port']}, forward: stdout")
    print(f"$ otelkv replay {EVENTS.relative_to(HERE.parent)} --to {address}")
    replay = subprocess.run(
        [*OTELKV, "replay", str(EVENTS), "--to", address], capture_output=True, text=True, check=False
    )
    print(replay.stdout.strip() or replay.stderr.strip())
    serve.send_signal(signal.SIGTERM)
    out, _ = serve.communicate(timeout=30)
    print(f"otelkv serve exited {serve.returncode} after SIGTERM\n")

    lines = out.splitlines()
    raw = [line for line in lines if '"kubevirt.migration.phase"' in line][:3]
    print(f"otelkv serve wrote {len(lines)} JSON lines to stdout; the first {len(raw)} enriched ones as they are:")
    for line in raw:
        print(line)
    print("\nThe enriched KubeVirt records at a glance. In Loki, their record attributes (kubevirt.*) are")
    print("structured metadata, not index labels: filter on them after a label selector, e.g.")
    print('{service_name="kubevirt-events"} | kubevirt_migration_phase="Failed"')
    rows, summaries = [], []
    for line in lines:
        record = json.loads(line)
        attrs = record["attributes"]
        if "kubevirt.vm.name" not in attrs:
            continue  # a Pod or Node event: forwarded untouched
        summary = attrs.get("event.name") == "kubevirt.migration.summary"
        if summary:
            summaries.append(record["body"])
        duration = attrs.get("kubevirt.migration.duration_seconds")
        rows.append(
            (
                record["time"][11:19],
                "SUMMARY" if summary else "event",
                f"{record['resource']['k8s.namespace.name']}/{attrs['kubevirt.vm.name']}",
                attrs.get("kubevirt.migration.phase", ""),
                attrs.get("kubevirt.migration.trigger", ""),
                attrs.get("kubevirt.migration.source_node", ""),
                attrs.get("kubevirt.migration.target_node", ""),
                f"{duration:.0f}s" if duration is not None else "",
                attrs.get("kubevirt.migration.failure_reason", "")[:50],
            )
        )
    headers = ["TIME", "RECORD", "VM", "PHASE", "TRIGGER", "SOURCE", "TARGET", "DURATION", "FAILURE"]
    print(tabulate(rows, headers=headers))
    print(f"\nThe {len(summaries)} SUMMARY records (event.name=kubevirt.migration.summary), one per migration:")
    for body in summaries:
        print(f"  {body}")
    print("\n$ otelkv migrations examples/kubevirt-events.json")
    table = subprocess.run([*OTELKV, "migrations", str(EVENTS)], capture_output=True, text=True, check=False)
    print(table.stdout)
    print("$ otelkv migrations examples/kubevirt-events.json --timeline")
    timeline = subprocess.run(
        [*OTELKV, "migrations", str(EVENTS), "--timeline"], capture_output=True, text=True, check=False
    )
    print(timeline.stdout, end="")
    return serve.returncode or replay.returncode or table.returncode or timeline.returncode


if __name__ == "__main__":
    sys.exit(main())
