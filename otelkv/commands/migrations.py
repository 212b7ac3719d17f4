"""``otelkv migrations``: the migrations in recorded events, as an SRE reads them."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from datetime import UTC, datetime, tzinfo

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

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Print the migrations in the recorded events of ``args.file`` (table, JSON or JSON Lines)."""
    events = read_event_file(args.file)
    found = track(events)
    if not found:
        print(
            f"otelkv: no KubeVirt migrations in {len(events)} events from {source_name(args.file)} (expected events "
            "of VirtualMachineInstance and VirtualMachineInstanceMigration objects)",
            file=sys.stderr,
        )
    filters = Filters(namespace=args.namespace, vm=args.vm, phase=args.phase, since=args.since)
    migrations = [m for m in found if filters.keep(m)]
    if found and not migrations:
        print(f"otelkv: none of the {len(found)} migrations match the filters", file=sys.stderr)
    if args.output in ("table", "wide"):
        tty = sys.stdout.isatty()
        colour = tty and not os.environ.get("NO_COLOR")  # https://no-color.org: set and not empty
        style = TableStyle(
            now=datetime.now(UTC),
            zone=_local_zone() if args.local else UTC,
            width=None if args.wide or args.output == "wide" else _width(tty),
            colour=colour,
        )
        sys.stdout.write(render_table(migrations, style))
    else:
        render = {"json": render_json, "jsonl": render_jsonl, "yaml": render_yaml}[args.output]
        sys.stdout.write(render(migrations))
    return 0


def _local_zone() -> tzinfo:
    zone = datetime.now().astimezone().tzinfo
    return zone if zone is not None else UTC


def _width(tty: bool) -> int | None:
    """The terminal's width; without a terminal, $COLUMNS if set, else no limit (a pipe gets it all)."""
    if tty:
        return shutil.get_terminal_size().columns
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isascii() and columns.isdigit() else None
