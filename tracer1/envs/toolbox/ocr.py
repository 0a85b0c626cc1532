"""OCR for the toolbox's images: exact template matching of the glyphs of `font` (no model, no Tesseract).

The images are ours: text is drawn with `font.draw_text` in one solid colour per line, at an integer scale
(1..4), on a fixed cell grid. Reading it back:

1. every colour that covers less than half the image is a candidate ink; its pixels are split into connected
   components, and those small enough to be (part of) a glyph are kept;
2. components of similar scale that sit next to each other (at most 2 scaled pixels apart vertically, two
   character cells horizontally) form a text segment; the scale is the gcd of the component's run lengths and
   offsets (every glyph has a one-pixel stroke, so a glyph drawn at scale s has runs that are multiples of s);
3. a segment is shrunk to scale 1 and laid on the 8x11 cell grid at each possible offset; an offset where every
   cell is exactly one glyph (or blank: a space) gives the text. A segment that no offset reads is not text;
4. segments on the same line are joined left to right with one space; lines come top to bottom.

Tesseract was not used: it is not installed here, it would be a system dependency, and it misreads tiny
bitmap fonts; this reader is exact on every image the toolbox generates (see tests/test_toolbox.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from tracer1.envs.toolbox.font import CELL_H, CELL_W, MAX_SCALE, glyphs
from tracer1.envs.toolbox.vision import Components, components, to_array

MAX_INK_SHARE = 0.5     # a colour covering more of the image than this is background, not ink
MAX_COLOURS = 64        # candidate ink colours tried, most frequent first


@dataclass(frozen=True)
class TextSegment:
    text: str
    box: tuple[int, int, int, int]   # pixels, x2/y2 exclusive
    scale: int
    colour: tuple[int, int, int]


@lru_cache(maxsize=1)
def _templates() -> dict[bytes, str]:
    return {np.packbits(g, axis=1).tobytes(): ch for ch, g in glyphs().items()}


def _run_gcd(values) -> int:
    values = np.asarray(values, np.int64)
    return int(np.gcd.reduce(values)) if values.size else 0


def _component_scale(comps: Components, k: int) -> int:
    """gcd of the component's horizontal and vertical run lengths and offsets: its pixel scale (or a multiple)."""
    box = (int(comps.x0[k]), int(comps.y0[k]), int(comps.x1[k]), int(comps.y1[k]))
    mask = comps.mask_of(k, box)
    g = 0
    for m in (mask, mask.T):
        padded = np.zeros((m.shape[0], m.shape[1] + 2), np.int8)
        padded[:, 1:-1] = m
        d = np.diff(padded, axis=1)
        _, starts = np.nonzero(d == 1)
        _, ends = np.nonzero(d == -1)
        g = math.gcd(g, _run_gcd(np.concatenate([ends - starts, starts])))
        if g == 1:
            return 1
    return g or 1


