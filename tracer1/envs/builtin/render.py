"""Drawing a `Layout` with PIL: every widget draws inside its own box and nowhere else.

Text uses PIL's built-in font (`ImageFont.load_default(size)`, no downloads). Rendered text is cached as
masks and pasted, so a frame costs a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from tracer1.envs.builtin.ui import Layout, Metrics, Widget


@dataclass(frozen=True)
class Theme:
    bg: tuple
    fg: tuple
    muted: tuple
    line: tuple
    bar: tuple
    surface: tuple
    accent: tuple
    on_accent: tuple
    off: tuple


LIGHT = Theme(bg=(250, 250, 250), fg=(33, 33, 33), muted=(110, 110, 118), line=(222, 222, 226),
              bar=(236, 238, 244), surface=(255, 255, 255), accent=(25, 103, 210), on_accent=(255, 255, 255),
              off=(170, 170, 176))
DARK = Theme(bg=(20, 20, 24), fg=(236, 236, 240), muted=(160, 160, 168), line=(58, 58, 64),
             bar=(36, 36, 44), surface=(44, 44, 52), accent=(120, 170, 255), on_accent=(16, 24, 40),
             off=(96, 96, 104))

ICON_COLORS = [(66, 133, 244), (219, 68, 55), (15, 157, 88), (244, 160, 0), (171, 71, 188), (0, 172, 193),
               (255, 112, 67), (92, 107, 192), (124, 179, 66), (236, 64, 122), (120, 144, 156), (141, 110, 99)]


@lru_cache(maxsize=64)
def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=1 << 14)
def _mask(text: str, size: int) -> tuple[Image.Image, int, int, int]:
    """The text's ink as a mask, the ink's offset from the pen (left, top) and the width it takes: from the
    pen to the last pixel or the advance, whichever is further, with ink left of the pen moved right of it."""
    f = font(size)
    left, top, right, bottom = f.getbbox(text)
    mask = Image.new("L", (max(1, right - left), max(1, bottom - top)))
    ImageDraw.Draw(mask).text((-left, -top), text, font=f, fill=255)
    shift = max(0, -left)
    return mask, left + shift, top, max(right, int(round(f.getlength(text)))) + shift


def text_width(text: str, size: int) -> int:
    """The pixels `text` takes horizontally (ink included) at font `size`."""
    return _mask(text, size)[3] if text else 0


@lru_cache(maxsize=64)
def _line_height(size: int) -> int:
    ascent, descent = font(size).getmetrics()
    return ascent + descent


@lru_cache(maxsize=1 << 14)
def fit(text: str, size: int, max_width: int) -> str:
    """`text`, cut and ended with "…" when wider than `max_width` pixels."""
    text = " ".join(text.split())
    if text_width(text, size) <= max_width:
        return text
    while text and text_width(text + "…", size) > max_width:
        text = text[:-1]
    return (text.rstrip() + "…") if text else ""


def draw_text(im: Image.Image, x: int, cy: int, text: str, size: int, color: tuple, max_width: int,
              align: str = "left") -> None:
    """Draw one line of text vertically centred on `cy`, starting at `x` (or centred on `x`, or ending at `x`),
    all of its ink within `max_width` pixels."""
    text = fit(text, size, max(0, max_width))
    if not text:
        return
    mask, left, top, width = _mask(text, size)
    if align == "center":
        x -= width // 2
    elif align == "right":
        x -= width
    y0 = cy - _line_height(size) // 2
    im.paste(color, (x + left, y0 + top), mask)


def render(layout: Layout, dark: bool = False, skip: int | None = None) -> Image.Image:
    """The screenshot of `layout`. `skip` leaves out the widget at that index of `layout.widgets` (tests use it
    to check that each widget draws only inside its box)."""
    t = DARK if dark else LIGHT
    m = Metrics.of(layout.width, layout.height)
    W, H = layout.width, layout.height
    im = Image.new("RGB", (W, H), t.bg)
    d = ImageDraw.Draw(im)
    # status bar and app bar band (chrome: no elements)
    draw_text(im, m.pad, m.status_h // 2, "9:41", m.font("small"), t.muted, W // 3)
    d.rectangle((W - m.pad - m(22), m(8), W - m.pad, m.status_h - m(8)), outline=t.muted)
    if layout.appbar:
        d.rectangle((0, m.status_h, W - 1, m.status_h + m.appbar_h - 1), fill=t.bar)
    d.rectangle((0, H - m.nav_h, W - 1, H - 1), fill=t.bar)
    exposed = [w for i, w in enumerate(layout.widgets) if i != skip]
    if layout.dialog:
        for w in layout.backdrop:
            _draw(im, d, w, t, m)
        im = Image.blend(im, Image.new("RGB", (W, H), (0, 0, 0)), 0.45)
        d = ImageDraw.Draw(im)
        d.rectangle((0, H - m.nav_h, W - 1, H - 1), fill=t.bar)
    for w in exposed:
        _draw(im, d, w, t, m)
    return im


def _draw(im: Image.Image, d: ImageDraw.ImageDraw, w: Widget, t: Theme, m: Metrics) -> None:
    x1, y1, x2, y2 = w.box
    cy = (y1 + y2) // 2
    body, small = m.font("body"), m.font("small")
    pad = m.pad
    k = w.kind
    if k == "heading":
        draw_text(im, x1, cy, w.text, m.font("title"), t.fg, x2 - x1)
    elif k == "action":
        d.rounded_rectangle((x1, y1, x2 - 1, y2 - 1), radius=m(6), outline=t.accent)
        draw_text(im, (x1 + x2) // 2, cy, w.text, body, t.accent, x2 - x1 - m(8), "center")
    elif k == "section":
        draw_text(im, x1, y2 - m(12), w.text.upper(), small, t.accent, x2 - x1)
    elif k in ("text", "stepper"):
        if w.value is None:
            draw_text(im, x1, cy, w.text, body, t.fg, x2 - x1)
        else:
            draw_text(im, x1, y1 + m(17), w.text, small, t.muted, x2 - x1)
            draw_text(im, x1, y1 + m(38), w.value, body, t.accent if k == "stepper" else t.fg, x2 - x1)
    elif k in ("item", "nav"):
        right = x2 - pad
        if k == "nav":
            cx = right - m(4)
            d.line((cx - m(5), cy - m(6), cx, cy, cx - m(5), cy + m(6)), fill=t.muted, width=max(1, m(2)))
            right -= m(16)
        if w.value:
            vw = min(text_width(w.value, small), (right - x1) // 2)
            draw_text(im, right, cy, w.value, small, t.muted, vw, "right")
            right -= vw + m(12)
        if w.sub:
            draw_text(im, x1 + pad, y1 + m(22), w.text, body, t.fg, right - x1 - pad)
            draw_text(im, x1 + pad, y1 + m(44), w.sub, small, t.muted, right - x1 - pad)
        else:
            draw_text(im, x1 + pad, cy, w.text, body, t.fg, right - x1 - pad)
        d.line((x1 + pad, y2 - 1, x2 - 1, y2 - 1), fill=t.line)
    elif k == "switch":
        tw, th = m(36), m(20)
        tx = x2 - pad - tw
        on = bool(w.checked)
        d.rounded_rectangle((tx, cy - th // 2, tx + tw, cy + th // 2), radius=th // 2, fill=t.accent if on else t.off)
        kx = tx + tw - th // 2 if on else tx + th // 2
        d.ellipse((kx - th // 2 + m(3), cy - th // 2 + m(3), kx + th // 2 - m(3), cy + th // 2 - m(3)),
                  fill=(255, 255, 255))
        draw_text(im, x1 + pad, cy, w.text, body, t.fg, tx - x1 - 2 * pad)
        d.line((x1 + pad, y2 - 1, x2 - 1, y2 - 1), fill=t.line)
    elif k in ("radio", "checkbox"):
        r = m(9)
        cx = x1 + pad + r
        if k == "radio":
            d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=t.accent if w.checked else t.muted, width=max(1, m(2)))
            if w.checked:
                d.ellipse((cx - r // 2, cy - r // 2, cx + r // 2, cy + r // 2), fill=t.accent)
        else:
            d.rectangle((cx - r, cy - r, cx + r, cy + r), outline=t.accent if w.checked else t.muted,
                        width=max(1, m(2)), fill=t.accent if w.checked else None)
            if w.checked:
                d.line((cx - r // 2, cy, cx - m(1), cy + r // 2, cx + r // 2, cy - r // 2), fill=(255, 255, 255),
                       width=max(1, m(2)))
        draw_text(im, cx + r + m(12), cy, w.text, body, t.fg, x2 - cx - r - m(12) - pad)
    elif k == "textbox":
        d.rounded_rectangle((x1, y1, x2 - 1, y2 - 1), radius=m(6), fill=t.surface,
                            outline=t.accent if w.focused else t.muted, width=max(1, m(2) if w.focused else 1))
        draw_text(im, x1 + m(12), y1 + m(14), w.text, small, t.accent if w.focused else t.muted, x2 - x1 - m(24))
        if w.value:
            draw_text(im, x1 + m(12), y1 + m(36), w.value, body, t.fg, x2 - x1 - m(24))
        if w.focused:
            cx = x1 + m(12) + (text_width(fit(w.value or "", body, x2 - x1 - m(24)), body) if w.value else 0) + 1
            d.line((cx, y1 + m(28), cx, y1 + m(44)), fill=t.accent, width=max(1, m(1)))
    elif k == "button":
        d.rounded_rectangle((x1, y1, x2 - 1, y2 - 1), radius=m(8), fill=t.accent if w.enabled else t.off)
        draw_text(im, (x1 + x2) // 2, cy, w.text, body, t.on_accent, x2 - x1 - m(12), "center")
    elif k == "small":
        d.rounded_rectangle((x1, y1, x2 - 1, y2 - 1), radius=m(6), outline=t.accent)
        draw_text(im, (x1 + x2) // 2, cy, w.label or w.text, small, t.accent, x2 - x1 - m(8), "center")
    elif k == "round":
        d.ellipse((x1, y1, x2 - 1, y2 - 1), outline=t.accent, width=max(1, m(2)))
        cx, h, th = (x1 + x2) // 2, m(8), max(1, m(1))
        d.rectangle((cx - h, cy - th, cx + h, cy + th), fill=t.accent)
        if w.label == "+":
            d.rectangle((cx - th, cy - h, cx + th, cy + h), fill=t.accent)
    elif k == "icon":
        size = min(x2 - x1, y2 - y1) - m(28)
        ix = (x1 + x2 - size) // 2
        color = ICON_COLORS[sum(map(ord, w.text)) % len(ICON_COLORS)]
        d.rounded_rectangle((ix, y1 + m(4), ix + size, y1 + m(4) + size), radius=m(12), fill=color)
        draw_text(im, ix + size // 2, y1 + m(4) + size // 2, w.text[:1], m.font("icon"), (255, 255, 255), size,
                  "center")
        label_cy = min(y2 - m(11), y2 - (_line_height(small) + 1) // 2 - 1)
        draw_text(im, (x1 + x2) // 2, label_cy, w.text, small, t.fg, x2 - x1 - m(4), "center")
    elif k == "nav_back":
        cx, r = (x1 + x2) // 2, m(8)
        d.polygon([(cx + r, cy - r), (cx + r, cy + r), (cx - r, cy)], outline=t.fg)
    elif k == "nav_home":
        cx, r = (x1 + x2) // 2, m(8)
        d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=t.fg, width=max(1, m(2)))
    elif k == "dialog":
        d.rounded_rectangle((x1, y1, x2 - 1, y2 - 1), radius=m(12), fill=t.surface)
        draw_text(im, x1 + m(24), y1 + m(36), w.text, m.font("title"), t.fg, x2 - x1 - m(48))
    elif k == "dbutton":
        d.rounded_rectangle((x1, y1, x2 - 1, y2 - 1), radius=m(8), fill=t.bar)
        draw_text(im, (x1 + x2) // 2, cy, w.text, body, t.accent, x2 - x1 - m(8), "center")
    else:  # pragma: no cover - every kind is drawn above
        raise ValueError(f"no drawing for widget kind {k!r}")
