"""The search configurations the evaluation compares, and their names.

A configuration is one way of asking the server: no search (`greedy`), best-of-N
(`bon-<selector>-<N>`: N whole answers, one selected at the end), stage-level search
(`stage-<selector>-<width>`: every stage branches into `width` candidates and the selector keeps
one) or retracing search (`retrace-verify-<width>`: the best two of each stage go on, a stage the
verifier scores low sends it back). A suffix `-t<tokens>` gives any search a token budget
(`search_budget`), a suffix `-g` makes one of each stage's candidates (best-of-N: the first
answer) the greedy one (`greedy_candidate`; without it every candidate is sampled), and
`effort-<low|medium|high>-<selector>` asks by a `reasoning_effort` preset (its width, budget
and greedy candidate are the server's). The default set:

    greedy
    bon-{judge,verify,vote,weighted_vote}-4
    stage-{judge,verify,vote,weighted_vote,logprob,auto}-{2,4,8}
    retrace-verify-4
    effort-medium-verify

`select("...")` reads the `--configs` option: a comma-separated list of names and glob patterns
(`stage-*-4`, `bon-*`, `*verify*`); patterns match the default set, a plain name may also be any
valid name outside it (`bon-vote-2`, `stage-judge-16`).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any

GREEDY, BEST_OF_N, STAGE, RETRACE = "greedy", "best_of_n", "stage", "retrace"
EFFORTS = ("low", "medium", "high")
SELECTORS = ("judge", "verify", "vote", "weighted_vote", "logprob", "auto")
BON_SELECTORS = ("judge", "verify", "vote", "weighted_vote")  # the default best-of-N ones
STAGE_WIDTHS = (2, 4, 8)
BON_WIDTH = 4
MAX_WIDTH = 16  # the server's limit on beam_width
PREFIX = {BEST_OF_N: "bon", STAGE: "stage", RETRACE: "retrace"}
_NAME = re.compile(r"^(bon|stage|retrace)-([a-z_]+)-([0-9]+)(?:-t([0-9]+))?(-g)?$")
_EFFORT = re.compile(r"^effort-([a-z]+)-([a-z_]+)$")


@dataclass(frozen=True)
class Config:
    search: str  # GREEDY, BEST_OF_N, STAGE or RETRACE
    selector: str | None = None  # None for greedy
    width: int = 1  # beam_width: candidates per stage, or best-of-N's N (0: the preset's)
    budget: int | None = None  # search_budget, tokens
    effort: str | None = None  # a reasoning_effort preset instead of a width and a budget
    greedy: bool = False  # one candidate of each branching call is the greedy one

    @property
    def name(self) -> str:
        if self.search == GREEDY:
            return "greedy"
        if self.effort is not None:
            return f"effort-{self.effort}-{self.selector}"
        budget = f"-t{self.budget}" if self.budget is not None else ""
        greedy = "-g" if self.greedy else ""
        return f"{PREFIX[self.search]}-{self.selector}-{self.width}{budget}{greedy}"

    @property
    def fixed(self) -> bool:
        """A fixed width at every stage (no budget, no preset)."""
        return self.budget is None and self.effort is None

    def request_fields(self) -> dict[str, Any]:
        """The request's search fields (beside OpenAI's)."""
        if self.search == GREEDY:
            return {"beam_width": 1}
        if self.effort is not None:
            return {"reasoning_effort": self.effort, "selector": self.selector}
        fields: dict[str, Any] = {"beam_width": self.width, "selector": self.selector,
                                  "search": self.search, "greedy_candidate": self.greedy}
        if self.budget is not None:
            fields["search_budget"] = self.budget
        return fields

    def sort_key(self) -> tuple[int, int, int, int, bool]:
        order = (GREEDY, BEST_OF_N, STAGE, RETRACE)
        selector = SELECTORS.index(self.selector) if self.selector in SELECTORS else -1
        width = self.width if self.effort is None else MAX_WIDTH + 1  # presets after widths
        return (order.index(self.search), selector, width,
                self.budget or (EFFORTS.index(self.effort) + 1 if self.effort else 0),
                self.greedy)


DEFAULT_CONFIGS: tuple[Config, ...] = (
    Config(GREEDY),
    *(Config(BEST_OF_N, s, BON_WIDTH) for s in BON_SELECTORS),
    *(Config(STAGE, s, w) for s in SELECTORS for w in STAGE_WIDTHS),
    Config(RETRACE, "verify", BON_WIDTH),
    Config(STAGE, "verify", 0, effort="medium"),
)


def parse(name: str) -> Config:
    """The configuration a name stands for; ValueError for a name that is not one."""
    if name == "greedy":
        return Config(GREEDY)
    effort = _EFFORT.match(name)
    if effort:
        level, selector = effort.groups()
        if level not in EFFORTS:
            raise ValueError(f"{name!r}: the effort is one of {', '.join(EFFORTS)}")
        _known(name, selector)
        return Config(STAGE, selector, 0, effort=level)
    match = _NAME.match(name)
    if not match:
        raise ValueError(f"{name!r} is not a configuration name (greedy, bon-<selector>-<N>, "
                         "stage-<selector>-<width>, retrace-verify-<width>, any of those with "
                         "-t<tokens> and/or -g, effort-<level>-<selector>)")
    prefix, selector, width = match.group(1), match.group(2), int(match.group(3))
    _known(name, selector)
    if prefix == "retrace" and selector != "verify":
        raise ValueError(f"{name!r}: a retracing search ranks by the verifier (retrace-verify)")
    if not 2 <= width <= MAX_WIDTH:
        raise ValueError(f"{name!r}: the width must be 2 to {MAX_WIDTH}")
    budget = int(match.group(4)) if match.group(4) else None
    if budget is not None and budget < 1:
        raise ValueError(f"{name!r}: a token budget is at least 1")
    search = {"bon": BEST_OF_N, "stage": STAGE, "retrace": RETRACE}[prefix]
    return Config(search, selector, width, budget, greedy=bool(match.group(5)))


def _known(name: str, selector: str) -> None:
    if selector not in SELECTORS:
        raise ValueError(f"{name!r}: unknown selector {selector!r}; known: {', '.join(SELECTORS)}")


def try_parse(name: str) -> Config | None:
    try:
        return parse(name)
    except ValueError:
        return None


def select(spec: str) -> list[Config]:
    """The configurations named by a `--configs` value, in the order given (a pattern's matches
    in the default order), without repeats; every default configuration when `spec` is empty."""
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if not items:
        return list(DEFAULT_CONFIGS)
    chosen: list[Config] = []
    for item in items:
        if any(ch in item for ch in "*?["):
            found = [c for c in DEFAULT_CONFIGS if fnmatch.fnmatchcase(c.name, item)]
            if not found:
                raise ValueError(f"{item!r} matches no configuration; the defaults are: "
                                 + ", ".join(c.name for c in DEFAULT_CONFIGS))
        else:
            found = [parse(item)]
        chosen += [c for c in found if c not in chosen]
    return chosen


def ordered(names: set[str] | list[str]) -> list[str]:
    """Names in report order: greedy, best-of-N, stage search (by selector, then width); names
    that are not configurations last."""
    def key(name: str) -> tuple[int, tuple[int, int, int, int, bool], str]:
        config = try_parse(name)
        return (config is None, config.sort_key() if config else (0, 0, 0, 0, False), name)

    return sorted(set(names), key=key)
