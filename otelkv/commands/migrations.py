"""``otelkv migrations``: the migrations in recorded events, or in Loki, as an SRE reads them.

One code path for the rows: wherever the migrations come from (a file of Kubernetes Events fed to
the tracker, or Loki's summary records: :mod:`.loki_history`), the same filters and the same
renderers (table, timeline, drains, JSON, YAML, HTML) take the same
:class:`~otelkv.kubevirt.Migration` snapshots.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any, Final

from otelkv.commands.event_file import read_event_file, source_name
from otelkv.commands.migrations_table import (
    Filters,
    TableStyle,
    render_json,
    render_jsonl,
    render_table,
    render_yaml,
    track,
)
from otelkv.errors import ConfigError, UserError
from otelkv.kubevirt import Migration

__all__ = ["run"]

#: Loki's times are nanoseconds since the Unix epoch: no range starts before it.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MigrationsError(UserError, ValueError):
    """Flags that do not go together; the message names them."""


def run(args: argparse.Namespace) -> int:
    """Print the migrations of ``args.file`` (or of Loki, with ``--loki``) as asked."""
    if (args.timeline or args.by_node) and args.output not in ("table", "wide"):
        flag = "--timeline" if args.timeline else "--by-node"
        raise MigrationsError(f"{flag} is drawn in the terminal: give it without -o {args.output}")
    now = datetime.now(UTC)
    if args.loki:
        found, events, now = _from_loki(args, now)
    else:
        found, events = _from_file(args)
    filters = Filters(
        namespace=args.namespace,
        vm=args.vm,
        phase=args.phase,
        since=args.since,
        until=args.until,
        trigger=args.trigger,
        cluster=args.cluster,
    )
    migrations = [m for m in found if filters.keep(m)]
    if found and not migrations:
        print(f"otelkv: none of the {len(found)} migrations match the filters", file=sys.stderr)
    tty = sys.stdout.isatty()
    style = TableStyle(
        now=now,
        zone=_local_zone() if args.local else UTC,
        width=None if args.wide or args.output == "wide" else _width(tty),
        colour=tty and not os.environ.get("NO_COLOR"),  # https://no-color.org: set and not empty
    )
    sys.stdout.write(_render(args, migrations, events, style))
    return 0


def _render(args: argparse.Namespace, migrations: Sequence[Migration], events: Any, style: TableStyle) -> str:
    if args.by_node:
        from otelkv.commands.drains import drains, render_drains  # noqa: PLC0415

        return render_drains(drains(migrations, events), style)
    if args.timeline:
        from otelkv.commands.timeline import render_timeline  # noqa: PLC0415

        return render_timeline(migrations, width=style.width or 120, now=style.now, zone=style.zone)
    if args.output in ("table", "wide"):
        return render_table(migrations, style)
    if args.output == "html":
        from otelkv.commands.html_report import render_html  # noqa: PLC0415

        return render_html(migrations, now=style.now)
    render = {"json": render_json, "jsonl": render_jsonl, "yaml": render_yaml}[args.output]
    return render(migrations)


def _from_file(args: argparse.Namespace) -> tuple[tuple[Migration, ...], list[dict[str, Any]]]:
    loki_only = [f for f in ("tenant", "username", "password_file", "password_env", "bearer_token_file",
                             "bearer_token_env", "ca_file") if getattr(args, f)]  # fmt: skip
    if loki_only:
        flag = "--" + loki_only[0].replace("_", "-")
        raise MigrationsError(f"{flag}: only with --loki URL (it reads Loki; without it the input is a file)")
    path = args.file or "-"
    events = read_event_file(path)
    found = track(events)
    if not found:
        print(
            f"otelkv: no KubeVirt migrations in {len(events)} events from {source_name(path)} (expected events "
            "of VirtualMachineInstance and VirtualMachineInstanceMigration objects)",
            file=sys.stderr,
        )
    return found, events


def _from_loki(args: argparse.Namespace, now: datetime) -> tuple[tuple[Migration, ...], list[dict[str, Any]], datetime]:
    from otelkv.commands.loki_history import default_range, read_history  # noqa: PLC0415 - urllib3 only here
    from otelkv.commands.loki_query import LokiQuery, credentials, expanded, terminal_progress  # noqa: PLC0415

    if args.file is not None:
        raise MigrationsError(f"--loki reads Loki: give no file too (got {args.file!r})")
    try:  # flags, not configuration keys: their errors are said without the "config:" prefix
        headers = credentials(
            tenant=args.tenant,
            username=args.username,
            password_file=args.password_file,
            password_env=args.password_env,
            bearer_token_file=args.bearer_token_file,
            bearer_token_env=args.bearer_token_env,
        )
        url = expanded("--loki", args.loki, os.environ)
        if args.ca_file and not os.path.isfile(args.ca_file):
            raise MigrationsError(f"--ca-file: no such file {args.ca_file!r}")
        if args.until is not None and args.until < EPOCH:
            raise MigrationsError(
                f"--to: must be 1970-01-01 or later (Loki counts time from then), got {args.until.isoformat()}"
            )
        start, end = default_range(args.since, args.until, now)
        if start < EPOCH:
            raise MigrationsError(
                f"--since/--from: must be 1970-01-01 or later (Loki counts time from then), got {start.isoformat()}"
            )
        if start >= end:
            raise MigrationsError(
                f"--since/--from ({start:%Y-%m-%d %H:%M:%S}) must be before --to ({end:%Y-%m-%d %H:%M:%S})"
            )
        loki = LokiQuery(url, headers=headers, ca_file=args.ca_file, timeout=args.timeout, batch=args.batch,
                         max_entries=args.max_entries)  # fmt: skip
    except ConfigError as error:
        raise MigrationsError(str(error)) from None
    try:
        history = read_history(
            loki,
            start,
            end,
            tenant=headers.get("X-Scope-OrgID"),
            progress=terminal_progress(),
            warnings=args.by_node,
        )
    finally:
        loki.close()
    if history.nameless:
        records = "record" if history.nameless == 1 else "records"
        print(f"otelkv: skipped {history.nameless} summary {records} that names no VM", file=sys.stderr)
    return history.migrations, list(history.events), end


def _local_zone() -> tzinfo:
    zone = datetime.now().astimezone().tzinfo
    return zone if zone is not None else UTC


#: The widest terminal otelkv draws for: a $COLUMNS of a billion took 7.7 GB for the timeline.
MAX_WIDTH: Final = 1000


def _width(tty: bool) -> int | None:
    """The terminal's width (at most :data:`MAX_WIDTH`); without a terminal, $COLUMNS if set, else
    no limit (a pipe gets it all)."""
    if tty:
        return min(shutil.get_terminal_size().columns, MAX_WIDTH)
    columns = os.environ.get("COLUMNS", "")
    return min(int(columns), MAX_WIDTH) if columns.isascii() and columns.isdigit() and len(columns) < 10 else None
