"""The flags of ``otelkv migrations``: where the migrations come from (a file of events, or Loki
with the credentials ``forward`` takes), which ones, and how they are shown."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime

from otelkv.kubevirt.trigger import TRIGGERS

__all__ = ["OUTPUTS", "UNKNOWN", "add_migrations_arguments"]

#: How a migration whose trigger nothing said is shown and filtered (here, not in migrations_table:
#: every command builds this parser, and the table imports tabulate).
UNKNOWN = "unknown"
#: ``-o``: what is printed.
OUTPUTS = ("table", "wide", "json", "jsonl", "yaml", "html")
#: The longest ``--timeout``: one query may take an hour at most.
MAX_TIMEOUT = 3600
#: ``--max-entries``' default: loki_query.MAX_ENTRIES (a test holds them equal), not imported
#: so that every command does not load urllib3.
MAX_ENTRIES = 200_000


def _batch(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if not 1 <= value <= 5000:
        raise argparse.ArgumentTypeError(
            f"must be 1-5000 (Loki's max_entries_limit_per_query defaults to 5000), got {value}"
        )
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not 0 < value <= MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {MAX_TIMEOUT} seconds, got {text!r}")
    return value


def _max_entries(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if not 1 <= value <= 100_000_000:
        raise argparse.ArgumentTypeError(f"must be 1-100000000, got {value}")
    return value


def add_migrations_arguments(mig: argparse.ArgumentParser, time: Callable[[str], datetime]) -> None:
    """Add the flags of ``otelkv migrations`` to ``mig``; ``time`` reads ``--since``/``--from``/``--to``."""
    mig.add_argument(
        "file",
        nargs="?",
        default=None,
        help="kubectl get events -A -o json (or -o yaml) output, or JSON lines; '-' for stdin (the default "
        "without --loki)",
    )
    mig.add_argument(
        "-o",
        "--output",
        choices=OUTPUTS,
        default="table",
        help="a table (wide: the whole failure reason); a JSON array; JSON Lines (one object a line); YAML; "
        "one self-contained HTML page (timeline and sortable table; redirect it to a file)",
    )
    shown = mig.add_mutually_exclusive_group()
    shown.add_argument(
        "--timeline",
        action="store_true",
        help="draw the migrations on a time axis (one line each, grouped by source node) instead of the table",
    )
    shown.add_argument(
        "--by-node",
        action="store_true",
        help="the node drains: evacuation migrations grouped by the node drained, with the VMs that block it",
    )
    which = mig.add_argument_group("which migrations")
    which.add_argument("--namespace", help="only migrations of VMs in this namespace (default: all)")
    which.add_argument(
        "--vm", help="only migrations of this VM: NAME or NAMESPACE/NAME, as the table shows it (default: all)"
    )
    which.add_argument(
        "--phase",
        type=str.lower,
        choices=["succeeded", "failed", "running"],
        help="only migrations with this outcome (running: not finished; default: all)",
    )
    which.add_argument(
        "--trigger",
        type=str.lower,
        choices=[*TRIGGERS, UNKNOWN],
        help="only migrations started this way: a node drain (evacuation), a KubeVirt update "
        "(workload-update), virtctl migrate (user), anything else (other), not said (unknown) (default: all)",
    )
    which.add_argument("--cluster", help="only migrations in this cluster (k8s.cluster.name; default: all)")
    which.add_argument(
        "--since",
        type=time,
        metavar="DURATION|TIME",
        help="only migrations started since then: a duration back from now (2h, 30m, 7d) or an RFC 3339 "
        "time (2025-01-31T08:00:00Z) (default: all; with --loki: 1h, as Loki's own default)",
    )
    which.add_argument(
        "--from",
        dest="since",
        type=time,
        metavar="DURATION|TIME",
        help="the same as --since, beside --to (default: all; with --loki: 1h before --to)",
    )
    which.add_argument(
        "--to",
        dest="until",
        type=time,
        metavar="DURATION|TIME",
        help="only migrations started before then (default: no end; with --loki: now)",
    )
    look = mig.add_argument_group("how it looks")
    look.add_argument("--local", action="store_true", help="times in the local zone instead of UTC")
    look.add_argument("--wide", action="store_true", help="the whole failure reason, however long")
    loki = mig.add_argument_group(
        "from Loki",
        "Read otelkv's summary records (and the events of migrations still running) through Loki's\n"
        "query API instead of a file. Credentials as forward.auth takes them: from files or\n"
        "environment variables, never on the command line; ${env:NAME} in --loki, --tenant, --username.",
    )
    loki.add_argument(
        "--loki", metavar="URL", help="Loki's base URL, e.g. http://loki-gateway.loki.svc (default: none)"
    )
    loki.add_argument("--tenant", help="X-Scope-OrgID: the tenant otelkv wrote to (forward.tenant; default: none)")
    loki.add_argument("--username", help="basic auth user, with --password-file or --password-env (default: none)")
    loki.add_argument("--password-file", metavar="FILE", help="basic auth password in FILE (default: none)")
    loki.add_argument(
        "--password-env", metavar="NAME", help="basic auth password in environment variable NAME (default: none)"
    )
    loki.add_argument(
        "--bearer-token-file", metavar="FILE", help="Authorization: Bearer with the token in FILE (default: none)"
    )
    loki.add_argument(
        "--bearer-token-env", metavar="NAME", help="the same, token in environment variable NAME (default: none)"
    )
    loki.add_argument(
        "--ca-file", metavar="FILE", help="CA certificates (PEM) to verify an https:// Loki (default: the system's)"
    )
    loki.add_argument(
        "--batch",
        type=_batch,
        default=1000,
        help="entries asked for per query, under Loki's max_entries_limit_per_query",
    )
    loki.add_argument(
        "--timeout",
        type=_seconds,
        default=30.0,
        help=f"seconds for each query, its whole answer read (at most {MAX_TIMEOUT})",
    )
    loki.add_argument(
        "--max-entries",
        type=_max_entries,
        default=MAX_ENTRIES,
        help="the most entries read from Loki in one run, all queries and pages together",
    )
