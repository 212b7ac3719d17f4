"""otelkv.kubevirt — read KubeVirt events into live-migration facts, and follow a migration.

Standard library only, no I/O: usable on its own. The public API::

    from otelkv.kubevirt import parse_event, parse_k8s_event, MigrationTracker

See ``docs/parsing.md`` for the attributes, the phase table and the KubeVirt version differences.
"""

from .k8s import parse_k8s_event
from .model import PHASES, TERMINAL_PHASES, MigrationEvent
from .objects import MigrationObject, read_migration_object
from .parse import parse_event
from .rules import RULES, Rule
from .tracker import Migration, MigrationTracker, Tracked

__all__ = [
    "PHASES",
    "RULES",
    "TERMINAL_PHASES",
    "Migration",
    "MigrationEvent",
    "MigrationObject",
    "MigrationTracker",
    "Rule",
    "Tracked",
    "parse_event",
    "parse_k8s_event",
    "read_migration_object",
]
