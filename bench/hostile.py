"""Enrichment of hostile requests, on each core: time and peak memory (never asserted in tests).

Shapes a client of the receivers can send within ``max_message_bytes`` (4 MiB):

- ``namespaces``: one KubeVirt resource, N records each in a namespace of its own (the split makes
  a ResourceLogs per namespace; build grouped them in N^2 before it used a dict);
- ``empty records``: 2 million records of 2 bytes in one scope (upb, the plan and the reference
  path all pay per record);
- ``copies``: a large resource over tiny records in as many namespaces, refused as too large
  (otlp.regroup.copy_limit) instead of copied once per namespace.

Each case runs in a fresh interpreter so that its peak RSS is its own:
``python bench/hostile.py`` (all, both cores) or ``python bench/hostile.py CASE CORE``.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's otelkv and tests

from otelkv.errors import BadRequest
from otelkv.kubevirt import MigrationTracker
from otelkv.otlp import native
from otelkv.otlp.enrich import EnrichOptions, enrich
from otelkv.otlp.wire import enrich_wire
from tests.wire_format import length_field

CASES = ("namespaces", "empty records", "copies")
CORES = ("native", "python")


def payload(case: str) -> bytes:
    """The request of ``case``, about 4 MiB."""
    if case == "empty records":
        return length_field(1, length_field(2, b"\x12\x00" * 2_000_000))
    out = ResourceLogs()
    out.resource.attributes.add(key="k8s.object.kind").value.string_value = "VirtualMachineInstance"
    records, pad = (120_000, 10) if case == "namespaces" else (60_000, 2_000_000)
    out.resource.attributes.add(key="pad").value.string_value = "x" * pad
    scope = out.scope_logs.add()
    for i in range(records):
        scope.log_records.add().attributes.add(key="k8s.namespace.name").value.string_value = f"n{i}"
    return ExportLogsServiceRequest(resource_logs=[out]).SerializeToString()


def run(case: str, core: str) -> str:
    """Enrich ``case`` once on ``core`` (decoded by upb first, as the receivers do)."""
    body = payload(case)
    compiled = native.core()
    if core == "native" and compiled is None:
        return f"{case:14} {core:6}: no compiled core ({native.description()})"
    start = time.perf_counter()
    request = ExportLogsServiceRequest.FromString(body)
    args = (MigrationTracker(), EnrichOptions(), set().__contains__)
    try:
        result = enrich_wire(body, *args, core=compiled) if core == "native" and compiled else None
        if result is None:
            result = enrich(request, *args)
        outcome = f"{len(result.payload) / 2**20:.1f} MiB out"
    except BadRequest:
        outcome = "refused (too large)"
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return f"{case:14} {core:6}: {len(body) / 2**20:.1f} MiB in, {outcome}, {seconds:.2f} s, peak RSS {peak} MiB"


def main() -> int:
    if len(sys.argv) == 3:
        print(run(sys.argv[1], sys.argv[2]))
        return 0
    for case in CASES:
        for core in CORES:
            subprocess.run([sys.executable, __file__, case, core], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
