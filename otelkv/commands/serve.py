"""``otelkv serve``: receive OTLP logs, enrich KubeVirt events, forward them."""

from __future__ import annotations

import argparse
import signal
from types import FrameType

from otelkv import config
from otelkv.commands.preflight import preflight
from otelkv.errors import one_line
from otelkv.receive.listen import ListenError
from otelkv.telemetry import logs

__all__ = ["SERVE_FLAGS", "StopRequest", "run"]

#: ``serve`` flags and the configuration keys they set (errors name the flag).
SERVE_FLAGS = {
    "--grpc-listen": "grpc_listen",
    "--http-listen": "http_listen",
    "--forward": "forward.endpoint",
    "--tenant": "forward.tenant",
    "--log-level": "log_level",
    "--log-format": "log_format",
    "--admin-listen": "admin_listen",
    "--admin-grpc-listen": "admin_grpc_listen",
}


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT, then drain; 0 once stopped."""
    from otelkv.server import Service  # noqa: PLC0415 - keeps the other commands' start-up light

    overrides = {key: getattr(args, flag[2:].replace("-", "_")) for flag, key in SERVE_FLAGS.items()}
    flags = {key: flag for flag, key in SERVE_FLAGS.items()}
    cfg = config.load(args.config, overrides=overrides, flags=flags)
    logs.setup(cfg.log_level, cfg.log_format)
    if cfg.delivery.store_path:  # another otelkv on this store: say that, before any port is tried
        from otelkv.delivery.files import StoreLock  # noqa: PLC0415

        StoreLock.check(cfg.delivery.store_path)
    preflight(cfg, flags=flags)
    try:
        service = Service(cfg)
    except RuntimeError as error:  # grpcio's bind failure, should the trial bind have passed
        raise ListenError(f"grpc_listen: cannot listen on {cfg.grpc_listen}: {one_line(error)}") from None

    requested = StopRequest()
    signal.signal(signal.SIGTERM, requested)
    signal.signal(signal.SIGINT, requested)
    if requested.signum is None:
        service.start()
    while requested.signum is None and not service.wait(0.5):
        pass
    service.stop()  # here, not in the handler (StopRequest says why)
    return 0


class StopRequest:
    """A SIGTERM or SIGINT, recorded for ``run``'s loop to act on within half a second.

    A signal handler runs in the main thread between two bytecodes, possibly inside
    ``service.wait`` after ``Event.wait`` took the event's lock back: calling ``service.stop()``
    there deadlocked on ``Event.set`` taking that same lock (bench/bench.py saw one stop in ~30
    hang for good). So the handler takes no lock: it ignores further signals (one must not
    interrupt the drain) and records which came.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        signal.signal(signum, signal.SIG_IGN)
        self.signum = signum
