"""Prometheus metrics of the server and the search. One registry per app (no globals); /metrics
serves it together with vLLM's own metrics from the default registry."""

from __future__ import annotations

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from server.search.trace import Usage

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("cot_server_requests", "Finished HTTP requests to /v1 routes.",
                                ["route", "status"], registry=r)
        self.latency = Histogram("cot_server_request_duration_seconds",
                                 "End-to-end chat completion latency.", buckets=LATENCY_BUCKETS,
                                 registry=r)
        self.in_flight = Gauge("cot_server_requests_in_flight",
                               "Chat completions being served now.", registry=r)
        self.waiting = Gauge("cot_server_requests_waiting",
                             "Chat completions admitted but waiting for a slot.", registry=r)
        self.running = Gauge("cot_server_requests_running",
                             "Chat completions holding a slot (searching now).", registry=r)
        self.sequences_waiting = Gauge(
            "cot_server_sequences_waiting", "Engine sequences of the chat completions waiting "
            "for a slot (n x beam_width each).", registry=r)
        self.sequences_running = Gauge(
            "cot_server_sequences_running", "Engine sequences of the chat completions holding "
            "a slot (n x beam_width each: what they keep in the engine at their busiest).",
            registry=r)
        self.tokens = Counter("cot_server_tokens", "Tokens by kind: prompt, cached (prompt "
                              "tokens served from the prefix cache), candidate, judge, summary "
                              "(the summariser's), answer.",
                              ["kind"], registry=r)
        self.searches = Counter("cot_server_search_requests", "Searches by selector and width.",
                                ["selector", "beam_width"], registry=r)
        self.stage_seconds = Histogram("cot_server_stage_duration_seconds",
                                       "Time to branch and select one stage.", ["stage"],
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.candidates = Counter("cot_server_candidates", "Stage candidates generated.",
                                  ["stage"], registry=r)
        self.comparisons = Counter("cot_server_judge_comparisons", "Judge comparisons made "
                                   "(asked of the engine: not those between the same text).",
                                   ["stage"], registry=r)
        self.engine_calls = Counter(
            "cot_server_engine_calls", "Engine calls of searches, by kind: stage (one stage's "
            "candidates), stages (a width-1 answer's stages in one call), selection (a "
            "selector's one-token call), summary (the summariser's answer).", ["kind"],
            registry=r)
        self.search_prompt_tokens = Counter(
            "cot_server_search_prompt_tokens", "Prompt tokens of search calls, by call kind.",
            ["call"], registry=r)
        self.search_cached_tokens = Counter(
            "cot_server_search_cached_tokens", "Prompt tokens of search calls served from the "
            "prefix cache, by call kind (hit rate = cached / prompt).", ["call"], registry=r)
        self.ttft = Histogram("cot_server_time_to_first_token_seconds",
                              "Streamed requests: from arrival to the first chunk with output.",
                              buckets=LATENCY_BUCKETS, registry=r)
        self.stage_selections = Counter(
            "cot_server_stage_selections", "Chosen stages by what picked them: a selector's "
            "name, `only` (one usable candidate) or `agree` (all candidates the same).",
            ["stage", "selected_by"], registry=r)
        self.readiness = Gauge("cot_server_readiness", "1 for the server's readiness state "
                               "(loading, warming, ready, draining, engine_dead), 0 for the "
                               "others.", ["state"], registry=r)
        self.warmup_seconds = Gauge(
            "cot_server_warmup_seconds", "How long the warm-up before ready took (0 until it "
            "is done, and with --no-warmup).", registry=r)
        self.warmup_requests = Counter(
            "cot_server_warmup_requests", "Warm-up searches before ready, by path (one_call, "
            "logprobs, judge, verify, structured) and outcome (ok, failed); their engine work "
            "is in the search metrics too.", ["path", "outcome"], registry=r)
        self.summaries = Counter(
            "cot_server_summaries", "Answers of the reason_summarize pipeline, by outcome: "
            "agreed (the summariser gave the search's answer) or overruled (another one).",
            ["outcome"], registry=r)
        self.retraces = Counter(
            "cot_server_retraces", "Retracing searches going back a stage, by the stage whose "
            "candidates all scored low.", ["stage"], registry=r)

    # SearchObserver
    def stage_done(self, stage: str, seconds: float, candidates: int, comparisons: int) -> None:
        self.stage_seconds.labels(stage).observe(seconds)
        self.candidates.labels(stage).inc(candidates)
        self.comparisons.labels(stage).inc(comparisons)

    def engine_call(self, kind: str) -> None:
        self.engine_calls.labels(kind).inc()

    def search_done(self, selector: str, beam_width: int, usage: Usage,
                    answer_tokens: int) -> None:
        self.searches.labels(selector, str(beam_width)).inc()
        for kind, value in (("prompt", usage.prompt_tokens), ("cached", usage.cached_tokens),
                            ("candidate", usage.candidate_tokens),
                            ("judge", usage.judge_tokens), ("summary", usage.summary_tokens),
                            ("answer", answer_tokens)):
            self.tokens.labels(kind).inc(value)
        for call, prompt, cached in (
                ("candidate", usage.candidate_prompt_tokens, usage.candidate_cached_tokens),
                ("judge", usage.judge_prompt_tokens, usage.judge_cached_tokens),
                ("summary", usage.summary_prompt_tokens, usage.summary_cached_tokens)):
            self.search_prompt_tokens.labels(call).inc(prompt)
            self.search_cached_tokens.labels(call).inc(cached)

    def retraced(self, stage: str) -> None:
        self.retraces.labels(stage).inc()

    def stage_chosen(self, stage: str, selected_by: str) -> None:
        self.stage_selections.labels(stage, selected_by).inc()

    def summarized(self, agreed: bool) -> None:
        self.summaries.labels("agreed" if agreed else "overruled").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry) + generate_latest(REGISTRY)
