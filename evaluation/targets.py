"""The issue's targets, each stated as met or missed from the numbers (pure logic):

1. the best stage-level configuration at width 4 beats greedy by at least 10 points, McNemar
   p < 0.01;
2. it beats best-of-N at N = 4 with the same selector (higher accuracy, p < 0.05) at equal or
   fewer generated tokens per question;
3. with its selector, accuracy rises with the width: 2 -> 4 -> 8 each step up, and 8 above 2
   with p < 0.05;
4. the verifier (the `verify` selector, pooled over its fixed-width stage and best-of-N runs)
   keeps a right candidate in at least 80 % of its decisive choices;
5. retracing search beats stage-level search with keep-1 (same selector, width 4) by a margin
   shown with a paired test (higher, p < 0.05) at equal or fewer generated tokens;
6. a budgeted search (a token budget or a reasoning_effort preset) reaches the accuracy of the
   same selector's fixed width 4 with at least 30 % fewer generated tokens.

"Best" is picked on the validation split when its answers are at hand (the honest way: the
choice is not made on the numbers that then test it), otherwise on the reported split itself,
which the report then says. A target whose configurations were not run is "not measured".
"""

from __future__ import annotations

from dataclasses import dataclass

from evaluation.analysis import WIDTH, Results, bon_name, stage_name
from evaluation.configs import BEST_OF_N, RETRACE, STAGE, try_parse
from evaluation.records import wilson
from evaluation.scoring import Paired, pooled

MIN_POINTS = 10.0  # target 1: lead over greedy, percentage points
P_GREEDY = 0.01  # target 1: McNemar p below this
P_BEATS = 0.05  # targets 2 and 3
VERIFIER_TARGET = 0.80  # target 4
BUDGET_SAVING = 0.30  # target 6: fewer generated tokens than the fixed width
MET, MISSED, NOT_MEASURED = "met", "missed", "not measured"


@dataclass(frozen=True)
class Target:
    name: str
    verdict: str  # MET, MISSED or NOT_MEASURED
    detail: str  # the numbers behind the verdict


def _stage_at_width(results: Results) -> list[str]:
    return [n for n in results.configs
            if (c := try_parse(n)) and c.search == STAGE and c.width == WIDTH and c.fixed]


def _best(results: Results, names: list[str]) -> str:
    """Highest accuracy; fewer generated tokens break a tie."""
    return max(names, key=lambda n: (results.summaries[n].accuracy, -results.tokens(n)))


def best_stage(results: Results, tuning: Results | None = None) -> tuple[str | None, str]:
    """The best stage configuration at width 4, and how it was picked."""
    candidates = _stage_at_width(results)
    if not candidates:
        return None, ""
    tuned = [n for n in candidates if tuning is not None and tuning.has(n)]
    if tuning is not None and tuned:
        return _best(tuning, tuned), "picked as the best on the validation split"
    return _best(results, candidates), ("picked as the best on these same numbers (no "
                                        "validation answers), which flatters it")


def _vs(pair: Paired, tokens_a: float, tokens_b: float) -> str:
    return (f"{pair.a} {pair.accuracy_a:.1%} against {pair.b} {pair.accuracy_b:.1%}: "
            f"{pair.points:+.1f} points, p = {pair.p:.2g} (McNemar, {pair.n} paired questions); "
            f"{tokens_a:.0f} against {tokens_b:.0f} generated tokens per question")


def versus_greedy(results: Results, best: str | None, basis: str) -> Target:
    name = f"best stage configuration at width {WIDTH} vs greedy (≥ +{MIN_POINTS:.0f} points, " \
           f"p < {P_GREEDY})"
    if best is None or not results.has("greedy"):
        return Target(name, NOT_MEASURED, f"needs greedy and a stage-*-{WIDTH} configuration")
    pair = results.pair(best, "greedy")
    met = pair.points >= MIN_POINTS and pair.p < P_GREEDY
    room = results.headroom()
    ceiling = "" if room is None or 100 * (room[1] - room[0]) >= MIN_POINTS else (
        f"; out of reach on these questions: the best-of-{WIDTH} oracle is {room[1]:.1%}, "
        f"{100 * (room[1] - room[0]):.1f} points over greedy, so no selector among "
        f"{WIDTH} sampled answers could add {MIN_POINTS:.0f}")
    return Target(name, MET if met else MISSED,
                  f"{best}, {basis}: " + _vs(pair, results.tokens(best), results.tokens("greedy"))
                  + ceiling)


def versus_best_of_n(results: Results, best: str | None) -> Target:
    name = (f"it beats best-of-{WIDTH} with the same selector (higher, p < {P_BEATS}) at ≤ its "
            "generated tokens")
    config = try_parse(best) if best else None
    if best is None or config is None:
        return Target(name, NOT_MEASURED, f"needs a stage-*-{WIDTH} configuration")
    other = bon_name(str(config.selector), WIDTH)
    note = ""
    if not results.has(other):
        runs = [n for n in results.configs
                if (c := try_parse(n)) and c.search == BEST_OF_N and c.width == WIDTH
                and c.fixed]
        if not runs:
            return Target(name, NOT_MEASURED, f"needs {other}")
        other = _best(results, runs)
        note = f" (no {bon_name(str(config.selector), WIDTH)} was run: against the best " \
               f"best-of-{WIDTH})"
    pair = results.pair(best, other)
    cheaper = results.tokens(best) <= results.tokens(other)
    met = pair.points > 0 and pair.p < P_BEATS and cheaper
    return Target(name, MET if met else MISSED,
                  _vs(pair, results.tokens(best), results.tokens(other)) + note
                  + ("" if cheaper else "; more tokens than best-of-N"))


