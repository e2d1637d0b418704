"""The engine adapter's chat rendering and token bookkeeping with a family's real template and
tokenizer (Gemma 3's, from tinycot.architectures): a conversation the template refuses is the
request's fault, and the stop token a generation ended on is not fed back. No engine is started."""

import pytest

from server.engine import VllmEngine
from server.search.interface import InvalidRequest
from tinycot.architectures.common import build_tokenizer
from tinycot.architectures.gemma3 import CHAT_TEMPLATE, VOCABULARY

USER = {"role": "user", "content": [{"type": "text", "text": "How many?"}]}


@pytest.fixture(scope="module")
def gemma(tmp_path_factory) -> VllmEngine:
    tokenizer = build_tokenizer(tmp_path_factory.mktemp("gemma3"), VOCABULARY)
    return VllmEngine(None, tokenizer, CHAT_TEMPLATE, 2048, on_cpu=True)


def test_a_conversation_the_template_refuses_is_an_invalid_request(gemma):
    assert gemma.render_chat([USER]).endswith("<start_of_turn>model\n")
    with pytest.raises(InvalidRequest, match="roles must alternate"):
        gemma.render_chat([USER, USER])


def test_the_eos_or_stop_token_a_generation_ended_on_is_dropped(gemma):
    eos, end_of_turn = (gemma._tokenizer.convert_tokens_to_ids(t)
                        for t in ("<eos>", "<end_of_turn>"))
    assert gemma._without_eos([5, 6, eos]) == (5, 6)
    # the generation config's other EOS: vLLM stops on it as a stop token, by id
    assert gemma._without_eos([5, 6, end_of_turn], end_of_turn) == (5, 6)
    assert gemma._without_eos([5, 6, end_of_turn]) == (5, 6, end_of_turn)
    assert gemma._without_eos([5, 6], "</CONCLUSION>") == (5, 6)  # a stop string: kept text
