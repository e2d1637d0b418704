"""Hand-written notes in a generated Markdown report: everything from the marker line on is
kept when the report is written again."""

from __future__ import annotations

from pathlib import Path

NOTES_MARKER = "<!-- notes: kept when the report is regenerated -->"


def keep_notes(out: Path) -> str:
    """The hand-written notes of the report at `out` (from the marker on), or a fresh marker."""
    if out.exists():
        text = out.read_text()
        if NOTES_MARKER in text:
            return text[text.index(NOTES_MARKER):]
    return NOTES_MARKER + "\n"
