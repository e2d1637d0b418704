"""An append-only JSON Lines file: one record per line, written (and flushed) as soon as it is
known, so a run that stops loses only what was in flight. A line cut off by a crash mid-write is
skipped with a warning when read, and never swallows the next line appended."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


class JsonLines:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read_records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        records, bad = [], 0
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                bad += 1
        if bad:
            print(f"warning: skipped {bad} unreadable line(s) of {self.path}", file=sys.stderr)
        return records

    def append_record(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as f:
            f.seek(0, 2)
            if f.tell():  # a line cut off by a crash must not swallow this one
                f.seek(-1, 2)
                if f.read(1) != b"\n":
                    f.write(b"\n")
            f.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
                    + b"\n")
            f.flush()
