"""Turn one KubeVirt event into facts, driven by the decision table in :mod:`.rules`."""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Final

from .event_builders import builder
from .model import VM, VMI, VMIM, MigrationEvent
from .names import bounded_reason, kubernetes_name, vm_from_launcher_pod
from .rules import FROM_MESSAGE, NO_PHASE, RULES, Rule
from .template import match
from .timestamps import parse_time

# client-go's EventCorrelator prefix for >10 similar events within 10 minutes.
_COMBINED: Final = "(combined from similar events): "
# The collector's k8s_events receiver lower-cases the event type (k8s_event_to_logdata.go): read it
# in any case.
_TYPES: Final = {t.lower(): t for t in ("Normal", "Warning", "Error", "Critical")}
#: The same, for the spellings that come (a lookup before the strip and lower-casing).
_TYPE_OF: Final = {**{t: t for t in _TYPES.values()}, **{t: t.title() for t in _TYPES}}
# Go prints surplus Sprintf arguments as "%!(EXTRA type=value, …)".
_EXTRA: Final = re.compile(r"%!\(EXTRA [^)]*\)")


def _index(rules: tuple[Rule, ...]) -> tuple[Mapping[str, tuple[Rule, ...]], tuple[Rule, ...]]:
    by_reason: defaultdict[str, list[Rule]] = defaultdict(list)
    for rule in rules:
        if rule.reason is not None:
            by_reason[rule.reason].append(rule)
    return {k: tuple(v) for k, v in by_reason.items()}, tuple(r for r in rules if r.reason is None)


_BY_REASON, _ANY_REASON = _index(RULES)


@dataclass(slots=True)
class _Facts:
    vm_name: str | None = None
    migration_name: str | None = None
    migration_uid: str | None = None
    is_migration: bool = False
    phase: str | None = None
    source_node: str | None = None
    target_node: str | None = None
    target_pod: str | None = None
    target_address: str | None = None
    target_ports: tuple[int, ...] | None = None
    failure_reason: str | None = None
    template: str | None = None
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class _Found:
    rule: Rule
    values: Mapping[str, str]
    complete: bool


def parse_event(
    *,
    reason: str,
    message: str,
    event_type: str | None = None,
    object_kind: str | None = None,
    object_name: str | None = None,
    namespace: str | None = None,
    component: str | None = None,
    host: str | None = None,
    object_uid: str | None = None,
    timestamp: datetime | str | None = None,
    count: int | None = None,
) -> MigrationEvent:
    """Read the migration facts one Kubernetes Event about a KubeVirt object states.

    ``component`` is ``source.component`` / ``reportingController``; ``host`` is ``source.host``
    / ``reportingInstance`` (the node of a virt-handler). ``timestamp`` is an aware datetime or
    an RFC 3339 string (a string that is not one is read as unknown). Empty strings count as
    unknown. Any strings are accepted; a value of a wrong type raises TypeError naming the field.
    """
    texts = (event_type, object_kind, object_name, namespace, component, host, object_uid)
    if not (type(reason) is str and type(message) is str and _TEXT.issuperset(map(type, texts))):
        _check_types(reason, message, texts)  # a subclass passes; a wrong type raises, naming it
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
        raise TypeError(f"count must be an int or None, got {type(count).__name__}")
    return read_event(
        reason,
        message,
        event_type or None,
        object_kind or None,
        object_name or None,
        object_uid or None,
        namespace or None,
        component or None,
        host or None,
        _timestamp(timestamp),
        count,
        None,
    )


