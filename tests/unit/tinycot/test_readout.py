"""The read-out diagnostic's measures (pure logic; the probe on synthetic features)."""

import math

import torch

from tinycot.readout import auc, fit_probe, pair_accuracy


def test_auc_ranks_right_above_wrong_and_counts_ties_half():
    assert auc([0.9, 0.8, 0.1], [True, True, False]) == 1.0
    assert auc([0.1, 0.9], [True, False]) == 0.0
    assert auc([0.5, 0.5], [True, False]) == 0.5
    assert math.isnan(auc([0.3, 0.4], [True, True]))


def test_pairs_compare_only_candidates_of_the_same_question():
    """Question 0's candidates are all scored high, question 1's all low: across questions the
    wrong ones of question 0 rank above the right one of question 1, within them never."""
    scores = [0.9, 0.8, 0.2, 0.1]
    labels = [True, False, True, False]
    groups = [0, 0, 1, 1]
    assert pair_accuracy(scores, labels, groups) == (1.0, 2)
    assert auc(scores, labels) == 0.75
    # a score that only knows the question: a coin within each
    assert pair_accuracy([0.9, 0.9, 0.1, 0.1], labels, groups) == (0.5, 2)
    assert math.isnan(pair_accuracy([0.1], [True], [0])[0])


def test_the_probe_finds_a_direction_that_separates_the_labels():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(400, 8, generator=generator)
    y = (x[:, 3] - 0.5 * x[:, 5] > 0).float()
    score = fit_probe(x[:300], y[:300])
    assert auc(score(x[300:]).tolist(), [bool(v) for v in y[300:]]) > 0.95
    flipped = fit_probe(x[:300], 1 - y[:300])
    assert auc(flipped(x[300:]).tolist(), [bool(v) for v in y[300:]]) < 0.05
