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


def _pair_records():
    """On-policy records of two questions whose REASONING was sampled right and wrong."""
    from tests.unit.tinycot.test_examples import _record
    from tinycot.task import dataset

    records = []
    for index, example in enumerate(dataset(0, 2, split="onpolicy")):
        ref = [t for _, t in example.stages]
        records.append(_record(index, example, [[ref[0]], [ref[1]], [ref[2], "x = 9."],
                                                [ref[3]]]))
    return records


def test_pair_batches_hold_a_right_and_a_wrong_candidate_of_each_question():
    from transformers import AutoProcessor

    from tinycot.examples import OnPolicyPool
    from tinycot.train import Batches, Mix

    records = _pair_records()
    pool = OnPolicyPool(records)
    processor = AutoProcessor.from_pretrained("models/tiny-cot")
    only_pairs = Mix(verify=0.0, judge=0.0, summary=0.0, answer_only_until=0.0, pairs=1.0)
    kind, batch = Batches(processor, 0, batch=8, onpolicy=pool, mix=only_pairs).next(0.5)
    assert kind == "verify" and batch["input_ids"].shape[0] == 8
    tokenizer = processor.tokenizer
    verdicts = [tokenizer.decode(row[labels != -100]).strip()
                for row, labels in zip(batch["input_ids"], batch["labels"], strict=True)]
    assert verdicts == ["yes", "no"] * 4 and batch["pairs"] == 4
    # without matched pairs in the pool, plain verify batches
    kind, batch = Batches(processor, 0, batch=4, onpolicy=None, mix=only_pairs).next(0.5)
    assert kind == "verify" and batch["input_ids"].shape[0] == 4 and batch["pairs"] == 0


def test_ranking_loss_reads_the_verdict_margin_where_the_verdict_is_predicted():
    """Pure logic on hand-made logits: rows 2k right, 2k + 1 wrong; the score is read one
    position before the first label."""
    from tinycot.train import ranking_loss

    yes, no = 3, 4
    labels = torch.full((5, 6), -100)
    labels[0, 4], labels[1, 3], labels[2, 5], labels[3, 2], labels[4, 1] = yes, no, yes, no, yes
    logits = torch.zeros(5, 6, 8)
    logits[0, 3, yes] = 2.0  # pair 1: right +2, wrong -1: ranked right
    logits[1, 2, no] = 1.0
    logits[2, 4, no] = 3.0   # pair 2: right -3, wrong 0: ranked wrong
    logits[3, 4, yes] = 9.0  # not where the verdict is predicted: ignored
    logits[4, 0, no] = 50.0  # row 4 is not in a pair
    loss, ranked = ranking_loss(logits, labels, 2, (yes, no))
    expected = (torch.nn.functional.softplus(torch.tensor(-3.0))
                + torch.nn.functional.softplus(torch.tensor(3.0))) / 2
    assert ranked == 0.5 and torch.isclose(loss, expected)


def test_a_training_step_with_the_ranking_loss_logs_it_and_moves_the_margins():
    """One real step of the shipped model on pair batches with the ranking loss: it is logged
    on each pair batch, and a few steps at a high rate widen the right-minus-wrong margin."""
    from transformers import AutoProcessor

    from tinycot.examples import OnPolicyPool, verdict_ids
    from tinycot.train import Batches, Mix, ranking_loss, train

    records = _pair_records()
    processor = AutoProcessor.from_pretrained("models/tiny-cot")
    model = Idefics3ForConditionalGeneration.from_pretrained("models/tiny-cot",
                                                             dtype=torch.float32)
    ids = verdict_ids(processor.tokenizer)
    only_pairs = Mix(verify=0.0, judge=0.0, summary=0.0, answer_only_until=0.0, pairs=1.0)
    batches = Batches(processor, 0, batch=4, onpolicy=OnPolicyPool(records), mix=only_pairs)

    def margin():
        _, batch = Batches(processor, 1, batch=4, onpolicy=OnPolicyPool(records),
                           mix=only_pairs).next(0.5)
        pairs = int(batch.pop("pairs"))
        batch.pop("cells"), batch.pop("errors")
        with torch.no_grad():
            return ranking_loss(model(**batch).logits, batch["labels"], pairs, ids)[0].item()

    before = margin()
    torch.manual_seed(0)
    curve = train(model, batches, minutes=10, steps=4, log_every=100, peak_lr=1e-3,
                  ranking=1.0, verdict_ids=ids)
    assert len(curve) == 4 and all("rank_loss" in row and 0 <= row["ranked_right"] <= 1
                                   for row in curve)
    assert margin() < before
