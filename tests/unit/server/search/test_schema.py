import pytest

from server.search.repetition import RepetitionRule
from server.search.schema import (
    LLAVA_COT,
    REPETITION,
    THINK_ANSWER,
    clean_stage,
    clean_stage_text,
    foreign_tags,
    get_schema,
)

SUMMARY = LLAVA_COT.stages[0]


def test_clean_cuts_at_the_closing_tag():
    assert clean_stage_text(SUMMARY, " plan here </SUMMARY> junk") == ("plan here", True)


def test_clean_drops_a_repeated_opening_tag_and_reports_unclosed():
    assert clean_stage_text(SUMMARY, "<SUMMARY> plan") == ("plan", False)


def test_clean_of_empty_text_is_empty():
    assert clean_stage_text(SUMMARY, "   ") == ("", False)


def test_tagged_text_wraps_each_stage_and_separates_them():
    pairs = [(s.tag, f"text of {s.tag}") for s in THINK_ANSWER.stages]
    assert THINK_ANSWER.tagged_text(pairs) == (
        "<think>text of think</think>\n\n<answer>text of answer</answer>")
    assert LLAVA_COT.tagged_text([]) == ""


def test_schemas_name_their_answer_stage():
    assert LLAVA_COT.answer_stage.tag == "CONCLUSION"
    assert THINK_ANSWER.answer_stage.close_tag == "</answer>"
    assert get_schema("think-answer") is THINK_ANSWER
    with pytest.raises(ValueError, match="unknown stage schema"):
        get_schema("nope")


def test_clean_cuts_at_a_callers_stop_string_too():
    assert clean_stage_text(SUMMARY, "three END more", ["END"]) == ("three", False)


def test_only_stages_after_the_evidence_stage_quote_it():
    assert [LLAVA_COT.evidence_for(t) for t in ("SUMMARY", "CAPTION")] == [None, None]
    assert LLAVA_COT.evidence_for("REASONING") == LLAVA_COT.stage("CAPTION")
    assert LLAVA_COT.evidence_for("CONCLUSION") == LLAVA_COT.stage("CAPTION")
    assert THINK_ANSWER.evidence_for("answer") is None


CONCLUSION = LLAVA_COT.stage("CONCLUSION")


@pytest.mark.parametrize("raw, text, cleaned", [
    # the leak: the model closed the REASONING again and began another CONCLUSION
    ("g Blue is 1.</REASONING>\n\n<CONCLUSION>1</CONCLUSION>", "g Blue is 1.",
     ("cut at </REASONING>",)),
    ("1 <CAPTION>Top left: none.</CAPTION>", "1", ("cut at <CAPTION>",)),
    ("yes <CONCLUSION>no", "yes", ("cut at <CONCLUSION>",)),  # its own, repeated
    ("2 <think>hm</think>", "2", ("cut at <think>",)),  # another schema's
    ("<REASONING>more</REASONING>", "", ("cut at <REASONING>",)),
    # at its start, a closing tag and its own opening tag are dropped: the stage follows
    (" </REASONING>\n\n<CONCLUSION> 1</CONCLUSION>", "1",
     ("stripped </REASONING>", "stripped <CONCLUSION>")),
    ("3 <b>bold</b> and <CONCLUS", "3 <b>bold</b> and <CONCLUS", ()),
])
def test_clean_never_lets_a_stage_tag_into_the_text(raw, text, cleaned):
    clean = clean_stage(CONCLUSION, raw)
    assert (clean.text, clean.cleaned) == (text, cleaned)
    assert clean.text == raw[clean.start:clean.end]
    assert clean.cut == any(c.startswith("cut") for c in cleaned)
    assert not (clean.cut and clean.closed)  # a cut stage is closed by the server


def test_clean_cuts_a_loop_after_its_first_copy_only_under_a_rule():
    raw = "<CONCLUSION> so " + "red " * 20 + "</CONCLUSION>"
    clean = clean_stage(CONCLUSION, raw, repetition=RepetitionRule())
    assert (clean.text, clean.closed, clean.cut) == ("so red", False, True)
    assert clean.cleaned == ("stripped <CONCLUSION>", REPETITION)
    assert clean_stage(CONCLUSION, raw).text == "so" + " red" * 20
    assert clean_stage_text(CONCLUSION, raw) == ("so" + " red" * 20, True)


def test_every_tag_of_every_schema_is_foreign_but_the_stages_own_closing_one():
    tags = foreign_tags(CONCLUSION)
    assert "</CONCLUSION>" not in tags
    assert {"<CONCLUSION>", "<SUMMARY>", "</REASONING>", "<think>", "</answer>"} <= set(tags)
