"""The requests' content: an image and a question each. Images are drawn procedurally
(coloured shapes on a plain background, several sizes, deterministic from a seed) or read,
with their questions, from a JSONL file of {"image": path or URL, "question": text} lines."""

from __future__ import annotations

import base64
import io
import json
import mimetypes
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

DEFAULT_IMAGE_SIZES = (64, 128, 256, 512)
COLOURS = {
    "red": (220, 40, 40), "green": (40, 170, 70), "blue": (40, 80, 220),
    "yellow": (235, 200, 30), "purple": (140, 60, 170), "orange": (240, 130, 30),
    "black": (20, 20, 20), "white": (245, 245, 245),
}
SHAPES = ("circle", "square", "triangle")
QUESTION_TEMPLATES = (
    "How many shapes are in the image?",
    "What colour is the {shape}?",
    "Is there a {colour} shape in the image? Answer yes or no.",
    "Which shape is closest to the top of the image?",
    "Describe the shapes in the image and their colours.",
    "Is the {shape} larger than the other shapes?",
)


@dataclass(frozen=True)
class WorkItem:
    question: str
    image_url: str  # data: URL, or an http(s) URL the server fetches itself

    def messages(self) -> list[dict[str, Any]]:
        """The chat messages of one request: the image, then the question."""
        return [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": self.image_url}},
            {"type": "text", "text": self.question},
        ]}]


def draw_shapes(rng: random.Random, size: int) -> tuple[Image.Image, list[tuple[str, str]]]:
    """A size×size image of 1–5 shapes; returns it and its (shape, colour) pairs."""
    background, *palette = rng.sample(list(COLOURS), k=len(COLOURS))
    image = Image.new("RGB", (size, size), COLOURS[background])
    draw = ImageDraw.Draw(image)
    drawn = []
    for _ in range(rng.randint(1, 5)):
        shape, colour = rng.choice(SHAPES), rng.choice(palette)
        extent = rng.randint(max(4, size // 8), max(5, size // 2))
        x, y = rng.randint(0, size - extent), rng.randint(0, size - extent)
        box = (x, y, x + extent, y + extent)
        if shape == "circle":
            draw.ellipse(box, fill=COLOURS[colour])
        elif shape == "square":
            draw.rectangle(box, fill=COLOURS[colour])
        else:
            draw.polygon([(x + extent // 2, y), (x, y + extent), (x + extent, y + extent)],
                         fill=COLOURS[colour])
        drawn.append((shape, colour))
    return image, drawn


def ask_about(rng: random.Random, drawn: Sequence[tuple[str, str]]) -> str:
    shape, colour = rng.choice(list(drawn))
    return rng.choice(QUESTION_TEMPLATES).format(shape=shape, colour=colour)


def png_data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def image_from_data_url(url: str) -> Image.Image:
    """Decode a base64 data: URL into an RGB PIL image."""
    header, _, payload = url.partition(",")
    if not header.startswith("data:") or not header.endswith(";base64"):
        raise ValueError("expected a base64 data: URL")
    return Image.open(io.BytesIO(base64.b64decode(payload))).convert("RGB")


def procedural_items(count: int, seed: int = 0,
                     sizes: Sequence[int] = DEFAULT_IMAGE_SIZES) -> list[WorkItem]:
    """`count` items; item i has sizes[i % len(sizes)] pixels a side. Same seed, same items."""
    if count < 1 or not sizes:
        raise ValueError("need at least one item and one image size")
    rng = random.Random(seed)
    items = []
    for index in range(count):
        image, drawn = draw_shapes(rng, sizes[index % len(sizes)])
        items.append(WorkItem(question=ask_about(rng, drawn), image_url=png_data_url(image)))
    return items


def image_reference_to_url(reference: str, base_dir: Path) -> str:
    """A JSONL `image` value as a request URL: data/http(s) URLs pass through; a file path
    (relative to the JSONL file) is read and inlined as a data URL."""
    if reference.startswith(("data:", "http://", "https://")):
        return reference
    path = Path(reference)
    path = path if path.is_absolute() else base_dir / path
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def load_jsonl(path: str | Path) -> list[WorkItem]:
    source = Path(path)
    items = []
    for number, line in enumerate(source.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        entry = json.loads(line)
        if not isinstance(entry, dict) or not {"image", "question"} <= entry.keys():
            raise ValueError(f"{source}:{number}: expected an object with image and question")
        url = image_reference_to_url(str(entry["image"]), source.parent)
        items.append(WorkItem(question=str(entry["question"]), image_url=url))
    if not items:
        raise ValueError(f"{source} holds no items")
    return items
