"""What every tiny architecture builder shares: the family's tokenizer (byte-level BPE trained
on the shipped corpus, the family's own special tokens added after it as the real vocabularies
do), the small text and vision sizes, the seed, and saving a checkpoint vLLM loads from its
folder."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.search.schema import SCHEMAS
from tinycot.model import VOCAB_SIZE, corpus_text

SEED = 1234
# the text model: 2 layers, head size 64 (the CPU attention kernels take 32, 64, 80, ...)
TEXT = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 4096}
# the vision tower: 1 layer, one head of size 64
VISION = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
          "num_attention_heads": 1}
# Stage tags are not in these vocabularies (real ones split them into pieces): the corpus is
# trained on with the tags blanked, and the prompted format instruction added, as general
# text a real tokenizer has seen.
TAGS = [t for schema in SCHEMAS.values() for stage in schema.stages
        for t in (stage.open_tag, stage.close_tag)]


@dataclass(frozen=True)
class Vocabulary:
    """A family's tokens around the trained BPE: `special` are added (in order) after it;
    `roles` name the tokenizer's bos/eos/pad/unk; `named` are model-specific named special
    tokens the family's processor reads from the tokenizer (`tokenizer.image_token`, ...)."""

    special: Sequence[str]
    roles: Mapping[str, str]
    chat_template: str
    named: Mapping[str, str] = field(default_factory=dict)
    add_bos: bool = False  # the family's tokenizer adds BOS when encoding (Llama, Gemma)


def training_lines() -> list[str]:
    lines = corpus_text().splitlines()
    lines += [schema.format_instruction for schema in SCHEMAS.values()]
    for tag in TAGS:
        lines = [line.replace(tag, " ") for line in lines]
    return lines


def begin(out_dir: str | Path, vocabulary: Vocabulary) -> tuple[Path, Any]:
    """A family's folder, created, and its fast tokenizer, saved in it: how every builder
    begins."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out, build_tokenizer(out, vocabulary)


def build_tokenizer(out: Path, vocabulary: Vocabulary) -> Any:
    """The family's fast tokenizer, saved to `out` and returned."""
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(training_lines(), trainer=trainer)
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                  for t in vocabulary.special])
    bos = vocabulary.roles.get("bos_token")
    if vocabulary.add_bos and bos:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
            special_tokens=[(bos, tokenizer.token_to_id(bos))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=4096,
                                   **vocabulary.roles, **vocabulary.named)
    fast.chat_template = vocabulary.chat_template
    fast.save_pretrained(out)
    return fast


def token_ids(tokenizer: Any, *tokens: str) -> list[int]:
    """The ids of the family's own tokens (which must be single tokens of its vocabulary)."""
    ids = [tokenizer.convert_tokens_to_ids(t) for t in tokens]
    if not all(isinstance(i, int) and i >= 0 for i in ids):
        raise ValueError(f"not in the vocabulary: {dict(zip(tokens, ids, strict=True))}")
    return ids


def save(out: Path, model_cls: Any, config: Any, processor: Any, family: str,
         eos_ids: Sequence[int]) -> Path:
    """Random weights (seeded, bf16) for `config`, saved with the processor and a marker file
    that says how the folder was built."""
    import torch

    torch.manual_seed(SEED)
    model = model_cls(config).to(torch.bfloat16)
    model.generation_config.eos_token_id = list(eos_ids) if len(eos_ids) > 1 else eos_ids[0]
    model.save_pretrained(out, safe_serialization=True)
    if processor is not None:  # None: written by `write_processor`
        processor.save_pretrained(out)
    (out / "cot_server_model.json").write_text(json.dumps(
        {"built_by": f"python -m tinycot architectures DIR --only {family}", "seed": SEED,
         "stage_mode": "prompted", "family": family}))
    return out


def write_processor(out: Path, processor_class: str, image_processor: Any,
                    video_processor: Mapping[str, Any], chat_template: str,
                    **kwargs: Any) -> None:
    """The processor's files, written without instantiating the processor: in transformers 5 a
    processor with a video processor cannot be built where torchvision cannot be imported,
    while its folder can still be written, as `save_pretrained` would write it, for a machine
    that has torchvision to load."""
    config = {"image_processor": json.loads(image_processor.to_json_string()),
              "video_processor": dict(video_processor), **kwargs,
              "processor_class": processor_class}
    (out / "processor_config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    (out / "chat_template.jinja").write_text(chat_template)
