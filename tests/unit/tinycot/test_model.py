"""The tiny default model: the shipped trained weights install as they are; the random-weights
variant is built offline and deterministically."""

import hashlib
from importlib import resources
from pathlib import Path

from transformers import AutoTokenizer

from tinycot.model import TAG_TOKENS, TRAINED_MODEL, build_random_model, install_trained_model


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def test_two_builds_are_byte_identical_and_tags_are_single_tokens(tmp_path):
    first = build_random_model(tmp_path / "a")
    second = build_random_model(tmp_path / "b")
    assert _digest(first) == _digest(second)
    assert (first / "model.safetensors").stat().st_size < 5_000_000
    tokenizer = AutoTokenizer.from_pretrained(first)
    for tag in TAG_TOKENS:
        ids = tokenizer.encode(tag, add_special_tokens=False)
        assert len(ids) == 1, tag
        assert tokenizer.decode(ids, skip_special_tokens=True) == tag  # survives detokenising
    for option in ("1", "2", "yes", "no"):  # the judge's and the verifier's answers
        assert len(tokenizer.encode(option, add_special_tokens=False)) == 1, option
    assert tokenizer.chat_template and "<image>" in tokenizer.chat_template


def test_trained_model_is_installed_byte_for_byte_with_stage_tags(tmp_path):
    installed = install_trained_model(tmp_path / "trained")
    shipped = Path(str(resources.files("tinycot").joinpath(TRAINED_MODEL)))
    assert _digest(installed) == _digest(shipped)
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= set(
        _digest(installed))
    tokenizer = AutoTokenizer.from_pretrained(installed)
    for tag in TAG_TOKENS[:8]:  # the four llava-cot stages
        assert len(tokenizer.encode(tag, add_special_tokens=False)) == 1, tag


def test_the_training_tokenizer_makes_the_judge_and_verify_options_single_tokens(tmp_path):
    from server.search.prompts import JUDGE_OPTIONS, VERIFY_OPTIONS
    from tinycot.train import build_tokenizer

    tokenizer = build_tokenizer(tmp_path, seed=0)  # asserts it too
    for option in (*JUDGE_OPTIONS, *VERIFY_OPTIONS):
        assert len(tokenizer.encode(option, add_special_tokens=False)) == 1, option
    for tag in TAG_TOKENS[:8]:
        assert len(tokenizer.encode(tag, add_special_tokens=False)) == 1, tag


def test_the_direct_answer_baseline_is_shipped_and_installed_apart(tmp_path):
    from tinycot.model import DIRECT_MODEL

    installed = install_trained_model(tmp_path / "direct", DIRECT_MODEL)
    shipped = Path(str(resources.files("tinycot").joinpath(DIRECT_MODEL)))
    assert _digest(installed) == _digest(shipped)
    assert _digest(installed)["model.safetensors"] != _digest(
        Path(str(resources.files("tinycot").joinpath(TRAINED_MODEL))))["model.safetensors"]
    assert "direct" in (installed / "cot_server_model.json").read_text()
