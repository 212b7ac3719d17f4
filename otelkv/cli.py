"""The ``otelkv`` command: serve, check-config, replay, migrations."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import IO

import grpc
import yaml

from otelkv import __version__, config, logs
from otelkv.eventfile import EventFileError, in_time_order, read_events


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otelkv", description="KubeVirt live migrations, from Kubernetes "
                                     "Events to Grafana Loki.")  # fmt: skip
    parser.add_argument("--version", action="version", version=f"otelkv {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="receive OTLP logs, enrich KubeVirt events, forward them")
    serve.add_argument("--config", help="YAML configuration file (or $OTELKV_CONFIG)")
    serve.add_argument("--grpc-listen", metavar="HOST:PORT", help="OTLP/gRPC listen address")
    serve.add_argument("--http-listen", metavar="HOST:PORT", help="OTLP/HTTP, health and metrics listen address")
    serve.add_argument("--forward", metavar="URL", help="stdout, http(s)://… (OTLP/HTTP) or grpc(s)://host:port")
    serve.add_argument("--tenant", help="X-Scope-OrgID sent to the target")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    # receive side (issue 9): health, readiness and metrics on a listener of their own
    serve.add_argument("--admin-listen", metavar="HOST:PORT", help="/healthz, /readyz, /metrics (default: on HTTP)")

    check = commands.add_parser("check-config", help="validate a configuration file and print the effective one")
    check.add_argument("file")

    rep = commands.add_parser("replay", help="send recorded events as the collector's k8s_events receiver would")
    rep.add_argument("file", help="kubectl get events -o json output, or JSON lines ('-' for stdin)")
    rep.add_argument("--to", required=True, metavar="HOST:PORT", help="otelkv's OTLP/gRPC address")
    rep.add_argument("--batch", type=int, default=100, help="events a request (default 100)")
    rep.add_argument("--timeout", type=float, default=10.0, help="seconds for each request (default 10)")

    dead = commands.add_parser("dead-letter", help="list or replay the batches otelkv gave up on")
    dead.add_argument("action", choices=["list", "replay"])
    dead.add_argument("ids", nargs="*", type=int, help="dead letters to replay (default: all)")
    dead.add_argument("--config", help="the serve configuration (its delivery.store_path and forward target)")

    mig = commands.add_parser("migrations", help="print the migrations in recorded events")
    mig.add_argument("file", nargs="?", default="-", help="kubectl get events -A -o json output (default stdin)")
    mig.add_argument("--output", choices=["table", "json"], default="table")
    return parser


def _open(path: str) -> IO[str]:
    return sys.stdin if path == "-" else Path(path).open()


def _serve(args: argparse.Namespace) -> int:
    from otelkv.server import Service  # noqa: PLC0415 - keeps the other commands' start-up light

    overrides = {"grpc_listen": args.grpc_listen, "http_listen": args.http_listen, "forward.endpoint": args.forward,
                 "forward.tenant": args.tenant, "log_level": args.log_level,
                 "admin_listen": args.admin_listen}  # fmt: skip
    cfg = config.load(args.config, overrides=overrides)
    logs.setup(cfg.log_level)
    service = Service(cfg)

    def stop(signum: int, frame: FrameType | None) -> None:
        signal.signal(signum, signal.SIG_IGN)  # a second signal must not interrupt the drain
        service.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    service.start()
    while not service.wait(0.5):
        pass
    return 0


def _check_config(args: argparse.Namespace) -> int:
    cfg = config.load(args.file)  # with the environment, as serve would see it
    print(yaml.safe_dump(config.to_dict(cfg), sort_keys=False), end="")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from otelkv.replay import replay  # noqa: PLC0415

    with _open(args.file) as stream:
        events = in_time_order(read_events(stream, args.file))
    result = replay(events, args.to, batch=args.batch, timeout=args.timeout)
    print(f"sent {result.sent} events in {result.requests} requests to {args.to}; rejected {result.rejected}")
    return 0 if result.rejected == 0 else 1


def _migrations(args: argparse.Namespace) -> int:
    from otelkv.report import render_json, render_table, track  # noqa: PLC0415

    with _open(args.file) as stream:
        events = in_time_order(read_events(stream, args.file))
    migrations = track(events)
    sys.stdout.write(render_table(migrations) if args.output == "table" else render_json(migrations))
    return 0


def _dead_letter(args: argparse.Namespace) -> int:
    from otelkv.deadletters import list_dead_letters, replay_dead_letters  # noqa: PLC0415

    cfg = config.load(args.config)
    if args.action == "list":
        print(list_dead_letters(cfg), end="")
        return 0
    replayed, failed = replay_dead_letters(cfg, args.ids or None)
    print(f"replayed {replayed} dead letters to {cfg.forward.endpoint}; {failed} still failing")
    return 0 if failed == 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in ``argv``; returns the exit status."""
    args = _parser().parse_args(argv)
    commands = {"serve": _serve, "check-config": _check_config, "replay": _replay, "migrations": _migrations,
                "dead-letter": _dead_letter}  # fmt: skip
    try:
        return commands[args.command](args)
    except config.ConfigError as error:
        print(f"otelkv: config: {error}", file=sys.stderr)
        return 2
    except (EventFileError, OSError) as error:
        print(f"otelkv: {error}", file=sys.stderr)
        return 2
    except grpc.RpcError as error:
        print(f"otelkv: {error.code().name if isinstance(error, grpc.Call) else ''}: "
              f"{error.details() if isinstance(error, grpc.Call) else error}", file=sys.stderr)  # fmt: skip
        return 1


if __name__ == "__main__":
    sys.exit(main())
