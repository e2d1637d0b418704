import pytest

from server.search.repetition import RepetitionRule
from server.search.schema import LLAVA_COT, StageTextStream, clean_stage, clean_stage_text

CAPTION = LLAVA_COT.stage("CAPTION")
RULE = RepetitionRule()


def shown(raw: str, stops: tuple[str, ...] = ()) -> tuple[list[str], str]:
    """Feed `raw` one character at a time; return the pieces shown and the final text."""
    stream = StageTextStream(CAPTION, stops)
    pieces = [stream.feed(raw[:i]) for i in range(1, len(raw) + 1)]
    final, _ = clean_stage_text(CAPTION, raw, stops)
    pieces.append(stream.finish(final))
    return [p for p in pieces if p], final


@pytest.mark.parametrize("raw, stops", [
    (" Two red squares.</CAPTION>", ()),
    ("<CAPTION> a <b>tag</b> inside </CAPT", ()),
    ("one <CAP and more", ()),
    ("text ending in space   ", ()),
    ("answer END more", ("END",)),
    ("answer EN", ("END",)),
    ("", ()),
])
def test_what_is_shown_adds_up_to_the_final_stage_text(raw, stops):
    pieces, final = shown(raw, stops)
    assert "".join(pieces) == final


def test_a_partial_closing_tag_is_held_back_until_it_is_decided():
    stream = StageTextStream(CAPTION)
    assert stream.feed("two</CAP") == "two"
    assert stream.feed("two</CAPTION>") == ""
    other = StageTextStream(CAPTION)
    assert other.feed("two</CA") == "two"
    assert other.feed("two</CAT") == "</CAT"  # not the tag after all


@pytest.mark.parametrize("raw", [
    "g Blue is 1.</REASONING>\n\n<CAPTION>1</CAPTION>",
    " </SUMMARY>\n\n<CAPTION> Top left: red.</CAPTION>",
    "Top left: " + "red " * 20 + "</CAPTION>",
    "Top left: " + "red " * 20,
    "So " + "most " * 14 + "<REASONING>x",
    "Green " + "n" * 40,
    "Top: green, green, blue, green. Bottom: red square, red square, red square.",
    "text, text, text</CAP",
    "two <CAP and <b>three</b>",
])
def test_what_is_shown_is_always_a_prefix_of_the_cleaned_final_text(raw):
    stream = StageTextStream(CAPTION, (), RULE)
    final = clean_stage(CAPTION, raw, (), RULE).text
    shown = ""
    for i in range(1, len(raw) + 1):
        shown += stream.feed(raw[:i])
        assert final.startswith(shown), (shown, final)
    shown += stream.feed(raw, final=True)
    assert shown == final


def test_a_loop_shows_only_its_first_copy():
    stream = StageTextStream(CAPTION, (), RULE)
    raw = "Top left: " + "red " * 30
    pieces = "".join(stream.feed(raw[:i]) for i in range(1, len(raw) + 1))
    assert pieces == "Top left: red"


def test_a_tag_inside_the_stage_ends_what_is_shown():
    stream = StageTextStream(CAPTION)
    assert stream.feed("two</REASON") == "two"
    assert stream.feed("two</REASONING> three") == ""
