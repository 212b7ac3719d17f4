"""``--loki`` and ``--tenant`` refused in one line before any request, and a terminal width
bounded (found by the adversarial probe of the CLI: a password in the URL was printed back in
urllib3's error, an IPv6 typo and a CR/LF in the tenant were exit-70 internal errors, and
``COLUMNS=1000000000`` made the timeline take 7.7 GB)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import EXAMPLE, ROOT


def otelkv(*args: str, columns: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR")}
    if columns is not None:
        env["COLUMNS"] = columns
    return subprocess.run(
        [sys.executable, "-m", "otelkv", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://admin:hunter2@127.0.0.1:3100/", "credentials in the URL are not sent"),
        ("http://admin:hunter2@127.0.0.1:99999/", "not a valid URL (its host or port)"),
        ("http://127.0.0.1:3100/?api_key=hunter2", "a URL with a query"),
        ("http://[::1", "not a valid URL"),
        ("ftp://127.0.0.1/", "must be http(s)://host"),
    ],
)
def test_a_bad_loki_url_is_one_line_and_never_shows_its_secret(url: str, said: str) -> None:
    done = otelkv("migrations", "--loki", url)
    assert done.returncode == 2 and said in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "hunter2" not in done.stderr


@pytest.mark.parametrize("tenant", ["t1\r\nX-Evil: 1", "..", "a" * 151, "ten ant"])
def test_a_tenant_outside_lokis_rule_is_refused(tenant: str) -> None:
    done = otelkv("migrations", "--loki", "http://127.0.0.1:1", "--tenant", tenant)
    assert done.returncode == 2 and "--tenant: must be 1-150 of" in done.stderr, done.stderr


def test_a_huge_terminal_width_is_bounded() -> None:
    done = otelkv("migrations", str(EXAMPLE), "--timeline", columns="1000000000")
    assert done.returncode == 0, done.stderr
    assert max(len(line) for line in done.stdout.splitlines()) <= 1000
