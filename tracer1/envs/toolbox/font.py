"""The bitmap font the toolbox writes its images with, and that its OCR reads back.

Glyphs come from Pillow's built-in bitmap font (`ImageFont.load_default_imagefont()`, which older Pillows
return from `load_default()`; embedded in Pillow itself and unchanged for years): each printable ASCII character
is cut out once as an 11x7 bitmap. Text is drawn here (not with `ImageDraw.text`) on a fixed 8x11 cell grid:
7 glyph columns and one blank column, scaled by an integer factor with no anti-aliasing, in one solid colour.
So every glyph is pixel-exact and no two glyphs touch, which is what makes template-matching OCR exact on these
images.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

CELL_W = 8       # pixels per character, before scaling (7 glyph columns + 1 blank)
CELL_H = 11
CHARSET = "".join(chr(c) for c in range(32, 127))
MAX_SCALE = 4    # the OCR reads scales 1..MAX_SCALE


@lru_cache(maxsize=1)
def glyphs() -> dict[str, np.ndarray]:
    """Character -> bool array (CELL_H, CELL_W); the space is blank. Cut from Pillow's bitmap font once."""
    from PIL import Image, ImageDraw, ImageFont

    # Pillow >= 10.1 names the bitmap font load_default_imagefont(); before, load_default() returned it
    loader = getattr(ImageFont, "load_default_imagefont", None) or ImageFont.load_default
    font = loader()
    out = {}
    for ch in CHARSET:
        # draw "  c  " so that the glyph's one-pixel left overhang lands inside the canvas
        canvas = Image.new("L", (6 * 5 + 12, 17), 0)
        ImageDraw.Draw(canvas).text((6, 3), f"  {ch}  ", font=font, fill=255)
        ink = np.asarray(canvas) > 127
        cell = np.zeros((CELL_H, CELL_W), bool)
        cell[:, :7] = ink[3:3 + CELL_H, 17:24]
        if cell.sum() != ink.sum():
            raise RuntimeError(f"glyph {ch!r} of Pillow's bitmap font does not fit an {CELL_H}x7 cell")
        out[ch] = cell
    if len({g.tobytes() for g in out.values()}) != len(out):
        raise RuntimeError("two glyphs of Pillow's bitmap font are identical")
    return out


def text_mask(text: str, scale: int = 1) -> np.ndarray:
    """The ink of one line of text as a bool array (CELL_H*scale, CELL_W*scale*len(text)). Characters outside
    printable ASCII are drawn as '?'."""
    table = glyphs()
    cells = [table.get(ch, table["?"]) for ch in text] or [table[" "]]
    mask = np.concatenate(cells, axis=1)
    if scale > 1:
        mask = mask.repeat(scale, axis=0).repeat(scale, axis=1)
    return mask


def text_size(text: str, scale: int = 1) -> tuple[int, int]:
    """(width, height) in pixels of one line drawn at `scale`."""
    return CELL_W * scale * max(len(text), 1), CELL_H * scale


def draw_text(canvas: np.ndarray, x: int, y: int, text: str, colour: tuple[int, int, int], scale: int = 1
              ) -> tuple[int, int, int, int]:
    """Draw one line of text into `canvas` (H, W, 3 uint8) with its cell grid's top-left at (x, y), clipped to
    the canvas. Returns the pixel box (x1, y1, x2, y2) of the cells drawn."""
    mask = text_mask(text, scale)
    h, w = mask.shape
    H, W = canvas.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x0 < x1 and y0 < y1:
        region = canvas[y0:y1, x0:x1]
        region[mask[y0 - y:y1 - y, x0 - x:x1 - x]] = colour
    return x, y, x + w, y + h
