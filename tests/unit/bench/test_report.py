"""The benchmark report computes each ratio from the measured figures and marks each target."""

from bench.report import ratios, render, selector_rows

RESULTS = {
    "plan": {"stage_tokens": 32, "in_flight": 16, "saturation": 32},
    "ours": {
        "greedy": {1: {"rps": 2.0, "p50": 0.5, "tokens": 60},
                   8: {"rps": 9.0, "p50": 0.9, "tokens": 60}},
        "beam_c1": {"rps": 1.0, "p50": 0.6, "tokens": 400},
        "greedy_c1": {"rps": 2.0, "p50": 0.5, "tokens": 60},
        "beam_sat": {"rps": 3.0, "p50": 5, "tokens": 400},
        "greedy_sat": {"rps": 10.0, "p50": 3, "tokens": 60},
        "beam_in_flight": {"rps": 3.2, "p50": 4, "tokens": 400},
        "cache": {"vllm_hit_share": 0.8, "search_cached_share": 0.7},
    },
    "upstream": {1: {"rps": 2.0, "p50": 0.49, "tokens": 60},
                 8: {"rps": 10.0, "p50": 0.8, "tokens": 60}},
    "baseline": {"questions_per_s": 0.1, "generate_calls": 130, "questions": 4},
    "machine": "test machine", "wall_s": 120.0,
}


def test_each_ratio_and_verdict():
    rows = {r.split(" | ")[0].lstrip("| "): r.split(" | ")[1:4] for r in ratios(RESULTS)}
    assert rows["1. throughput ratio, concurrency 1"] == ["1.00", "≥ 0.97", "met"]
    assert rows["1. p50 latency ratio, concurrency 1"] == ["1.02", "≤ 1.03", "met"]
    assert rows["1. throughput ratio, concurrency 8"] == ["0.90", "≥ 0.97", "missed"]
    assert rows["1. p50 latency ratio, concurrency 8"] == ["1.12", "≤ 1.03", "missed"]
    assert not any("CPU" in name for name in rows)  # a run without it renders as before
    assert rows["2. questions/s vs reference approach (16 in flight)"][:3] == [
        "32.00", "≥ 30", "met"]
    assert rows["3. latency beam 4 / beam 1, concurrency 1"] == ["1.20", "≤ 1.4", "met"]
    assert rows["3. throughput beam 4 / beam 1, concurrency 32"] == ["0.30", "≥ 0.30", "met"]
    assert rows["4. prompt tokens served from prefix cache (beam-4 runs)"] == [
        "0.80", "≥ 0.90", "missed"]


def test_api_process_cpu_per_request_is_a_ratio_without_a_target():
    ours = {**RESULTS["ours"], "greedy": {1: {**RESULTS["ours"]["greedy"][1],
                                              "api_cpu_ms": 6.0}}}
    upstream = {1: {**RESULTS["upstream"][1], "api_cpu_ms": 2.5}}
    rows = {r.split(" | ")[0].lstrip("| "): r.split(" | ")[1:] for r in
            ratios({**RESULTS, "ours": ours, "upstream": upstream})}
    row = rows["1. API-process CPU per request, concurrency 1"]
    assert row[:2] == ["2.40", "—"] and "6.00 vs 2.50 ms" in row[2]


def test_report_names_the_machine_and_the_command():
    text = render(RESULTS, "python -m bench.run")
    assert "test machine" in text and "`python -m bench.run`" in text
    assert "2.0 minutes" in text
    busy = render({**RESULTS, "load_average": [3.5, 4.0]}, "x")
    assert "3.5 and 4.0" in busy


def test_selector_costs_are_tabled_and_verify_is_compared_with_the_judge():
    sel = {"c1": {"judge": {"rps": 1.0, "p50": 1.2, "tokens": 500},
                  "verify": {"rps": 1.5, "p50": 0.8, "tokens": 440},
                  "vote": {"rps": 2.0, "p50": 0.6, "tokens": 400}},
           "sat": {"judge": {"rps": 2.0, "p50": 9, "tokens": 500},
                   "verify": {"rps": 3.0, "p50": 7, "tokens": 440},
                   "vote": {"rps": 4.0, "p50": 5, "tokens": 400}}}
    results = {**RESULTS, "ours": {**RESULTS["ours"], "selectors": sel}}
    rows = selector_rows(results)
    assert "| verify | 0.333 | 3.00 | 0.800 | 440 | — |" in rows
    shared = {**sel, "sat": {**sel["sat"], "vote": {**sel["sat"]["vote"], "cache_share": 0.97}}}
    assert "| vote | 0.250 | 4.00 | 0.600 | 400 | 0.97 |" in selector_rows(
        {**RESULTS, "ours": {**RESULTS["ours"], "selectors": shared}})
    verdict = next(r for r in rows if r.startswith("| 5."))
    assert verdict.split(" | ")[1:4] == ["1.50", "> 1", "met"]
    slower = {**sel, "sat": {**sel["sat"], "verify": {"rps": 1.0, "p50": 9, "tokens": 440}}}
    rows = selector_rows({**RESULTS, "ours": {**RESULTS["ours"], "selectors": slower}})
    assert next(r for r in rows if r.startswith("| 5.")).split(" | ")[3] == "missed"
    assert selector_rows(RESULTS) == []  # a run without part 5 renders as before
    assert "| verify |" in render(results, "x")


def test_beam_8_and_peak_memory_rows_are_ratios_without_targets():
    ours = {**RESULTS["ours"], "beam8_c1": {"rps": 0.5, "p50": 1.0, "tokens": 800},
            "beam8_sat": {"rps": 2.0, "p50": 8, "tokens": 800},
            "greedy": {1: RESULTS["ours"]["greedy"][1],
                       8: {**RESULTS["ours"]["greedy"][8], "rss_peak_mib": 1500.0}},
            "rss_peak_sat_mib": {"beam1": 1500.0, "beam4": 1800.0, "beam8": 2400.0}}
    upstream = {**RESULTS["upstream"], 8: {**RESULTS["upstream"][8], "rss_peak_mib": 1200.0}}
    rows = {r.split(" | ")[0].lstrip("| "): r.split(" | ")[1:] for r in
            ratios({**RESULTS, "ours": ours, "upstream": upstream})}
    assert rows["3. latency beam 8 / beam 1, concurrency 1"][:2] == ["2.00", "—"]
    assert "p50 1.000 vs 0.500 s" in rows["3. latency beam 8 / beam 1, concurrency 1"][2]
    assert rows["3. throughput beam 8 / beam 1, concurrency 32"][:2] == ["0.20", "—"]
    assert rows["7. peak memory ours / upstream vLLM, beam 1, concurrency 8"][:2] == [
        "1.25", "—"]
    assert "1500 vs 1200 MiB" in rows["7. peak memory ours / upstream vLLM, beam 1, "
                                      "concurrency 8"][2]
    assert rows["7. peak memory beam 8 / upstream vLLM, concurrency 32"][0] == "2.00"
    plain = [r for r in ratios(RESULTS) if r.startswith("| 7.") or "beam 8" in r]
    assert plain == []  # a run without them renders as before


def test_the_report_says_whether_it_ran_on_a_gpu():
    assert "No GPU run" in render(RESULTS, "x")
    on_gpu = render({**RESULTS, "device": "GPU (NVIDIA H100 80GB HBM3)"}, "x")
    assert "No GPU run" not in on_gpu and "vLLM on GPU (NVIDIA H100 80GB HBM3)" in on_gpu
