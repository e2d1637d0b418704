"""The scorers' pure logic."""

import pytest

from evaluation.compare.datasets import Item
from evaluation.compare.scorers import (
    judge_request,
    judge_verdict,
    letter_in,
    number_in,
    resolve,
    score,
)

MC = Item("1", "How many?", "B", options={"A": "1", "B": "2", "C": "three blue"})


@pytest.mark.parametrize(("answer", "letter"), [
    ("B", "B"), ("(B)", "B"), ("B.", "B"), ("B. 2", "B"), ("Answer: B", "B"),
    ("The answer is C", "C"), ("I pick (A) here", "A"), ("2", "B"), ("There are 2.", "B"),
    ("three blue ones", "C"), ("A or B", None), ("The answer is a 2", "B"),
    ("ANSWER: C", "C"), ("no idea", None), ("Z", None)])
def test_letters(answer, letter):
    assert letter_in(answer, MC.options) == letter


@pytest.mark.parametrize(("text", "number"), [
    ("2", 2.0), ("There are two.", 2.0), ("1,234.5 m", 1234.5), ("from 3 to 7", 7.0),
    ("-4", -4.0), ("none", None)])
def test_numbers(text, number):
    assert number_in(text) == number


def test_each_scorer():
    plain = Item("1", "q", "Two red circles.")
    assert score("exact", " Two red circles.", plain).correct
    assert not score("exact", "two red circles", plain).correct
    assert score("normalised", "two red circles", plain).correct
    assert score("normalised", "2 red circles!", plain).correct
    assert not score("normalised", "3 red circles", plain).correct
    assert not score("normalised", "", Item("1", "q", "...")).correct  # nothing to compare
    number = Item("1", "q", "10")
    assert score("numeric", "about 10.4", number, tolerance=0.05).correct
    assert not score("numeric", "about 10.6", number, tolerance=0.05).correct
    assert score("numeric", "0.5", Item("1", "q", "0"), tolerance=0.5).correct  # absolute < 1
    assert score("numeric", "ten", number).read == "10"
    assert not score("numeric", "many", number).correct
    verdict = score("choice", "There are 2.", MC)
    assert verdict.correct and verdict.read == "B"
    with pytest.raises(ValueError):
        score("judge", "x", plain)


def test_auto_picks_by_the_reference():
    assert resolve("auto", MC) == "choice"
    assert resolve("auto", Item("1", "q", "12")) == "numeric"
    assert resolve("auto", Item("1", "q", "three")) == "numeric"
    assert resolve("auto", Item("1", "q", "red")) == "normalised"
    assert resolve("exact", MC) == "exact"


def test_judge_request_and_reply():
    body = judge_request("judge-model", MC, "2", {"max_tokens": 2})
    assert body["model"] == "judge-model" and body["max_tokens"] == 2
    prompt = body["messages"][0]["content"]
    assert "Reference answer: B. 2" in prompt and "Candidate answer: 2" in prompt
    assert judge_verdict("Yes.").correct is True
    assert judge_verdict("no, it is wrong").correct is False
    undecided = judge_verdict("maybe")
    assert undecided.correct is None and undecided.read == "maybe"
