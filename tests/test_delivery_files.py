"""The files beside the store are written through a new temporary file, whatever was planted at its
name (probe of the merged build, finding 2): a symlink at ``<store>.delivered.json.tmp`` made
otelkv overwrite the link's target and chmod it 0600; a FIFO there hung the saver, then the
shutdown (still running 60 s after SIGTERM with a 20 s grace: SIGKILL was needed)."""

from __future__ import annotations

import json
import os
import signal
import stat
from pathlib import Path

import pytest
import yaml

from otelkv.delivery.files import write_private
from otelkv.delivery.tracker_state import state_path
from otelkv.delivery.window_state import load_keys, window_path
from tests.loki_sink import LokiSink
from tests.reliability import Collector, requests_of, wait_until
from tests.serve_child import ServeChild
from tests.test_dedup_restart import events

PRECIOUS = "precious content\n"


def test_a_symlink_at_the_temporary_name_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text(PRECIOUS)
    victim.chmod(0o644)
    target = tmp_path / "store.db.delivered.json"
    target.with_name(target.name + ".tmp").symlink_to(victim)
    write_private(target, b'{"version":1,"keys":[]}', fsync=True)
    assert victim.read_text() == PRECIOUS and stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert not target.is_symlink() and target.read_bytes() == b'{"version":1,"keys":[]}'
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.db.delivered.json", "victim.txt"]


def test_a_fifo_at_the_temporary_name_is_replaced_not_opened(tmp_path: Path) -> None:
    target = tmp_path / "store.db.migrations.json"
    fifo = target.with_name(target.name + ".tmp")
    os.mkfifo(fifo)
    # A reader holds the FIFO open so that the code before the fix fails here (its fsync of a
    # pipe: EINVAL) instead of waiting for a reader forever, as it did in otelkv serve.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_private(target, [b'{"version":1,', b'"keys":[]}'], fsync=True)
    finally:
        os.close(reader)
    assert stat.S_ISREG(target.stat().st_mode) and target.read_bytes() == b'{"version":1,"keys":[]}'
    assert not fifo.exists()


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    def pieces() -> list[bytes]:
        raise OSError(28, "No space left on device")

    target = tmp_path / "w.json"
    with pytest.raises(OSError, match="No space left"):
        write_private(target, map(bytes, pieces()), fsync=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_serve_saves_and_stops_in_time_past_planted_temporary_files(tmp_path: Path, kind: str) -> None:
    """The probe's reproduction (``tmp_tamper.py``) on a real ``otelkv serve``: both temporary
    names planted, events sent, SIGTERM; it stops within its grace, the victim untouched."""
    sink = LokiSink().start()
    store = tmp_path / "store" / "q.db"
    store.parent.mkdir(mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_text(PRECIOUS)
    victim.chmod(0o644)
    for saved in (window_path(str(store)), state_path(str(store))):
        planted = saved.with_name(saved.name + ".tmp")
        if kind == "symlink":
            planted.symlink_to(victim)
        else:
            os.mkfifo(planted)
    config = tmp_path / "otelkv.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "grpc_listen": "127.0.0.1:0",
                "http_listen": "127.0.0.1:0",
                "shutdown_grace_seconds": 5,
                "forward": {"endpoint": sink.url, "tenant": "kubevirt", "timeout": 2},
                "delivery": {"store_path": str(store)},
            }
        )
    )
    child = ServeChild(config)
    try:
        Collector(child.grpc).send_all(requests_of(events(), 4))
        assert wait_until(lambda: len(sink.entries) == 8, 30)  # 7 events and the summary
        child.process.send_signal(signal.SIGTERM)
        assert child.process.wait(30) == 0  # before the fix: still running 60 s after SIGTERM (a FIFO)
    finally:
        child.stop()
        sink.stop()
    assert victim.read_text() == PRECIOUS and stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert len(load_keys(window_path(str(store)), 1 << 20)) == 8
    assert json.loads(state_path(str(store)).read_text())["migrations"]
    for saved in (window_path(str(store)), state_path(str(store))):
        assert stat.S_ISREG(saved.lstat().st_mode)
        assert not saved.with_name(saved.name + ".tmp").exists()
