"""The engine adapter: the only module that imports vLLM.

It builds the engine from our settings, exposes the chat template, and implements the narrow
`StageEngine` interface the search runs on: `generate` (n candidates of one prompt + images),
`choose` (a constrained, greedy one-token answer among a few options), and `split` /
`tokens_of` (a generation's tokens matched to its text, to cut it into stages).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import inspect
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from server.config import Settings
from server.request_id import engine_request_id
from server.search.interface import (
    ChoiceResult,
    Constraint,
    EngineDead,
    GenerateResult,
    Generation,
    InvalidRequest,
    PartialSink,
    PartialSinks,
    Prompt,
    PromptTooLong,
    Sampling,
    TokenLogprob,
    sinks_of,
)
from server.search.params import derive_seed
from server.tracing import trace_headers

log = logging.getLogger(__name__)
ENCODE_CACHE_SIZE = 256
DECODE_CACHE_SIZE = 1024


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    """vLLM's own engine flags (every `vllm serve` engine argument, in vLLM's groups) on our
    parser, so none is re-listed here and each keeps vLLM's types and checks. Their defaults
    are hidden from the namespace, which then holds only the flags given: `engine_options`
    must tell an explicit value (`--no-enforce-eager` on the CPU) from vLLM's default."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    known = set(parser._actions)
    AsyncEngineArgs.add_cli_args(parser)
    for action in parser._actions:
        if action not in known:
            _hide_default(action)


def _hide_default(action: argparse.Action) -> None:
    """Default to SUPPRESS, the vLLM default staying visible in the help."""
    default = action.default
    if action.help not in (None, argparse.SUPPRESS) and default not in (None, argparse.SUPPRESS):
        shown = str(default).replace("%", "%%")
        help_text = str(action.help).replace(" (default: %(default)s)", "")
        action.help = f"{help_text} (vLLM default: {shown})"
    action.default = argparse.SUPPRESS


def default_engine_options(on_cpu: bool) -> dict[str, Any]:
    """What the server sets where the user gives no flag. Everywhere: prefix caching (the
    search re-sends shared prefixes; `--no-enable-prefix-caching` still turns it off) and
    stats (the /metrics prefix-cache counters). On the CPU: the settings the tiny model and
    the tests were tuned with (a small memory share, eager, 32-token blocks for finer prefix
    reuse, 64 sequences); on a GPU vLLM's own defaults stand (0.92 memory share, CUDA graphs)."""
    everywhere = {"enable_prefix_caching": True, "disable_log_stats": False}
    if not on_cpu:
        return everywhere
    return {**everywhere, "gpu_memory_utilization": 0.3, "enforce_eager": True,
            "block_size": 32, "max_num_seqs": 64}


def engine_options(settings: Settings, on_cpu: bool) -> dict[str, Any]:
    """The engine arguments, by AsyncEngineArgs name: the defaults, then the flags given.
    The flags that are ours as well as vLLM's pass through: the model and its names, the
    image limit requests are checked against, and --log-level when given (otherwise vLLM keeps
    VLLM_LOGGING_LEVEL)."""
    given = dict(settings.engine)
    limits = {"image": settings.limit_images_per_prompt, **given.get("limit_mm_per_prompt", {})}
    shared = {"model": settings.model, "served_model_name": list(settings.served_names),
              "limit_mm_per_prompt": limits}
    if "log_level" in settings.model_fields_set:
        shared["log_level"] = settings.log_level.upper()
    return {**default_engine_options(on_cpu), **given, **shared}


