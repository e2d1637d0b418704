"""Predictions: reading a response, splitting a tagged answer, the file, the latest record."""

from pathlib import Path

from evaluation.compare.predictions import (
    Prediction,
    PredictionLog,
    latest,
    read_response,
    split_answer,
)


def prediction(**changes) -> Prediction:
    return Prediction(**{"system": "A", "id": "1", "index": 0, "prompt": "q", "image": None,
                         "expected": "2", "scorer": "numeric", "status": 200, **changes})


def test_split_answer():
    tagged = "<SUMMARY>s</SUMMARY>\n<REASONING>r</REASONING>\n<CONCLUSION> 2 </CONCLUSION>"
    assert split_answer(tagged, "CONCLUSION") == (
        "2", "<SUMMARY>s</SUMMARY>\n<REASONING>r</REASONING>")
    assert split_answer("<CONCLUSION>cut off", "CONCLUSION") == ("cut off", None)
    assert split_answer(" 2 ", "CONCLUSION") == ("2", None)
    assert split_answer("red</CONCLUSION> trailing", "CONCLUSION") == ("red", None)  # prefilled
    assert split_answer(tagged, None)[0] == tagged


def test_read_response_takes_content_reasoning_usage_and_stages():
    data = {"choices": [{"finish_reason": "stop", "message": {
        "content": "2", "reasoning_content": "r", "stages": [{"tag": "SUMMARY"}]}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 9,
                  "completion_tokens_details": {"reasoning_tokens": 7}}}
    p = read_response(prediction(), data, "CONCLUSION")
    assert (p.answer, p.scored, p.reasoning, p.finish_reason) == ("2", "2", "r", "stop")
    assert (p.prompt_tokens, p.completion_tokens, p.reasoning_tokens) == (5, 9, 7)
    assert p.stages == [{"tag": "SUMMARY"}]
    upstream = {"choices": [{"message": {"content": "<REASONING>x</REASONING><CONCLUSION>3"
                                         "</CONCLUSION>", "reasoning": None}}]}
    q = read_response(prediction(), upstream, "CONCLUSION")
    assert q.scored == "3" and q.reasoning == "<REASONING>x</REASONING>"


def test_log_round_trip_and_latest(tmp_path: Path):
    log = PredictionLog(tmp_path / "p.jsonl")
    log.append(prediction(status=503, error="busy"))
    log.append(prediction(correct=True))
    log.append(prediction(status=0))  # a later failure does not hide the scored answer
    log.append(prediction(id="2", correct=None))
    records = log.read()
    assert len(records) == 4
    chosen = latest(records)
    assert chosen["A", "1"].correct is True and chosen["A", "1"].done
    assert not chosen["A", "2"].done and chosen["A", "2"].ok
