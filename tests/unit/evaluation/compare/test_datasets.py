"""Reading datasets: JSONL, VLMEvalKit's TSV, the built-in shape questions, and clear errors."""

import base64
import json
from pathlib import Path

import pytest
from PIL import Image

from evaluation.compare.datasets import MC_INSTRUCTION, DatasetError, Item, load


def png(path: Path) -> bytes:
    Image.new("RGB", (4, 4), "red").save(path)
    return path.read_bytes()


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_jsonl_images_as_path_url_and_base64(tmp_path: Path):
    (tmp_path / "img").mkdir()
    data = png(tmp_path / "img" / "a.png")
    encoded = base64.b64encode(data).decode()
    items = load(str(write_jsonl(tmp_path / "q.jsonl", [
        {"id": "p", "question": "How many?", "image": "img/a.png", "answer": 2},
        {"question": "Colour?", "image_url": "https://example.org/x.jpg", "answer": "red"},
        {"id": 7, "question": "Which?", "image": encoded, "answer": "b",
         "options": ["one", "two"], "hint": "look"},
        {"id": "text-only", "question": "Say hi", "answer": "hi"}])))
    assert [i.id for i in items] == ["p", "1", "7", "text-only"]
    assert items[0].image == "data:image/png;base64," + encoded
    assert items[0].image_ref == "img/a.png" and items[0].answer == "2"
    assert items[1].image == "https://example.org/x.jpg"
    assert items[2].image == "data:image/png;base64," + encoded
    assert items[2].image_ref == "base64"
    assert items[2].options == {"A": "one", "B": "two"} and items[2].answer == "B"
    assert items[2].prompt == ("Hint: look\nQuestion: Which?\nOptions:\nA. one\nB. two\n"
                               + MC_INSTRUCTION)
    assert items[3].image is None and items[3].prompt == "Say hi"


def test_vlmevalkit_tsv(tmp_path: Path):
    encoded = base64.b64encode(png(tmp_path / "a.png")).decode()
    rows = ["index\timage\tquestion\tA\tB\tC\tD\tanswer\thint",
            f"10\t{encoded}\tHow many red?\t1\t2\t3\t\tB\tnan",
            "11\ta.png\tWhich colour?\tred\tblue\t\t\tA\tcount them"]
    path = tmp_path / "set.tsv"
    path.write_text("\n".join(rows) + "\n")
    first, second = load(str(path))
    assert first.id == "10" and first.options == {"A": "1", "B": "2", "C": "3"}
    assert first.answer == "B" and first.hint is None
    assert first.image == "data:image/png;base64," + encoded
    assert second.image_ref == "a.png" and second.options == {"A": "red", "B": "blue"}
    assert second.prompt.startswith("Hint: count them\nQuestion: Which colour?")


def test_shapes_are_the_held_out_split():
    from tinycot.task import held_out

    items = load("shapes:test:3")
    examples = held_out(3, 0)
    assert [i.question for i in items] == [e.question for e in examples]
    assert [i.answer for i in items] == [e.conclusion for e in examples]
    assert all(i.image and i.image.startswith("data:image/png;base64,") for i in items)
    assert load("shapes:test:3:1")[0].id != items[0].id


@pytest.mark.parametrize(("records", "message"), [
    ([{"question": "q"}], "q.jsonl:1: no answer"),
    ([{"answer": "x"}], "no question"),
    ([{"question": "q", "answer": "x", "image": "missing.png"}], "is not a file"),
    ([{"question": "q", "answer": "E", "options": ["a", "b"]}], "not one of the option"),
    ([{"id": 1, "question": "q", "answer": "x"}, {"id": 1, "question": "r", "answer": "y"}],
     "used twice"),
    ([], "no questions"),
])
def test_bad_files_name_the_line_and_the_problem(tmp_path: Path, records, message):
    with pytest.raises(DatasetError, match=message):
        load(str(write_jsonl(tmp_path / "q.jsonl", records)))


def test_bad_sources(tmp_path: Path):
    with pytest.raises(DatasetError, match="no such file"):
        load(str(tmp_path / "nope.jsonl"))
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(DatasetError, match=r"\.jsonl or \.tsv"):
        load(str(tmp_path / "x.csv"))
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(DatasetError, match=r"bad\.jsonl:1: not JSON"):
        load(str(tmp_path / "bad.jsonl"))
    for spec in ("shapes:train:3", "shapes:test", "shapes:test:0", "shapes:test:x"):
        with pytest.raises(DatasetError):
            load(spec)


def test_item_prompt_without_options():
    assert Item("1", "Q?", "a", hint="h").prompt == "Hint: h\nQ?"
