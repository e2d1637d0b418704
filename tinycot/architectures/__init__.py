"""Tiny random-weights checkpoints of the VLM architectures people deploy, built offline: for
each family the exact architecture (few layers, small sizes), its real processor class and a
chat template in its style, a byte-level BPE tokenizer trained on the shipped corpus with the
family's special tokens and image placeholders, and seeded random weights saved with
`save_pretrained`. They prove the server's code path on those architectures (the e2e matrix,
tests/e2e/test_architectures.py; docs/models.md), not any answer quality.
`python -m tinycot architectures DIR [--only NAME]` writes them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tinycot.architectures.gemma3 import build_gemma3
from tinycot.architectures.internvl import build_internvl
from tinycot.architectures.llava import build_llava_next, build_llava_onevision
from tinycot.architectures.mllama import build_mllama
from tinycot.architectures.qwen2_5_vl import build_qwen2_5_vl


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    architecture: str  # config.json's `architectures`, the name vLLM's registry knows
    build: Callable[[str | Path], Path]
    # its processor has a video processor, which transformers 5 only builds where torchvision
    # can be imported (the builder writes the processor's files without building it)
    video_processor: bool = False


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("qwen2_5_vl", "Qwen2.5-VL", "Qwen2_5_VLForConditionalGeneration", build_qwen2_5_vl,
           video_processor=True),
    Family("llava_onevision", "LLaVA-OneVision", "LlavaOnevisionForConditionalGeneration",
           build_llava_onevision, video_processor=True),
    Family("llava_next", "LLaVA-NeXT", "LlavaNextForConditionalGeneration", build_llava_next),
    Family("gemma3", "Gemma 3", "Gemma3ForConditionalGeneration", build_gemma3),
    Family("internvl", "InternVL", "InternVLForConditionalGeneration", build_internvl,
           video_processor=True),
    Family("mllama", "Llama 3.2 Vision (Mllama)", "MllamaForConditionalGeneration",
           build_mllama),
)}


def build_families(out_dir: str | Path, only: Iterable[str] = ()) -> list[Path]:
    """Each family (or those in `only`) into `out_dir/<name>`; their paths."""
    names = list(only) or list(FAMILIES)
    unknown = sorted(set(names) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown families {unknown}; known: {sorted(FAMILIES)}")
    return [FAMILIES[name].build(Path(out_dir) / name) for name in names]
