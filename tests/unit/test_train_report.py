"""The training report: smoothing, the table per tenth of the run, the held-out figures."""

from server.train_report import markdown, smoothed

CURVE = [{"step": i, "kind": "answer" if i % 2 else "judge", "loss": float(i)}
         for i in range(1, 7)]
RECORD = {"seed": 0, "steps": 6, "batch": 16, "seconds": 90.0, "parameters": 2_500_000,
          "curve": CURVE,
          "summary": [{"steps": "1-3", "answer": 2.0, "judge": 2.0},
                      {"steps": "4-6", "answer": 5.0, "judge": None}],
          "check": {"questions": 200, "well_formed": 1.0, "greedy_accuracy": 0.535,
                    "accuracy_by_kind": {"count_colour": 0.5}, "judge_accuracy": 0.57}}


def test_smoothing_averages_each_kind_over_its_own_recent_batches():
    assert smoothed(CURVE, "answer", window=2) == ([1, 3, 5], [1.0, 2.0, 4.0])
    assert smoothed(CURVE, "judge", window=10) == ([2, 4, 6], [2.0, 3.0, 4.0])


def test_report_shows_the_run_the_losses_and_the_check():
    text = markdown(RECORD, "training.png")
    assert "6 steps of 16 examples in 1.5 minutes" in text and "2.50 M parameters" in text
    assert "| 1-3 | 2.000 | 2.000 |" in text and "| 4-6 | 5.000 | – |" in text
    assert "well-formed four-stage answers: 100%" in text and "right answers: 53.5%" in text
    assert "![training curve](training.png)" in text
