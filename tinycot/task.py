"""Procedural visual questions with four-stage answers, for training and evaluating the tiny model.

A scene is 2–6 coloured shapes (circle, square, triangle; red, green, blue, yellow) in the cells
of a 4 × 4 grid on a 128 px image, with a little variation in size, position and shade. The
layout matches the tiny model's image processor: each quarter of the image is one 64 px tile,
each 32 px cell one image token, so the caption reads the quarters in the tokens' order. A
question needs looking and a little reasoning (count a colour or a kind, the most common
colour, how many more of one colour than another, whether one shape is left of another on the
other side of the image). The answer is written by a program from the scene:

    <SUMMARY>what is asked and the plan</SUMMARY>
    <CAPTION>the shapes quarter by quarter: top left, top right, bottom left, bottom right</CAPTION>
    <REASONING>the shapes that matter, their count or side, the step to the answer</REASONING>
    <CONCLUSION>the answer: a number, a colour, yes or no</CONCLUSION>

(stages separated by a blank line, as the server renders them). Everything is a pure function of
a `random.Random`; `dataset(seed, n, split)` seeds it from the split's name and the seed, so the
training and held-out splits never share a random stream.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from server.search.schema import LLAVA_COT

IMAGE_SIZE = 128
GRID = 4
CELL = IMAGE_SIZE // GRID
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220),
           "yellow": (230, 200, 30)}
KINDS = ("circle", "square", "triangle")
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles"}
QUARTERS = ("top left", "top right", "bottom left", "bottom right")
MIN_SHAPES, MAX_SHAPES = 2, 6
QUESTION_WEIGHTS = {"count_colour": 25, "count_kind": 20, "most_common": 20, "more_than": 15,
                    "left_of": 20}
STAGE_TAGS = LLAVA_COT.tags
NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"))}


@dataclass(frozen=True)
class Shape:
    kind: str
    colour: str
    row: int  # 0 = top
    col: int  # 0 = left
    radius: int  # half the shape's width, px
    dx: int  # offset of the centre from the cell's centre, px
    dy: int
    shade: tuple[int, int, int]

    @property
    def name(self) -> str:
        return f"{self.colour} {self.kind}"

    @property
    def quarter(self) -> int:
        half = GRID // 2
        return (self.row // half) * 2 + self.col // half

    @property
    def side(self) -> int:  # 0 = left half, 1 = right half
        return self.col // (GRID // 2)


@dataclass(frozen=True)
class Scene:
    shapes: tuple[Shape, ...]

    def in_order(self) -> list[Shape]:
        """Shapes in caption order: quarter by quarter, each row by row."""
        return sorted(self.shapes, key=lambda s: (s.quarter, s.row, s.col))

    def colour_counts(self) -> Counter[str]:
        return Counter(s.colour for s in self.shapes)


@dataclass(frozen=True)
class Question:
    kind: str  # one of QUESTION_WEIGHTS
    colour: str = ""
    shape: str = ""
    colour2: str = ""
    shape2: str = ""


@dataclass(frozen=True)
class Example:
    image: Any  # PIL.Image.Image, 128 × 128 RGB
    question: str
    answer_text: str  # the four tagged stages, separated by blank lines
    conclusion: str
    stages: tuple[tuple[str, str], ...]  # (tag, text) in order
    scene: Scene
    query: Question


# ----------------------------------------------------------------------------- scenes


def random_shape(rng: random.Random, row: int, col: int) -> Shape:
    radius = rng.randint(8, 13)
    slack = max(0, CELL // 2 - radius - 2)
    colour = rng.choice(list(COLOURS))
    r, g, b = (max(0, min(255, c + rng.randint(-15, 15))) for c in COLOURS[colour])
    return Shape(rng.choice(KINDS), colour, row, col, radius, rng.randint(-slack, slack),
                 rng.randint(-slack, slack), (r, g, b))


def random_scene(rng: random.Random) -> Scene:
    count = rng.randint(MIN_SHAPES, MAX_SHAPES)
    cells = rng.sample([(r, c) for r in range(GRID) for c in range(GRID)], count)
    return Scene(tuple(random_shape(rng, r, c) for r, c in cells))


def render(scene: Scene) -> Any:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for s in scene.shapes:
        x = s.col * CELL + CELL // 2 + s.dx
        y = s.row * CELL + CELL // 2 + s.dy
        r = s.radius
        if s.kind == "circle":
            draw.ellipse((x - r, y - r, x + r, y + r), fill=s.shade)
        elif s.kind == "square":
            draw.rectangle((x - r, y - r, x + r, y + r), fill=s.shade)
        else:
            draw.polygon(((x, y - r), (x + r, y + r), (x - r, y + r)), fill=s.shade)
    return image


# ----------------------------------------------------------------------------- questions


def _unique(scene: Scene, colour: str, kind: str) -> Shape | None:
    found = [s for s in scene.shapes if s.colour == colour and s.kind == kind]
    return found[0] if len(found) == 1 else None


def valid(query: Question, scene: Scene) -> bool:
    """Whether the question has one clear answer in this scene."""
    counts = scene.colour_counts()
    if query.kind == "most_common":
        top = counts.most_common(2)
        return len(top) == 1 or top[0][1] > top[1][1]
    if query.kind == "more_than":
        return counts[query.colour] > counts[query.colour2]
    if query.kind == "left_of":
        a = _unique(scene, query.colour, query.shape)
        b = _unique(scene, query.colour2, query.shape2)
        return a is not None and b is not None and a.side != b.side
    return True


def pick_question(kind: str, scene: Scene, rng: random.Random) -> Question | None:
    present_colours = sorted({s.colour for s in scene.shapes})
    if kind == "count_colour":
        pool = present_colours if rng.random() < 0.75 else list(COLOURS)
        return Question(kind, colour=rng.choice(pool))
    if kind == "count_kind":
        pool = sorted({s.kind for s in scene.shapes}) if rng.random() < 0.75 else list(KINDS)
        return Question(kind, shape=rng.choice(pool))
    if kind == "most_common":
        query = Question(kind)
    elif kind == "more_than":
        counts = scene.colour_counts()
        pairs = [(a, b) for a in COLOURS for b in COLOURS if counts[a] > counts[b]]
        if not pairs:
            return None
        a, b = rng.choice(pairs)
        query = Question(kind, colour=a, colour2=b)
    else:
        named = [s for s in scene.in_order() if _unique(scene, s.colour, s.kind)]
        shape_pairs = [(x, y) for x in named for y in named if x.side != y.side]
        if not shape_pairs:
            return None
        x, y = rng.choice(shape_pairs)
        query = Question(kind, colour=x.colour, shape=x.kind, colour2=y.colour, shape2=y.kind)
    return query if valid(query, scene) else None


QUESTION_TEMPLATES = {
    "count_colour": "How many {colour} shapes are there?",
    "count_kind": "How many {shapes} are there?",
    "most_common": "Which colour is most common?",
    "more_than": "How many more {colour} shapes than {colour2} shapes are there?",
    "left_of": "Is the {colour} {shape} left of the {colour2} {shape2}?",
}
# each template as a pattern, its fields one word each (read back by `question_kind`)
_QUESTION_PATTERNS = {kind: re.compile(re.sub(r"\\\{\w+\\\}", r"\\w+", re.escape(template)))
                      for kind, template in QUESTION_TEMPLATES.items()}


def question_text(q: Question) -> str:
    return QUESTION_TEMPLATES[q.kind].format(
        colour=q.colour, shape=q.shape, shapes=PLURAL.get(q.shape, q.shape),
        colour2=q.colour2, shape2=q.shape2)


def question_kind(text: str) -> str | None:
    """The kind of a question by its text (the template it fills), None for another."""
    return next((kind for kind, pattern in _QUESTION_PATTERNS.items()
                 if pattern.fullmatch(text.strip())), None)


# ----------------------------------------------------------------------------- answers


def summary(q: Question) -> str:
    plan = {
        "count_colour": f"how many {q.colour} shapes there are. I will list the shapes by "
                        f"quarter and count the {q.colour} ones.",
        "count_kind": f"how many {PLURAL.get(q.shape, q.shape)} there are. I will list the "
                      f"shapes by quarter and count the {PLURAL.get(q.shape, q.shape)}.",
        "most_common": "which colour is most common. I will list the shapes by quarter and "
                       "count each colour.",
        "more_than": f"how many more {q.colour} shapes than {q.colour2} shapes there are. I "
                     "will count both colours and subtract.",
        "left_of": f"whether the {q.colour} {q.shape} is left of the {q.colour2} {q.shape2}. "
                   "I will find the side of each shape.",
    }[q.kind]
    return "The question asks " + plan


def caption(scene: Scene) -> str:
    parts = []
    for index, quarter in enumerate(QUARTERS):
        names = [s.name for s in scene.in_order() if s.quarter == index]
        parts.append(f"{quarter.capitalize()}: {', '.join(names) or 'none'}.")
    return " ".join(parts)


def _tally(label: str, items: list[str]) -> str:
    return f"{label}: {', '.join(items) or 'none'} = {len(items)}."


def _colour_tally(scene: Scene, colour: str) -> str:
    return _tally(colour.capitalize(), [s.kind for s in scene.in_order() if s.colour == colour])


def _there_are(count: int, noun_one: str, noun_many: str) -> str:
    return f"So there is 1 {noun_one}." if count == 1 else f"So there are {count} {noun_many}."


def answer(q: Question, scene: Scene) -> str:
    counts = scene.colour_counts()
    if q.kind == "count_colour":
        return str(counts[q.colour])
    if q.kind == "count_kind":
        return str(sum(s.kind == q.shape for s in scene.shapes))
    if q.kind == "most_common":
        return counts.most_common(1)[0][0]
    if q.kind == "more_than":
        return str(counts[q.colour] - counts[q.colour2])
    a = _unique(scene, q.colour, q.shape)
    b = _unique(scene, q.colour2, q.shape2)
    return "yes" if a is not None and b is not None and a.side < b.side else "no"


def reasoning(q: Question, scene: Scene) -> str:
    counts = scene.colour_counts()
    if q.kind == "count_colour":
        n = counts[q.colour]
        return f"{_colour_tally(scene, q.colour)} " + _there_are(
            n, f"{q.colour} shape", f"{q.colour} shapes")
    if q.kind == "count_kind":
        plural = PLURAL.get(q.shape, q.shape)
        items = [s.colour for s in scene.in_order() if s.kind == q.shape]
        return f"{_tally(plural.capitalize(), items)} " + _there_are(len(items), q.shape, plural)
    if q.kind == "most_common":
        tallies = " ".join(_colour_tally(scene, c) for c in COLOURS)
        return f"{tallies} {answer(q, scene).capitalize()} is the most common."
    if q.kind == "more_than":
        a, b = counts[q.colour], counts[q.colour2]
        return (f"{_colour_tally(scene, q.colour)} {_colour_tally(scene, q.colour2)} "
                f"{a} minus {b} is {a - b}.")
    first, second = _unique(scene, q.colour, q.shape), _unique(scene, q.colour2, q.shape2)
    where = [QUARTERS[s.quarter] if s else "nowhere" for s in (first, second)]
    sides = [w.split()[-1] for w in where]
    relation = "is left of" if sides == ["left", "right"] else "is not left of"
    return (f"The {q.colour} {q.shape} is in the {where[0]}. The {q.colour2} {q.shape2} is in "
            f"the {where[1]}. The {sides[0]} side {relation} the {sides[1]} side.")


def stage_texts(q: Question, scene: Scene) -> tuple[tuple[str, str], ...]:
    return (("SUMMARY", summary(q)), ("CAPTION", caption(scene)),
            ("REASONING", reasoning(q, scene)), ("CONCLUSION", answer(q, scene)))


def tagged(stages: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> str:
    return LLAVA_COT.tagged_text(stages)


# ----------------------------------------------------------------------------- examples


def make_example(rng: random.Random) -> Example:
    kind = rng.choices(list(QUESTION_WEIGHTS), weights=list(QUESTION_WEIGHTS.values()))[0]
    while True:
        scene = random_scene(rng)
        query = pick_question(kind, scene, rng)
        if query is not None:
            break
    stages = stage_texts(query, scene)
    return Example(render(scene), question_text(query), tagged(stages), stages[-1][1], stages,
                   scene, query)


def dataset(seed: int, n: int, split: str = "train") -> list[Example]:
    """`n` examples of a split; the split's name is part of the seed, so splits never overlap
    in their random streams."""
    rng = random.Random(f"{split}:{seed}")
    return [make_example(rng) for _ in range(n)]


def held_out(n: int, seed: int = 0) -> list[Example]:
    return dataset(seed, n, split="held-out")


# ----------------------------------------------------------------------------- wrong answers


def perturb(scene: Scene, rng: random.Random) -> Scene:
    """A slightly different scene (one shape recoloured, changed, moved, removed or added): the
    kind of mistake a model makes when it looks carelessly."""
    shapes = list(scene.shapes)
    i = rng.randrange(len(shapes))
    free = [(r, c) for r in range(GRID) for c in range(GRID)
            if all((s.row, s.col) != (r, c) for s in shapes)]
    move = rng.choice(["colour", "kind", "move", "remove", "add"])
    if move == "remove" and len(shapes) > 1:
        del shapes[i]
    elif move == "add" and free:
        shapes.append(random_shape(rng, *rng.choice(free)))
    elif move == "move" and free:
        r, c = rng.choice(free)
        shapes[i] = replace(shapes[i], row=r, col=c)
    elif move == "kind":
        shapes[i] = replace(shapes[i], kind=rng.choice([k for k in KINDS if k != shapes[i].kind]))
    else:
        shapes[i] = replace(shapes[i], colour=rng.choice(
            [c for c in COLOURS if c != shapes[i].colour]))
    return Scene(tuple(shapes))


def wrong_stage(example: Example, tag: str, rng: random.Random, subtle: bool = True) -> str:
    """A wrong text for one stage of `example` (differs from the right one): written for a
    slightly different scene (`subtle`) or for an unrelated one."""
    right = dict(example.stages)[tag]
    if tag == "SUMMARY":
        for _ in range(50):
            kind = example.query.kind if rng.random() < 0.7 else rng.choice(list(QUESTION_WEIGHTS))
            other = pick_question(kind, random_scene(rng), rng)
            if other is not None and summary(other) != right:
                return summary(other)
    for _ in range(200):
        scene = perturb(example.scene, rng) if subtle else random_scene(rng)
        if not valid(example.query, scene):
            continue
        text = dict(stage_texts(example.query, scene))[tag]
        if text != right:
            return text
    domain = ([str(i) for i in range(MAX_SHAPES + 1)] if right.isdigit()
              else list(COLOURS) if right in COLOURS else ["yes", "no"])
    return rng.choice([a for a in domain if a != right]) if tag == "CONCLUSION" else right + " 1"


# ----------------------------------------------------------------------------- scoring


def normalise(text: str) -> str:
    """Lower case, punctuation dropped, number words as digits, first word only."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    if not words:
        return ""
    return NUMBER_WORDS.get(words[0], words[0])


def is_correct(predicted: str, expected: str) -> bool:
    return normalise(predicted) == normalise(expected) != ""
