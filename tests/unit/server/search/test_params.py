from server.search.interface import Constraint, Sampling
from server.search.params import SearchParams
from server.search.schema import LLAVA_COT

CHOICE = Constraint("choice", ("A", "B"))


def params(**kw) -> SearchParams:
    return SearchParams(schema=LLAVA_COT, beam_width=2, sampling=Sampling(min_tokens=50,
                                                                         ignore_eos=True), **kw)


def test_answer_only_settings_stay_off_the_reasoning_stages():
    p = params(stop=("END",), stop_token_ids=(7,), constraint=CHOICE, answer_logprobs=3)
    caption = p.stage_sampling(LLAVA_COT.stage("CAPTION"), 2, 40, seed=1)
    assert caption.stop == ("</CAPTION>",) and caption.stop_token_ids == ()
    assert caption.constraint is None and caption.token_logprobs is None
    assert (caption.n, caption.max_tokens, caption.seed, caption.min_tokens) == (2, 40, 1, 40)


def test_the_answer_stage_is_constrained_without_a_forced_length():
    p = params(stop=("END",), stop_token_ids=(7,), constraint=CHOICE, answer_logprobs=3)
    answer = p.stage_sampling(LLAVA_COT.answer_stage, 2, 40, seed=1)
    assert answer.stop == ("</CONCLUSION>", "END") and answer.stop_token_ids == (7,)
    assert answer.constraint == CHOICE and answer.token_logprobs == 3
    assert answer.min_tokens == 0 and not answer.ignore_eos
    free = params().stage_sampling(LLAVA_COT.answer_stage, 2, 40, seed=1)
    assert free.min_tokens == 40 and free.ignore_eos and free.constraint is None
