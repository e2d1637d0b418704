"""Llama 3.2 Vision (MllamaForConditionalGeneration: the released LLaVA-CoT checkpoint's
architecture): Llama 3 header template with `<|image|>`, tiled images (aspect-ratio ids and
masks), a vision encoder with global layers, and cross-attention layers in the text model.
vLLM serves it up to 0.10.2 only (the legacy image)."""

from __future__ import annotations

from pathlib import Path

from tinycot.architectures.common import TEXT, VISION, Vocabulary, begin, save, token_ids

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{% if message['content'] is string %}{{ message['content'] | trim }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<|image|>' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] | trim }}{% endif %}"
    "{% endfor %}{% endif %}{{ '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
VOCABULARY = Vocabulary(
    special=["<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>",
             "<|step_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>",
             "<|eot_id|>", "<|python_tag|>", "<|image|>"],
    roles={"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
           "pad_token": "<|finetune_right_pad_id|>"},
    chat_template=CHAT_TEMPLATE, add_bos=True)


def build_mllama(out_dir: str | Path) -> Path:
    from transformers import (
        MllamaConfig,
        MllamaForConditionalGeneration,
        MllamaImageProcessorPil,
        MllamaProcessor,
    )

    out, tokenizer = begin(out_dir, VOCABULARY)
    bos, end_of_text, eot, pad, image = token_ids(
        tokenizer, "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>",
        "<|finetune_right_pad_id|>", "<|image|>")
    # 3 text layers, the middle one cross-attending to the image
    text = {**TEXT, "num_hidden_layers": 3, "cross_attention_layers": [1],
            "vocab_size": len(tokenizer), "bos_token_id": bos,
            "eos_token_id": [end_of_text, eot], "pad_token_id": pad}
    vision = {"hidden_size": VISION["hidden_size"], "num_hidden_layers": 2,
              "num_global_layers": 1, "attention_heads": VISION["num_attention_heads"],
              "intermediate_size": VISION["intermediate_size"], "image_size": 64,
              "patch_size": 16, "max_num_tiles": 4, "intermediate_layers_indices": [0],
              "vision_output_dim": 2 * VISION["hidden_size"]}
    config = MllamaConfig(vision_config=vision, text_config=text, image_token_index=image)
    image_processor = MllamaImageProcessorPil(size={"height": 64, "width": 64},
                                              max_image_tiles=4)
    processor = MllamaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                chat_template=CHAT_TEMPLATE)
    return save(out, MllamaForConditionalGeneration, config, processor, "mllama",
                [end_of_text, eot])
