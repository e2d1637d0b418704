"""The tiny default model, offline. `install_trained_model` copies the shipped trained weights
(`tinycot/data/tiny-cot-trained`, made by `python -m tinycot train`; about 5 MB), which answer
shape questions in the four stages. `build_random_model` builds, deterministically, the same
architecture with random weights: an Idefics3 (SmolVLM architecture) VLM, a byte-level BPE
tokenizer trained on text shipped with the project (stage tags in its vocabulary), a chat
template and an image processor; it only shows the plumbing. vLLM loads either from its folder
like any checkpoint."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from server.search.schema import SCHEMAS

SEED = 1234
TRAINED_MODEL = "data/tiny-cot-trained"  # package data of `tinycot`
# The same architecture trained to answer directly (no stages): the comparison's baseline
# (`python -m tinycot.train --direct`, docs/comparison/report.md)
DIRECT_MODEL = "data/tiny-direct-trained"
VOCAB_SIZE = 1024
IMAGE_TOKENS = ["<fake_token_around_image>", "<image>", "<global-img>", "<end_of_utterance>"]
GRID_TOKENS = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
# Every schema's stage tags, as plain (non-special) tokens, so detokenised text keeps them and
# stop strings can match.
TAG_TOKENS = [t for schema in SCHEMAS.values() for stage in schema.stages
              for t in (stage.open_tag, stage.close_tag)]
BOS, EOS, PAD = "<|begin_of_text|>", "<end_of_utterance>", "<|pad|>"
# The verifier's question and its two answers (each answer alone, as the server tokenises it), so
# that "yes" and "no" are single tokens of the shipped corpus's tokenizer too.
VERIFY_LINES = ["[Verify] Is the CAPTION stage above correct? Reply yes or no: ", "yes",
                "[Verify] Is the REASONING stage above correct? Reply yes or no: ", "no"]

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}:"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>{% elif part['type'] == 'text' %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def corpus_text() -> str:
    return resources.files("tinycot").joinpath("data/tiny_corpus.txt").read_text()


def build_tokenizer(out: Path, lines: list[str] | None = None) -> Any:
    """A byte-level BPE tokenizer trained on `lines` (default: the shipped corpus and
    `VERIFY_LINES`), with the stage tags as single plain tokens and the chat template; saved to
    `out` and returned."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[BOS, PAD, *IMAGE_TOKENS, *GRID_TOKENS])
    lines = [*corpus_text().splitlines(), *VERIFY_LINES] if lines is None else lines
    for tag in TAG_TOKENS:  # the tags become single tokens below; train BPE on the rest
        lines = [line.replace(tag, " ") for line in lines]
    tokenizer.train_from_iterator(lines, trainer=trainer)
    tokenizer.add_tokens([AddedToken(t, normalized=False, special=False) for t in TAG_TOKENS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=PAD,
        additional_special_tokens=IMAGE_TOKENS, model_max_length=2048)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    return fast


def install_trained_model(out_dir: str | Path, shipped: str = TRAINED_MODEL) -> Path:
    """Copy a shipped trained tiny model (the default: the staged one) to `out_dir` (created if
    missing); return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for item in resources.files("tinycot").joinpath(shipped).iterdir():
        if item.is_file():
            (out / item.name).write_bytes(item.read_bytes())
    return out


def build_random_model(out_dir: str | Path) -> Path:
    """Write the random-weights tiny model to `out_dir` (created if missing); return its path."""
    import torch
    from transformers import (
        AutoTokenizer,
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
        LlamaConfig,
    )
    from transformers.models.idefics3.configuration_idefics3 import Idefics3VisionConfig

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    build_tokenizer(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (BOS, EOS, PAD, "<image>")}

    torch.manual_seed(SEED)
    text_config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256,
        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, head_dim=64,
        max_position_embeddings=2048, bos_token_id=ids[BOS], eos_token_id=ids[EOS],
        pad_token_id=ids[PAD], tie_word_embeddings=False)
    vision_config = Idefics3VisionConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=1,
        image_size=64, patch_size=16)
    config = Idefics3Config(
        vision_config=vision_config.to_dict(), text_config=text_config.to_dict(),
        scale_factor=2, image_token_id=ids["<image>"], pad_token_id=ids[PAD],
        tie_word_embeddings=False)
    model = Idefics3ForConditionalGeneration(config).to(torch.bfloat16)
    model.generation_config.eos_token_id = ids[EOS]
    model.save_pretrained(out, safe_serialization=True)

    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": 128}, max_image_size={"longest_edge": 64},
        do_image_splitting=True)
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer,
                                  image_seq_len=4, chat_template=CHAT_TEMPLATE)
    processor.save_pretrained(out)
    (out / "cot_server_model.json").write_text(json.dumps(
        {"built_by": "python -m tinycot build-random", "seed": SEED, "stage_mode": "native"}))
    return out
