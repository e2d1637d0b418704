"""Start and stop a local OpenAI-compatible server process (ours or upstream vLLM's) and read
its Prometheus counters: what the benchmark and the end-to-end tests share."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    model: str

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's log, for a failing test's message."""
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the server, wait for it, then kill whatever is left of its process group:
        engine processes must not outlive a server that was killed or got stuck."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.wait(10)

    def counter(self, name: str) -> float:
        """Sum of a Prometheus counter or gauge over all its label sets."""
        text = httpx.get(f"{self.base_url}/metrics", timeout=10).text
        return sum(float(m.group(1)) for m in re.finditer(
            rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M))


def launch(args: list[str], log_path: Path, model: str, ready_path: str = "/ready",
           ready_timeout: float = 300, cwd: Path | None = None,
           watch: Callable[[httpx.Response], None] | None = None,
           poll_s: float = 0.5) -> ServerProcess:
    """Run `python <args> --port P` and wait until `ready_path` answers 200, asking every
    `poll_s` seconds; `watch` sees each answer (the last one the 200)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COT_SERVER_")}
    env["PYTHONUNBUFFERED"] = "1"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # A process group of its own (stop() kills it whole) in this session: with autogroup
    # scheduling, a server in a session of its own starves this one for seconds on a small CPU
    # machine whatever the niceness (docs/deployment.md, "On a few CPU cores").
    with log_path.open("wb") as log_file:
        process = subprocess.Popen([sys.executable, *args, "--port", str(port)],
                                   stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                   cwd=cwd, process_group=0)
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log_path, model)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()[-4000:]}")
        try:
            answer = httpx.get(f"{server.base_url}{ready_path}", timeout=2)
        except httpx.HTTPError:
            pass
        else:
            if watch is not None:
                watch(answer)
            if answer.status_code == 200:
                return server
        time.sleep(poll_s)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"server not ready in {ready_timeout} s:\n{server.log()[-4000:]}")
