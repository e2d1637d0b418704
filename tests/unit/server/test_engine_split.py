"""The engine adapter's side of cutting a generation into stages (`VllmEngine.split`,
`tokens_of`, `Generation.parts`): with the tiny model's real tokenizer, and with a FAKE
SentencePiece-like one. No engine is started (pure logic over a tokenizer)."""

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from server.engine import VllmEngine
from server.search.interface import Generation

TOKENIZER_DIR = Path(__file__).resolve().parents[3] / "tinycot" / "data" / "tiny-cot-trained"
SEPARATOR_AND_TAG = "\n\n<CAPTION>"


def adapter(tokenizer: object) -> VllmEngine:
    return VllmEngine(None, tokenizer, None, 2048, on_cpu=True)


def generation(text: str, ids: list[int], eos: bool = True) -> Generation:
    count = len(ids) + eos
    return Generation(text, count, -float(count), "stop", tuple(ids), logprobs=(-1.0,) * count)


@pytest.fixture(scope="module")
def tiny() -> VllmEngine:
    return adapter(AutoTokenizer.from_pretrained(TOKENIZER_DIR))


def test_a_staged_generation_splits_at_its_tags_into_its_own_tokens(tiny):
    text = "Count the red ones.</SUMMARY>\n\n<CAPTION>A red circle, a blue square.</CAPTION>"
    ids = tiny.tokens_of(text)
    close = text.index("</SUMMARY>") + len("</SUMMARY>")
    start = close + len(SEPARATOR_AND_TAG)
    whole = generation(text, list(ids))
    parts = tiny.split(whole, [close, start])
    assert parts is not None
    assert [p.text for p in parts] == [text[:close], SEPARATOR_AND_TAG, text[start:]]
    assert tuple(i for p in parts for i in p.token_ids) == ids
    assert parts[1].token_ids == tiny.tokens_of(SEPARATOR_AND_TAG)  # as the server renders it
    # each part counts its own tokens; the last also the EOS; the log-probability is shared
    assert [p.token_count for p in parts] == [len(parts[0].token_ids), len(parts[1].token_ids),
                                              len(parts[2].token_ids) + 1]
    assert sum(p.cumulative_logprob or 0 for p in parts) == whole.cumulative_logprob
    assert [p.finish_reason for p in parts] == ["stop", "stop", "stop"]


def test_a_bound_at_the_very_end_and_a_text_the_tokens_do_not_make(tiny):
    text = "Two.</SUMMARY>"
    ids = list(tiny.tokens_of(text))
    parts = tiny.split(generation(text, ids), [len(text)])
    assert parts is not None and parts[0].text == text and parts[1].token_ids == ()
    assert tiny.split(generation("Three.</SUMMARY>", ids), [3]) is None


class PieceTokenizer:
    """FAKE SentencePiece-like tokenizer: "▁" is a space, decoding drops the leading space of
    the first piece, and one piece runs past a closing tag."""

    pieces = ("▁Two", "▁shapes.", "</SUMMARY>\n\n", "<CAPTION>", "▁A", "▁circle.", "\ufffd")

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(self.pieces[i] for i in ids).replace("▁", " ").removeprefix(" ")


def test_a_dropped_leading_space_and_a_token_running_past_its_bound():
    piece = adapter(PieceTokenizer())
    text = " Two shapes.</SUMMARY>\n\n<CAPTION> A circle."  # vLLM decodes with the prompt
    close = text.index("\n")
    parts = piece.split(generation(text, [0, 1, 2, 3, 4, 5]), [close, close + 11])
    assert parts is not None
    assert parts[0].text == " Two shapes.</SUMMARY>\n\n"  # runs past the bound: compare lengths
    assert parts[0].token_ids == (0, 1, 2) and parts[1].text == "<CAPTION>"


def test_a_character_still_incomplete_is_allowed_for():
    piece = adapter(PieceTokenizer())
    text = " Two shapes."  # the last token is half a character: not in the text yet
    parts = piece.split(generation(text, [0, 1, 6], eos=False), [4])
    assert parts is not None and [p.token_ids for p in parts] == [(0,), (1, 6)]


def test_closing_tags_that_are_one_token_stop_in_the_engine_core_too(tiny):
    ids = tiny.stop_token_ids(["</SUMMARY>", "</CONCLUSION>", "left of", "\n\n"])
    assert [tiny.tokens_of(t) for t in ("</SUMMARY>", "</CONCLUSION>")] == [(i,) for i in ids]
    assert len(ids) == 2  # several tokens, or not a token alone: a stop string only


def test_a_special_token_is_not_made_a_stop_token(tiny):
    eos = tiny._tokenizer.eos_token
    assert tiny.stop_token_ids([eos]) == []
