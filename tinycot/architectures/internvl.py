"""InternVL, Hugging Face format (InternVLForConditionalGeneration, as InternVL3-*-hf): ChatML
with `<IMG_CONTEXT>` per image, which the processor expands to `<img>` + context tokens +
`</img>` per tile, GotOCR2 tiling, pixel-shuffle downsampling (0.5), a Qwen2 text model."""

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
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
VOCABULARY = Vocabulary(
    special=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>",
             "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>",
             "<video>"],
    roles={"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    named={"start_image_token": "<img>", "end_image_token": "</img>",
           "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"},
    chat_template=CHAT_TEMPLATE)
IMAGE_TOKENS = 4  # per 64-pixel tile: 4x4 patches of 16 pixels, pixel-shuffled to 2x2


def build_internvl(out_dir: str | Path) -> Path:
    from transformers import (
        GotOcr2ImageProcessorPil,
        InternVLConfig,
        InternVLForConditionalGeneration,
    )

    out, tokenizer = begin(out_dir, VOCABULARY)
    endoftext, im_end, context = token_ids(tokenizer, "<|endoftext|>", "<|im_end|>",
                                           "<IMG_CONTEXT>")
    text = {**TEXT, "model_type": "qwen2", "vocab_size": len(tokenizer),
            "bos_token_id": endoftext, "eos_token_id": im_end, "pad_token_id": endoftext}
    vision = {**VISION, "image_size": [64, 64], "patch_size": [16, 16]}
    config = InternVLConfig(vision_config=vision, text_config=text, image_token_id=context,
                            image_seq_length=IMAGE_TOKENS, downsample_ratio=0.5,
                            tie_word_embeddings=False)
    image_processor = GotOcr2ImageProcessorPil(size={"height": 64, "width": 64},
                                               crop_to_patches=True, min_patches=1,
                                               max_patches=4)
    write_processor(out, "InternVLProcessor", image_processor,
                    {"video_processor_type": "InternVLVideoProcessor",
                     "size": {"height": 64, "width": 64}},
                    CHAT_TEMPLATE, image_seq_length=IMAGE_TOKENS)
    return save(out, InternVLForConditionalGeneration, config, None, "internvl",
                [im_end, endoftext])
