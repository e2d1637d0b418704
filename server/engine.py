"""The engine adapter: the only module that imports vLLM.

It builds the engine from our settings, exposes the chat template, and implements the narrow
`StageEngine` interface the search runs on: `generate` (n candidates of one prompt + images)
and `choose` (a constrained, greedy one-token answer among a few options).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from server.config import Settings
from server.search.interface import (
    ChoiceResult,
    EngineDead,
    GenerateResult,
    Generation,
    Prompt,
    PromptTooLong,
    Sampling,
)
from server.search.params import derive_seed

log = logging.getLogger(__name__)
JUDGE_LOGPROBS = 20
ENCODE_CACHE_SIZE = 256


def engine_args(settings: Settings, on_cpu: bool) -> Any:
    from vllm import AsyncEngineArgs

    block_size = settings.block_size or (32 if on_cpu else None)
    extra: dict[str, Any] = {"block_size": block_size} if block_size else {}

    return AsyncEngineArgs(
        model=settings.model,
        served_model_name=settings.model_name,
        dtype=settings.dtype,
        max_model_len=settings.max_model_len,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        enforce_eager=settings.enforce_eager,
        enable_prefix_caching=True,
        max_num_seqs=settings.max_num_seqs,
        tensor_parallel_size=settings.tensor_parallel_size,
        trust_remote_code=settings.trust_remote_code,
        limit_mm_per_prompt={"image": settings.limit_images_per_prompt},
        disable_log_stats=False,
        **extra,
    )


def _prepare_environment(settings: Settings) -> None:
    if settings.cpu_kv_cache_gib is not None:
        os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(settings.cpu_kv_cache_gib)


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
        self._encoded: OrderedDict[str, list[int]] = OrderedDict()  # tokenised text parts
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
        template = getattr(tokenizer, "chat_template", None) or _processor_template(settings)
        model_config = llm.model_config
        if inspect.isawaitable(model_config):
            model_config = await model_config
        return cls(llm, tokenizer, template, model_config.max_model_len, on_cpu)

    # ----------------------------------------------------------------------- chat template

    def render_chat(self, messages: list[dict[str, Any]]) -> str:
        rendered = self._tokenizer.apply_chat_template(
            messages, chat_template=self._chat_template, tokenize=False,
            add_generation_prompt=True)
        return str(rendered)

    # ----------------------------------------------------------------------- generation

    async def generate(self, prompt: Prompt, images: Sequence[Any], sampling: Sampling
                       ) -> GenerateResult:
        if sampling.seed is not None and sampling.n > 1:
            # A per-request seed with n > 1 crashes the CPU engine core; n seeded requests with
            # the same prefix cost the same (the prefix cache serves them) and are reproducible.
            parts = await asyncio.gather(*(
                self._generate_once(prompt, images, sampling.with_(
                    n=1, seed=derive_seed(sampling.seed, "sample", i)))
                for i in range(sampling.n)))
            return GenerateResult([g for p in parts for g in p.generations],
                                  sum(p.prompt_tokens for p in parts),
                                  sum(p.cached_tokens for p in parts))
        return await self._generate_once(prompt, images, sampling)

    async def _generate_once(self, prompt: Prompt, images: Sequence[Any], sampling: Sampling
                             ) -> GenerateResult:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        params = SamplingParams(
            n=sampling.n, max_tokens=sampling.max_tokens, temperature=sampling.temperature,
            top_p=sampling.top_p, top_k=sampling.top_k or 0, min_p=sampling.min_p or 0.0,
            repetition_penalty=sampling.repetition_penalty or 1.0, stop=list(sampling.stop),
            seed=sampling.seed, logprobs=0 if sampling.logprobs else None,
            min_tokens=sampling.min_tokens, ignore_eos=sampling.ignore_eos,
            include_stop_str_in_output=True, output_kind=RequestOutputKind.FINAL_ONLY)
        final = await self._run(prompt, images, params)
        generations = [
            Generation(o.text, len(o.token_ids), o.cumulative_logprob,
                       "length" if o.finish_reason == "length" else "stop",
                       self._without_eos(o.token_ids))
            for o in final.outputs]
        # vLLM counts the prompt once for n > 1; the search counts what the engine processed.
        return GenerateResult(generations, len(final.prompt_token_ids or ()),
                              final.num_cached_tokens or 0)

    async def choose(self, prompt: Prompt, images: Sequence[Any], options: Sequence[str]
                     ) -> ChoiceResult:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        ids = self._option_ids(options)
        params = SamplingParams(max_tokens=1, temperature=0.0, allowed_token_ids=ids,
                                logprobs=JUDGE_LOGPROBS, output_kind=RequestOutputKind.FINAL_ONLY)
        final = await self._run(prompt, images, params)
        output = final.outputs[0]
        picked = ids.index(output.token_ids[0])
        top = output.logprobs[0] if output.logprobs else {}
        logprobs = [top[i].logprob if i in top else None for i in ids]
        return ChoiceResult(picked, logprobs, len(final.prompt_token_ids or ()),
                            final.num_cached_tokens or 0)

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

    def _without_eos(self, token_ids: Sequence[int]) -> tuple[int, ...]:
        ids = tuple(token_ids)
        return ids[:-1] if ids and ids[-1] == self._eos else ids

    async def _run(self, prompt: Prompt, images: Sequence[Any], params: Any) -> Any:
        request: dict[str, Any] = {"prompt_token_ids": self._token_ids(prompt)}
        if images:
            request["multi_modal_data"] = {"image": list(images)}
        request_id = f"cot-{uuid.uuid4().hex}"
        final = None
        try:
            async for output in self._llm.generate(request, params, request_id):
                final = output
        except asyncio.CancelledError:
            await self.abort(request_id)
            raise
        except Exception as exc:
            if _prompt_too_long(exc):
                raise PromptTooLong(str(exc)) from exc
            if self.dead:
                raise EngineDead(str(exc)) from exc
            raise
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



def _prompt_too_long(exc: Exception) -> bool:
    """vLLM's refusal of a prompt that does not fit the context, in any vLLM version: 0.32
    raises VLLMValidationError (parameter "input_tokens", "maximum context length") from its
    renderer, or "... longer than the maximum model length" from its input processor; older
    versions raise ValueError with the latter text."""
    message = str(exc)
    return (getattr(exc, "parameter", None) == "input_tokens"
            or "maximum context length" in message or "maximum model length" in message
            or (isinstance(exc, ValueError) and "longer than" in message))


def _processor_template(settings: Settings) -> str | None:
    """Some VLM checkpoints keep the chat template on the processor only."""
    try:
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(settings.model,
                                                  trust_remote_code=settings.trust_remote_code)
        return getattr(processor, "chat_template", None)
    except Exception:
        return None
