"""The training report: smoothing, the table per tenth of the run, the held-out figures."""

from tinycot.report import markdown, smoothed

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


def _agreement(n, accuracy):
    return {"n": n, "right_share": 0.5, "accuracy": accuracy, "yes_when_right": 0.9,
            "no_when_wrong": 0.7}


def test_report_shows_the_verify_loss_and_the_verifier_check():
    curve = [*CURVE, {"step": 7, "kind": "verify", "loss": 0.5}]
    summary = [{"steps": "1-7", "answer": 3.0, "judge": 4.0, "verify": 0.5}]
    check = {**RECORD["check"],
             "verify_written": {"items": 400, "accuracy": 0.8125,
                                "by_stage": {"all": _agreement(400, 0.8125),
                                             "CAPTION": _agreement(150, 0.75)},
                                "by_source": {"all": _agreement(400, 0.8125),
                                              "misread": _agreement(90, 0.6)}},
             "verify_search": {"questions": 100, "width": 4, "temperature": 0.6,
                               "accuracy": 0.61,
                               "verdicts": {"all": _agreement(1600, 0.7),
                                            "REASONING": _agreement(400, 0.66)},
                               "decisive_pick": {
                                   "all": {"stages": 80, "picked_right": 0.7,
                                           "random_pick": 0.45},
                                   "REASONING": {"stages": 50, "picked_right": 0.72,
                                                 "random_pick": 0.4}}}}
    record = {**RECORD, "curve": curve, "summary": summary, "check": check,
              "onpolicy": {"files": ["round1.jsonl"],
                           "candidates": {"CAPTION right": 10, "CAPTION wrong": 5}}}
    text = markdown(record, "training.png")
    assert "| steps | answer loss | judge loss | verify loss |" in text
    assert "| 1-7 | 3.000 | 4.000 | 0.500 |" in text
    assert "15 distinct candidates the model had sampled (`round1.jsonl`" in text
    assert "400 written held-out candidates: 81.2% right" in text
    assert "| CAPTION | 150 | 50% | 75% | 90% | 70% |" in text
    assert "| misread | 90 | 50% | 60% | 90% | 70% |" in text
    assert "61% right answers (greedy above: 54% of 200)" in text
    assert "(80 stages), the kept one was right 70% of the time; a random pick would be 45%" in (
        text)
    assert "| REASONING | 400 | 50% | 66% | 90% | 70% | 50 | 72% | 40% |" in text


def test_report_shows_the_ranking_loss_and_the_labels_where_the_run_used_them():
    from tinycot.train import curve_summary

    curve = [{"step": 1, "kind": "answer", "loss": 1.0},
             {"step": 2, "kind": "verify", "loss": 0.4, "rank_loss": 0.6, "ranked_right": 0.5},
             {"step": 3, "kind": "verify", "loss": 0.2, "rank_loss": 0.2, "ranked_right": 1.0}]
    summary = curve_summary(curve, parts=1)
    assert summary[0]["ranking"] == 0.4 and summary[0]["ranked_right"] == 0.75
    record = {**RECORD, "curve": curve, "summary": summary, "ranking": 1.0,
              "onpolicy": {"files": ["r.jsonl"], "candidates": {"REASONING right": 2},
                           "outcome_labels": True}}
    text = markdown(record, "training.png")
    assert "pairwise (Bradley-Terry) loss at weight 1.0" in text
    assert "| ranking loss | pairs ranked right |" in text and "| 0.400 | 75.0% |" in text
    assert "labelled by the result they reach" in text
    plain = markdown(RECORD, "training.png")
    assert "Bradley-Terry" not in plain and "ranking loss" not in plain


def test_report_shows_well_formed_answers_per_question_kind():
    check = {**RECORD["check"], "well_formed": 0.91,
             "well_formed_by_kind": {"count_colour": 1.0, "left_of": 0.55}}
    text = markdown({**RECORD, "check": check}, "training.png")
    assert "well-formed four-stage answers: 91% (count_colour 100%, left_of 55%)" in text
