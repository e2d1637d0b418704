import pytest

from server.search.schema import LLAVA_COT, StageTextStream, clean_stage_text

CAPTION = LLAVA_COT.stage("CAPTION")


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
