"""The ``otelkv`` command line: every subcommand's flags, in one parser."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NoReturn

from otelkv import __version__, config
from otelkv.commands.migrations_flags import add_migrations_arguments
from otelkv.config.notation import parse_duration
from otelkv.otlp import native

__all__ = ["build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors in one line (and still exit 2)."""

    #: The subcommands' parsers by name (the top parser only), so that an error found by the top
    #: parser about a subcommand's arguments points to that subcommand's help.
    commands: dict[str, argparse.ArgumentParser]

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        words = list(sys.argv[1:] if args is None else args)
        self._words = words
        parsed, extras = self.parse_known_args(words, namespace)
        if extras:
            chosen = self.commands.get(getattr(parsed, "command", None) or "")
            (chosen or self).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def error(self, message: str) -> NoReturn:
        if "required: COMMAND" in message:  # argparse names the missing command before a bad option
            words = getattr(self, "_words", sys.argv[1:])
            unknown = next((w for w in words if w.startswith("-") and w not in self._option_string_actions), None)
            if unknown is not None:
                message = f"unrecognized option {unknown}"
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
    from otelkv.commands.replay import check_address  # noqa: PLC0415 - grpc only for replay

    try:
        return check_address(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


_DAYS: Final = re.compile(r"([0-9]+)([dw])")


def since(text: str) -> datetime:
    """``--since``: a duration back from now (Go's ``2h``, ``30m``, and days and weeks as Loki and
    Prometheus write them: ``7d``, ``2w``), or an RFC 3339 time (UTC when it has no zone)."""
    days = _DAYS.fullmatch(text.strip())
    try:
        seconds = int(days.group(1)) * (86400 if days.group(2) == "d" else 7 * 86400) if days else parse_duration(text)
    except ValueError:
        seconds = None
    if seconds is not None:
        if seconds < 0:
            raise argparse.ArgumentTypeError(f"a duration back from now cannot be negative, got {text!r}")
        try:
            return datetime.now(UTC) - timedelta(seconds=seconds)
        except OverflowError:
            raise argparse.ArgumentTypeError(f"too far back, got {text!r}") from None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"give a duration (2h, 30m, 7d) or an RFC 3339 time, got {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class _Version(argparse.Action):
    """``otelkv 0.1.0 (core: native)``, or ``(core: python; <why>)``, in one line (argparse's own
    version action rewraps it to the terminal's width)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        chosen = native.choice()
        print(f"otelkv {__version__} (core: {chosen.name}" + (f"; {chosen.reason})" if chosen.reason else ")"))
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The ``otelkv`` parser with its five subcommands."""
    parser = _Parser(prog="otelkv", description="KubeVirt live migrations, from Kubernetes Events to Grafana Loki.")
    parser.add_argument("--version", action=_Version, help="show the version and which enrichment core runs, and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.commands = {}

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        made = commands.add_parser(name, help=summary, description=description, formatter_class=_Help)
        parser.commands[name] = made
        return made

    serve = command(
        "serve",
        "receive OTLP logs, enrich KubeVirt events, forward them",
        "Receive OTLP logs from the OpenTelemetry Collector (gRPC and HTTP), enrich KubeVirt\n"
        "migration events and forward every record to the target. Flags win over\n"
        "OTELKV_* variables, which win over the file (docs/configuration.md).",
    )
    serve.add_argument("--config", help="YAML configuration file (default: $OTELKV_CONFIG, else built-in defaults)")
    serve.add_argument(
        "--grpc-listen",
        metavar="HOST:PORT",
        help=f"OTLP/gRPC listen address (default: grpc_listen, {config.Config.grpc_listen})",
    )
    serve.add_argument(
        "--http-listen",
        metavar="HOST:PORT",
        help=f"OTLP/HTTP, health and metrics listen address (default: http_listen, {config.Config.http_listen})",
    )
    serve.add_argument(
        "--forward",
        metavar="URL",
        help="target: stdout, http(s)://host/path (OTLP/HTTP, /v1/logs "
        "appended) or grpc(s)://host:port (default: forward.endpoint, stdout)",
    )
    serve.add_argument("--tenant", help="X-Scope-OrgID sent to the target (default: forward.tenant, none)")
    serve.add_argument(
        "--log-level",
        type=str.lower,
        choices=["debug", "info", "warn", "warning", "error"],
        help="log level of the logs on stderr, any case (default: log_level, info)",
    )
    serve.add_argument(
        "--log-format",
        type=str.lower,
        choices=["console", "json"],
        help="logs on stderr as console lines or JSON (default: log_format, console on a terminal, else JSON)",
    )
    serve.add_argument(
        "--admin-listen",
        metavar="HOST:PORT",
        help="/healthz, /readyz and /metrics on a listener "
        "of their own, plain HTTP (default: admin_listen, none: on --http-listen)",
    )
    serve.add_argument(
        "--admin-grpc-listen",
        metavar="HOST:PORT",
        help="the gRPC health service alone, for the kubelet's grpc probes (default: admin_grpc_listen, none)",
    )

    check = command(
        "check-config",
        "validate a configuration file and print the effective one",
        "Load a configuration as serve would (file, OTELKV_* variables, ${env:NAME}), check it,\n"
        "and print the effective configuration, header values redacted. Exit 2 naming the key\n"
        "when it is wrong.",
    )
    check.add_argument("file", help="the YAML configuration file")
    check.add_argument(
        "--offline",
        action="store_true",
        help="skip the checks that need this machine: "
        "credential variables and files, CA file, the store, listen addresses (for CI)",
    )

    rep = command(
        "replay",
        "send recorded events as the collector's k8s_events receiver would",
        "Send recorded Kubernetes Events to otelkv's OTLP/gRPC port, in time order, shaped as\n"
        "the collector's k8s_events receiver sends them.",
    )
    rep.add_argument("file", help="kubectl get events -A -o json (or -o yaml) output, or JSON lines ('-': stdin)")
    rep.add_argument(
        "--to",
        required=True,
        metavar="HOST:PORT",
        type=_grpc_address,
        help="otelkv's OTLP/gRPC address (no scheme), for instance 127.0.0.1:4319",
    )
    rep.add_argument("--batch", type=_positive_int, default=100, help="events a request")
    rep.add_argument("--timeout", type=_positive_float, default=10.0, help="seconds for each request")
    rep.add_argument(
        "--bearer-token-file",
        metavar="FILE",
        help="send Authorization: Bearer with the token in FILE (a receiver with receive.auth; default: none)",
    )
    rep.add_argument(
        "--bearer-token-env",
        metavar="NAME",
        help="the same, with the token in environment variable NAME (default: none)",
    )
    rep.add_argument("--tls", action="store_true", help="TLS to the receiver (a receiver with receive.tls)")
    rep.add_argument(
        "--ca-file",
        metavar="FILE",
        help="CA certificates (PEM) to verify the receiver with --tls (default: the system's)",
    )

    dead = command(
        "dead-letter",
        "list or replay the batches otelkv gave up on",
        "List the dead letters in the store of a serve configuration, or send them again to\n"
        "its target (a delivered one is deleted).",
    )
    dead.add_argument("action", choices=["list", "replay"], help="list them, or replay them")
    dead.add_argument("ids", nargs="*", type=int, default=None, help="dead letters to replay (default: all)")
    dead.add_argument(
        "--config", help="the serve configuration (its delivery.store_path and forward target; default: $OTELKV_CONFIG)"
    )

    mig = command(
        "migrations",
        "print the migrations in recorded events, or in Loki",
        "Read recorded Kubernetes Events (or, with --loki, otelkv's records in Loki) and print\n"
        "the KubeVirt live migrations in them: a table (times in UTC unless --local; running ones\n"
        "with the time so far; who triggered each; the failure reason cut to the terminal unless\n"
        "--wide) and a summary line with p50/p95 durations; or a timeline (--timeline), the node\n"
        "drains (--by-node), JSON, YAML or an HTML page. Colour only on a terminal, never with\n"
        "NO_COLOR set. Guide: docs/cli.md.",
    )
    add_migrations_arguments(mig, since)
    return parser
