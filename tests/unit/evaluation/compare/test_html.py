"""The HTML report's content (read as text here; a real browser opens it in the e2e test)."""

from html.parser import HTMLParser

from evaluation.compare.datasets import Item
from evaluation.compare.html import render
from evaluation.compare.predictions import Prediction
from evaluation.compare.summary import compare

ITEMS = [Item("q<1>", "Is <b> bold?", "1", image="data:image/png;base64,AAAA"),
         Item("q2", "How many?", "2")]


def p(system, item, right, status=200, **kw):
    return Prediction(system, item.id, 0, item.prompt, None, item.answer, "numeric", status,
                      correct=right, answer="x", scored="<i>x</i>", **kw)


class Rows(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "data-outcome" in attrs:
            self.rows.append(attrs)


def test_rows_outcomes_escaping_and_summary():
    records = [p("A", ITEMS[0], True, reasoning="because <x>"), p("B", ITEMS[0], False),
               p("A", ITEMS[1], False), p("B", ITEMS[1], None, status=503, error="busy")]
    page = render(compare(ITEMS, ["A", "B"], records), "A vs B", {"dataset": "d.jsonl"},
                  {"A": {"model": "m", "base_url": "http://a", "fields": {"beam_width": 4}}})
    parser = Rows()
    parser.feed(page)
    assert [(r["data-id"], r["data-outcome"], r["data-error"]) for r in parser.rows] == [
        ("q<1>", "only-a", "0"), ("q2", "neither", "1")]
    assert "Is &lt;b&gt; bold?" in page and "&lt;i&gt;x&lt;/i&gt;" in page
    assert "because &lt;x&gt;" in page and "<b>" not in page.split("<h2>Questions")[1].split(
        "<script>")[0].replace("<b>A</b>", "")
    assert 'data-filter="only-a">only A right (1)' in page
    assert "failed requests (1)" in page
    assert "HTTP 503" in page and "McNemar" in page
    assert 'src="data:image/png;base64,AAAA"' in page


def test_one_system_has_right_and_wrong_filters():
    page = render(compare(ITEMS, ["A"], [p("A", ITEMS[0], True)]), "A", {}, {})
    assert 'data-filter="right">right (1)' in page and 'data-filter="wrong">wrong (1)' in page
    assert "McNemar" not in page
