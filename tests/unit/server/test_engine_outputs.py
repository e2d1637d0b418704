"""The engine adapter's reading of vLLM outputs: DELTA outputs (what a sink that is handed the
call every few tokens gets) put together again into what a CUMULATIVE output would hold. Pure
logic over stand-ins for vLLM's CompletionOutput (no engine is started)."""

from types import SimpleNamespace

from server.engine import _Accumulated


def delta(text: str, ids: list[int], cumulative: float | None, finish: str | None = None,
          logprobs: list[dict] | None = None) -> SimpleNamespace:
    return SimpleNamespace(text=text, token_ids=ids, logprobs=logprobs,
                           cumulative_logprob=cumulative, finish_reason=finish,
                           stop_reason=None if finish is None else "</CONCLUSION>")


def test_deltas_add_up_to_the_whole_completion():
    whole = _Accumulated()
    whole.add(delta("<SUM", [1, 2], -0.5, logprobs=[{1: "a"}, {2: "b"}]))
    assert (whole.text, whole.token_ids, whole.finish_reason) == ("<SUM", [1, 2], None)
    whole.add(delta("MARY>three", [3], -0.75, logprobs=[{3: "c"}]))
    final = whole.add(delta("</CONCLUSION>", [4, 5], -1.0, "stop", [{4: "d"}, {5: "e"}]))
    assert final is whole
    assert whole.text == "<SUMMARY>three</CONCLUSION>"
    assert whole.token_ids == [1, 2, 3, 4, 5]
    assert whole.logprobs == [{1: "a"}, {2: "b"}, {3: "c"}, {4: "d"}, {5: "e"}]
    assert whole.cumulative_logprob == -1.0  # vLLM's is cumulative in DELTA outputs too
    assert (whole.finish_reason, whole.stop_reason) == ("stop", "</CONCLUSION>")


def test_without_logprobs_they_stay_unreported():
    whole = _Accumulated()
    whole.add(delta("a", [1], None))
    whole.add(delta("b", [2], None, "length"))
    assert whole.logprobs is None and whole.cumulative_logprob is None
    assert (whole.text, whole.token_ids, whole.finish_reason) == ("ab", [1, 2], "length")
