"""Procedural images and JSONL workloads."""

import json
from pathlib import Path

import pytest
from PIL import Image

from loadtest.workload import image_from_data_url, load_jsonl, png_data_url, procedural_items


def test_procedural_items_are_deterministic_from_the_seed() -> None:
    assert procedural_items(6, seed=3) == procedural_items(6, seed=3)
    assert procedural_items(6, seed=3) != procedural_items(6, seed=4)


def test_procedural_images_take_the_sizes_in_turn() -> None:
    items = procedural_items(4, seed=0, sizes=(32, 96))
    sizes = [image_from_data_url(item.image_url).size for item in items]
    assert sizes == [(32, 32), (96, 96), (32, 32), (96, 96)]
    assert all(item.question.endswith("?") or "." in item.question for item in items)


def test_item_messages_carry_the_image_then_the_question() -> None:
    item = procedural_items(1, seed=0)[0]
    [message] = item.messages()
    assert message["role"] == "user"
    assert message["content"][0] == {"type": "image_url", "image_url": {"url": item.image_url}}
    assert message["content"][1] == {"type": "text", "text": item.question}


def test_jsonl_reads_paths_relative_to_the_file_and_data_urls(tmp_path: Path) -> None:
    Image.new("RGB", (8, 6), "red").save(tmp_path / "red.png")
    inline = png_data_url(Image.new("RGB", (4, 4), "blue"))
    lines = [{"image": "red.png", "question": "What colour?"},
             {"image": inline, "question": "And this one?"}]
    dataset = tmp_path / "set.jsonl"
    dataset.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    first, second = load_jsonl(dataset)
    assert first.question == "What colour?"
    assert image_from_data_url(first.image_url).size == (8, 6)
    assert second.image_url == inline


def test_jsonl_line_without_a_question_is_refused(tmp_path: Path) -> None:
    dataset = tmp_path / "bad.jsonl"
    dataset.write_text(json.dumps({"image": "x.png"}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        load_jsonl(dataset)
