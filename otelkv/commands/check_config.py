"""``otelkv check-config``: validate a configuration as serve would, and print the effective one."""

from __future__ import annotations

import argparse
import sys

from otelkv import config
from otelkv.commands.preflight import preflight, warnings_of

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Load and check ``args.file`` as serve would; print the effective configuration, redacted."""
    cfg = config.load(args.file, offline=args.offline)  # with the environment, as serve would see it
    # this machine as serve would find it (a port a running serve holds passes)
    warnings = warnings_of(cfg) if args.offline else preflight(cfg, in_use_ok=True)
    for warning in warnings:
        print(f"otelkv: warning: {warning}", file=sys.stderr)
    import yaml  # noqa: PLC0415 - serve imports yaml only to read a file

    from otelkv.config.secrets import redacted  # noqa: PLC0415

    print(yaml.safe_dump(redacted(config.to_dict(cfg)), sort_keys=False), end="")
    return 0
