"""The default model (the shipped trained tiny model) answers shape questions in the four
stages by itself: every stage closed by the model, not by the server's caps."""

import httpx
import pytest

from server.images.decoding import encode_data_url
from tests.conftest import ServerProcess
from tinycot.task import held_out, is_correct

pytestmark = pytest.mark.e2e
QUESTIONS = 8


def test_default_model_writes_well_formed_stages_and_answers_some_questions(
        server: ServerProcess) -> None:
    right = 0
    for example in held_out(QUESTIONS, seed=1):
        body = {"model": server.model, "beam_width": 1, "return_trace": True,
                "stage_max_tokens": 128, "max_tokens": 600, "messages": [{"role": "user",
                "content": [{"type": "image_url",
                             "image_url": {"url": encode_data_url(example.image, "PNG")}},
                            {"type": "text", "text": example.question}]}]}
        response = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=120)
        assert response.status_code == 200, response.text
        choice = response.json()["choices"][0]
        assert choice["finish_reason"] == "stop"
        stages = choice["message"]["stages"]
        assert [s["tag"] for s in stages] == ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"]
        for stage in stages:
            [candidate] = stage["candidates"]
            assert candidate["closed"] and candidate["text"], stage  # the model closed it
        assert stages[1]["text"].startswith("Top left:")  # the caption's trained layout
        right += is_correct(choice["message"]["content"], example.conclusion)
    assert right >= 2  # 53 % on the held-out set; a random model scores ~0 on free text
