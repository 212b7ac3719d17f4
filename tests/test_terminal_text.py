"""otelkv.commands.terminal_text: what otelkv did not write is shown with its controls escaped,
and the other way round nothing else changes (the probe's finding 5)."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from otelkv.commands.terminal_text import terminal_text
from tests.conftest import EXAMPLE
from tests.test_cli import otelkv

UNSAFE = [*map(chr, range(0x20)), *map(chr, range(0x7F, 0xA0)), *map(chr, range(0x202A, 0x202F)),
          *map(chr, range(0x2066, 0x206A))]  # fmt: skip


def test_each_control_is_shown_escaped() -> None:
    assert terminal_text("a\x1b]0;t\x07b") == "a\\x1b]0;t\\x07b"
    assert terminal_text("\x9b2J\x7f\u202e\u2069") == "\\x9b2J\\x7f\\u202e\\u2069"
    assert terminal_text("worker-a → node01 é ✗ 日本") == "worker-a → node01 é ✗ 日本"


@given(st.text())
@example("\x1b[31m\u202e")
def test_no_control_survives_and_the_rest_is_kept(text: str) -> None:
    shown = terminal_text(text)
    assert not any(c in shown for c in UNSAFE)
    kept = "".join(c for c in text if c not in UNSAFE)
    assert all(c in shown for c in kept)


ESCAPE = "\x1b]0;PWNED-TITLE\x07\x1b[2J\x1b[31mRED\u202e"


def escaping_events(tmp_path: Path) -> Path:
    """The example with escape sequences in VM names, nodes and messages (the probe's esc_events.py)."""
    data = json.loads(EXAMPLE.read_text())
    for event in data["items"]:
        involved = event["involvedObject"]
        if involved["kind"].startswith("VirtualMachineInstance"):
            for word in ("worker-a", "node01", "failed"):
                event["message"] = event["message"].replace(word, word + ESCAPE)
            if involved["kind"] == "VirtualMachineInstance":
                involved["name"] += ESCAPE
                event["source"]["host"] = (event["source"].get("host") or "node01") + ESCAPE
    path = tmp_path / "events.json"
    path.write_text(json.dumps(data))
    return path


def test_an_events_file_never_writes_controls_to_the_terminal(tmp_path: Path) -> None:
    events = escaping_events(tmp_path)
    for view in ((), ("--wide",), ("--timeline",), ("--by-node",)):
        done = otelkv("migrations", str(events), *view, "--local")
        assert done.returncode == 0, done.stderr
        assert not any(c in done.stdout + done.stderr for c in UNSAFE if c != "\n"), view
        assert "\\x1b]0;PWNED-TITLE\\x07" in done.stdout, view
    as_json = json.loads(otelkv("migrations", str(events), "-o", "json").stdout)
    assert any(ESCAPE in (m["vm"] or "") for m in as_json)  # JSON keeps the data; its format escapes it
