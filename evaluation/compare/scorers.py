"""Whether an answer is right (pure functions, apart from the LLM judge's one HTTP call).

Scorers (--scorer):
  exact       the answer equals the reference, surrounding whitespace aside
  normalised  equal after lower-casing, dropping punctuation and articles, and writing number
              words as digits ("Two." = "2"; "the red one" = "red one")
  choice      a multiple-choice letter: the option letter the answer names ("B", "(B)",
              "Answer: B", "B. 12"), else the one option whose text it gives; VLMEvalKit's rule
  numeric     the number in the answer (the last one, number words included) is within
              --tolerance of the reference (relative, or absolute below 1)
  judge       an LLM at another OpenAI-compatible endpoint reads the question, the reference and
              the answer and says yes or no (--judge-url, --judge-model, --judge-body)
  auto        choice for a multiple-choice question, numeric when the reference is a number,
              normalised otherwise

A verdict is right (True), wrong (False) or undecided (None: the judge gave no yes or no),
with what the scorer read from the answer (the letter, the number, the judge's reply).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from evaluation.compare.datasets import Item

SCORERS = ("auto", "exact", "normalised", "choice", "numeric", "judge")
NUMBER_WORDS = {w: str(i) for i, w in enumerate((
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen", "twenty"))}
ARTICLES = {"a", "an", "the"}
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")
JUDGE_PROMPT = (
    "You grade answers. Question: {question}\nReference answer: {reference}\n"
    "Candidate answer: {answer}\nDoes the candidate answer mean the same as the reference "
    "answer? Reply with one word: yes or no.")


@dataclass(frozen=True)
class Verdict:
    correct: bool | None
    read: str | None = None  # what the scorer took from the answer


def words(text: str) -> list[str]:
    tokens = re.findall(r"[a-z0-9]+(?:\.[0-9]+)?", text.lower())
    return [NUMBER_WORDS.get(t, t) for t in tokens if t not in ARTICLES]


def exact(answer: str, reference: str) -> Verdict:
    return Verdict(answer.strip() == reference.strip(), answer.strip())


def normalised(answer: str, reference: str) -> Verdict:
    read = " ".join(words(answer))
    return Verdict(read == " ".join(words(reference)) != "", read)


def number_in(text: str) -> float | None:
    """The last number in `text` (digits or a number word)."""
    found: list[str] = []
    for token in re.findall(r"-?\d+(?:,\d{3})*(?:\.\d+)?|[A-Za-z]+", text):
        if _NUMBER.fullmatch(token):
            found.append(token.replace(",", ""))
        elif token.lower() in NUMBER_WORDS:
            found.append(NUMBER_WORDS[token.lower()])
    return float(found[-1]) if found else None


def numeric(answer: str, reference: str, tolerance: float = 0.0) -> Verdict:
    got, want = number_in(answer), number_in(reference)
    if got is None or want is None:
        return Verdict(False, None if got is None else f"{got:g}")
    allowed = tolerance * max(1.0, abs(want))
    return Verdict(abs(got - want) <= allowed + 1e-9, f"{got:g}")


def letter_in(answer: str, options: dict[str, str]) -> str | None:
    """The option the answer names: "answer is B", else the one option letter standing alone
    ("B", "(B)", "B.", "B. 12"), else the one option whose text the answer gives; None when it
    names none or several."""
    text = answer.strip()
    said = re.search(r"\b(?i:answer)(?: (?i:is))?\s*[:\-]?\s*\(?([A-Z])\)?(?![A-Za-z])", text)
    if said and said.group(1) in options:
        return said.group(1)
    named = {m for m in re.findall(r"(?<![A-Za-z])\(?([A-Z])\)?(?![A-Za-z])", text)
             if m in options}
    if named:
        return named.pop() if len(named) == 1 else None
    said_words = " " + " ".join(words(text)) + " "
    matches = [letter for letter, option in options.items()
               if (w := " ".join(words(option))) and f" {w} " in said_words]
    return matches[0] if len(matches) == 1 else None


def choice(answer: str, item: Item) -> Verdict:
    letter = letter_in(answer, item.options)
    return Verdict(letter == item.answer.strip().upper(), letter)


def is_number(text: str) -> bool:
    return bool(_NUMBER.fullmatch(text.strip())) or text.strip().lower() in NUMBER_WORDS


def resolve(scorer: str, item: Item) -> str:
    """The scorer `auto` stands for on this item."""
    if scorer != "auto":
        return scorer
    if item.options:
        return "choice"
    return "numeric" if is_number(item.answer) else "normalised"


def score(scorer: str, answer: str, item: Item, tolerance: float = 0.0) -> Verdict:
    """Every scorer but the judge (see `judge_request` / `judge_verdict`)."""
    kind = resolve(scorer, item)
    if kind == "exact":
        return exact(answer, item.answer)
    if kind == "normalised":
        return normalised(answer, item.answer)
    if kind == "choice":
        return choice(answer, item)
    if kind == "numeric":
        return numeric(answer, item.answer, tolerance)
    raise ValueError(f"the {kind!r} scorer needs an endpoint")


def judge_request(model: str, item: Item, answer: str, extra: dict[str, Any]) -> dict[str, Any]:
    reference = (f"{item.answer}. {item.options[item.answer]}" if item.options
                 and item.answer in item.options else item.answer)
    prompt = JUDGE_PROMPT.format(question=item.prompt, reference=reference, answer=answer)
    return {"model": model, "temperature": 0, "max_tokens": 8, **extra,
            "messages": [{"role": "user", "content": prompt}]}


def judge_verdict(reply: str) -> Verdict:
    """yes / no from the judge's reply (its first word that is either); None otherwise."""
    for word in re.findall(r"[a-z]+", reply.lower()):
        if word in ("yes", "no"):
            return Verdict(word == "yes", word)
    return Verdict(None, reply.strip()[:80])