def read_event(  # noqa: PLR0917 - positional: one call a record, 12 keywords cost more
    reason: str,
    message: str,
    event_type: str | None,
    kind: str | None,
    name: str | None,
    uid: str | None,
    namespace: str | None,
    component: str | None,
    host: str | None,
    timestamp: datetime | None,
    count: int | None,
    cluster: str | None,
) -> MigrationEvent:
    """:func:`parse_event` on values already checked: each text a non-empty str or None, the
    timestamp an aware datetime or None (the readers of :mod:`.k8s` check them their own way);
    ``cluster`` as the collector names it. One event is built, positionally."""
    if event_type is not None:
        event_type = _TYPE_OF.get(event_type) or _TYPES.get(event_type.strip().lower(), event_type)
    text = message[len(_COMBINED) :] if message.startswith(_COMBINED) else message
    found = _find_any(reason, event_type, kind, component, text)
    about_vm = kind in (VMI, VM)
    is_vmim = kind == VMIM
    vm_name = name if about_vm else None
    migration_name = name if is_vmim else None
    migration_uid = uid if is_vmim else None
    facts = _Facts(vm_name, migration_name, migration_uid, is_vmim)
    if found is not None:
        _read(found, kind, host, text, facts)
    return _parsed(
        reason,
        message,
        event_type,
        kind,
        name,
        uid,
        kubernetes_name(namespace),
        component,
        host,
        timestamp,
        count,
        kubernetes_name(cluster),
        kubernetes_name(facts.vm_name),
        kubernetes_name(facts.migration_name),
        kubernetes_name(facts.migration_uid),
        facts.phase,
        kubernetes_name(facts.source_node),
        kubernetes_name(facts.target_node),
        kubernetes_name(facts.target_pod),
        facts.target_address,
        facts.target_ports,
        bounded_reason(facts.failure_reason),
        facts.is_migration,
        facts.template,
        facts.truncated,
    )


#: Builds the event :func:`read_event` read, from its values in this order (the tracker's
#: ``duration_seconds`` and ``trigger`` at their defaults).
_parsed: Final = builder(
    "reason",
    "message",
    "event_type",
    "object_kind",
    "object_name",
    "object_uid",
    "namespace",
    "component",
    "host",
    "timestamp",
    "count",
    "cluster",
    "vm_name",
    "migration_name",
    "migration_uid",
    "phase",
    "source_node",
    "target_node",
    "target_pod",
    "target_address",
    "target_ports",
    "failure_reason",
    "is_migration",
    "template",
    "truncated",
)


#: The exact types of a text field (str or None): checked first, and quickly; the rest by isinstance.
_TEXT: Final = frozenset({str, type(None)})
_TEXT_FIELDS: Final = ("event_type", "object_kind", "object_name", "namespace", "component", "host", "object_uid")


def _check_types(reason: object, message: object, texts: tuple[object, ...]) -> None:
    """TypeError naming the first field of a wrong type (str subclasses are fine)."""
    for field, required in (("reason", reason), ("message", message)):
        if not isinstance(required, str):
            raise TypeError(f"{field} must be a str, got {type(required).__name__}")
    for field, value in zip(_TEXT_FIELDS, texts, strict=True):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{field} must be a str or None, got {type(value).__name__}")


