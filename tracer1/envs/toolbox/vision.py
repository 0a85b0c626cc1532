"""Image analysis for the toolbox's tools: connected components of a bool mask (8-connectivity) on numpy,
and the named colours and shapes that the shape scenes are drawn with and `count` detects.

Components are found from horizontal runs: each row's runs of set pixels are united with the overlapping
(or diagonally touching) runs of the row above by union-find, so the work grows with the number of runs, not
of pixels. No SciPy needed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

# The colours the generator draws shapes with (and `count` recognises), by name. Far apart on purpose.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 38, 38),
    "green": (22, 163, 74),
    "blue": (37, 99, 235),
    "yellow": (234, 179, 8),
    "orange": (249, 115, 22),
    "purple": (147, 51, 234),
    "black": (23, 23, 23),
    "pink": (236, 72, 153),
}
SHAPES = ("circle", "square", "triangle")
COLOUR_TOLERANCE = 24      # per channel, for a pixel to count as a named colour
MIN_SHAPE_AREA = 40        # pixels; smaller blobs are noise, not objects


def to_array(image) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array from a PIL image, an array (H, W, 3|4) or PNG/JPEG bytes."""
    if isinstance(image, (bytes, bytearray)):
        from PIL import Image

        image = Image.open(io.BytesIO(image))
    if hasattr(image, "convert") and hasattr(image, "size"):   # a PIL image
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"an image is (H, W, 3) pixels, not an array of shape {array.shape}")
    return np.ascontiguousarray(array[:, :, :3], dtype=np.uint8)


@dataclass
class Components:
    """The connected components of a mask. Component k has pixels in runs `ys[i], xs[i]:xe[i]` for the i with
    `labels[i] == k`; its box is (x0[k], y0[k], x1[k], y1[k]) with x1, y1 exclusive."""

    ys: np.ndarray
    xs: np.ndarray
    xe: np.ndarray
    labels: np.ndarray
    x0: np.ndarray
    y0: np.ndarray
    x1: np.ndarray
    y1: np.ndarray
    area: np.ndarray

    def __len__(self) -> int:
        return len(self.area)

    def __post_init__(self):
        self._order = np.argsort(self.labels, kind="stable")
        self._first = np.searchsorted(self.labels[self._order], np.arange(len(self.area) + 1)).tolist()

    def runs_of(self, ks) -> np.ndarray:
        """Indices of the runs of the components in `ks` (an int or an iterable of ints)."""
        if isinstance(ks, (int, np.integer)):
            return self._order[self._first[ks]:self._first[ks + 1]]
        parts = [self._order[self._first[k]:self._first[k + 1]] for k in ks]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def mask_of(self, ks, box: tuple[int, int, int, int]) -> np.ndarray:
        """The pixels of components `ks` inside `box` (x0, y0, x1, y1) as a bool array."""
        bx0, by0, bx1, by1 = box
        out = np.zeros((by1 - by0, bx1 - bx0), bool)
        runs = self.runs_of(ks)
        for y, x0, x1 in zip((self.ys[runs] - by0).tolist(), (np.maximum(self.xs[runs], bx0) - bx0).tolist(),
                             (np.minimum(self.xe[runs], bx1) - bx0).tolist()):
            out[y, x0:x1] = True
        return out


