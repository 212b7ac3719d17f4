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

__all__ = ["SERVE_FLAGS", "run"]

#: ``serve`` flags and the configuration keys they set (errors name the flag).
SERVE_FLAGS = {
    "--grpc-listen": "grpc_listen",
    "--http-listen": "http_listen",
    "--forward": "forward.endpoint",
    "--tenant": "forward.tenant",
    "--log-level": "log_level",
    "--log-format": "log_format",
    "--admin-listen": "admin_listen",
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

    def stop(signum: int, frame: FrameType | None) -> None:
        signal.signal(signum, signal.SIG_IGN)  # a second signal must not interrupt the drain
        service.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    service.start()
    while not service.wait(0.5):
        pass
    return 0
