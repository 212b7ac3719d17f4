"""``otelkv migrations -o html``: one self-contained page (no network: no URL outside it), with the
timeline (one bar per migration) and the table (sortable), checked as a parser reads it and as a
real headless Chromium (Debian's ``chromium``, installed by `make test`) runs it: no console error,
one bar per migration, the sort working; its screenshot is kept in build/test-artifacts/."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

from otelkv.commands.event_file import read_event_file
from otelkv.commands.html_report import render_html
from otelkv.commands.migrations_table import track
from tests.conftest import EXAMPLE, ROOT
from tests.test_migrations_report import migrations

ARTIFACTS = ROOT / "build" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Page(HTMLParser):
    """What the page holds: its tags with their attributes, its bars, rows and scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.bars = 0
        self.rows = 0
        self.inline_scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append((tag, found))
        self.bars += tag == "rect" and "bar" in (found.get("class") or "").split()
        self.rows += tag == "tr"
        self.inline_scripts += tag == "script" and "src" not in found


def page() -> str:
    return render_html(track(read_event_file(str(EXAMPLE))), now=datetime(2026, 11, 20, 10, tzinfo=UTC))


def test_the_page_is_self_contained_with_one_bar_and_one_row_per_migration() -> None:
    text = page()
    parsed = Page()
    parsed.feed(text)
    assert parsed.bars == 4 and parsed.rows == 1 + 4 and parsed.inline_scripts == 1
    # nothing is fetched: no src/href/link/@import/url(); the SVG namespace is a name, not a fetch
    assert not [t for t, a in parsed.tags if "src" in a or "href" in a or t in ("link", "iframe", "img", "object")]
    assert re.findall(r"https?://[^\s\"]*", text) == ["http://www.w3.org/2000/svg"]
    assert "@import" not in text and "url(" not in text
    assert "rhel9-db.prod" in text and "Live migration failed error encountered" in text


def test_names_are_escaped() -> None:
    [m, *_] = track(read_event_file(str(EXAMPLE)))
    from dataclasses import replace  # noqa: PLC0415

    hostile = replace(m, vm_name="<script>alert(1)</script>", failure_reason='"><img src=x>')
    text = render_html([hostile])
    assert "<script>alert(1)" not in text and "<img" not in text and "&lt;script&gt;" in text


def test_the_command_writes_the_page() -> None:
    done = migrations(str(EXAMPLE), "-o", "html")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("<!doctype html>") and done.stdout.count('class="bar ') == 4


# -- in a real browser ---------------------------------------------------------------------------

# Appended to a copy of the page: clicks the Duration header twice, then writes what the browser
# shows into the document, which --dump-dom prints.
_PROBE = """<script>
function cells(column) {
  return Array.prototype.map.call(document.querySelectorAll("tbody tr"), function (r) {
    return r.cells[column].textContent;
  });
}
var th = Array.prototype.find.call(document.querySelectorAll("th"), function (h) {
  return h.textContent === "Duration";
});
th.click(); var up = cells(8);
th.click(); var down = cells(8);
var bars = Array.prototype.filter.call(document.querySelectorAll("rect.bar"), function (b) {
  return b.getBBox().width > 0;
});
document.body.setAttribute("data-probe", JSON.stringify({bars: bars.length, up: up, down: down}));
</script>"""


def chromium(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium (``--no-sandbox``: CI runs as root) with its profile under ``home``."""
    assert CHROMIUM is not None, "chromium is not installed (Debian: apt-get install chromium; make test does)"
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={home / 'profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "HOME": str(home)},
    )


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


def test_chromium_loads_it_without_console_errors_and_sorts_it(tmp_path: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = tmp_path / "report.html"
    report.write_text(page())
    shot = ARTIFACTS / "migrations-report.png"
    shot.unlink(missing_ok=True)
    shown = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1300,800", report.as_uri())
    assert shot.is_file() and shot.stat().st_size > 10_000, shown.stderr[-2000:]
    assert console_errors(shown.stderr) == []

    probed = tmp_path / "probed.html"
    probed.write_text(page().replace("</body>", _PROBE + "</body>"))
    dom = chromium(tmp_path, "--dump-dom", probed.as_uri())
    assert console_errors(dom.stderr) == []
    found = re.search(r'data-probe="([^"]*)"', dom.stdout)
    assert found is not None, dom.stdout[-500:]
    import html  # noqa: PLC0415
    import json  # noqa: PLC0415

    probe = json.loads(html.unescape(found.group(1)))
    assert probe["bars"] == 4
    assert probe["up"] == ["16s", "31s", "45s", "2m36s"] and probe["down"] == probe["up"][::-1]


def test_a_script_error_would_be_seen(tmp_path: Path) -> None:
    """The console check can fail: a page with an error in its script is caught."""
    broken = tmp_path / "broken.html"
    broken.write_text(page().replace("</body>", "<script>undefinedFunction();</script></body>"))
    assert console_errors(chromium(tmp_path, "--dump-dom", broken.as_uri()).stderr)
