"""``otelkv dead-letter``: unknown ids and missing stores are errors, and nothing is created."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otelkv.commands import main
from otelkv.delivery.store import Store


def _config(tmp_path: Path, store: Path) -> str:
    path = tmp_path / "otelkv.yaml"
    path.write_text(f"delivery: {{store_path: '{store}'}}\n")  # forward: stdout, the default
    return str(path)


def test_list_with_a_mistyped_store_path_is_an_error_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "qeueu.db"
    assert main(["dead-letter", "list", "--config", _config(tmp_path, typo)]) == 2
    assert (
        capsys.readouterr().err
        == f"otelkv: delivery.store_path: no store at {str(typo)!r} (has otelkv serve run with it?)\n"
    )
    assert not typo.exists()


def test_replay_of_an_unknown_id_is_an_error_and_replays_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "q.db"
    store = Store(path, max_bytes=10**6, max_records=1000, max_dead_letters=10)
    store.dead_letter(ExportLogsServiceRequest().SerializeToString(), 1, "HTTP 400")
    [letter] = store.dead_letters()
    store.close()
    config = _config(tmp_path, path)
    assert main(["dead-letter", "replay", "99", str(letter.id), "--config", config]) == 2
    assert capsys.readouterr().err == f"otelkv: no dead letter with id 99 in {path}\n"
    assert main(["dead-letter", "list", "--config", config]) == 0
    assert "HTTP 400" in capsys.readouterr().out  # still there: nothing was replayed
    assert main(["dead-letter", "replay", str(letter.id), "--config", config]) == 0
    assert "replayed 1 dead letters" in capsys.readouterr().out
