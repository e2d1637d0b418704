"""The tiny default model is built offline and deterministically."""

import hashlib
from pathlib import Path

from transformers import AutoTokenizer

from server.tiny_model import TAG_TOKENS, build_tiny_model


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def test_two_builds_are_byte_identical_and_tags_are_single_tokens(tmp_path):
    first = build_tiny_model(tmp_path / "a")
    second = build_tiny_model(tmp_path / "b")
    assert _digest(first) == _digest(second)
    assert (first / "model.safetensors").stat().st_size < 5_000_000
    tokenizer = AutoTokenizer.from_pretrained(first)
    for tag in TAG_TOKENS:
        ids = tokenizer.encode(tag, add_special_tokens=False)
        assert len(ids) == 1, tag
        assert tokenizer.decode(ids, skip_special_tokens=True) == tag  # survives detokenising
    for digit in "12":
        assert len(tokenizer.encode(digit, add_special_tokens=False)) == 1
    assert tokenizer.chat_template and "<image>" in tokenizer.chat_template
