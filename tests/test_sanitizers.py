"""``make sanitize`` catches what it is there for: a copy of the compiled core with two bugs planted
(a read past the payload, an undefined shift), built with the Makefile's own sanitizer flags, is
stopped by AddressSanitizer and by UndefinedBehaviorSanitizer — on the fuzz corpus's own bytes
(tests/test_wire_fuzz.py) — where the real core answers -1 for the same bytes.

Each bug removes one bounds check of ``next_field``, the reader under every entry point:
- the 8 bytes of a fixed64 field read without checking that they are there: ``09 00 00`` (field 1,
  wire type 1, two bytes) reads six bytes past a three-byte payload;
- a tag varint read on past 64 bits: ``ff x10 01`` shifts a uint64_t by 70, undefined in C.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import ROOT, compiled_core, why_no_compiler
from tests.test_enrich_native_hostile import _EDGES

SOURCE = ROOT / "otelkv" / "otlp" / "_wire.c"
#: (the check in _wire.c, what the planted copy has instead)
PLANTED = (
    ("        if (end - p < 8) return UNSUPPORTED;\n", "        /* planted: no check that 8 bytes are left */\n"),
    (
        "    for (;;) {\n        if (p >= end || shift > 63) return UNSUPPORTED;\n",
        "    for (;;) {\n        if (p >= end) return UNSUPPORTED; /* planted: no 64-bit limit */\n",
    ),
)
PAST_THE_END = b"\x09\x00\x00"
LONG_VARINT = b"\xff" * 10 + b"\x01"

_RUN = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("otelkv.otlp._wire", sys.argv[1])
core = importlib.util.module_from_spec(spec)
spec.loader.exec_module(core)
print("answered", core.count_messages(bytes.fromhex(sys.argv[2])), flush=True)
"""


def sanitize_flags() -> list[str]:
    """The Makefile's SANITIZE_FLAGS: the very flags of ``make sanitize``."""
    found = re.search(r"^SANITIZE_FLAGS := (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert found, "Makefile: SANITIZE_FLAGS not found"
    return found.group(1).split()


def runtime() -> Path:
    """gcc's AddressSanitizer runtime (Debian: libasan8, which gcc depends on)."""
    name = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True, check=True)
    return Path(name.stdout.strip())


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The planted copy, built with the sanitizers in a temporary directory."""
    missing = why_no_compiler()
    if missing is not None:
        pytest.skip(missing)
    if not runtime().is_absolute():
        pytest.skip("gcc has no libasan.so here")
    source = SOURCE.read_text()
    for check, bug in PLANTED:
        assert source.count(check) == 1, f"_wire.c changed: plant the bug anew in place of {check!r}"
        source = source.replace(check, bug)
    work = tmp_path_factory.mktemp("planted")
    (work / "_wire.c").write_text(source)
    package = work / "otelkv" / "otlp"  # a build_lib, as tests.sanitized_core takes it
    package.mkdir(parents=True)
    module = package / f"_wire{sysconfig.get_config_var('EXT_SUFFIX')}"
    include = sysconfig.get_paths()["include"]
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "PYTHONMALLOC")}  # make sanitize's
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-g",
            "-O1",
            *sanitize_flags(),
            f"-I{include}",
            str(work / "_wire.c"),
            "-o",
            str(module),
        ],
        check=True,
        env=env,
        timeout=120,
    )
    return module


def sanitized(*args: str) -> subprocess.CompletedProcess[str]:
    """``python args`` in this tree, under the sanitizers as make sanitize sets them."""
    env = {
        **os.environ,
        "LD_PRELOAD": str(runtime()),
        "PYTHONMALLOC": "malloc",
        "ASAN_OPTIONS": "detect_leaks=0",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
        "HYPOTHESIS_PROFILE": "ci",
    }
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False
    )


def _run(module: Path, payload: bytes) -> subprocess.CompletedProcess[str]:
    """count_messages(payload) on ``module`` in a child python, under the sanitizers."""
    return sanitized("-c", _RUN, str(module), payload.hex())


def test_the_planted_bugs_are_in_the_fuzz_corpus_and_the_real_core_declines_them() -> None:
    assert PAST_THE_END in _EDGES and LONG_VARINT in _EDGES
    module = compiled_core().module
    assert module is not None
    assert module.count_messages(PAST_THE_END) == -1
    assert module.count_messages(LONG_VARINT) == -1


def test_address_sanitizer_stops_a_read_past_the_payload(planted: Path) -> None:
    done = _run(planted, PAST_THE_END)
    assert done.returncode != 0 and "answered" not in done.stdout
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in done.stderr, done.stderr[-2000:]
    assert "next_field" in done.stderr  # the report names the function (frame pointers, -g)


def test_undefined_behavior_sanitizer_stops_an_undefined_shift(planted: Path) -> None:
    done = _run(planted, LONG_VARINT)
    assert done.returncode != 0 and "answered" not in done.stdout
    assert re.search(r"_wire\.c:\d+:\d+: runtime error: shift exponent 70 is too large", done.stderr), done.stderr[
        -2000:
    ]


def test_the_planted_copy_still_answers_on_sound_bytes(planted: Path) -> None:
    """The aborts above come from the bugs, not from the build or the loading."""
    done = _run(planted, b"\x0a\x00")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["answered", "2"]


def test_make_sanitize_stops_on_the_planted_copy(planted: Path) -> None:
    """The fuzz corpus run as ``make sanitize`` runs it (tests.sanitized_core), on the planted copy:
    the run aborts in the core, not in a test's assertion."""
    build_lib = planted.parent.parent.parent
    done = sanitized(
        "-m",
        "pytest",
        "-p",
        "tests.sanitized_core",
        "--sanitized-core",
        str(build_lib),
        "-p",
        "no:cacheprovider",
        "--capture=sys",
        "tests/test_wire_fuzz.py",
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert f"sanitized core (ASan + UBSan): {planted}" in output
    assert "ERROR: AddressSanitizer" in output or "runtime error:" in output, output[-2000:]
    assert " passed" not in output and " failed" not in output  # stopped by a sanitizer, not by pytest


def test_ci_runs_make_sanitize_after_make_test() -> None:
    steps = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("make ")]
    assert steps == ["make test", "make sanitize"]


def test_make_sanitize_builds_apart_from_the_in_place_core() -> None:
    """Its build goes to build/sanitize (never the source tree or .venv, which the other tests use)
    and every differential test of the core runs on it."""
    recipe = re.search(r"^sanitize:.*?\n\n", (ROOT / "Makefile").read_text(), re.MULTILINE | re.DOTALL)
    assert recipe, "Makefile: no sanitize target"
    assert "--build-lib $(SANITIZE)/lib" in recipe.group(0) and "--inplace" not in recipe.group(0)
    assert "pip install" not in recipe.group(0)
    tests = re.search(r"^SANITIZE_TESTS := ((?:.*\\\n)*.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert tests
    listed = set(tests.group(1).replace("\\\n", " ").split())
    assert {"tests/test_enrich_native.py", "tests/test_enrich_native_hostile.py", "tests/test_wire_fuzz.py"} <= listed
    assert all((ROOT / path).is_file() for path in listed)