def _read_cells(bitmap: np.ndarray) -> str | None:
    """The text of a scale-1 bitmap whose first ink column is the first glyph's first ink column, or None."""
    templates = _templates()
    h, w = bitmap.shape
    best = None
    for dy in range(0, CELL_H - h + 1):
        for dx in range(0, CELL_W - 1):
            n = -(-(dx + w) // CELL_W)
            canvas = np.zeros((CELL_H, n * CELL_W), bool)
            canvas[dy:dy + h, dx:dx + w] = bitmap
            cells = canvas.reshape(CELL_H, n, CELL_W).transpose(1, 0, 2)
            keys = np.packbits(cells, axis=2).reshape(n, CELL_H)
            chars = []
            for key in keys:
                ch = templates.get(key.tobytes())
                if ch is None:
                    break
                chars.append(ch)
            else:
                text = "".join(chars).strip()
                score = sum(2 if c.isalnum() else 1 for c in text if c != " ")
                if best is None or score > best[0]:
                    best = (score, text)
    return None if best is None else best[1]


def _recognise(comps: Components, members: list[int], scales: list[int]) -> tuple[str, int] | None:
    x0 = int(min(comps.x0[k] for k in members))
    y0 = int(min(comps.y0[k] for k in members))
    x1 = int(max(comps.x1[k] for k in members))
    y1 = int(max(comps.y1[k] for k in members))
    mask = comps.mask_of(members, (x0, y0, x1, y1))
    scale = _run_gcd(scales) or 1
    for t in range(min(scale, MAX_SCALE), 0, -1):
        if scale % t or mask.shape[0] % t or mask.shape[1] % t or mask.shape[0] // t > CELL_H:
            continue
        small = mask[::t, ::t]
        if not np.array_equal(small.repeat(t, axis=0).repeat(t, axis=1), mask):
            continue
        text = _read_cells(small)
        if text:
            return text, t
    return None


def _segments_of_colour(mask: np.ndarray, colour: tuple[int, int, int]) -> list[TextSegment]:
    comps = components(mask)
    widths = comps.x1 - comps.x0
    heights = comps.y1 - comps.y0
    small = np.nonzero((heights <= CELL_H * MAX_SCALE) & (widths <= (CELL_W - 1) * MAX_SCALE))[0]
    if not len(small):
        return []
    scale = {int(k): _component_scale(comps, int(k)) for k in small}
    order = sorted(scale, key=lambda k: (comps.y0[k], comps.x0[k]))
    parent = {k: k for k in order}

    def find(k):
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for i, a in enumerate(order):
        for b in order[i + 1:]:
            if comps.y0[b] > comps.y1[a] + 2 * MAX_SCALE:
                break
            s = math.gcd(scale[a], scale[b])
            vgap = max(comps.y0[b] - comps.y1[a], comps.y0[a] - comps.y1[b])
            hgap = max(comps.x0[b] - comps.x1[a], comps.x0[a] - comps.x1[b])
            if vgap <= 2 * s and hgap <= 2 * CELL_W * s + s:
                ra, rb = find(a), find(b)
                if ra != rb:
                    parent[rb] = ra
    groups: dict[int, list[int]] = {}
    for k in order:
        groups.setdefault(find(k), []).append(k)
    pieces = []   # [members, reading or None, box, scale gcd]
    for members in groups.values():
        pieces += _pieces(comps, members, scale)
    # Punctuation that shares no rows with its neighbours ('^' then '.') is a group of its own: join groups
    # that fit in one line height together and are close, when the joined group reads.
    merged = True
    while merged:
        merged = False
        pieces.sort(key=lambda p: (p[2][0], p[2][1]))
        for i, a in enumerate(pieces):
            for j in range(i + 1, len(pieces)):
                b = pieces[j]
                s = math.gcd(a[3], b[3])
                hgap = b[2][0] - a[2][2]
                if hgap > 2 * CELL_W * s + s:
                    continue
                span = max(a[2][3], b[2][3]) - min(a[2][1], b[2][1])
                if span > CELL_H * s or hgap < -CELL_W * s:
                    continue
                joined = _piece(comps, a[0] + b[0], scale)
                if joined[1] is not None:
                    pieces[i] = joined
                    del pieces[j]
                    merged = True
                    break
            if merged:
                break
    segments = []
    for members, read, box, _ in pieces:
        if read is not None:
            text, t = read
            segments.append(TextSegment(" ".join(text.split()), box, t, colour))
    return segments


def _pieces(comps: Components, members: list[int], scale: dict[int, int], depth: int = 0) -> list[list]:
    """The group read as one piece; when that fails, split at its widest horizontal gap and read both sides
    (text drawn on two grids, e.g. a name and a right-aligned price, can sit closer than a word gap)."""
    piece = _piece(comps, members, scale)
    if piece[1] is not None or len(members) < 2 or depth > 32:
        return [piece]
    order = sorted(members, key=lambda k: comps.x0[k])
    best, cut, right = 0, None, comps.x1[order[0]]
    for i in range(1, len(order)):
        gap = comps.x0[order[i]] - right
        if gap > best:
            best, cut = gap, i
        right = max(right, comps.x1[order[i]])
    if cut is None:
        return [piece]
    return (_pieces(comps, order[:cut], scale, depth + 1) + _pieces(comps, order[cut:], scale, depth + 1))


def _piece(comps: Components, members: list[int], scale: dict[int, int]) -> list:
    box = (int(min(comps.x0[k] for k in members)), int(min(comps.y0[k] for k in members)),
           int(max(comps.x1[k] for k in members)), int(max(comps.y1[k] for k in members)))
    scales = [scale[k] for k in members]
    return [members, _recognise(comps, members, scales), box, _run_gcd(scales) or 1]


def read_segments(image) -> list[TextSegment]:
    """Every run of text in the image, in no particular order."""
    pixels = to_array(image)
    h, w, _ = pixels.shape
    keys = (pixels[:, :, 0].astype(np.int32) << 16) | (pixels[:, :, 1].astype(np.int32) << 8) | pixels[:, :, 2]
    values, inverse, counts = np.unique(keys.reshape(-1), return_inverse=True, return_counts=True)
    inverse = inverse.reshape(h, w)
    candidates = [i for i in np.argsort(-counts, kind="stable")
                  if 3 <= counts[i] <= MAX_INK_SHARE * h * w][:MAX_COLOURS]
    segments = []
    for i in candidates:
        v = int(values[i])
        segments += _segments_of_colour(inverse == i, ((v >> 16) & 255, (v >> 8) & 255, v & 255))
    return segments


def read_lines(image) -> list[str]:
    """The text of the image, one string per line, top to bottom; segments on a line are joined left to right
    with one space."""
    lines: list[list[TextSegment]] = []
    for seg in sorted(read_segments(image), key=lambda s: (s.box[1], s.box[0])):
        centre = (seg.box[1] + seg.box[3]) / 2
        for line in lines:
            top, bottom = line[0].box[1], line[0].box[3]
            if top <= centre < bottom:
                line.append(seg)
                break
        else:
            lines.append([seg])
    return [" ".join(s.text for s in sorted(line, key=lambda s: s.box[0])) for line in lines]


def ocr(image) -> str:
    """All text in the image, one line per line of text (see `read_lines`)."""
    return "\n".join(read_lines(image))
