"""cot-server command line: `serve`. Argument parsing and process lifecycle only; every serve
flag is a Settings field (also settable as COT_SERVER_<NAME>)."""

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
from typing import Any

from server.api.state import server_state
from server.config import DEFAULT_TINY_MODEL, Settings


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        env = f"COT_SERVER_{name.upper()}"
        default = str(field.default) if isinstance(field.default, StrEnum) else field.default
        help_text = f"{field.description} [env {env}; default {default!r}]"
        if field.annotation is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=help_text)
        else:
            parser.add_argument(flag, dest=name, default=argparse.SUPPRESS, help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cot-server", description="OpenAI-compatible server for chain-of-thought VLMs "
        "with stage-level beam search, on an embedded vLLM engine.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="Serve the OpenAI-compatible API.",
                                description="Serve the OpenAI-compatible API. Every flag can "
                                "also be set as an environment variable COT_SERVER_<FLAG>.")
    _add_settings_flags(serve)
    return parser


class DrainingServer:
    """uvicorn with a graceful stop: on the first SIGTERM/SIGINT, /ready and new requests get
    503 at once, in-flight requests get up to `drain_timeout` to finish, then uvicorn exits
    (and the lifespan shuts the engine down). A second signal stops at once."""

    def __init__(self, app: Any, settings: Settings) -> None:
        import uvicorn

        self.app = app
        self.settings = settings
        config = uvicorn.Config(app, host=settings.host, port=settings.port,
                                log_level=settings.log_level, access_log=False,
                                timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.server.handle_exit = self._handle_exit  # type: ignore[method-assign]
        self.lifecycle = server_state(app).lifecycle
        self.lifecycle.request_exit = self._exit_now

    def _exit_now(self) -> None:
        self.server.should_exit = True

    def _handle_exit(self, sig: int, frame: types.FrameType | None) -> None:
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
        return 1 if self.lifecycle.failed else 0


def serve(args: argparse.Namespace) -> int:
    overrides = {k: v for k, v in vars(args).items() if k != "command"}
    settings = Settings(**overrides)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.model == DEFAULT_TINY_MODEL and not Path(settings.model, "config.json").exists():
        print(f"cot-server: no model in {DEFAULT_TINY_MODEL}. Write the tiny default model "
              f"there with `python -m tinycot install {DEFAULT_TINY_MODEL}` (or `make serve`), "
              "or pass --model with a hub id or a local checkpoint.", file=sys.stderr)
        return 2
    from server.app import create_app

    return DrainingServer(create_app(settings), settings).run()


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL) if hasattr(signal, "SIGPIPE") else None
    sys.exit(serve(args))
