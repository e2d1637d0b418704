"""Qwen2.5-VL (Qwen2_5_VLForConditionalGeneration): ChatML template with Qwen's default system
prompt and `<|vision_start|><|image_pad|><|vision_end|>` per image, Qwen2-VL image processor
(14-pixel patches merged 2x2, pixel budget), M-RoPE text model, windowed-attention vision
tower."""

from __future__ import annotations

from pathlib import Path

from tinycot.architectures.common import (
    TEXT,
    VISION,
    Vocabulary,
    begin,
    save,
    token_ids,
    write_processor,
)

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
VOCABULARY = Vocabulary(
    special=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
             "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>",
             "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
             "<|image_pad|>", "<|video_pad|>"],
    roles={"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    chat_template=CHAT_TEMPLATE)


def build_qwen2_5_vl(out_dir: str | Path) -> Path:
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLImageProcessorPil,
    )

    out, tokenizer = begin(out_dir, VOCABULARY)
    endoftext, im_end, start, end, image, video = token_ids(
        tokenizer, "<|endoftext|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
        "<|image_pad|>", "<|video_pad|>")
    text = {**TEXT, "vocab_size": len(tokenizer), "bos_token_id": endoftext,
            "eos_token_id": im_end, "pad_token_id": endoftext,
            # M-RoPE: temporal, height and width sections of the 32 rotary frequencies
            "rope_scaling": {"type": "mrope", "mrope_section": [8, 12, 12]}}
    vision = {"depth": 2, "hidden_size": VISION["hidden_size"],
              "intermediate_size": VISION["intermediate_size"],
              "num_heads": VISION["num_attention_heads"], "patch_size": 14,
              "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 56,
              "fullatt_block_indexes": [1], "out_hidden_size": TEXT["hidden_size"]}
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, image_token_id=image,
                              video_token_id=video, vision_start_token_id=start,
                              vision_end_token_id=end, tie_word_embeddings=False)
    # 56x56 to 112x112 pixels: 4 to 16 image tokens after the 2x2 merge
    image_processor = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=112 * 112,
                                               patch_size=14, merge_size=2,
                                               temporal_patch_size=2)
    write_processor(out, "Qwen2_5_VLProcessor", image_processor,
                    {"video_processor_type": "Qwen2VLVideoProcessor",
                     "size": {"shortest_edge": 56 * 56, "longest_edge": 112 * 112},
                     "patch_size": 14, "merge_size": 2, "temporal_patch_size": 2},
                    CHAT_TEMPLATE)
    return save(out, Qwen2_5_VLForConditionalGeneration, config, None, "qwen2_5_vl",
                [im_end, endoftext])
