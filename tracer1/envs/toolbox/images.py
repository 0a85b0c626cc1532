"""The toolbox's generated images: receipts, price tags, signs and shape scenes, and the montage that shows a
task's images side by side under their names (the observation's screenshot).

Text is drawn with `font.draw_text` (pixel-exact, one solid colour), shapes with PIL without anti-aliasing, so
`ocr` and `count` read exactly what was drawn. Every function takes a `random.Random` and is deterministic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from tracer1.envs.toolbox.font import CELL_H, draw_text, text_size
from tracer1.envs.toolbox.vision import COLOURS

INK = (17, 24, 39)
WHITE = (255, 255, 255)
MONTAGE_SIZE = (640, 360)      # width, height of a task's screenshot
LABEL_COLOUR = (55, 65, 81)


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


class Canvas:
    """An RGB image being drawn: rectangles and shapes through PIL, text through the bitmap font."""

    def __init__(self, width: int, height: int, background: tuple[int, int, int]):
        self.pixels = np.zeros((height, width, 3), np.uint8)
        self.pixels[:] = background

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    def _draw(self, fn) -> None:
        image = Image.fromarray(self.pixels)
        fn(ImageDraw.Draw(image))
        self.pixels = np.array(image)

    def rect(self, box, fill=None, outline=None, width: int = 1) -> None:
        self._draw(lambda d: d.rectangle(box, fill=fill, outline=outline, width=width))

    def ellipse(self, box, fill) -> None:
        self._draw(lambda d: d.ellipse(box, fill=fill))

    def polygon(self, points, fill) -> None:
        self._draw(lambda d: d.polygon(points, fill=fill))

    def text(self, x: int, y: int, text: str, colour, scale: int) -> None:
        draw_text(self.pixels, x, y, text, colour, scale)

    def centred_text(self, y: int, text: str, colour, scale: int, x0: int = 0, x1: int | None = None) -> None:
        x1 = self.width if x1 is None else x1
        w, _ = text_size(text, scale)
        self.text(x0 + (x1 - x0 - w) // 2, y, text, colour, scale)

    def image(self) -> Image.Image:
        return Image.fromarray(self.pixels)


# --- receipts, tags, signs ---------------------------------------------------------------------------------

def receipt(rng: random.Random, shop: str, items: list[tuple[str, int]], total: int | None = None,
            footer: str | None = None) -> Image.Image:
    """A till receipt: the shop's name, one line per item (name, price in cents), an optional TOTAL line."""
    scale = 2
    pitch = (CELL_H + 4) * scale
    lines = 2 + len(items) + (1 if total is not None else 0) + (1 if footer else 0)
    width, height = 300, max(300, 32 + lines * pitch + 24)
    c = Canvas(width, height, rng.choice([(203, 213, 225), (214, 211, 209), (212, 212, 216)]))
    paper = (20, 12, width - 20, height - 12)
    c.rect(paper, fill=rng.choice([WHITE, (255, 253, 245), (250, 250, 250)]))
    ink = rng.choice([INK, (30, 30, 30), (31, 41, 55)])
    y = paper[1] + 14
    c.centred_text(y, shop, rng.choice([(30, 64, 175), (153, 27, 27), INK]), scale, paper[0], paper[2])
    y += pitch + 6
    right = paper[2] - 12
    for name, cents in items:
        c.text(paper[0] + 12, y, name, ink, scale)
        price = money(cents)
        c.text(right - text_size(price, scale)[0], y, price, ink, scale)
        y += pitch
    if total is not None:
        y += 4
        c.text(paper[0] + 12, y, "TOTAL", ink, scale)
        price = money(total)
        c.text(right - text_size(price, scale)[0], y, price, ink, scale)
        y += pitch
    if footer:
        c.centred_text(y + 4, footer, ink, scale, paper[0], paper[2])
    return c.image()


TAG_COLOURS = [(254, 240, 138), (255, 255, 255), (187, 247, 208), (254, 215, 170), (191, 219, 254)]


def price_tag(rng: random.Random, item: str, cents: int) -> Image.Image:
    """A shelf price tag: the item's name and its price ("$3.50")."""
    c = Canvas(260, 150, rng.choice([(226, 232, 240), (231, 229, 228), (241, 245, 249)]))
    tag = (16, 14, 244, 136)
    c.rect(tag, fill=rng.choice(TAG_COLOURS), outline=(100, 116, 139), width=2)
    c.ellipse((26, 24, 38, 36), fill=tuple(int(v) for v in c.pixels[0, 0]))   # the hole
    name_scale = 2 if text_size(item, 2)[0] <= 200 else 1
    c.centred_text(34, item, INK, name_scale, tag[0], tag[2])
    price = f"${money(cents)}"
    scale = 4 if text_size(price, 4)[0] <= 210 else 3
    c.centred_text(66, price, rng.choice([(185, 28, 28), INK, (30, 64, 175)]), scale, tag[0], tag[2])
    return c.image()


