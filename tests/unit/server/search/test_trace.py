from server.search.interface import Generation, TokenLogprob
from server.search.trace import Candidate

TOKENS = tuple(TokenLogprob(t, -0.5, ((t, -0.5),)) for t in ("4", "2", "</", "CONCLUSION>"))


def test_token_logprobs_cover_the_text_up_to_the_closing_tag_or_a_stop():
    generation = Generation("42</CONCLUSION>", 4, -2.0, "stop", token_logprobs=TOKENS)
    candidate = Candidate("42", 4, -0.5, True, generation)
    assert [t.token for t in candidate.token_logprobs(("</CONCLUSION>",))] == ["4", "2"]
    assert [t.token for t in candidate.token_logprobs(("</CONCLUSION>", "2"))] == ["4"]
    assert Candidate("42", 4, -0.5, True).token_logprobs(("</CONCLUSION>",)) is None
