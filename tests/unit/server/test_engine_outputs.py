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


class _FakeLLM:
    """A FAKE AsyncLLM (pure logic of the adapter's output loop): yields the given outputs and
    records the aborts it is sent."""

    def __init__(self, outputs):
        self.outputs, self.aborted = outputs, []

    async def generate(self, request, params, request_id, trace_headers=None):
        for output in self.outputs:
            yield output

    async def abort(self, request_id):
        self.aborted.append(request_id)


def _output(finished):
    return SimpleNamespace(finished=finished, outputs=[])


def _run(outputs, done_after):
    import asyncio

    from server.engine import VllmEngine

    llm = _FakeLLM(outputs)
    engine = VllmEngine(llm, None, None, 2048, on_cpu=True)
    engine._token_ids = lambda prompt: [1, 2]
    seen = []

    def reader(output):
        seen.append(output)
        return len(seen) >= done_after

    final = asyncio.run(engine._run(["prompt"], [], None, reader))
    return final, llm.aborted


def test_a_request_its_reader_is_done_with_is_aborted_while_it_runs():
    outputs = [_output(False), _output(False), _output(True)]
    final, aborted = _run(outputs, done_after=2)
    assert final is outputs[1] and len(aborted) == 1


def test_a_finished_request_is_not_aborted_even_when_its_reader_is_done():
    outputs = [_output(False), _output(True)]
    final, aborted = _run(outputs, done_after=2)
    assert final is outputs[1] and aborted == []