SIGN_COLOURS = [(21, 128, 61), (29, 78, 216), (120, 53, 15), (185, 28, 28), (55, 65, 81)]


def sign(rng: random.Random, lines: list[str]) -> Image.Image:
    """A road or door sign: white text, one or more lines, on a coloured plate with a white border."""
    c = Canvas(280, 160, rng.choice([(224, 242, 254), (236, 252, 203), (245, 245, 244)]))
    plate = (14, 14, 266, 146)
    c.rect(plate, fill=rng.choice(SIGN_COLOURS), outline=WHITE, width=3)
    scales = [3 if text_size(line, 3)[0] <= 220 else 2 for line in lines]
    heights = [CELL_H * s for s in scales]
    gap = 12
    y = plate[1] + (plate[3] - plate[1] - sum(heights) - gap * (len(lines) - 1)) // 2
    for line, s, h in zip(lines, scales, heights):
        c.centred_text(y, line, WHITE, s, plate[0], plate[2])
        y += h + gap
    return c.image()


# --- shape scenes -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Placed:
    colour: str
    shape: str
    box: tuple[int, int, int, int]


def shape_scene(rng: random.Random, objects: list[tuple[str, str]], size: tuple[int, int] = (320, 240),
                gap: int = 6) -> tuple[Image.Image, list[Placed]]:
    """A scene with one solid shape per (colour, shape) in `objects`, placed at random without touching."""
    width, height = size
    c = Canvas(width, height, rng.choice([(255, 255, 255), (250, 250, 245), (248, 250, 252)]))
    c.rect((0, 0, width - 1, height - 1), outline=(148, 163, 184), width=1)   # a frame (no named colour)
    placed: list[Placed] = []
    for colour, shape in objects:
        for _attempt in range(500):
            side = rng.randint(18, 34)
            x0 = rng.randint(6, width - side - 7)
            y0 = rng.randint(6, height - side - 7)
            box = (x0, y0, x0 + side, y0 + side)
            if all(box[0] >= p.box[2] + gap or p.box[0] >= box[2] + gap or
                   box[1] >= p.box[3] + gap or p.box[1] >= box[3] + gap for p in placed):
                break
        else:
            raise ValueError(f"cannot place {len(objects)} shapes in a {width}x{height} scene")
        rgb = COLOURS[colour]
        x1, y1 = box[2] - 1, box[3] - 1
        if shape == "circle":
            c.ellipse((x0, y0, x1, y1), fill=rgb)
        elif shape == "square":
            c.rect((x0, y0, x1, y1), fill=rgb)
        elif shape == "triangle":
            if rng.random() < 0.5:
                c.polygon([(x0, y1), (x1, y1), ((x0 + x1) / 2, y0)], fill=rgb)
            else:
                c.polygon([(x0, y0), (x1, y0), ((x0 + x1) / 2, y1)], fill=rgb)
        else:
            raise ValueError(f"unknown shape {shape!r}")
        placed.append(Placed(colour, shape, box))
    return c.image(), placed


# --- the montage -------------------------------------------------------------------------------------------

def montage(images: dict[str, Image.Image], size: tuple[int, int] = MONTAGE_SIZE
            ) -> tuple[Image.Image, dict[str, tuple[int, int, int, int]]]:
    """The task's images side by side, each under its name, on one canvas of `size`. Returns the canvas and
    each image's pixel box."""
    width, height = size
    c = Canvas(width, height, (243, 244, 246))
    gap = 16
    total = sum(im.width for im in images.values()) + gap * (len(images) - 1)
    if total > width or any(im.height + 40 > height for im in images.values()):
        raise ValueError("the images do not fit the montage")
    x = (width - total) // 2
    boxes = {}
    for name, im in images.items():
        c.text(x, 8, name, LABEL_COLOUR, 2)
        top = 36
        c.pixels[top:top + im.height, x:x + im.width] = np.asarray(im.convert("RGB"))
        boxes[name] = (x, top, x + im.width, top + im.height)
        x += im.width + gap
    return c.image(), boxes
