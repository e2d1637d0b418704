"""The tiny checkpoints of deployed VLM families (tinycot.architectures), built offline: each
has its exact architecture, its family's special tokens as single tokens, a chat template that
places the family's image placeholder, its processor class, and seeded weights transformers
loads; two builds are byte-identical. (Serving them: tests/e2e/test_architectures.py.)"""

import hashlib
import json
from pathlib import Path

import pytest
from transformers import AutoConfig, AutoTokenizer

from tinycot.architectures import FAMILIES, build_families
from tinycot.cli import main

PLACEHOLDERS = {"qwen2_5_vl": "<|vision_start|><|image_pad|><|vision_end|>",
                "llava_onevision": "<image>\n", "llava_next": "<image>\n",
                "gemma3": "<start_of_image>", "internvl": "<IMG_CONTEXT>\n",
                "mllama": "<|image|>"}
PROCESSORS = {"qwen2_5_vl": "Qwen2_5_VLProcessor", "llava_onevision": "LlavaOnevisionProcessor",
              "llava_next": "LlavaNextProcessor", "gemma3": "Gemma3Processor",
              "internvl": "InternVLProcessor", "mllama": "MllamaProcessor"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("families")
    build_families(root)
    return root


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_family_is_its_architecture_with_its_tokens_template_and_processor(built, name):
    family, folder = FAMILIES[name], built / name
    config = AutoConfig.from_pretrained(folder)
    assert config.architectures == [family.architecture]
    assert (folder / "model.safetensors").stat().st_size < 3_000_000
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert len(tokenizer) <= config.get_text_config().vocab_size
    for token in tokenizer.get_added_vocab():  # the family's special tokens, added after BPE
        assert len(tokenizer.encode(token, add_special_tokens=False)) == 1, token
    rendered = tokenizer.apply_chat_template(
        [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
         {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many?"}]}],
        tokenize=False, add_generation_prompt=True)
    assert PLACEHOLDERS[name] + "How many?" in rendered and "Be brief." in rendered
    processor = json.loads((folder / "processor_config.json").read_text())
    assert processor["processor_class"] == PROCESSORS[name]
    assert ("video_processor" in processor) == family.video_processor
    marker = json.loads((folder / "cot_server_model.json").read_text())
    assert marker["family"] == name and marker["stage_mode"] == "prompted"


def test_two_builds_are_byte_identical_and_the_cli_builds_one_family(built, tmp_path, capsys):
    main(["architectures", str(tmp_path), "--only", "gemma3"])
    assert capsys.readouterr().out.strip() == str(tmp_path / "gemma3")
    assert _digest(tmp_path / "gemma3") == _digest(built / "gemma3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gemma3"]
    with pytest.raises(SystemExit):
        main(["architectures", str(tmp_path), "--only", "nope"])
