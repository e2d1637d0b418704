"""Evaluation data from the user's files: JSONL, VLMEvalKit's TSV layout for custom
multiple-choice sets, or the built-in shape questions (pure, apart from reading files).

JSONL, one question per line:
    {"id": "q1", "question": "How many ...?", "image": "images/q1.png", "answer": "2"}
  `image` (or `image_path` / `image_url`) is a path (relative to the file), an http(s) URL, a
  data: URL or bare base64; `options` (a {"A": "...", ...} object or a list) makes it a
  multiple-choice question, `hint` is put before it; `id` defaults to the line number.

TSV (VLMEvalKit's custom multiple-choice layout, a header row, tab-separated):
    index  image  question  A  B  C  D  answer  [hint]  [image_path]
  `image` is base64 (VLMEvalKit's own files), or a path / URL; option columns are the capital
  letters present; `answer` is the right letter.

`shapes:<split>:<n>[:<seed>]`: n questions of `tinycot.task`'s held-out (`test`) or
`validation` split, the task the default model was trained on; the reference is the CONCLUSION.

A multiple-choice question is sent the way VLMEvalKit prompts one:
    Hint: ...\nQuestion: ...\nOptions:\nA. ...\nB. ...\nPlease select the correct answer from
    the options above.
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
import mimetypes
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MC_INSTRUCTION = "Please select the correct answer from the options above."
SHAPES_SPLITS = {"test": "held-out", "validation": "validation"}
# base64 magic numbers of the image formats a server is likely to take
MAGIC = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif",
         b"RIFF": "image/webp", b"BM": "image/bmp"}


class DatasetError(ValueError):
    """A dataset file that cannot be read as one: the message says where and why."""


@dataclass(frozen=True)
class Item:
    id: str
    question: str  # as written in the file (without options or hint)
    answer: str  # the reference: text, number, or the right option's letter
    image: str | None = None  # what the request sends: an http(s) URL or a data: URL
    image_ref: str | None = None  # what the file named (a path or URL; "base64" when inline)
    options: dict[str, str] = field(default_factory=dict)  # letter -> option text
    hint: str | None = None

    @property
    def prompt(self) -> str:
        """The text sent with the image."""
        if not self.options:
            return self.question if not self.hint else f"Hint: {self.hint}\n{self.question}"
        lines = [f"Hint: {self.hint}"] if self.hint else []
        lines += [f"Question: {self.question}", "Options:"]
        lines += [f"{letter}. {text}" for letter, text in self.options.items()]
        lines.append(MC_INSTRUCTION)
        return "\n".join(lines)


def media_type(data: bytes, name: str = "") -> str:
    for magic, kind in MAGIC.items():
        if data.startswith(magic):
            return kind
    guessed = mimetypes.guess_type(name)[0]
    return guessed if guessed and guessed.startswith("image/") else "image/png"


def image_url(value: str, base: Path, where: str) -> tuple[str, str]:
    """(the URL a request sends, what the file named) for an image field: an http(s) or data:
    URL is sent as it is, a path is read and sent inline, anything else must be base64."""
    value = value.strip()
    if value.startswith(("http://", "https://", "data:")):
        return value, value if not value.startswith("data:") else "data URL"
    candidate = base / value
    if len(value) < 4096 and candidate.is_file():
        data = candidate.read_bytes()
        encoded = base64.b64encode(data).decode("ascii")
        return f"data:{media_type(data, value)};base64,{encoded}", value
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise DatasetError(f"{where}: image {value[:60]!r} is not a file (relative to "
                           f"{base}), an http(s) or data: URL, or base64") from None
    return f"data:{media_type(data)};base64,{value}", "base64"


def _options(raw: Any, where: str) -> dict[str, str]:
    if raw is None or raw == {} or raw == []:
        return {}
    if isinstance(raw, list):
        return {LETTERS[i]: str(text) for i, text in enumerate(raw)}
    if isinstance(raw, dict) and all(str(k).strip().upper() in LETTERS for k in raw):
        return {str(k).strip().upper(): str(v) for k, v in sorted(raw.items())}
    raise DatasetError(f"{where}: options must be a list or an object keyed by letters")


def _check_answer(item: Item, where: str) -> Item:
    if not item.answer.strip():
        raise DatasetError(f"{where}: no answer")
    if item.options and item.answer.strip().upper() not in item.options:
        raise DatasetError(f"{where}: answer {item.answer!r} is not one of the option letters "
                           f"{', '.join(item.options)}")
    return item


def from_record(record: dict[str, Any], number: int, base: Path, where: str) -> Item:
    if not isinstance(record, dict):
        raise DatasetError(f"{where}: a line must be a JSON object")
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        raise DatasetError(f"{where}: no question")
    answer = record.get("answer")
    if answer is None:
        raise DatasetError(f"{where}: no answer")
    raw_image = next((record[k] for k in ("image", "image_path", "image_url")
                      if record.get(k)), None)
    url, ref = image_url(str(raw_image), base, where) if raw_image else (None, None)
    options = _options(record.get("options"), where)
    answer_text = str(answer).strip().upper() if options else str(answer)
    item = Item(str(record.get("id", record.get("index", number))), question, answer_text, url,
                ref, options, record.get("hint") or None)
    return _check_answer(item, where)


def read_jsonl(path: Path) -> list[Item]:
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise DatasetError(f"{where}: not JSON ({exc})") from None
        items.append(from_record(record, number - 1, path.parent, where))
    return items


def read_tsv(path: Path) -> list[Item]:
    csv.field_size_limit(sys.maxsize)  # VLMEvalKit's images are inline base64
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    items = []
    for number, row in enumerate(rows, 2):
        where = f"{path}:{number}"
        options = {letter: row[letter] for letter in LETTERS
                   if row.get(letter) not in (None, "", "nan")}
        record: dict[str, Any] = {
            "id": row.get("index") or number - 2, "question": row.get("question"),
            "answer": row.get("answer") or None, "options": options or None,
            "hint": row.get("hint") if row.get("hint") not in (None, "", "nan") else None,
            "image": row.get("image") or row.get("image_path") or None}
        items.append(from_record(record, number - 2, path.parent, where))
    return items


def shapes(spec: str) -> list[Item]:
    """`shapes:<split>:<n>[:<seed>]`."""
    from loadtest.workload import png_data_url
    from tinycot.task import dataset

    parts = spec.split(":")
    try:
        split, n, seed = parts[1], int(parts[2]), int(parts[3]) if len(parts) > 3 else 0
    except (IndexError, ValueError):
        raise DatasetError(f"{spec!r}: write shapes:<split>:<n>[:<seed>], e.g. shapes:test:500"
                           ) from None
    if split not in SHAPES_SPLITS or n < 1 or len(parts) > 4:
        raise DatasetError(f"{spec!r}: the split is test or validation and n at least 1")
    return [Item(f"shapes-{split}-{seed}-{i}", e.question, e.conclusion, png_data_url(e.image),
                 f"shapes:{split}:{seed}:{i}")
            for i, e in enumerate(dataset(seed, n, SHAPES_SPLITS[split]))]


def load(source: str) -> list[Item]:
    """The items of a dataset file (by its suffix: .jsonl / .json lines, .tsv) or of a
    built-in spec; DatasetError with the file and line of the first problem."""
    if source.startswith("shapes:"):
        items = shapes(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise DatasetError(f"{source}: no such file")
        if path.suffix.lower() == ".tsv":
            items = read_tsv(path)
        elif path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
            items = read_jsonl(path)
        else:
            raise DatasetError(f"{source}: the file must end in .jsonl or .tsv")
    if not items:
        raise DatasetError(f"{source}: no questions")
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise DatasetError(f"{source}: the id {item.id!r} is used twice")
        seen.add(item.id)
    return items
