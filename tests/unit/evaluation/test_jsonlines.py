"""The append-only JSON Lines file."""

from pathlib import Path

from evaluation.jsonlines import JsonLines


def test_a_cut_line_is_skipped_and_never_swallows_the_next(tmp_path: Path, capsys):
    log = JsonLines(tmp_path / "sub" / "x.jsonl")
    assert log.read_records() == []
    log.append_record({"a": 1})
    with log.path.open("a") as f:
        f.write('{"cut": ')  # a crash mid-write
    log.append_record({"b": "ü"})
    assert log.read_records() == [{"a": 1}, {"b": "ü"}]
    assert "skipped 1 unreadable line" in capsys.readouterr().err
