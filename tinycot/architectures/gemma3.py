"""Gemma 3 (Gemma3ForConditionalGeneration): Gemma's turn template (the system message folded
into the first user turn, roles must alternate), `<start_of_image>` per image which the
processor expands to soft tokens, a SigLIP tower pooled to `mm_tokens_per_image`, and a text
model with sliding-window and global layers."""

from __future__ import annotations

from pathlib import Path

from tinycot.architectures.common import TEXT, VISION, Vocabulary, begin, save, token_ids

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{% if messages[0]['content'] is string %}"
    "{% set first_user_prefix = messages[0]['content'] + '\n\n' %}"
    "{% else %}{% set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' %}"
    "{% endif %}{% set loop_messages = messages[1:] %}"
    "{% else %}{% set first_user_prefix = '' %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{% if message['content'] is string %}{{ message['content'] | trim }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}{{ '<start_of_image>' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] | trim }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
VOCABULARY = Vocabulary(
    special=["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "[multimodal]", "<start_of_turn>",
             "<end_of_turn>", "<start_of_image>", "<end_of_image>", "<image_soft_token>"],
    roles={"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>",
           "unk_token": "<unk>"},
    named={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
           "image_token": "<image_soft_token>"},
    chat_template=CHAT_TEMPLATE, add_bos=True)
IMAGE_TOKENS = 4  # mm_tokens_per_image: the 4x4 patch grid average-pooled to 2x2


def build_gemma3(out_dir: str | Path) -> Path:
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessorPil,
        Gemma3Processor,
    )

    out, tokenizer = begin(out_dir, VOCABULARY)
    pad, eos, bos, end_of_turn, boi, eoi, image = token_ids(
        tokenizer, "<pad>", "<eos>", "<bos>", "<end_of_turn>", "<start_of_image>",
        "<end_of_image>", "<image_soft_token>")
    text = {**TEXT, "vocab_size": len(tokenizer), "head_dim": 64, "query_pre_attn_scalar": 64,
            "sliding_window": 128, "layer_types": ["sliding_attention", "full_attention"],
            "bos_token_id": bos, "eos_token_id": [eos, end_of_turn], "pad_token_id": pad}
    vision = {**VISION, "image_size": 64, "patch_size": 16, "vision_use_head": False}
    config = Gemma3Config(text_config=text, vision_config=vision,
                          mm_tokens_per_image=IMAGE_TOKENS, boi_token_index=boi,
                          eoi_token_index=eoi, image_token_index=image)
    image_processor = Gemma3ImageProcessorPil(size={"height": 64, "width": 64},
                                              do_pan_and_scan=False)
    processor = Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer,
                                chat_template=CHAT_TEMPLATE, image_seq_length=IMAGE_TOKENS)
    return save(out, Gemma3ForConditionalGeneration, config, processor, "gemma3",
                [eos, end_of_turn])
