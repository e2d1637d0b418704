"""The procedural shape questions: deterministic, answers right by an independent count, stages
well formed, images drawn where the scene says, wrong stages really wrong."""

import random
import re
from collections import Counter

import pytest

from tinycot import task as shapes_data
from tinycot.task import CELL, COLOURS, dataset, held_out, is_correct, normalise

WELL_FORMED = re.compile(r"^<SUMMARY>[^<]+</SUMMARY>\n\n<CAPTION>[^<]+</CAPTION>\n\n"
                         r"<REASONING>[^<]+</REASONING>\n\n<CONCLUSION>[^<]+</CONCLUSION>$")


def _expected(example) -> str:
    """The answer recomputed from the scene, independently of shapes_data.answer."""
    q, shapes = example.query, example.scene.shapes
    colours = Counter(s.colour for s in shapes)
    if q.kind == "count_colour":
        return str(sum(s.colour == q.colour for s in shapes))
    if q.kind == "count_kind":
        return str(sum(s.kind == q.shape for s in shapes))
    if q.kind == "most_common":
        (top, n), *rest = colours.most_common()
        assert not rest or rest[0][1] < n, "a most-common question must have one answer"
        return top
    if q.kind == "more_than":
        return str(colours[q.colour] - colours[q.colour2])
    (a,) = [s for s in shapes if (s.colour, s.kind) == (q.colour, q.shape)]
    (b,) = [s for s in shapes if (s.colour, s.kind) == (q.colour2, q.shape2)]
    assert (a.col < 2) != (b.col < 2), "left-of questions compare shapes on opposite halves"
    return "yes" if a.col < 2 <= b.col else "no"


def test_same_seed_same_examples_and_splits_differ():
    first, again = dataset(3, 20), dataset(3, 20)
    assert [e.answer_text for e in first] == [e.answer_text for e in again]
    assert [e.image.tobytes() for e in first] == [e.image.tobytes() for e in again]
    other = held_out(20, seed=3)
    assert [e.answer_text for e in first] != [e.answer_text for e in other]


def test_answers_match_an_independent_count_and_stages_are_well_formed():
    examples = held_out(300)
    assert {e.query.kind for e in examples} == set(shapes_data.QUESTION_WEIGHTS)
    for e in examples:
        assert e.conclusion == _expected(e), e.question
        assert WELL_FORMED.match(e.answer_text), e.answer_text
        assert [tag for tag, _ in e.stages] == list(shapes_data.STAGE_TAGS)
        caption = dict(e.stages)["CAPTION"]
        for shape in e.scene.shapes:
            assert shape.name in caption


def test_each_shape_is_drawn_in_its_cell_in_its_colour():
    for e in dataset(0, 30):
        pixels = e.image.load()
        for s in e.scene.shapes:
            x = s.col * CELL + CELL // 2 + s.dx
            y = s.row * CELL + CELL // 2 + s.dy + (s.radius // 2 if s.kind == "triangle" else 0)
            drawn = pixels[x, y]
            assert all(abs(a - b) <= 20 for a, b in zip(drawn, COLOURS[s.colour], strict=True))


@pytest.mark.parametrize("subtle", [True, False])
def test_wrong_stages_differ_from_the_right_ones(subtle):
    rng = random.Random(0)
    for e in dataset(1, 40):
        for tag, right in e.stages:
            assert shapes_data.wrong_stage(e, tag, rng, subtle=subtle) != right


def test_scoring_normalises_number_words_and_punctuation():
    assert normalise("Three.") == "3"
    assert is_correct("3", "three") and is_correct(" Red!", "red")
    assert not is_correct("2", "3")
    assert not is_correct("", "") and not is_correct("...", "")


def test_a_question_s_kind_is_read_back_from_its_text():
    from tinycot.task import dataset, question_kind

    examples = dataset(0, 300, "kinds")
    assert {question_kind(e.question) for e in examples} == {e.query.kind for e in examples}
    assert all(question_kind(e.question) == e.query.kind for e in examples)
    assert question_kind("How many dogs are in the park today?") is None
