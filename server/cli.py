"""cot-server command line: `serve`. Argument parsing and process lifecycle only. The server's
own flags are the Settings fields (also settable as COT_SERVER_<NAME>); vLLM's engine flags come
from vLLM's own parser (server.engine.add_engine_args), exactly as `vllm serve` takes them."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
import types
from enum import StrEnum
from pathlib import Path
from typing import Any, get_origin

from server.api.state import server_state
from server.config import DEFAULT_IMAGES_PER_PROMPT, DEFAULT_TINY_MODEL, Settings
from server.logs import configure_logging


def _add_settings_flags(group: argparse._ArgumentGroup) -> None:
    for name, field in Settings.flag_fields().items():
        flag = "--" + name.replace("_", "-")
        env = f"COT_SERVER_{name.upper()}"
        default = str(field.default) if isinstance(field.default, StrEnum) else field.default
        help_text = f"{field.description} [env {env}; default {default!r}]"
        if field.annotation is bool:
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text)
        elif get_origin(field.annotation) is tuple:
            group.add_argument(flag, dest=name, nargs="+", default=argparse.SUPPRESS,
                               help=help_text)
        else:
            group.add_argument(flag, dest=name, default=argparse.SUPPRESS, help=help_text)


def _engine_defaults() -> str:
    """The server's engine defaults, for the help, from where they are set."""
    from server.engine import default_engine_options

    everywhere = default_engine_options(on_cpu=False)
    cpu_only = {k: v for k, v in default_engine_options(on_cpu=True).items()
                if k not in everywhere}
    everywhere["limit_mm_per_prompt"] = {"image": DEFAULT_IMAGES_PER_PROMPT}
    return "; ".join(f"{where}: " + ", ".join(f"{k}={v}" for k, v in options.items())
                     for where, options in (("everywhere", everywhere), ("on the CPU", cpu_only)))


def _add_serve_flags(serve: argparse.ArgumentParser) -> None:
    """Our group first, then vLLM's groups. Where a name is both ours and vLLM's (--model,
    --served-model-name, --log-level: the server reads them itself, and hands them to the
    engine) ours replaces vLLM's, so every name is one flag; the parser resolves those
    conflicts, and a unit test pins which they are."""
    from server.engine import add_engine_args

    ours = serve.add_argument_group(
        "cot-server", "The server's own options (also COT_SERVER_<NAME> environment variables). "
        "The groups after this one are vLLM's engine arguments, taken exactly as `vllm serve` "
        "takes them; where one is not given, the server's default applies, else vLLM's ("
        + _engine_defaults() + ").")
    add_engine_args(serve)
    _add_settings_flags(ours)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cot-server", description="OpenAI-compatible server for chain-of-thought VLMs "
        "with stage-level beam search, on an embedded vLLM engine.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="Serve the OpenAI-compatible API.",
                                conflict_handler="resolve", usage="%(prog)s [options]",
                                description="Serve the OpenAI-compatible API: the server's own "
                                "options, then every vLLM engine argument of `vllm serve`.")
    _add_serve_flags(serve)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from a parsed `serve` command line: our flags by name, and everything else
    the parser produced (only vLLM's flags that were given: their defaults are hidden) as the
    engine options."""
    given = {k: v for k, v in vars(args).items() if k != "command"}
    ours = Settings.flag_fields()
    engine = {k: v for k, v in given.items() if k not in ours}
    return Settings(**{k: v for k, v in given.items() if k in ours}, engine=engine)


class DrainingServer:
    """uvicorn with a graceful stop: on the first SIGTERM/SIGINT, /ready and new requests get
    503 at once, in-flight requests get up to `drain_timeout` to finish, then uvicorn exits
    (and the lifespan shuts the engine down). A second signal stops at once."""

    def __init__(self, app: Any, settings: Settings) -> None:
        import uvicorn

        self.app = app
        self.settings = settings
        # JSON logs: uvicorn's records go to the root handler (server/logs.py), not to the
        # handlers of uvicorn's own logging config
        log_config = uvicorn.config.LOGGING_CONFIG if settings.log_format == "text" else None
        config = uvicorn.Config(app, host=settings.host, port=settings.port,
                                log_level=settings.log_level, access_log=False,
                                timeout_graceful_shutdown=5, log_config=log_config)
        self.server = uvicorn.Server(config)
        self.server.handle_exit = self._handle_exit  # type: ignore[method-assign]
        self.lifecycle = server_state(app).lifecycle
        self.lifecycle.request_exit = self._exit_now

    def _exit_now(self) -> None:
        self.server.should_exit = True

    def _handle_exit(self, sig: int, frame: types.FrameType | None) -> None:
        if self.lifecycle.failed:  # the engine is dead: nothing to drain, exit now (status 1)
            self.server.force_exit = self.server.should_exit  # a second signal: at once
            self.server.should_exit = True
            return
        if self.lifecycle.draining:
            self.server.should_exit = True
            self.server.force_exit = True
            return
        self.lifecycle.drain()
        logging.getLogger(__name__).info("signal %s: draining for up to %.0f s", sig,
                                         self.settings.drain_timeout)
        loop = asyncio.get_event_loop()
        loop.call_soon_threadsafe(lambda: loop.create_task(self._drain()))

    async def _drain(self) -> None:
        deadline = time.monotonic() + self.settings.drain_timeout
        while self.lifecycle.active and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        self.server.should_exit = True

    def run(self) -> int:
        self.server.run()
        state = server_state(self.app)
        if state.exit_status is not None:  # the lifespan ran to its end
            return state.exit_status
        return 1 if state.engine_dead else 0


def serve(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    configure_logging(settings.log_level, settings.log_format)
    if settings.model == DEFAULT_TINY_MODEL and not Path(settings.model, "config.json").exists():
        print(f"cot-server: no model in {DEFAULT_TINY_MODEL}. Write the tiny default model "
              f"there with `python -m tinycot install {DEFAULT_TINY_MODEL}` (or `make serve`), "
              "or pass --model with a hub id or a local checkpoint.", file=sys.stderr)
        return 2
    from server.app import create_app

    return DrainingServer(create_app(settings), settings).run()


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if hasattr(signal, "SIGPIPE"):
        # Ignored (Python's own default), never SIG_DFL: a write to a socket whose client has
        # hung up (a stream left mid-search) would otherwise kill the server, silently.
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    sys.exit(serve(args))
