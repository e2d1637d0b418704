import pytest

from server.search.schema import LLAVA_COT, THINK_ANSWER, clean_stage_text, get_schema

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
