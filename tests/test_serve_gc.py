"""What start-up made is frozen out of the garbage collector's sight once serving (a full collection
under load walked ~32,000 long-lived objects, 7.4 ms each; docs/performance.md)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import ROOT

_PROGRAM = textwrap.dedent(
    """
    import gc
    from otelkv import config
    from otelkv.server import Service

    service = Service(config.load(environ={}, overrides={"grpc_listen": "127.0.0.1:0", "http_listen": ""}))
    before = gc.get_freeze_count()
    service.start()
    print(before, gc.get_freeze_count(), len(gc.get_objects(generation=2)))
    service.stop(0)
    """
)


def test_start_freezes_what_start_up_made() -> None:
    done = subprocess.run([sys.executable, "-c", _PROGRAM], capture_output=True, text=True, cwd=ROOT, check=True)
    before, frozen, old = map(int, done.stdout.split())
    assert before == 0
    assert frozen > 10_000  # the modules, classes and configuration
    assert old < frozen // 10  # what the collector still walks in a full collection
