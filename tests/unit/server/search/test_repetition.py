"""Loops in a stage's text (server/search/repetition.py): pure logic."""

import pytest

from server.search.repetition import Loop, LoopWatch, RepetitionRule, find_loop
from tinycot.task import dataset

RULE = RepetitionRule()


def kept(text: str) -> str | None:
    loop = find_loop(text, RULE)
    return None if loop is None else text[:loop.end]


@pytest.mark.parametrize("text, expected", [
    ("The shape is " + "red " * 12, "The shape is red"),
    ("So " + "most " * 20 + "left", "So most"),
    ("= " * 15 + ". So", "="),
    ("Top left: " + "red square, " * 6, "Top left: red square,"),
    ("a b c d e " * 3, "a b c d e"),
    ("Green " + "n" * 40, "Green n"),
    ("x" + "ab" * 20, "xab"),
])
def test_a_loop_keeps_its_first_copy(text, expected):
    assert kept(text) == expected


@pytest.mark.parametrize("text", [
    "red " * 11,  # 11 copies of one word: not yet
    "red square, " * 5,  # 10 words
    "a b c d e " * 2 + "a b c d",  # not 3 whole copies
    "n" * 15,
    "Yellow: square, square, square, square, square = 5.",
    "          spaced     out       ",  # space is not a loop
])
def test_what_is_not_a_loop(text):
    assert find_loop(text, RULE) is None


def test_the_tiny_models_task_texts_never_loop():
    """The rule must not fire on the answers the shipped model was trained to write (tallies
    like "green, green, blue, green" included)."""
    texts = [text for e in dataset(0, 2000, "validation") for _, text in e.stages]
    assert [t for t in texts if find_loop(t, RULE)] == []


def test_the_shortest_period_is_the_loop():
    assert find_loop("go " * 12, RULE) == Loop(0, 2, 1)


def test_a_watch_fed_as_the_text_grows_finds_the_loop_the_whole_text_has():
    text = "The answer: " + "blue circle, red " * 8 + "and more words after it"
    watch = LoopWatch(RULE)
    found = [watch.feed(text[:i]) for i in range(len(text) + 1)]
    first = next(i for i, f in enumerate(found) if f is not None)
    assert found[first] == find_loop(text, RULE) == find_loop(text[:first], RULE)
    assert text[:found[first].end] == "The answer: blue circle, red"


def test_the_last_word_is_read_only_once_it_is_whole():
    text = "red " * 11 + "red"
    assert LoopWatch(RULE).feed(text) is None
    assert LoopWatch(RULE).feed(text, whole=True) is not None


def test_settled_never_passes_where_a_loop_could_still_cut():
    """What a stream may show: for every prefix, no longer than what the whole text keeps."""
    for text in ["So " + "red " * 20, "green, green, blue, green = 3.", "Green " + "n" * 30,
                 "a b a b a b c " + "d e " * 10]:
        final = kept(text)
        watch = LoopWatch(RULE)
        for i in range(len(text) + 1):
            watch.feed(text[:i])
            assert final is None or watch.settled <= len(final)
            assert watch.settled <= i
        watch.feed(text, final=True)
        assert watch.settled == (len(text) if final is None else len(final))


def test_a_text_that_does_not_extend_the_last_one_starts_over():
    watch = LoopWatch(RULE)
    assert watch.feed("red " * 12) is not None
    assert watch.feed("blue " * 3) is None


def test_a_rule_must_be_able_to_fire():
    with pytest.raises(ValueError):
        RepetitionRule(min_copies=1)
