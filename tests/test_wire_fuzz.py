"""The compiled core (``otelkv.otlp._wire``) over a fuzz corpus: never a crash, whatever the bytes.

The seeds are real requests: every event file in tests/data and examples/ as ``otelkv replay``
batches them (one record a request, and fifty), the generated tests' pool (migration objects, an
application log), and the hand-made edge bytes of tests/test_enrich_native_hostile.py. Each
mutant (a seeded, repeatable run: bits flipped, bytes cut, put in, taken out, spans of another
seed spliced in, edge bytes inserted) goes through all three entry points — ``count_messages``,
``scan`` (with and without a kind filter, with a ``delivered`` that says yes, and one that
raises), and ``build`` (decisions of every kind, with and without a copy limit) — and each must
answer as documented: an int, None or a plan, bytes or an int, or the caller's own exception.

``make test`` runs a few hundred mutants on the normal build; ``make sanitize`` runs thousands
(``WIRE_FUZZ_MUTANTS``) on the build with AddressSanitizer and UndefinedBehaviorSanitizer, where
a read past the payload or an undefined shift aborts the run (docs/performance.md, "Sanitizers").
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otelkv.commands.event_file import read_event_file
from otelkv.commands.replay import batches
from otelkv.kubevirt.event_builders import new_event
from otelkv.otlp.enrichment import EnrichOptions
from otelkv.otlp.wire import _ENRICHED, _PAIRS
from tests.conftest import DATA, EXAMPLE, compiled_core
from tests.otlp_requests import POOL
from tests.test_enrich_native_hostile import _EDGES

#: How many mutants in all, shared among the seeds.
MUTANTS = int(os.environ.get("WIRE_FUZZ_MUTANTS", "20000"))
#: Every event file of the repository.
EVENT_FILES = [*sorted(DATA.glob("*.json")), EXAMPLE]
_KINDS = EnrichOptions().kinds
_EVENT = new_event(reason="Migrated", message="m", vm_name="vm", namespace="ns")


class Refused(Exception):
    """What the ``delivered`` callback of a run raises: scan must let it through, and only it."""


def seeds() -> list[bytes]:
    """The corpus's seeds (see the module docstring)."""
    out: list[bytes] = []
    for path in EVENT_FILES:
        events = read_event_file(str(path))
        out += [request.SerializeToString() for request in batches(events, 50)]
        out += [request.SerializeToString() for request in batches(events[:8], 1)]
    out.append(ExportLogsServiceRequest(resource_logs=POOL).SerializeToString())
    out += _EDGES
    return out


def mutants(corpus: list[bytes], count: int, *, seed: int = 17) -> Iterator[bytes]:
    """``count`` mutants of the corpus, the same ones on every run."""
    rng = random.Random(seed)
    for i in range(count):
        data = bytearray(corpus[i % len(corpus)])
        for _ in range(rng.choice((1, 1, 1, 2, 3, 4))):  # mostly one change: more mutants get past the first field
            at = rng.randint(0, len(data))
            how = rng.choice(("flip", "flip", "cut", "insert", "delete", "splice", "edge"))
            if how == "flip" and at < len(data):
                data[at] ^= 1 << rng.randrange(8)
            elif how == "cut":
                del data[at:]
            elif how == "insert":
                data[at:at] = rng.randbytes(rng.randint(1, 8))
            elif how == "delete":
                del data[at : at + rng.randint(1, 16)]
            elif how == "splice":
                other = rng.choice(corpus)
                start = rng.randint(0, len(other))
                data[at:at] = other[start : start + rng.randint(1, 64)]
            else:
                data[at:at] = rng.choice(_EDGES)
        yield bytes(data)


def _delivered(refuse_after: int | None) -> Callable[[Hashable], bool]:
    """A ``delivered(key)``: every third key delivered before; raising after ``refuse_after`` calls."""
    calls = [0]

    def delivered(key: Hashable) -> bool:
        calls[0] += 1
        if refuse_after is not None and calls[0] > refuse_after:
            raise Refused
        return calls[0] % 3 == 0

    return delivered


def exercise(core: ModuleType, payload: bytes) -> bool:
    """Every entry point of ``core`` on ``payload``; whether scan took it (made a plan)."""
    count = core.count_messages(payload)
    assert isinstance(count, int) and (count == -1 or count >= 1)
    taken = False
    for kinds, drop_others, refuse_after in ((_KINDS, False, None), (frozenset(), True, None), (_KINDS, False, 1)):
        try:
            scanned = core.scan(payload, kinds, drop_others, _delivered(refuse_after), _ENRICHED)
        except Refused:
            continue
        if scanned is None:
            continue
        taken = True
        plan, views, keys, counts = scanned
        assert isinstance(keys, list) and len(counts) == 4 and all(n >= 0 for n in counts)
        decisions = [None if i % 3 == 0 else (f"ns-{i % 2}", _EVENT, b"" if i % 5 else None) for i in range(len(views))]
        for limit in (2**62, 0):
            built = core.build(payload, plan, decisions, "kubevirt-events", _PAIRS, limit)
            assert isinstance(built, bytes | int)
    return taken


@pytest.fixture(scope="module")
def core() -> ModuleType:
    module = compiled_core().module
    assert module is not None
    return module


def test_the_seeds_reach_build(core: ModuleType) -> None:
    """Every request built from an event file is taken by scan: the mutants start from bytes that
    go all the way through the core, not from ones it declines at the first field."""
    for path in EVENT_FILES:
        for request in batches(read_event_file(str(path)), 50):
            assert exercise(core, request.SerializeToString()), path


def test_the_core_survives_the_corpus(core: ModuleType) -> None:
    corpus = seeds()
    taken = sum(exercise(core, payload) for payload in mutants(corpus, MUTANTS))
    assert taken > MUTANTS // 20  # about one in eight reaches build (1 in 20 would mean the fuzz is stuck at the door)


def test_the_corpus_is_the_same_on_every_run() -> None:
    corpus = seeds()
    assert list(mutants(corpus, 50)) == list(mutants(corpus, 50))
    assert len(corpus) > len(EVENT_FILES) and all(Path(p).is_file() for p in EVENT_FILES)