def engine_args(settings: Settings, on_cpu: bool) -> Any:
    """AsyncEngineArgs built as `vllm serve` builds them from its namespace."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    options = engine_options(settings, on_cpu)
    unknown = set(options) - {f.name for f in dataclasses.fields(AsyncEngineArgs)}
    if unknown:
        raise ValueError(f"not vLLM engine arguments: {sorted(unknown)}")
    return AsyncEngineArgs.from_cli_args(argparse.Namespace(**options))


def _prepare_environment(settings: Settings) -> None:
    if settings.cpu_kv_cache_gib is not None:
        os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(settings.cpu_kv_cache_gib)


ENGINE_CORE_PROCESS = "VLLM::EngineCore"  # the process title vLLM gives its engine core


def _lower_priority(name: str, nice: int) -> None:
    """Raise the niceness of this server's child processes called `name` to `nice` (0: leave
    them). On the CPU, vLLM's engine core spins (sched_yield) while its worker computes a step,
    on the core it shares with this process; niced, it leaves this process more of that core,
    and the worker waits longer on its scheduling (docs/deployment.md, "On a few CPU cores")."""
    if nice <= 0:
        return
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            if child.name() == name and child.nice() < nice:
                child.nice(nice)
                log.info("%s (pid %d) runs at niceness %d", name, child.pid, nice)
        except psutil.Error:  # gone, or not ours to change: leave it as it is
            log.debug("could not lower the priority of pid %d", child.pid, exc_info=True)


class VllmEngine:
    """Owns one vLLM AsyncLLM. Start with `await VllmEngine.start(settings)`."""

    def __init__(self, llm: Any, tokenizer: Any, chat_template: str | None,
                 max_model_len: int, on_cpu: bool) -> None:
        self._llm = llm
        self._tokenizer = tokenizer
        self._chat_template = chat_template
        self.max_model_len = max_model_len
        self.on_cpu = on_cpu
        self._first_tokens: dict[str, int] = {}
        self._stop_tokens: dict[str, int | None] = {}
        self._encoded: OrderedDict[str, list[int]] = OrderedDict()  # tokenised text parts
        # token prefixes decoded by `split`: a one-call answer is split again as it grows, at
        # many of the same places (bounded: each entry is a prefix of one call, at most the sum
        # of its stage caps long)
        self._decoded = functools.lru_cache(maxsize=DECODE_CACHE_SIZE)(self._decode)
        self._eos = getattr(tokenizer, "eos_token_id", None)

    @classmethod
    async def start(cls, settings: Settings) -> VllmEngine:
        _prepare_environment(settings)
        from vllm import AsyncLLMEngine
        from vllm.platforms import current_platform

        on_cpu = current_platform.is_cpu()
        if settings.device == "cuda" and on_cpu:
            raise RuntimeError("--device cuda was asked for, but this vLLM build runs on the CPU")
        # Loading blocks for a while: keep the event loop free so /health answers meanwhile.
        llm = await asyncio.to_thread(AsyncLLMEngine.from_engine_args,
                                      engine_args(settings, on_cpu))
        tokenizer = llm.get_tokenizer()
        if inspect.isawaitable(tokenizer):  # older vLLM versions
            tokenizer = await tokenizer
        template = (_given_template(settings.chat_template)
                    or getattr(tokenizer, "chat_template", None) or _processor_template(settings))
        model_config = llm.model_config
        if inspect.isawaitable(model_config):
            model_config = await model_config
        if on_cpu:
            _lower_priority(ENGINE_CORE_PROCESS, settings.cpu_engine_core_nice)
        return cls(llm, tokenizer, template, model_config.max_model_len, on_cpu)

    # ----------------------------------------------------------------------- chat template

    def render_chat(self, messages: list[dict[str, Any]],
                    template_kwargs: Mapping[str, Any] | None = None) -> str:
        """The conversation through the model's chat template; `template_kwargs` are extra
        template variables (a request's chat_template_kwargs, e.g. enable_thinking). A
        conversation the template refuses (Gemma's: roles that do not alternate) is the
        request's fault: InvalidRequest."""
        from jinja2 import TemplateError

        try:
            rendered = self._tokenizer.apply_chat_template(
                messages, chat_template=self._chat_template, tokenize=False,
                add_generation_prompt=True, **dict(template_kwargs or {}))
        except TemplateError as exc:
            raise InvalidRequest(f"the model's chat template refused the conversation: "
                                 f"{exc}") from exc
        return str(rendered)

    # ----------------------------------------------------------------------- generation

    async def generate(self, prompt: Prompt, images: Sequence[Any], sampling: Sampling,
                       on_partial: PartialSinks | None = None) -> GenerateResult:
        """n completions of one prompt; with `on_partial` (see PartialSinks), each completion
        so far is passed to its sink as it is decoded, and the sink may end it there."""
        sinks = sinks_of(on_partial, sampling.n)
        if sampling.n == 1:
            return await self._generate_once(prompt, images, sampling, sinks[0])
        if sampling.seed is not None or any(sinks):
            # A per-request seed with n > 1 crashes the CPU engine core, and a request's
            # completions end together; n requests with the same prefix cost the same (vLLM
            # runs n > 1 as n requests too; the prefix cache serves them), seeded ones are
            # reproducible.
            parts = await asyncio.gather(*(
                self._generate_once(prompt, images, sampling.with_(
                    n=1, seed=derive_seed(sampling.seed, "sample", i)), sink)
                for i, sink in enumerate(sinks)))
            return GenerateResult([g for p in parts for g in p.generations],
                                  sum(p.prompt_tokens for p in parts),
                                  sum(p.cached_tokens for p in parts))
        return await self._generate_once(prompt, images, sampling)

    async def _generate_once(self, prompt: Prompt, images: Sequence[Any], sampling: Sampling,
                             on_partial: PartialSink | None = None) -> GenerateResult:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        logprobs = sampling.token_logprobs
        if logprobs is None and sampling.logprobs:
            logprobs = 0
        # a sink sees every token, or (vLLM's stream_interval, which vLLM honours only for DELTA
        # outputs) every `partial_every` tokens, put together again here (one completion: n > 1
        # with sinks is run as n requests, see `generate`)
        delta = on_partial is not None and sampling.partial_every > 1
        assert not delta or sampling.n == 1
        params = SamplingParams(
            n=sampling.n, max_tokens=sampling.max_tokens, temperature=sampling.temperature,
            top_p=sampling.top_p, top_k=sampling.top_k or 0, min_p=sampling.min_p or 0.0,
            repetition_penalty=sampling.repetition_penalty or 1.0,
            frequency_penalty=sampling.frequency_penalty,
            presence_penalty=sampling.presence_penalty,
            logit_bias=dict(sampling.logit_bias) or None,
            stop=list(sampling.stop),
            stop_token_ids=[*sampling.stop_token_ids, *self.stop_token_ids(sampling.stop)]
            or None,
            seed=sampling.seed, logprobs=logprobs,
            min_tokens=sampling.min_tokens, ignore_eos=sampling.ignore_eos,
            skip_special_tokens=sampling.skip_special_tokens,
            structured_outputs=_structured_outputs(sampling.constraint),
            include_stop_str_in_output=True,
            output_kind=RequestOutputKind.FINAL_ONLY if on_partial is None
            else RequestOutputKind.DELTA if delta else RequestOutputKind.CUMULATIVE,
            **({"stream_interval": sampling.partial_every} if delta else {}))
        sampled = [_SampledLogprobs() for _ in range(sampling.n)]
        whole = _Accumulated() if delta else None
        sink = None
        if on_partial is not None:
            def sink(output: Any) -> bool | None:
                completion = output.outputs[0] if whole is None else whole.add(output.outputs[0])
                return on_partial(self._generation(completion, sampling, sampled[0],
                                                   running=True))

        final = await self._run(prompt, images, params, sink)
        outputs = final.outputs if whole is None else [whole]
        generations = [self._generation(o, sampling, logprobs)
                       for o, logprobs in zip(outputs, sampled, strict=True)]
        # vLLM counts the prompt once for n > 1; the search counts what the engine processed.
        return GenerateResult(generations, len(final.prompt_token_ids or ()),
                              final.num_cached_tokens or 0)

    def _generation(self, output: Any, sampling: Sampling, sampled: _SampledLogprobs,
                    running: bool = False) -> Generation:
        """One completion (so far, when `running`: its finish reason only once it is done)."""
        if output.finish_reason is None:
            finish = "" if running else "abort"  # "abort": the caller ended the call early
        else:
            finish = "length" if output.finish_reason == "length" else "stop"
        return Generation(
            self._text(output, sampling), len(output.token_ids), output.cumulative_logprob,
            finish, self._without_eos(output.token_ids, output.stop_reason),
            _token_logprobs(output, sampling.token_logprobs)
            if sampling.token_logprobs is not None and not running else None,
            sampled.of(output))

    def _text(self, output: Any, sampling: Sampling) -> str:
        """The completion's text; a caller's stop token, like a stop string, is not part of it
        (stop strings are cut by the search, which knows them as text)."""
        text = str(output.text)
        if isinstance(output.stop_reason, int) and output.stop_reason in sampling.stop_token_ids:
            last = self._tokenizer.decode([output.stop_reason])
            if last and text.endswith(last):
                text = text[:-len(last)]
        return text

    async def choose(self, prompt: Prompt, images: Sequence[Any], options: Sequence[str]
                     ) -> ChoiceResult:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        ids = self._option_ids(options)
        # logprob_token_ids: every option's logprob comes back, whatever its rank among the
        # vocabulary (a top-k list would miss a first token such as "Y" of "Yes")
        params = SamplingParams(max_tokens=1, temperature=0.0, allowed_token_ids=ids,
                                logprob_token_ids=ids, output_kind=RequestOutputKind.FINAL_ONLY)
        final = await self._run(prompt, images, params)
        output = final.outputs[0]
        picked = ids.index(output.token_ids[0])
        top = output.logprobs[0] if output.logprobs else {}
        logprobs = [top[i].logprob if i in top else None for i in ids]
        return ChoiceResult(picked, logprobs, len(final.prompt_token_ids or ()),
                            final.num_cached_tokens or 0)

    def stop_token_ids(self, stops: Sequence[str]) -> list[int]:
        """The stop strings that are one token of this vocabulary (a stage's closing tag, where
        the tags are tokens), as token ids too. The engine core stops on a stop token itself;
        a stop string only vLLM's front end sees, after the fact, and it then sends the core an
        abort for a request that has already decoded a token past it. The output is the same:
        the token is kept in the text, the detokenizer still reports the string as the stop
        reason, and the string stays a stop for when the model spells it in several tokens."""
        ids = []
        for stop in stops:
            if stop not in self._stop_tokens:
                encoded = self._tokenizer.encode(stop, add_special_tokens=False)
                single = (len(encoded) == 1 and self._tokenizer.decode(encoded) == stop
                          and encoded[0] not in getattr(self._tokenizer, "all_special_ids", ()))
                self._stop_tokens[stop] = encoded[0] if single else None
            token = self._stop_tokens[stop]
            if token is not None:
                ids.append(token)
        return ids

    def _option_ids(self, options: Sequence[str]) -> list[int]:
        """The token each option starts with; a one-token answer is constrained to these. An
        option the tokenizer splits ("yes" as "y" + "es") is told apart by its first token, so
        the first tokens of the options must differ."""
        ids = []
        for option in options:
            if option not in self._first_tokens:
                encoded = self._tokenizer.encode(option, add_special_tokens=False)
                if not encoded:
                    raise ValueError(f"selection option {option!r} has no tokens")
                self._first_tokens[option] = encoded[0]
            ids.append(self._first_tokens[option])
        if len(set(ids)) != len(ids):
            raise ValueError(f"selection options {list(options)} start with the same token in "
                             "this model's vocabulary")
        return ids

    def _token_ids(self, prompt: Prompt) -> list[int]:
        """Text parts are tokenised (as rendered chat text: no special tokens added), earlier
        generations contribute their own tokens, so shared prefixes are token-identical."""
        ids: list[int] = []
        for part in prompt:
            if isinstance(part, str):
                ids += self._encode(part)
            else:
                ids += part.token_ids
        return ids

    def _encode(self, text: str) -> list[int]:
        cached = self._encoded.get(text)
        if cached is None:
            cached = self._encoded[text] = self._tokenizer.encode(text, add_special_tokens=False)
            if len(self._encoded) > ENCODE_CACHE_SIZE:
                self._encoded.popitem(last=False)
        else:
            self._encoded.move_to_end(text)
        return cached

    def split(self, generation: Generation, bounds: Sequence[int]) -> list[Generation] | None:
        """See `StageEngine.split`: each bound becomes the fewest tokens whose text reaches it."""
        prefixes = _Prefixes(self._decoded, generation)
        cuts: list[tuple[int, int]] = []
        for bound in bounds:
            cut = prefixes.covering(bound, cuts[-1][0] if cuts else 0)
            if cut is None:
                return None
            cuts.append(cut)
        return generation.parts(cuts)

    def tokens_of(self, text: str) -> tuple[int, ...]:
        return tuple(self._encode(text))

    def _decode(self, ids: tuple[int, ...], skip_special_tokens: bool) -> str:
        return str(self._tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens))

    def _without_eos(self, token_ids: Sequence[int], stop_reason: Any = None
                     ) -> tuple[int, ...]:
        """The tokens without the EOS or stop token the generation ended on, as its text is:
        vLLM reports a stop token by its id, among them the generation config's other EOS
        tokens (Gemma 3's <end_of_turn>, Qwen's <|endoftext|>), which must not be fed back."""
        ids = tuple(token_ids)
        ended_on = {self._eos, stop_reason if isinstance(stop_reason, int) else None}
        return ids[:-1] if ids and ids[-1] in ended_on else ids

    async def _run(self, prompt: Prompt, images: Sequence[Any], params: Any,
                   on_output: Callable[[Any], bool | None] | None = None) -> Any:
        request: dict[str, Any] = {"prompt_token_ids": self._token_ids(prompt)}
        if images:
            request["multi_modal_data"] = {"image": list(images)}
        request_id = engine_request_id()  # cot-<HTTP request id>-<8 hex>, or cot-<32 hex>
        final = None
        outputs = self._llm.generate(request, params, request_id,
                                     trace_headers=trace_headers() or None)
        try:
            async for output in outputs:
                final = output
                if on_output is not None and on_output(output) and not output.finished:
                    await self.abort(request_id)  # the caller has what it needs
                    break
        except asyncio.CancelledError:
            await self.abort(request_id)
            raise
        except Exception as exc:
            if _prompt_too_long(exc):
                raise PromptTooLong(str(exc)) from exc
            if self.dead:
                # not chained: vLLM has logged the cause, and raises one exception object in
                # every request in flight, its traceback growing with each
                raise EngineDead(str(exc)) from None
            if _client_error(exc):  # refused on arrival: the request's parameters
                raise InvalidRequest(str(exc)) from exc
            raise
        finally:
            await outputs.aclose()  # after an early end: the stream is left at its last output
        if final is None:
            raise EngineDead("the engine returned no output")
        return final

    async def abort(self, request_id: str) -> None:
        try:
            await self._llm.abort(request_id)
        except Exception:  # the request may already be finished or the engine gone
            log.debug("abort of %s failed", request_id, exc_info=True)

    # ----------------------------------------------------------------------- health

    @property
    def dead(self) -> bool:
        return bool(getattr(self._llm, "errored", False))

    async def shutdown(self) -> None:
        shutdown = getattr(self._llm, "shutdown", None)
        if shutdown is not None:
            result = shutdown()
            if inspect.isawaitable(result):
                await result



class _Accumulated:
    """A completion put together from vLLM's DELTA outputs (text, tokens and logprobs since the
    last one): what a CUMULATIVE output of it would hold."""

    def __init__(self) -> None:
        self.text = ""
        self.token_ids: list[int] = []
        self.logprobs: list[Any] | None = None
        self.cumulative_logprob: float | None = None
        self.finish_reason: str | None = None
        self.stop_reason: int | str | None = None

    def add(self, delta: Any) -> _Accumulated:
        self.text += delta.text
        self.token_ids.extend(delta.token_ids)
        if delta.logprobs is not None:
            if self.logprobs is None:
                self.logprobs = []
            self.logprobs.extend(delta.logprobs)
        self.cumulative_logprob = delta.cumulative_logprob
        self.finish_reason, self.stop_reason = delta.finish_reason, delta.stop_reason
        return self


class _SampledLogprobs:
    """The sampled tokens' log-probabilities of one completion, read once each as it is
    decoded (None where the engine reports none)."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def of(self, output: Any) -> tuple[float, ...] | None:
        reported = output.logprobs
        if not reported:
            return None
        for position in range(len(self.values), min(len(output.token_ids), len(reported))):
            sampled = (reported[position] or {}).get(output.token_ids[position])
            self.values.append(sampled.logprob if sampled is not None else float("-inf"))
        return tuple(self.values[:len(output.token_ids)])


class _Prefixes:
    """How far into a generation's text each prefix of its tokens reaches, decoded once each.
    Special tokens are skipped as the text skipped them; SentencePiece's dropped leading space
    and a character still incomplete at a prefix's end are allowed for."""

    def __init__(self, decode: Callable[[tuple[int, ...], bool], str],
                 generation: Generation) -> None:
        self.decode = decode  # (token ids, skip special tokens) -> text
        self.ids = tuple(generation.token_ids)
        self.text = generation.text
        self.skip = True
        self.known: dict[int, int | None] = {}
        if self.reach(len(self.ids)) != len(self.text):
            self.skip, self.known = False, {}

    def reach(self, count: int) -> int | None:
        """The text offset the first `count` tokens reach; None if they do not decode to a
        prefix of the text."""
        if count not in self.known:
            decoded = self.decode(self.ids[:count], self.skip).rstrip("\ufffd")
            self.known[count] = next((len(lead) + len(decoded) for lead in ("", " ")
                                      if self.text.startswith(lead + decoded)), None)
            if (self.known[count] is None and count == len(self.ids)
                    and decoded.startswith(self.text.lstrip(" "))):
                self.known[count] = len(self.text)  # a stop string ended it inside this token
        return self.known[count]

    def covering(self, bound: int, low: int) -> tuple[int, int] | None:
        """(tokens, text offset) of the fewest tokens (at least `low`) whose text reaches
        `bound`."""
        high = len(self.ids)
        end = self.reach(high)
        if end is None or end < bound:
            return None
        while low < high:
            middle = (low + high) // 2
            reached = self.reach(middle)
            if reached is None:
                return None
            if reached >= bound:
                high = middle
            else:
                low = middle + 1
        reached = self.reach(low)
        return None if reached is None else (low, reached)


def _client_error(exc: Exception) -> bool:
    """vLLM's refusal of a request's parameters: VLLMClientError (its 4xx errors, vLLM 0.32)
    or, in older versions, ValueError."""
    try:
        from vllm.exceptions import VLLMClientError
    except ImportError:
        return isinstance(exc, ValueError)
    return isinstance(exc, (ValueError, VLLMClientError))


def _structured_outputs(constraint: Constraint | None) -> Any:
    """Our answer constraint as vLLM's structured-output parameters (its own backend, e.g.
    xgrammar, compiles and enforces it)."""
    if constraint is None:
        return None
    from vllm.sampling_params import StructuredOutputsParams

    if constraint.kind == "choice":
        return StructuredOutputsParams(choice=list(constraint.value or ()))
    if constraint.kind == "json_object":
        return StructuredOutputsParams(json_object=True)
    return StructuredOutputsParams(**{constraint.kind: constraint.value})


def _token_logprobs(output: Any, top_k: int) -> tuple[TokenLogprob, ...]:
    """Each generated token with its logprob and its `top_k` likeliest alternatives (vLLM's
    per-position dict holds the sampled token and the top k, each with rank and text)."""
    tokens: list[TokenLogprob] = []
    for token_id, top in zip(output.token_ids, output.logprobs or (), strict=False):
        sampled = top.get(token_id)
        ranked = sorted((lp for lp in top.values()
                         if lp.rank is not None and lp.rank <= top_k), key=lambda lp: lp.rank)
        tokens.append(TokenLogprob(
            token=(sampled.decoded_token if sampled is not None else "") or "",
            logprob=sampled.logprob if sampled is not None else float("-inf"),
            top=tuple((lp.decoded_token or "", lp.logprob) for lp in ranked)))
    return tuple(tokens)


def _prompt_too_long(exc: Exception) -> bool:
    """vLLM's refusal of a prompt that does not fit the context, in any vLLM version: 0.32
    raises VLLMValidationError (parameter "input_tokens", "maximum context length") from its
    renderer, or "... longer than the maximum model length" from its input processor; older
    versions raise ValueError with the latter text."""
    message = str(exc)
    return (getattr(exc, "parameter", None) == "input_tokens"
            or "maximum context length" in message or "maximum model length" in message
            or (isinstance(exc, ValueError) and "longer than" in message))


def _given_template(value: str | None) -> str | None:
    """--chat-template: a file's contents, or the template itself when it is one."""
    if not value:
        return None
    path = Path(value)
    if path.is_file():
        return path.read_text()
    if "{{" in value or "{%" in value:
        return value
    raise ValueError(f"--chat-template: {value!r} is neither a file nor a Jinja template")


def _processor_template(settings: Settings) -> str | None:
    """Some VLM checkpoints keep the chat template on the processor only."""
    try:
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(settings.model,
                                                  trust_remote_code=settings.trust_remote_code)
        return getattr(processor, "chat_template", None)
    except Exception:
        return None
