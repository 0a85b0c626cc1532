"""One trajectory step drawn as a picture: the screenshot with the target box and the grounded point on it, and
beside it the planner's raw plan, the executed step and the feedback; green when the step was right, red when
it was wrong, grey when it was not judged."""

from __future__ import annotations

import textwrap
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from tracer1.report.trajectories import TrajectoryStep

RIGHT, WRONG, UNJUDGED = (26, 152, 80), (215, 48, 39), (110, 110, 120)
TARGET = (255, 176, 0)              # the label's box: amber, apart from both verdict colours
PANEL_BG, INK, MUTED = (248, 248, 250), (30, 30, 35), (105, 105, 115)
SCREEN_HEIGHT = 560                 # screenshots are scaled to about this height (small ones at most 3x)
PANEL_WIDTH = 470
PLAN_LINES = 18                     # a longer plan is cut with an ellipsis (the HTML has the whole text)

# Fonts tried in order (Debian's DejaVu and Liberation); Pillow's own scalable font when none is there.
MONO_FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
              "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf")
SANS_FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
              "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf")
BOLD_FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
              "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf")


@lru_cache(maxsize=None)
def font(kind: str, size: int) -> ImageFont.FreeTypeFont:
    for path in {"mono": MONO_FONTS, "sans": SANS_FONTS, "bold": BOLD_FONTS}[kind]:
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def verdict(correct: bool | None) -> tuple[tuple[int, int, int], str]:
    if correct is None:
        return UNJUDGED, "not judged"
    return (RIGHT, "correct") if correct else (WRONG, "wrong")


def _placeholder(step: TrajectoryStep) -> Image.Image:
    """A grey screen big enough for the point and box, for steps without a screenshot (text-only samples)."""
    xs = [v for v in (step.point or ())[0::2]] + [v for v in (step.target_box or ())[0::2]]
    ys = [v for v in (step.point or ())[1::2]] + [v for v in (step.target_box or ())[1::2]]
    width, height = max([360, *(x + 20 for x in xs)]), max([640, *(y + 20 for y in ys)])
    image = Image.new("RGB", (int(width), int(height)), (228, 228, 232))
    draw = ImageDraw.Draw(image)
    draw.text((int(width) // 2, int(height) // 2), "no screenshot", fill=MUTED, font=font("sans", 18), anchor="mm")
    return image


def _marker(draw: ImageDraw.ImageDraw, x: float, y: float, colour, radius: int = 10) -> None:
    """A ringed crosshair: visible on light and dark screens alike."""
    for r, fill, width in ((radius + 2, (255, 255, 255), 5), (radius, colour, 3)):
        draw.ellipse((x - r, y - r, x + r, y + r), outline=fill, width=width)
    for dx, dy in ((1, 0), (0, 1)):
        draw.line((x - dx * (radius + 7), y - dy * (radius + 7), x + dx * (radius + 7), y + dy * (radius + 7)),
                  fill=colour, width=2)
    draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)


def draw_screen(screenshot: Image.Image | None, step: TrajectoryStep) -> Image.Image:
    """The screenshot, scaled, with the target box (amber) and the grounded point (verdict colour) on it."""
    base = (screenshot if screenshot is not None else _placeholder(step)).convert("RGB")
    scale = min(SCREEN_HEIGHT / base.height, 3.0)
    size = (max(1, round(base.width * scale)), max(1, round(base.height * scale)))
    image = base.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    colour, _ = verdict(step.correct)
    if step.target_box is not None:
        x0, y0, x1, y1 = (v * scale for v in step.target_box)
        draw.rectangle((x0, y0, x1, y1), fill=(*TARGET, 50), outline=(*TARGET, 255), width=3)
        tag = font("bold", 12)
        label_y = y0 - 16 if y0 >= 16 else y1 + 2
        draw.rectangle((x0, label_y, x0 + tag.getlength("target") + 8, label_y + 15), fill=(*TARGET, 230))
        draw.text((x0 + 4, label_y + 1), "target", fill=INK, font=tag)
    if step.point is not None:
        x, y = (v * scale for v in step.point)
        if step.target_box is not None and step.correct is False:  # a miss: show how far from the target
            bx0, by0, bx1, by1 = (v * scale for v in step.target_box)
            draw.line((x, y, (bx0 + bx1) / 2, (by0 + by1) / 2), fill=(*WRONG, 170), width=2)
        _marker(draw, x, y, (*colour, 255))
    return Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")


def _wrapped(text: str, width_chars: int, max_lines: int) -> list[str]:
    lines: list[str] = []
    for raw in text.strip().splitlines() or [""]:
        lines += textwrap.wrap(raw, width_chars, subsequent_indent="  ", break_long_words=True) or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines - 1] + [f"… ({len(lines) - max_lines + 1} more lines)"]
    return lines


def draw_panel(step: TrajectoryStep, height: int, title: str, instruction: str | None = None) -> Image.Image:
    """The text beside the screen: verdict bar, the instruction, the raw plan, the executed step, the feedback."""
    panel = Image.new("RGB", (PANEL_WIDTH, height), PANEL_BG)
    draw = ImageDraw.Draw(panel)
    colour, word = verdict(step.correct)
    draw.rectangle((0, 0, PANEL_WIDTH, 34), fill=colour)
    draw.text((12, 17), f"{title}  ·  {word}", fill=(255, 255, 255), font=font("bold", 16), anchor="lm")
    mono, sans, bold = font("mono", 13), font("sans", 13), font("bold", 13)
    chars = int((PANEL_WIDTH - 28) // mono.getlength("M"))
    y = 46

    def section(heading: str, lines: list[str], face, ink=INK) -> None:
        nonlocal y
        if y > height - 30:
            return
        draw.text((12, y), heading, fill=MUTED, font=bold)
        y += 19
        for line in lines:
            if y > height - 18:
                draw.text((16, y), "…", fill=ink, font=face)
                y += 17
                return
            draw.text((16, y), line, fill=ink, font=face)
            y += 17
        y += 8

    if instruction:
        section("INSTRUCTION", _wrapped(instruction, chars, 3), sans)
    section("PLANNED (raw planner output)", _wrapped(step.plan or "(empty)", chars, PLAN_LINES), mono)
    section("EXECUTED", _wrapped(step.executed or "(nothing executed)", chars, 3), mono,
            ink=colour if step.executed else MUTED)
    legend = []
    if step.point is not None:
        legend.append(f"point ({step.point[0]:.0f}, {step.point[1]:.0f}) px")
    if step.target_box is not None:
        legend.append("target box ({:.0f}, {:.0f})–({:.0f}, {:.0f}) px".format(*step.target_box))
    if legend:
        section("WHERE", legend, sans)
    if step.feedback:
        section("FEEDBACK", _wrapped(step.feedback, chars, 5), sans)
    return panel


def annotate_step(screenshot: Image.Image | None, step: TrajectoryStep, title: str = "step",
                  instruction: str | None = None) -> Image.Image:
    """The screen (with box and point) and the text panel side by side, framed in the verdict colour."""
    screen = draw_screen(screenshot, step)
    height = max(screen.height, 300)
    panel = draw_panel(step, height, title, instruction)
    frame = 4
    out = Image.new("RGB", (screen.width + PANEL_WIDTH + 3 * frame, height + 2 * frame), verdict(step.correct)[0])
    out.paste(screen, (frame, frame))
    out.paste(panel, (screen.width + 2 * frame, frame))
    return out
