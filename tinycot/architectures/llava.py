"""The LLaVA family: LLaVA-NeXT (LlavaNextForConditionalGeneration; a CLIP tower, anyres
tiling over grid pinpoints, a Mistral text model and the `[INST] <image>\n... [/INST]`
template) and LLaVA-OneVision (LlavaOnevisionForConditionalGeneration; a SigLIP tower, anyres
tiling, a Qwen2 text model, ChatML with `<image>` first)."""

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

# 64-pixel tiles: 4x4 patches of 16 pixels each, at most 2x2 tiles besides the base image
PINPOINTS = [[64, 64], [64, 128], [128, 64], [128, 128]]
NEXT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{{ '<<SYS>>\n' + message['content'][0]['text'] + '\n<</SYS>>\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] }}{% endfor %}{{ ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ ' ' + message['content'][0]['text'] + '</s> ' }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}"
    "{% endif %}{% endfor %}")
NEXT_VOCABULARY = Vocabulary(
    special=["<unk>", "<s>", "</s>", "<image>", "<pad>"],
    roles={"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
           "unk_token": "<unk>"},
    chat_template=NEXT_TEMPLATE, add_bos=True)
ONEVISION_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + ' ' }}"
    "{% if message['content'] is string %}{{ '\n' + message['content'] }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ '\n' + content['text'] }}{% endfor %}{% endif %}{{ '<|im_end|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
ONEVISION_VOCABULARY = Vocabulary(
    special=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"],
    roles={"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    named={"image_token": "<image>", "video_token": "<video>"},
    chat_template=ONEVISION_TEMPLATE)


def build_llava_next(out_dir: str | Path) -> Path:
    from transformers import (
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessorPil,
        LlavaNextProcessor,
    )

    out, tokenizer = begin(out_dir, NEXT_VOCABULARY)
    bos, eos, pad, image = token_ids(tokenizer, "<s>", "</s>", "<pad>", "<image>")
    text = {**TEXT, "model_type": "mistral", "vocab_size": len(tokenizer), "head_dim": 64,
            "sliding_window": None, "bos_token_id": bos, "eos_token_id": eos,
            "pad_token_id": pad}
    vision = {**VISION, "model_type": "clip_vision_model", "image_size": 64,
              "patch_size": 16, "projection_dim": 64}
    config = LlavaNextConfig(vision_config=vision, text_config=text, image_token_index=image,
                             image_grid_pinpoints=PINPOINTS, image_seq_length=16,
                             vision_feature_select_strategy="default",
                             vision_feature_layer=-2, pad_token_id=pad)
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64},
        image_grid_pinpoints=PINPOINTS)
    processor = LlavaNextProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                   patch_size=16, vision_feature_select_strategy="default",
                                   chat_template=NEXT_TEMPLATE, image_token="<image>",
                                   num_additional_image_tokens=1)  # CLIP's CLS token
    return save(out, LlavaNextForConditionalGeneration, config, processor, "llava_next", [eos])


def build_llava_onevision(out_dir: str | Path) -> Path:
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessorPil,
    )

    out, tokenizer = begin(out_dir, ONEVISION_VOCABULARY)
    endoftext, im_end, image, video = token_ids(tokenizer, "<|endoftext|>", "<|im_end|>",
                                                "<image>", "<video>")
    text = {**TEXT, "model_type": "qwen2", "vocab_size": len(tokenizer),
            "bos_token_id": endoftext, "eos_token_id": im_end, "pad_token_id": endoftext}
    vision = {**VISION, "model_type": "siglip_vision_model", "image_size": 64,
              "patch_size": 16, "vision_use_head": False}
    config = LlavaOnevisionConfig(
        vision_config=vision, text_config=text, image_token_index=image,
        video_token_index=video, image_grid_pinpoints=PINPOINTS,
        vision_feature_select_strategy="full", vision_feature_layer=-1,
        vision_aspect_ratio="anyres_max_9", tie_word_embeddings=False)
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": 64, "width": 64}, image_grid_pinpoints=PINPOINTS)
    write_processor(out, "LlavaOnevisionProcessor", image_processor,
                    {"video_processor_type": "LlavaOnevisionVideoProcessor",
                     "size": {"height": 64, "width": 64}},
                    ONEVISION_TEMPLATE, num_image_tokens=16,
                    vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9",
                    image_token="<image>", video_token="<video>")
    return save(out, LlavaOnevisionForConditionalGeneration, config, None, "llava_onevision",
                [im_end, endoftext])
