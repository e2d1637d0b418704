"""Degenerate repetition in a stage's text: one phrase over and over (a small model's loop,
`most most most ...` or `nnnnnnnn` up to the stage's cap), found while the stage is decoded so
that the stage can be closed there. Pure.

Two kinds of loop, by `RepetitionRule`:
- words (runs of non-space characters, compared exactly): a run of words each equal to the word
  `period` words before it, at least `min_copies` whole copies of the phrase and at least
  `min_words` words long, for a phrase of 1 to `max_period` words;
- characters: the same of 1 to `max_char_period` characters, `min_char_copies` copies (a loop
  with no space in it is one ever longer word).
The text is read from its start, each character once and each word once something follows it;
the loop is the first run to reach the rule (the shortest period first): a watch fed the text
as it is decoded and one fed the whole text at once find the same loop. The stage keeps its
text up to the end of the loop's first copy.

The default rule never fires on the tiny model's task texts (`tinycot.task`: 24,000 stage
texts checked, tests/unit/server/search/test_repetition.py checks 2,000), whose tallies repeat
one word at most 4 or 5 times ("square, square, square, square,") and two words 3.5 times
("red square, red square, red square, red"), and longer phrases less than twice.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RepetitionRule:
    """When a phrase repeated in a row is a loop (see the module)."""

    min_copies: int = 3  # of a phrase of words
    min_words: int = 12
    max_period: int = 32  # words in the phrase
    min_char_copies: int = 16  # of a few characters without space between them ("nnnn...")
    max_char_period: int = 4

    def __post_init__(self) -> None:
        if min(self.min_copies, self.min_words, self.min_char_copies) < 2 or min(
                self.max_period, self.max_char_period) < 1:
            raise ValueError(f"not a repetition rule: {self}")


@dataclass(frozen=True)
class Loop:
    """A loop found in a text: its first copy is text[start:end], `period` words (or
    characters) long."""

    start: int
    end: int
    period: int
    unit: str = "words"  # or "characters"


class LoopWatch:
    """Reads a text as it grows (each `feed` takes all of it so far) and finds its loop."""

    def __init__(self, rule: RepetitionRule) -> None:
        self.rule = rule
        self._reset()

    def _reset(self) -> None:
        self.loop: Loop | None = None
        self._read = 0  # characters read
        self._text = ""  # the text they come from
        self._word = -1  # where the word being read begins (-1: between words)
        self._words: list[str] = []
        self._ends: list[tuple[int, int]] = []  # each word's span
        self._runs = [0] * self.rule.max_period  # per period: the words ending at the last
        # one read that each equal the word `period` before them
        self._char_runs = [0] * self.rule.max_char_period  # the same, of characters
        self._whole = self._final = False  # what the last feed said of its text

    def feed(self, text: str, whole: bool = False, final: bool = False) -> Loop | None:
        """The loop in `text` so far, if any; a word is read once space follows it (the last
        one: once it is `whole`, or the text `final`: nothing more will follow). A text that
        does not extend the one read starts over."""
        if not text.startswith(self._text[:self._read]):
            self._reset()
        self._text, self._whole, self._final = text, whole or final, final
        complete = whole or final
        period = self.rule.max_char_period
        while self.loop is None and self._read < len(text):
            at = self._read
            char = text[at]
            space = char.isspace()
            if space:
                if self._word >= 0:
                    self._word_read(self._word, at)
                    self._word = -1
            elif self._word < 0:
                self._word = at
            if self.loop is None:
                if space or char not in text[max(0, at - period):at]:
                    # no character run goes on: space is the word rule's, and none of the
                    # last few characters is this one
                    if any(self._char_runs):
                        self._char_runs = [0] * period
                else:
                    self._char_read(at)
            self._read = at + 1
        if complete and self.loop is None and self._word >= 0:
            self._word_read(self._word, len(text))
            self._word = -1
        return self.loop

    @property
    def settled(self) -> int:
        """How much of the text fed so far no loop can cut any more: a loop cuts after its
        first copy, so up to the end of the word before the longest run of repeated words at
        the end, and, in a last word still being decoded, before the longest run of repeated
        characters; all of a final text without a loop."""
        if self.loop is not None:
            return self.loop.end
        if self._final:
            return len(self._text)
        words = len(self._words)
        by_words = self._ends[words - 1 - max(self._runs)][1] if words else 0
        return by_words if self._whole else min(by_words, self._read - max(self._char_runs))

    def _word_read(self, start: int, end: int) -> None:
        word, words, rule = self._text[start:end], self._words, self.rule
        count = len(words)
        reach = min(count, rule.max_period)
        recent = words[count - reach:]
        runs = [0] * rule.max_period  # a period whose word differs starts again from 0
        if word in recent:  # only the periods whose word is this one go on
            # the shortest period first, as the loop is the first run to reach the rule
            for period in [reach - i for i, w in enumerate(recent) if w == word][::-1]:
                run = runs[period - 1] = self._runs[period - 1] + 1
                length = run + period  # words of the repeating run that ends with this one
                if (self.loop is None and length >= rule.min_copies * period
                        and length >= rule.min_words):
                    first = count + 1 - length
                    self.loop = Loop(self._ends[first][0], self._ends[first + period - 1][1],
                                     period)
        self._runs = runs
        words.append(word)
        self._ends.append((start, end))

    def _char_read(self, at: int) -> None:
        """A character that one of the last few is: the runs of those periods go on, the
        others end."""
        text, rule = self._text, self.rule
        char, runs = text[at], [0] * rule.max_char_period
        for period in range(1, min(at, rule.max_char_period) + 1):
            if text[at - period] != char:
                continue
            run = runs[period - 1] = self._char_runs[period - 1] + 1
            length = run + period
            if self.loop is None and length >= rule.min_char_copies * period:
                first = at + 1 - length
                self.loop = Loop(first, first + period, period, "characters")
        self._char_runs = runs


def find_loop(text: str, rule: RepetitionRule) -> Loop | None:
    """The loop in a whole text, if it has one."""
    return LoopWatch(rule).feed(text, final=True)
