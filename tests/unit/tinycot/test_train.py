"""Training helpers of the tiny model: deepening a trained model keeps what it computes."""

import torch
from transformers import Idefics3ForConditionalGeneration

from tinycot.model import build_random_model
from tinycot.train import grow


def _logits(model, ids):
    with torch.no_grad():
        return model.model.text_model(input_ids=ids).last_hidden_state


def test_grow_doubles_the_depth_and_keeps_the_function_until_trained(tmp_path):
    folder = build_random_model(tmp_path / "model")
    model = Idefics3ForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
    ids = torch.randint(10, 200, (2, 24), generator=torch.Generator().manual_seed(0))
    before = _logits(model, ids)
    depth = len(model.model.text_model.layers)

    grow(model)

    layers = model.model.text_model.layers
    assert len(layers) == model.config.text_config.num_hidden_layers == 2 * depth
    assert [layer.self_attn.layer_idx for layer in layers] == list(range(2 * depth))
    # each inserted layer is a copy of the one before it, silent until training moves it
    for old, new in zip(layers[0::2], layers[1::2], strict=True):
        assert torch.equal(new.self_attn.q_proj.weight, old.self_attn.q_proj.weight)
        assert not new.self_attn.o_proj.weight.any() and not new.mlp.down_proj.weight.any()
        assert new.self_attn.q_proj.weight.data_ptr() != old.self_attn.q_proj.weight.data_ptr()
    assert torch.allclose(_logits(model, ids), before, atol=1e-6)

    # saved and loaded like any checkpoint of the deeper architecture
    model.save_pretrained(tmp_path / "grown")
    loaded = Idefics3ForConditionalGeneration.from_pretrained(tmp_path / "grown",
                                                              dtype=torch.float32).eval()
    assert len(loaded.model.text_model.layers) == 2 * depth
    assert torch.allclose(_logits(loaded, ids), before, atol=1e-6)


def test_pair_batches_hold_a_right_and_a_wrong_candidate_of_each_question():
    from transformers import AutoProcessor

    from tests.unit.tinycot.test_examples import _record
    from tinycot.examples import OnPolicyPool
    from tinycot.task import dataset
    from tinycot.train import Batches, Mix

    examples = dataset(0, 2, split="onpolicy")
    records = []
    for index, example in enumerate(examples):
        ref = [t for _, t in example.stages]
        records.append(_record(index, example, [[ref[0]], [ref[1]], [ref[2], "x = 9."],
                                                [ref[3]]]))
    pool = OnPolicyPool(records)
    processor = AutoProcessor.from_pretrained("models/tiny-cot")
    only_pairs = Mix(verify=0.0, judge=0.0, summary=0.0, answer_only_until=0.0, pairs=1.0)
    kind, batch = Batches(processor, 0, batch=8, onpolicy=pool, mix=only_pairs).next(0.5)
    assert kind == "verify" and batch["input_ids"].shape[0] == 8
    tokenizer = processor.tokenizer
    verdicts = [tokenizer.decode(row[labels != -100]).strip()
                for row, labels in zip(batch["input_ids"], batch["labels"], strict=True)]
    assert verdicts == ["yes", "no"] * 4
    # without matched pairs in the pool, plain verify batches
    kind, batch = Batches(processor, 0, batch=4, onpolicy=None, mix=only_pairs).next(0.5)
    assert kind == "verify" and batch["input_ids"].shape[0] == 4
