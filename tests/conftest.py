"""Shared fixtures: a real `cot-server` process on the real vLLM CPU engine with the tiny
model, started once per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from loadtest.servers import ServerProcess, launch
from server.images.decoding import encode_data_url

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "models" / "tiny-cot"
SERVER_ARGS = ["--max-model-len", "2048", "--cpu-kv-cache-gib", "1", "--stage-max-tokens", "16",
               "--max-n", "4",
               "--gpu-memory-utilization", "0.3", "--log-level", "info",
               "--max-body-bytes", "3000000", "--max-concurrent-requests", "8",
               "--max-queued-requests", "8",
               # compact JSON: the tiny model would pad a JSON answer with free whitespace
               "--structured-outputs-config",
               '{"backend": "xgrammar", "disable_any_whitespace": true}']


def start_server(log_path: Path, *extra: str, model_dir: Path = MODEL_DIR,
                 model_name: str = "tiny-cot") -> ServerProcess:
    """Our server on the tiny model (or the model in `model_dir`), on a free port, ready to
    serve."""
    return launch(["-m", "server", "serve", "--model", str(model_dir),
                   "--served-model-name", model_name, *SERVER_ARGS, *extra],
                  log_path, model=model_name, cwd=ROOT)


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The default model's folder, written from the shipped weights if missing."""
    if not (MODEL_DIR / "config.json").exists():
        from tinycot.model import install_trained_model

        install_trained_model(MODEL_DIR)
    return MODEL_DIR


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path
           ) -> Iterator[ServerProcess]:
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
