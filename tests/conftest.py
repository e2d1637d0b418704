"""Shared fixtures: a real `cot-server` process on the real vLLM CPU engine with the tiny
model, started once per test session."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw

from server.images import encode_data_url

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "models" / "tiny-cot"
SERVER_ARGS = ["--max-model-len", "2048", "--stage-max-tokens", "16", "--max-n", "4",
               "--gpu-memory-utilization", "0.3", "--log-level", "info",
               "--max-body-bytes", "3000000"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    model: str = "tiny-cot"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(10)


def start_server(log_path: Path, *extra: str, ready_timeout: float = 300) -> ServerProcess:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("COT_SERVER_")}
    command = [sys.executable, "-m", "server", "serve", "--model", str(MODEL_DIR),
               "--served-model-name", "tiny-cot", "--port", str(port), *SERVER_ARGS, *extra]
    log_file = log_path.open("wb")
    process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                               cwd=ROOT)
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()[-4000:]}")
        try:
            if httpx.get(f"{server.base_url}/ready", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"server not ready in {ready_timeout} s:\n{server.log()[-4000:]}")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    if not (MODEL_DIR / "config.json").exists():
        from server.tiny_model import build_tiny_model

        build_tiny_model(MODEL_DIR)
    proc = start_server(tmp_path_factory.mktemp("server") / "server.log")
    yield proc
    proc.stop()


def shapes_image(size: tuple[int, int] = (96, 72)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((5, 5, 35, 35), fill="red")
    draw.rectangle((50, 20, 80, 60), fill="blue")
    return image


@pytest.fixture(scope="session")
def image_url() -> str:
    return encode_data_url(shapes_image(), "PNG")


@pytest.fixture(scope="session")
def chat_body(image_url: str) -> dict:
    return {"model": "tiny-cot", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": image_url}},
        {"type": "text", "text": "How many red shapes are there?"}]}]}