def _timestamp(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        return parse_time(value) if value else None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise TypeError("timestamp must be a timezone-aware datetime, got a naive one")
        return value
    raise TypeError(f"timestamp must be a datetime, an RFC 3339 str or None, got {type(value).__name__}")


#: Messages read again are answered from a cache (the same ones come again and again:
#: "VirtualMachineInstance is migrating.", counted repeats) — only those of at most this many
#: characters, so that the cache holds at most ~4,096 x 2 x 1 KiB, whatever events arrive.
_CACHED_TEXT: Final = 1024


def _find_any(reason: str, event_type: str | None, kind: str | None, component: str | None, text: str) -> _Found | None:
    """Read ``text`` as it is, then without trailing white space, then without Go artifacts."""
    if len(text) + len(reason) > _CACHED_TEXT:
        return _find_variants(reason, event_type, kind, component, text)
    return _find_cached(reason, event_type, kind, component, text)


def _find_variants(
    reason: str, event_type: str | None, kind: str | None, component: str | None, text: str
) -> _Found | None:
    found = _find(reason, event_type, kind, component, text)
    for variant in (text.rstrip(), _EXTRA.sub("", text).rstrip()):
        if found is not None and found.complete:
            break
        if variant != text:
            found = _find(reason, event_type, kind, component, variant) or found
    return found


#: A pure function of its arguments over an immutable table: cached.
_find_cached: Final = lru_cache(maxsize=4096)(_find_variants)


def _find(reason: str, event_type: str | None, kind: str | None, component: str | None, text: str) -> _Found | None:
    rules = _BY_REASON.get(reason)
    if rules is not None:
        return _first(rules, event_type, kind, component, text)
    # KubeVirt put error text in the reason: only the whole message can tell which event it is.
    found = _first(_ANY_REASON, event_type, kind, component, text)
    return found if found is not None and found.complete else None


def _first(
    rules: tuple[Rule, ...], event_type: str | None, kind: str | None, component: str | None, text: str
) -> _Found | None:
    """The first complete match; else a cut-off reading that every candidate agrees on."""
    cut: list[_Found] = []
    for rule in rules:
        if (kind is not None and rule.kind != kind) or (event_type is not None and rule.type != event_type):
            continue
        if component is not None and rule.component is not None and rule.component != component:
            continue
        got = match(rule.tokens, text)
        if got is None:
            continue
        if rule.name_prefix is not None and not _may_be(got.values.get("name", ""), rule.name_prefix, got.complete):
            continue  # the same text about something else (see the table's name_prefix column)
        if got.complete:
            return _Found(rule, got.values, True)
        cut.append(_Found(rule, got.values, False))
    if not cut:
        return None
    first = cut[0]
    meaning = (first.rule.phase, first.rule.attempt, first.rule.host, first.rule.kind)
    if any((f.rule.phase, f.rule.attempt, f.rule.host, f.rule.kind) != meaning for f in cut[1:]):
        return None  # too little text left to tell which event it was
    values = first.values if all(f.values == first.values for f in cut[1:]) else {}
    return _Found(first.rule, values, False)


def _may_be(name: str, prefix: str, complete: bool) -> bool:
    """Whether ``name`` is one with ``prefix``; a cut name only has to not contradict it."""
    return name.startswith(prefix) or (not complete and prefix.startswith(name))


def _read(found: _Found, kind: str | None, host: str | None, text: str, facts: _Facts) -> None:
    """Add what the matched row and its arguments say to ``facts``."""
    rule, values = found.rule, found.values
    facts.phase = None if rule.phase == NO_PHASE else rule.phase
    facts.is_migration = rule.attempt
    facts.template = rule.format
    facts.truncated = not found.complete
    pod = values.get("target_pod")
    facts.target_pod = pod
    if kind not in (VMI, VM):
        facts.vm_name = values.get("vm_name") or (vm_from_launcher_pod(pod) if pod else None)
    if kind != VMIM:
        facts.migration_name = values.get("migration_name") or None
        facts.migration_uid = values.get("migration_uid") or None
    target = values.get("target_node")
    if rule.host == "source":
        facts.source_node = host
    elif rule.host == "target":
        facts.target_node = host
    elif rule.host == "migrated" and target is not None:
        facts.target_node = target
        if host is not None and host != target:
            facts.source_node = host  # KubeVirt <= v1.5: the source handler records it
    facts.target_address = values.get("target_address") or _address_of(values.get("target_endpoint"))
    ports = values.get("target_ports")
    if ports and all(p.isascii() and p.isdigit() for p in ports.split(",")):
        facts.target_ports = tuple(int(p) for p in ports.split(","))
    if rule.failure == FROM_MESSAGE:
        facts.failure_reason = _EXTRA.sub("", text).strip() if found.complete else None
    elif rule.failure is not None:  # a row's constant: only when the text proves it is that row
        facts.failure_reason = rule.failure if found.complete else None
    else:
        facts.failure_reason = values.get("failure_reason", "").strip() or None


def _address_of(endpoint: str | None) -> str | None:
    """The IP of an ``ip:port`` endpoint (KubeVirt < v0.15); None when it is not one."""
    if endpoint is None:
        return None
    host, sep, port = endpoint.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()):
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        return None  # a bare IPv6 address: its last group and the port cannot be told apart
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None