def components(mask: np.ndarray) -> Components:
    """Connected components (8-connectivity) of a bool (H, W) mask."""
    mask = np.asarray(mask, bool)
    h, w = mask.shape
    padded = np.zeros((h, w + 2), np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    ys, xs = np.nonzero(edges == 1)
    _, xe = np.nonzero(edges == -1)
    n = len(xs)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if n:
        row_start = np.searchsorted(ys, np.arange(h + 1)).tolist()
        xs_l, xe_l = xs.tolist(), xe.tolist()
        for y in range(1, h):
            a, a_end = row_start[y - 1], row_start[y]
            b, b_end = row_start[y], row_start[y + 1]
            while a < a_end and b < b_end:
                # runs [xs, xe) touch (8-connectivity) when each starts no later than the other's end
                if xs_l[a] <= xe_l[b] and xs_l[b] <= xe_l[a]:
                    ra, rb = find(a), find(b)
                    if ra != rb:
                        parent[max(ra, rb)] = min(ra, rb)
                if xe_l[a] < xe_l[b]:
                    a += 1
                else:
                    b += 1
    roots = np.array([find(i) for i in range(n)], dtype=np.int64)
    _, labels = np.unique(roots, return_inverse=True)
    labels = labels.reshape(-1)
    k = int(labels.max()) + 1 if n else 0
    x0 = np.full(k, w, np.int64)
    y0 = np.full(k, h, np.int64)
    x1 = np.zeros(k, np.int64)
    y1 = np.zeros(k, np.int64)
    area = np.zeros(k, np.int64)
    np.minimum.at(x0, labels, xs)
    np.minimum.at(y0, labels, ys)
    np.maximum.at(x1, labels, xe)
    np.maximum.at(y1, labels, ys + 1)
    np.add.at(area, labels, xe - xs)
    return Components(ys, xs, xe, labels, x0, y0, x1, y1, area)


# --- shapes ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shape:
    colour: str
    shape: str           # circle, square, triangle, or "blob" when it is none of them
    box: tuple[int, int, int, int]
    area: int


def classify(area: int, width: int, height: int) -> str:
    """A solid shape's kind from how much of its box it fills: a square fills all of it, a circle pi/4, an
    upright or upside-down triangle half."""
    fill = area / float(width * height)
    aspect = width / float(height)
    if 0.75 <= aspect <= 1.33 and fill >= 0.9:
        return "square"
    if 0.8 <= aspect <= 1.25 and 0.68 <= fill < 0.9:
        return "circle"
    if 0.6 <= aspect <= 1.7 and 0.4 <= fill < 0.62:
        return "triangle"
    return "blob"


def named_colour_map(image) -> tuple[np.ndarray, list[str]]:
    """Each pixel's named colour as an index into the returned names (-1: none): a pixel is a named colour
    when every channel is within COLOUR_TOLERANCE of it."""
    pixels = to_array(image)
    h, w, _ = pixels.shape
    keys = (pixels[:, :, 0].astype(np.int32) << 16) | (pixels[:, :, 1].astype(np.int32) << 8) | pixels[:, :, 2]
    values, inverse = np.unique(keys.reshape(-1), return_inverse=True)
    palette = np.stack([(values >> 16) & 255, (values >> 8) & 255, values & 255], axis=1)
    names = list(COLOURS)
    reference = np.array([COLOURS[n] for n in names])
    distance = np.abs(palette[:, None, :] - reference[None, :, :]).max(axis=2)       # (colours, names)
    lookup = np.where(distance.min(axis=1) <= COLOUR_TOLERANCE, distance.argmin(axis=1), -1)
    return lookup[inverse.reshape(-1)].reshape(h, w), names


def detect_shapes(image) -> list[Shape]:
    """Every solid shape drawn in one of the named `COLOURS`, with its kind."""
    index, names = named_colour_map(image)
    found = []
    for k in np.unique(index):
        if k < 0:
            continue
        mask = index == k
        if mask.sum() < MIN_SHAPE_AREA:
            continue
        comps = components(mask)
        for c in range(len(comps)):
            if comps.area[c] < MIN_SHAPE_AREA:
                continue
            w, h = int(comps.x1[c] - comps.x0[c]), int(comps.y1[c] - comps.y0[c])
            found.append(Shape(names[k], classify(int(comps.area[c]), w, h),
                               (int(comps.x0[c]), int(comps.y0[c]), int(comps.x1[c]), int(comps.y1[c])),
                               int(comps.area[c])))
    found.sort(key=lambda s: (s.box[1], s.box[0]))
    return found
