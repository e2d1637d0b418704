"""The Markdown summary (pure)."""

from evaluation.compare.datasets import Item
from evaluation.compare.markdown import render
from evaluation.compare.predictions import Prediction
from evaluation.compare.summary import compare

ITEMS = [Item(str(i), "q", "1") for i in range(4)]


def test_tables_and_command():
    records = [Prediction(s, str(i), i, "q", None, "1", "numeric", 200,
                          correct=(s == "A" or i == 0), completion_tokens=3)
               for s in ("A", "B") for i in range(4)]
    text = render(compare(ITEMS, ["A", "B"], records), "A vs B", "python -m x --a u",
                  {"B": {"model": "m", "base_url": "http://b", "fields": {},
                         "prefill": "<CONCLUSION>"}})
    assert "python -m x --a u" in text
    assert "| A | 4/4 | 100.0% |" in text and "| B | 1/4 | 25.0% |" in text
    assert "| 1 | 3 | 0 | 0 | +75.0 points | 0.25 |" in text
    assert "prefill `<CONCLUSION>`" in text
