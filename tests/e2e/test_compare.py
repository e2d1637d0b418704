"""`python -m evaluation.compare` against the real server on a small generated dataset: two
search configurations side by side, every prediction kept and scored, a rerun asks nothing, a
VLMEvalKit-style multiple-choice TSV is read and scored by letter, and the HTML report is opened
in headless Chromium, its table and filters checked."""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import pytest

from evaluation.compare.predictions import PredictionLog
from evaluation.compare.run import main
from loadtest.servers import ServerProcess
from tinycot.task import held_out

pytestmark = pytest.mark.e2e
QUESTIONS = 6
# the server's default stage cap (16 tokens) would cut most answers short
SEARCH = {"beam_width": 2, "selector": "verify", "return_trace": True, "stage_max_tokens": 48}
GREEDY = {"beam_width": 1, "return_trace": True, "stage_max_tokens": 48}
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def jsonl_dataset(folder: Path) -> Path:
    """Shape questions as a user's JSONL file, images as paths beside it."""
    (folder / "images").mkdir(parents=True)
    lines = []
    for i, example in enumerate(held_out(QUESTIONS, seed=3)):
        (folder / "images" / f"{i}.png").write_bytes(png_bytes(example.image))
        lines.append(json.dumps({"id": f"s{i}", "question": example.question,
                                 "image": f"images/{i}.png", "answer": example.conclusion}))
    path = folder / "shapes.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def tsv_dataset(folder: Path) -> Path:
    """Count questions as a VLMEvalKit multiple-choice TSV (inline base64 images)."""
    rows = ["index\timage\tquestion\tA\tB\tC\tD\tanswer"]
    examples = [e for e in held_out(40, seed=4) if e.conclusion.isdigit()][:4]
    for i, example in enumerate(examples):
        right = int(example.conclusion)
        options = [str(right + k) for k in (-1, 0, 1, 2)] if right else ["3", "0", "1", "2"]
        letter = "ABCD"[options.index(str(right))]
        image = base64.b64encode(png_bytes(example.image)).decode()
        rows.append("\t".join([str(i), image, example.question, *options, letter]))
    path = folder / "counts.tsv"
    path.write_text("\n".join(rows) + "\n")
    return path


def chromium() -> str:
    for name in BROWSERS:
        if found := shutil.which(name):
            return found
    pytest.skip("no Chromium to open the report in (Debian: apt-get install chromium)")


def test_two_systems_side_by_side_with_the_report_checked_in_chromium(
        server: ServerProcess, tmp_path: Path):
    dataset = jsonl_dataset(tmp_path / "data")
    out = tmp_path / "out"
    argv = ["--dataset", str(dataset), "--a", server.base_url, "--a-name", "search",
            "--a-fields", json.dumps(SEARCH), "--b", server.base_url, "--b-name", "greedy",
            "--b-fields", json.dumps(GREEDY), "--out", str(out), "--concurrency", "4",
            "--no-progress"]
    result = main(argv)

    predictions = PredictionLog(out / "predictions.jsonl").read()
    assert sorted((p.system, p.id) for p in predictions) == sorted(
        (s, f"s{i}") for s in ("search", "greedy") for i in range(QUESTIONS))
    for p in predictions:
        assert p.status == 200 and p.correct is not None and p.scored is not None
        assert p.scorer in ("numeric", "normalised") and p.image == f"images/{p.id[1:]}.png"
        assert p.reasoning  # the server's reasoning (return_trace): the tagged stages
        assert p.completion_tokens and p.completion_tokens > 0
        assert p.settings["model"] == server.model
    for p in predictions:
        assert [s["tag"] for s in p.stages] == ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"]
        width = 2 if p.system == "search" else 1
        assert all(len(s["candidates"]) == width for s in p.stages)

    by_system = {s.system: s for s in result.summaries}
    for name in ("search", "greedy"):
        mine = [p for p in predictions if p.system == name]
        assert by_system[name].right == sum(p.correct for p in mine)
        assert by_system[name].errors == 0 and by_system[name].questions == QUESTIONS
    search_tokens = by_system["search"].completion_tokens
    assert search_tokens > by_system["greedy"].completion_tokens  # 2 candidates + verdicts
    paired = result.paired
    assert paired is not None
    right = {(p.system, p.id): bool(p.correct) for p in predictions}
    only_search = sorted(f"s{i}" for i in range(QUESTIONS)
                         if right["search", f"s{i}"] and not right["greedy", f"s{i}"])
    neither = sorted(f"s{i}" for i in range(QUESTIONS)
                     if not right["search", f"s{i}"] and not right["greedy", f"s{i}"])
    assert (paired.only_a, paired.neither) == (len(only_search), len(neither))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["paired"]["only_a"] == len(only_search)

    before = (out / "predictions.jsonl").read_text()
    main(argv)  # all answered and scored: nothing is asked again
    assert (out / "predictions.jsonl").read_text() == before

    from playwright.sync_api import sync_playwright

    executable = chromium()
    page_url = (out / "report.html").resolve().as_uri()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(page_url)
            rows = page.locator("#questions tbody tr")
            assert rows.count() == QUESTIONS
            assert page.locator("#questions thead th").all_inner_texts()[-2:] == [
                "search", "greedy"]
            summary_rows = page.locator("#summary tbody tr").all_inner_texts()
            assert summary_rows[0].startswith("search") and summary_rows[1].startswith("greedy")
            assert f"{by_system['search'].right}/{QUESTIONS}" in summary_rows[0]

            def shown() -> list[str]:
                return sorted(rows.nth(i).get_attribute("data-id") for i in range(rows.count())
                              if rows.nth(i).is_visible())

            assert len(shown()) == QUESTIONS
            page.get_by_role("button", name="only search right").click()
            assert shown() == only_search
            assert page.locator("#shown").inner_text() == str(len(only_search))
            assert page.url.endswith("#only-a")
            page.get_by_role("button", name="all").first.click()
            assert len(shown()) == QUESTIONS
            # a row's reasoning opens from its details
            first_row = rows.first
            first_row.locator("details summary").first.click()
            assert first_row.locator("details pre").first.is_visible()
            page.goto(page_url + "#neither")  # a link to a filter
            page.reload()
            assert shown() == neither
        finally:
            browser.close()


def test_a_multiple_choice_tsv_is_scored_by_letter(server: ServerProcess, tmp_path: Path):
    dataset = tsv_dataset(tmp_path)
    result = main(["--dataset", str(dataset), "--a", server.base_url, "--out",
                   str(tmp_path / "out"), "--no-progress"])
    predictions = PredictionLog(tmp_path / "out" / "predictions.jsonl").read()
    assert len(predictions) == 4 and result.summaries[0].system == "A"
    answers = {str(i): line.split("\t")[-1] for i, line in enumerate(
        dataset.read_text().splitlines()[1:])}
    for p in predictions:
        assert p.status == 200 and p.scorer == "choice"
        assert p.prompt.splitlines()[1] == "Options:" and "A. " in p.prompt
        assert p.read is None or p.read in "ABCD"
        assert p.correct == (p.read == answers[p.id])
    assert result.summaries[0].right == sum(bool(p.correct) for p in predictions)
