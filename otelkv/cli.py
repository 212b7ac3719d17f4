"""The ``otelkv`` command: serve, check-config, replay, migrations, dead-letter.

Every failure a user can cause ends in one line on stderr naming the file, key or address, and
exit status 2; a traceback is a bug.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from types import FrameType
from typing import Any, NoReturn

from otelkv import __version__, config
from otelkv.otlp import native
from otelkv.telemetry import logs
from otelkv.textfile import TextError, read_text


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors in one line (and still exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


class _Help(argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each help text (those that are not "none"); descriptions keep their lines."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "default" not in text:
            text += " (default: %(default)s)"
        return text


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _grpc_address(text: str) -> str:
    from otelkv.replay import check_address  # noqa: PLC0415

    try:
        return check_address(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


#: ``serve`` flags and the configuration keys they set (errors name the flag).
SERVE_FLAGS = {"--grpc-listen": "grpc_listen", "--http-listen": "http_listen", "--forward": "forward.endpoint",
               "--tenant": "forward.tenant", "--log-level": "log_level", "--admin-listen": "admin_listen"}  # fmt: skip


class _Version(argparse.Action):
    """``otelkv 0.1.0 (core: native)``, or ``(core: python; <why>)``, in one line (argparse's own
    version action rewraps it to the terminal's width)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        chosen = native.choice()
        print(f"otelkv {__version__} (core: {chosen.name}" + (f"; {chosen.reason})" if chosen.reason else ")"))
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="otelkv", description="KubeVirt live migrations, from Kubernetes Events to Grafana Loki.")
    parser.add_argument("--version", action=_Version, help="show the version and which enrichment core runs, and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=description, formatter_class=_Help)

    serve = command("serve", "receive OTLP logs, enrich KubeVirt events, forward them",
                    "Receive OTLP logs from the OpenTelemetry Collector (gRPC and HTTP), enrich KubeVirt\n"
                    "migration events and forward every record to the target. Flags win over\n"
                    "OTELKV_* variables, which win over the file (docs/configuration.md).")  # fmt: skip
    serve.add_argument("--config", help="YAML configuration file (default: $OTELKV_CONFIG, else built-in defaults)")
    serve.add_argument("--grpc-listen", metavar="HOST:PORT", help="OTLP/gRPC listen address (default: grpc_listen, "
                       f"{config.Config.grpc_listen})")  # fmt: skip
    serve.add_argument("--http-listen", metavar="HOST:PORT", help="OTLP/HTTP, health and metrics listen address "
                       f"(default: http_listen, {config.Config.http_listen})")  # fmt: skip
    serve.add_argument("--forward", metavar="URL", help="target: stdout, http(s)://host/path (OTLP/HTTP, /v1/logs "
                       "appended) or grpc(s)://host:port (default: forward.endpoint, stdout)")  # fmt: skip
    serve.add_argument("--tenant", help="X-Scope-OrgID sent to the target (default: forward.tenant, none)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                       help="log level of the JSON logs on stderr (default: log_level, info)")  # fmt: skip
    serve.add_argument("--admin-listen", metavar="HOST:PORT", help="/healthz, /readyz and /metrics on a listener "
                       "of their own, plain HTTP (default: admin_listen, none: on --http-listen)")  # fmt: skip

    check = command("check-config", "validate a configuration file and print the effective one",
                    "Load a configuration as serve would (file, OTELKV_* variables, ${env:NAME}), check it,\n"
                    "and print the effective configuration, header values redacted. Exit 2 naming the key\n"
                    "when it is wrong.")  # fmt: skip
    check.add_argument("file", help="the YAML configuration file")
    check.add_argument("--offline", action="store_true", help="skip the checks that need this machine: "
                       "credential variables and files, CA file, the store, listen addresses (for CI)")  # fmt: skip

    rep = command("replay", "send recorded events as the collector's k8s_events receiver would",
                  "Send recorded Kubernetes Events to otelkv's OTLP/gRPC port, in time order, shaped as\n"
                  "the collector's k8s_events receiver sends them.")  # fmt: skip
    rep.add_argument("file", help="kubectl get events -A -o json (or -o yaml) output, or JSON lines ('-': stdin)")
    rep.add_argument("--to", required=True, metavar="HOST:PORT", type=_grpc_address,
                     help="otelkv's OTLP/gRPC address (no scheme), for instance 127.0.0.1:4319")  # fmt: skip
    rep.add_argument("--batch", type=_positive_int, default=100, help="events a request")
    rep.add_argument("--timeout", type=_positive_float, default=10.0, help="seconds for each request")

    dead = command("dead-letter", "list or replay the batches otelkv gave up on",
                   "List the dead letters in the store of a serve configuration, or send them again to\n"
                   "its target (a delivered one is deleted).")  # fmt: skip
    dead.add_argument("action", choices=["list", "replay"], help="list them, or replay them")
    dead.add_argument("ids", nargs="*", type=int, help="dead letters to replay (default: all)")
    dead.add_argument("--config", help="the serve configuration (its delivery.store_path and forward target; "
                      "default: $OTELKV_CONFIG)")  # fmt: skip

    mig = command("migrations", "print the migrations in recorded events",
                  "Read recorded Kubernetes Events and print the KubeVirt live migrations in them: a table\n"
                  "(times in UTC unless --local; running ones with the time so far; the failure reason cut\n"
                  "to the terminal unless --wide) and a summary line with p50/p95 durations. Colour only\n"
                  "on a terminal, never with NO_COLOR set.")  # fmt: skip
    mig.add_argument("file", nargs="?", default="-", help="kubectl get events -A -o json (or -o yaml) output, "
                     "or JSON lines; '-' for stdin")  # fmt: skip
    mig.add_argument("--output", choices=["table", "json", "jsonl"], default="table",
                     help="a table; a JSON array; or JSON Lines (one JSON object a line)")  # fmt: skip
    mig.add_argument("--namespace", help="only migrations of VMs in this namespace (default: all)")
    mig.add_argument("--vm", help="only migrations of this VM (default: all)")
    mig.add_argument("--phase", type=str.lower, choices=["succeeded", "failed", "running"],
                     help="only migrations with this outcome (running: not finished; default: all)")  # fmt: skip
    mig.add_argument("--since", type=_since, metavar="DURATION|TIME",
                     help="only migrations started since then: a duration back from now (2h, 30m) or an RFC 3339 "
                     "time (2025-01-31T08:00:00Z) (default: all)")  # fmt: skip
    mig.add_argument("--local", action="store_true", help="times in the local zone instead of UTC")
    mig.add_argument("--wide", action="store_true", help="the whole failure reason, however long")
    return parser


def _serve(args: argparse.Namespace) -> int:
    from otelkv.listen import ListenError  # noqa: PLC0415
    from otelkv.preflight import preflight  # noqa: PLC0415
    from otelkv.server import Service  # noqa: PLC0415 - keeps the other commands' start-up light

    overrides = {key: getattr(args, flag[2:].replace("-", "_")) for flag, key in SERVE_FLAGS.items()}
    flags = {key: flag for flag, key in SERVE_FLAGS.items()}
    cfg = config.load(args.config, overrides=overrides, flags=flags)
    logs.setup(cfg.log_level)
    preflight(cfg, flags=flags)
    try:
        service = Service(cfg)
    except RuntimeError as error:  # grpcio's bind failure, should the trial bind have passed
        raise ListenError(f"grpc_listen: cannot listen on {cfg.grpc_listen}: {_one_line(error)}") from None

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
    cfg = config.load(args.file, offline=args.offline)  # with the environment, as serve would see it
    if not args.offline:  # this machine as serve would find it (a port a running serve holds passes)
        from otelkv.preflight import preflight  # noqa: PLC0415

        preflight(cfg, in_use_ok=True)
    import yaml  # noqa: PLC0415 - serve imports yaml only to read a file

    from otelkv.config.secrets import redacted  # noqa: PLC0415

    print(yaml.safe_dump(redacted(config.to_dict(cfg)), sort_keys=False), end="")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from otelkv.replay import replay  # noqa: PLC0415

    events = _events(args.file)
    result = replay(events, args.to, batch=args.batch, timeout=args.timeout)
    print(f"sent {result.sent} events in {result.requests} requests to {args.to}; rejected {result.rejected}")
    return 0 if result.rejected == 0 else 1


def _migrations(args: argparse.Namespace) -> int:
    from otelkv.report import Filters, TableStyle, render_json, render_jsonl, render_table, track  # noqa: PLC0415

    events = _events(args.file)
    found = track(events)
    if not found:
        print(f"otelkv: no KubeVirt migrations in {len(events)} events from {_source(args.file)} (expected events "
              "of VirtualMachineInstance and VirtualMachineInstanceMigration objects)", file=sys.stderr)  # fmt: skip
    filters = Filters(namespace=args.namespace, vm=args.vm, phase=args.phase, since=args.since)
    migrations = [m for m in found if filters.keep(m)]
    if found and not migrations:
        print(f"otelkv: none of the {len(found)} migrations match the filters", file=sys.stderr)
    if args.output == "table":
        tty = sys.stdout.isatty()
        colour = tty and not os.environ.get("NO_COLOR")  # https://no-color.org: set and not empty
        style = TableStyle(now=datetime.now(UTC), zone=_local_zone() if args.local else UTC,
                           width=None if args.wide else _width(tty), colour=colour)  # fmt: skip
        sys.stdout.write(render_table(migrations, style))
    else:
        sys.stdout.write((render_json if args.output == "json" else render_jsonl)(migrations))
    return 0


def _since(text: str) -> datetime:
    """``--since``: a duration back from now, or an RFC 3339 time (UTC when it has no zone)."""
    from otelkv.config.notation import parse_duration  # noqa: PLC0415

    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(text))
    except (ValueError, OverflowError):
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"give a duration (2h, 30m) or an RFC 3339 time, got {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _local_zone() -> tzinfo:
    zone = datetime.now().astimezone().tzinfo
    return zone if zone is not None else UTC


def _width(tty: bool) -> int | None:
    """The terminal's width; without a terminal, $COLUMNS if set, else no limit (a pipe gets it all)."""
    if tty:
        return shutil.get_terminal_size().columns
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() else None


def _source(path: str) -> str:
    return "stdin" if path == "-" else path


def _events(path: str) -> list[dict[str, Any]]:
    """The Events in a file (or stdin), in time order; EventFileError/TextError/OSError naming it."""
    from otelkv.eventfile import in_time_order, parse_events  # noqa: PLC0415 - with yaml: not for serve

    return in_time_order(parse_events(read_text(path), _source(path)))


def _dead_letter(args: argparse.Namespace) -> int:
    from otelkv.deadletters import list_dead_letters, replay_dead_letters  # noqa: PLC0415

    cfg = config.load(args.config)
    if cfg.delivery.store_path:
        from otelkv.delivery.store_check import check_store_path  # noqa: PLC0415

        check_store_path(cfg.delivery.store_path)
    if args.action == "list":
        print(list_dead_letters(cfg), end="")
        return 0
    replayed, failed = replay_dead_letters(cfg, args.ids or None)
    print(f"replayed {replayed} dead letters to {cfg.forward.endpoint}; {failed} still failing")
    return 0 if failed == 0 else 1


def _user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "the user gave something wrong": one line, exit 2."""
    from otelkv.deadletters import DeadLetterError  # noqa: PLC0415
    from otelkv.eventfile import EventFileError  # noqa: PLC0415
    from otelkv.listen import ListenError  # noqa: PLC0415
    from otelkv.replay import ReplayError  # noqa: PLC0415

    return (EventFileError, TextError, OSError, ReplayError, ListenError, DeadLetterError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in ``argv``; returns the exit status."""
    args = _parser().parse_args(argv)
    commands: dict[str, Any] = {"serve": _serve, "check-config": _check_config, "replay": _replay,
                                "migrations": _migrations, "dead-letter": _dead_letter}  # fmt: skip
    try:
        return int(commands[args.command](args))
    except config.ConfigError as error:
        print(f"otelkv: config: {error}", file=sys.stderr)
        return 2
    except _user_errors() as error:
        print(f"otelkv: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # a bug: still one line, with what to report
        print(f"otelkv: internal error (please report it): {type(error).__name__}: {_one_line(error)}",
              file=sys.stderr)  # fmt: skip
        return 70  # EX_SOFTWARE


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror}"
    return " ".join(str(error).split())


if __name__ == "__main__":
    sys.exit(main())