def width_rises(results: Results, best: str | None) -> Target:
    config = try_parse(best) if best else None
    selector = config.selector if config else None
    name = (f"accuracy rises 2 → 4 → 8 for the best selector{f' ({selector})' if selector else ''}"
            f" (each step up, 8 vs 2 p < {P_BEATS})")
    names = [stage_name(str(selector), w) for w in (2, 4, 8)]
    if selector is None or not results.has(*names):
        return Target(name, NOT_MEASURED, "needs " + ", ".join(names))
    two, four, eight = names
    up_4, up_8, overall = (results.pair(four, two), results.pair(eight, four),
                           results.pair(eight, two))
    met = up_4.points > 0 and up_8.points > 0 and overall.p < P_BEATS
    accuracy = " → ".join(f"{results.summaries[n].accuracy:.1%}" for n in names)
    tokens = " → ".join(f"{results.tokens(n):.0f}" for n in names)
    return Target(name, MET if met else MISSED,
                  f"stage-{selector}-2/4/8: {accuracy} ({tokens} generated tokens per question);"
                  f" 4 vs 2 {up_4.points:+.1f} points (p = {up_4.p:.2g}), 8 vs 4 "
                  f"{up_8.points:+.1f} (p = {up_8.p:.2g}), 8 vs 2 {overall.points:+.1f} "
                  f"(p = {overall.p:.2g})")


def verifier(results: Results) -> Target:
    name = f"the verifier's accuracy on decisive choices (≥ {VERIFIER_TARGET:.0%})"
    # the fixed-width shapes: a retracing search's stage picks are its winning chain's, not
    # the verifier's at each stage, and a budget changes how many candidates there are
    runs = [n for n in results.configs if (c := try_parse(n)) and c.selector == "verify"
            and c.fixed and c.search != RETRACE]
    tally = pooled(results.selection[n].all_decisive for n in runs)
    if tally.accuracy is None:
        return Target(name, NOT_MEASURED, "no decisive choice by a verify configuration"
                      if runs else "needs a verify configuration")
    low, high = wilson(tally.right, tally.n)
    by_result = pooled(results.selection[n].all_decisive_by_result for n in runs
                       if results.selection[n].by_result.n)
    also = "" if by_result.accuracy is None else (
        f"; with REASONING judged by the result it reaches (what the verifier is trained on, not "
        f"the target's measure): {by_result.right} of {by_result.n} ({by_result.accuracy:.1%})")
    return Target(name, MET if tally.accuracy >= VERIFIER_TARGET else MISSED,
                  f"kept a right candidate in {tally.right} of {tally.n} decisive choices "
                  f"({tally.accuracy:.1%}, 95 % interval {low:.1%}–{high:.1%}), pooled over "
                  + ", ".join(runs) + also)


def retrace_pays(results: Results) -> Target:
    name = (f"retrace beats stage search with keep-1 at width {WIDTH} (same selector; higher, "
            f"p < {P_BEATS}) at ≤ its generated tokens")
    runs = [n for n in results.configs if (c := try_parse(n)) and c.search == RETRACE
            and c.fixed and c.width == WIDTH]
    pairs = [(n, stage_name("verify", WIDTH)) for n in runs
             if results.has(stage_name("verify", WIDTH))]
    if not pairs:
        return Target(name, NOT_MEASURED, f"needs retrace-verify-{WIDTH} and "
                      f"{stage_name('verify', WIDTH)}")
    retrace, stage = pairs[0]
    pair = results.pair(retrace, stage)
    cheaper = results.tokens(retrace) <= results.tokens(stage)
    met = pair.points > 0 and pair.p < P_BEATS and cheaper
    return Target(name, MET if met else MISSED,
                  _vs(pair, results.tokens(retrace), results.tokens(stage))
                  + ("" if cheaper else "; more tokens than keep-1"))


def budget_saves(results: Results) -> Target:
    name = (f"a budgeted search reaches its selector's fixed width-{WIDTH} accuracy with "
            f"≥ {BUDGET_SAVING:.0%} fewer generated tokens")
    found = []
    for n in results.configs:
        config = try_parse(n)
        fixed = stage_name(str(config.selector), WIDTH) if config else ""
        if config and config.search == STAGE and not config.fixed and results.has(fixed):
            found.append((n, fixed))
    if not found:
        return Target(name, NOT_MEASURED, "needs a budgeted configuration (effort-*-<selector>"
                      " or stage-<selector>-<w>-t<tokens>) and stage-<selector>-4")

    def verdict(budgeted: str, fixed: str) -> tuple[bool, str]:
        pair = results.pair(budgeted, fixed)
        saving = 1 - results.tokens(budgeted) / results.tokens(fixed)
        ok = pair.points >= 0 and saving >= BUDGET_SAVING
        return ok, _vs(pair, results.tokens(budgeted), results.tokens(fixed)) + \
            f" ({saving:.0%} fewer tokens)"

    judged = [(verdict(b, f), b) for b, f in found]
    best = next((j for j in judged if j[0][0]), judged[0])
    (met, detail), _ = best
    if len(found) > 1:
        detail += f" (the first of {len(found)} budgeted configurations that meets it, if any)"
    return Target(name, MET if met else MISSED, detail)


def targets(results: Results, tuning: Results | None = None) -> list[Target]:
    best, basis = best_stage(results, tuning)
    return [versus_greedy(results, best, basis), versus_best_of_n(results, best),
            width_rises(results, best), verifier(results), retrace_pays(results),
            budget_saves(results)]
