"""``otelkv serve``'s SIGTERM handler takes no lock (found by bench/bench.py: one stop in ~30 hung).

The handler runs in the main thread between two bytecodes; the main thread spends its time in
``service.wait`` (``Event.wait``), which holds the event's lock for a moment each time it wakes.
A handler that called ``service.stop()`` there blocked for good on ``Event.set``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

#: The moment of the race made certain: the event's lock held by the main thread (as inside
#: ``Event.wait``) when the signal's handler runs; then what the loop of ``run`` does next.
_PROGRAM = textwrap.dedent(
    """
    import os, signal, sys
    from otelkv import config
    from otelkv.commands.serve import StopRequest
    from otelkv.server import Service

    service = Service(config.load(environ={}, overrides={"grpc_listen": "127.0.0.1:0", "http_listen": ""}))
    service.start()
    requested = StopRequest()
    signal.signal(signal.SIGTERM, requested)
    with service._stopped._cond:  # as Event.wait holds it when it wakes
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs at one of these bytecodes
            pass
    assert requested.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN  # a second one cannot interrupt the drain
    service.stop(0)  # what run's loop does next
    print("stopped", service.wait(0))
    """
)


def test_a_signal_while_the_service_lock_is_held_is_recorded_not_acted_on() -> None:
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROGRAM], capture_output=True, text=True, timeout=30, cwd=ROOT, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the handler blocked on the lock the main thread holds (the deadlock)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["stopped", "True"]
