"""Reading a grounding model's answer in UI-TARS's format (REFERENCE.md, "UI-TARS as the frozen executor").

    parse_grounding_answer("Thought: The Save button is at the bottom.\\nAction: click(start_box='(198,612)')",
                           size=(360, 640))
    # GroundingAnswer(point=(544, 950), fields={"action": "click", ...}, problems=[])

Accepted: `Thought:` / `Reflection:` / `Action_Summary:` prefixes before `Action:`; calls with quoted or bare
arguments; points written `(x,y)`, `<|box_start|>(x,y)<|box_end|>` (the special tokens may have been removed
by decoding), `<point>x y</point>`, boxes `[x1,y1,x2,y2]` / `(x1,y1,x2,y2)` / `<bbox>x1 y1 x2 y2</bbox>` (their
centre is the point); and a bare coordinate answer ("(x,y)", "[x1, y1, x2, y2]", "x, y") for grounding prompts
that ask for the point only. UI-TARS's actions map onto the plan language: click / left_single / left_double /
right_single -> click, long_press, type(content) -> type(text), scroll(direction), hotkey(key='ctrl c') /
press(key) -> press(key="ctrl+c"), press_home / press_back -> press(home / back), open_app(app_name),
wait, finished(content) -> answer(text) (finish when empty), call_user -> finish(infeasible).

Coordinates: UI-TARS-1.5 writes absolute pixels of the smart-resized screenshot (`point_format=
"smart-resized-pixels"`, x_original = x / resized_width * width); UI-TARS v1 writes 0..1000 (`"0-1000"`). Both
are mapped onto tracer1's 0..1000 grid of the original screenshot; values outside the image are clamped and
reported. The parser never raises: what it cannot read is a problem, and `point` is None when no point was read.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from tracer1.plan import DIRECTIONS, GRID, Point, from_pixels, smart_resize
from tracer1.plan.coords import SMART_RESIZE_FACTOR, UITARS_MAX_PIXELS, UITARS_MIN_PIXELS

POINT_FORMATS = ("smart-resized-pixels", "0-1000")
MAX_ANSWER_CHARS = 16_000  # a grounding answer is a line or two; a runaway one is read this far

# UI-TARS action -> plan-language action (None: no equivalent; its point is still read)
ACTION_MAP: dict[str, str | None] = {
    "click": "click", "left_single": "click", "left_double": "click", "right_single": "click", "tap": "click",
    "long_press": "long_press", "type": "type", "scroll": "scroll",
    "hotkey": "press", "press": "press", "keydown": "press", "press_home": "press", "press_back": "press",
    "press_recents": "press", "open_app": "open_app", "wait": "wait", "finished": "finish", "call_user": "finish",
    "drag": None, "select": None, "keyup": None, "mouse_down": None, "mouse_up": None, "move_to": None,
}
_FIXED_KEYS = {"press_home": "home", "press_back": "back", "press_recents": "recents"}
_KEY_NAMES = {"arrowleft": "left", "arrowright": "right", "arrowup": "up", "arrowdown": "down", "return": "enter",
              "esc": "escape", "control": "ctrl", "page_up": "pageup", "page_down": "pagedown"}
# argument names that hold the place an action acts at, in order of preference
_POINT_ARGS = ("start_box", "point", "start_point", "box", "position", "coordinate", "coordinates", "xy")
_END_ARGS = ("end_box", "end_point")

_NUM = r"-?\d+(?:\.\d+)?"
_NUMBER = re.compile(_NUM)
# A name starts only where a word starts (else each letter of a long word would start a scan: quadratic).
_CALL = re.compile(r"(?<![A-Za-z0-9_])([A-Za-z_][A-Za-z0-9_]{0,39})\s*\(")
_KEYWORD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*")
_ACTION = re.compile(r"\bAction\s*:\s*")
_THOUGHT = re.compile(r"\b(?:Thought|Reflection|Action_Summary)\s*:\s*(.*?)(?=\bAction\s*:|\Z)", re.S)
_NOISE = re.compile(r"\[EOS\]|<\|im_end\|>|<\|endoftext\|>|```[a-z]*")
_BOX_TOKENS = re.compile(r"<\|box_start\|>|<\|box_end\|>|</?point>|</?bbox>")
_COORDS = re.compile(  # a coordinate group in free text: <point>x y</point>, <bbox>...</bbox>, (x,y), [x1,y1,x2,y2]
    rf"<point>\s*({_NUM})[\s,]+({_NUM})\s*</point>"
    rf"|<bbox>\s*({_NUM})[\s,]+({_NUM})[\s,]+({_NUM})[\s,]+({_NUM})\s*</bbox>"
    rf"|[\[(]\s*({_NUM})\s*,\s*({_NUM})\s*(?:,\s*({_NUM})\s*,\s*({_NUM})\s*)?[\])]")
_BARE_PAIR = re.compile(rf"\A\s*({_NUM})\s*[,\s]\s*({_NUM})\s*\Z")
_VALUE_END = re.compile(r"\s*(?:[,)]|\Z)")
_UNESCAPES = {"n": "\n", "t": "\t"}


class GroundingAnswer(NamedTuple):
    """What a grounding answer says: the point on the 0..1000 grid (None when none could be read), the action's
    fields, and the problems met.

    `fields`: `action` (plan-language name, or None), `model_action` (the name as written), `thought`, and
    when present `text`, `direction`, `key`, `app`, `status`, `box` (grid box when the answer gave a box) and
    `end_point` (drag)."""

    point: Point | None
    fields: dict[str, Any]
    problems: list[str]


class _Call(NamedTuple):
    name: str
    kwargs: dict[str, str]
    positional: list[str]
    closed: bool
    line_start: bool   # the call opens its line (prose such as "it is at (1,2)" does not)


def parse_grounding_answer(text: Any, size: tuple[int, int] | None = None,
                           point_format: str = "smart-resized-pixels", *, min_pixels: int = UITARS_MIN_PIXELS,
                           max_pixels: int = UITARS_MAX_PIXELS, factor: int = SMART_RESIZE_FACTOR
                           ) -> GroundingAnswer:
    """Read a UI-TARS-style answer (see the module docstring). `size` is the original screenshot's
    (width, height), needed for smart-resized pixels; `min_pixels`, `max_pixels` and `factor` must be those
    the image was resized with (Qwen2.5-VL: factor 28). Never raises."""
    fields: dict[str, Any] = {"action": None, "model_action": None, "thought": None}
    if not isinstance(text, str):
        return GroundingAnswer(None, fields, [f"answer is {type(text).__name__}, not text"])
    if point_format not in POINT_FORMATS:
        return GroundingAnswer(None, fields, [f"point_format {point_format!r} is not one of "
                                              f"{', '.join(POINT_FORMATS)}"])
    problems: list[str] = []
    if len(text) > MAX_ANSWER_CHARS:
        problems.append(f"answer is {len(text)} characters; read the first {MAX_ANSWER_CHARS}")
        text = text[:MAX_ANSWER_CHARS]
    text = _NOISE.sub("", text).strip()
    thought = _THOUGHT.search(text)
    if thought is not None:
        fields["thought"] = thought.group(1).strip()
    marker = _ACTION.search(text)
    if marker is not None:
        # Everything after the first "Action:" (a second "Action: ..." is a second action, counted below).
        region = _ACTION.sub("\n", text[marker.end():])
    else:
        region = text
        if thought is not None:
            problems.append("no 'Action:' after the thought; read the action from the whole answer")
    grid = _Grid(size, point_format, (factor, min_pixels, max_pixels), problems)
    calls = _find_calls(region)
    known = [c for c in calls if c.name.lower() in ACTION_MAP]
    for call in calls:
        if call.name.lower() not in ACTION_MAP and call.line_start:
            problems.append(f"unknown action {call.name!r}")
    if known:
        if len(known) > 1:
            problems.append(f"{len(known)} actions in the answer; used the first")
        point = _read_call(known[0], fields, grid, problems)
        return GroundingAnswer(point, fields, problems)
    point = _bare_point(region, fields, grid, problems)
    if point is None and not problems:
        problems.append("no action and no coordinates in the answer")
    elif point is None:
        problems.append("no point could be read from the answer")
    return GroundingAnswer(point, fields, problems)


# --- calls ------------------------------------------------------------------------------------------------

def _find_calls(text: str) -> list[_Call]:
    calls, pos = [], 0
    while (m := _CALL.search(text, pos)) is not None:
        kwargs, positional, end, closed = _read_args(text, m.end())
        line_start = not text[text.rfind("\n", 0, m.start()) + 1:m.start()].strip(" \t-*>`")
        calls.append(_Call(m.group(1), kwargs, positional, closed, line_start))
        pos = max(end, m.end())
    return calls


def _read_args(s: str, pos: int) -> tuple[dict[str, str], list[str], int, bool]:
    """The arguments of a call whose '(' ends at `pos`: keyword and positional values as text, where the
    call ends, and whether its ')' was found."""
    kwargs: dict[str, str] = {}
    positional: list[str] = []
    while True:
        while pos < len(s) and s[pos].isspace():
            pos += 1
        if pos >= len(s):
            return kwargs, positional, pos, False
        if s[pos] == ")":
            return kwargs, positional, pos + 1, True
        key = _KEYWORD.match(s, pos)
        if key is not None:
            pos = key.end()
        value, pos = _read_value(s, pos)
        if key is not None:
            kwargs.setdefault(key.group(1), value)
        else:
            positional.append(value)
        while pos < len(s) and s[pos].isspace():
            pos += 1
        if pos < len(s) and s[pos] == ",":
            pos += 1
        elif pos < len(s) and s[pos] == ")":
            return kwargs, positional, pos + 1, True
        else:  # junk after a value, or the end: the call is cut off here
            return kwargs, positional, pos, False


def _read_value(s: str, pos: int) -> tuple[str, int]:
    if pos < len(s) and s[pos] in "'\"":
        quote, j = s[pos], pos + 1
        while j < len(s):
            if s[j] == "\\":
                j += 2
                continue
            # A quote ends the value only where an argument may end: models write type(content='it's') unescaped.
            if s[j] == quote and _VALUE_END.match(s, j + 1):
                return _unescape(s[pos + 1:j]), j + 1
            j += 1
        return _unescape(s[pos + 1:].rstrip().rstrip(")").rstrip(quote)), len(s)
    depth, j = 0, pos
    while j < len(s):
        c = s[j]
        if c in "([":
            depth += 1
        elif c in ")]":
            if depth == 0:
                break
            depth -= 1
        elif c == "," and depth == 0:
            break
        j += 1
    return s[pos:j].strip(), j


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: _UNESCAPES.get(m.group(1), m.group(1)), value)


def _read_call(call: _Call, fields: dict[str, Any], grid: _Grid, problems: list[str]) -> Point | None:
    name = call.name.lower()
    action = ACTION_MAP[name]
    fields["model_action"], fields["action"] = call.name, action
    args = call.kwargs
    if not call.closed:
        problems.append(f"{call.name}(...) is not closed; read what was there")
    if action is None:
        problems.append(f"{call.name} has no plan-language equivalent; read its point only")
    if name == "type":
        fields["text"] = args.get("content", args.get("text", call.positional[0] if call.positional else ""))
    elif action == "scroll":
        direction = args.get("direction", "").strip().lower()
        if direction in DIRECTIONS:
            fields["direction"] = direction
        else:
            problems.append(f"scroll direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    elif name in _FIXED_KEYS:
        fields["key"] = _FIXED_KEYS[name]
    elif action == "press":
        key = args.get("key", args.get("hotkey", call.positional[0] if call.positional else ""))
        parts = [_KEY_NAMES.get(k, k) for k in re.split(r"[\s+]+", key.strip().lower()) if k]
        if parts:
            fields["key"] = "+".join(parts)
        else:
            problems.append(f"{call.name} names no key")
    elif action == "open_app":
        app = args.get("app_name", args.get("app", call.positional[0] if call.positional else "")).strip()
        if app:
            fields["app"] = app
        else:
            problems.append("open_app names no app")
    elif name == "finished":
        content = args.get("content", "").strip()
        if content:
            fields["action"], fields["text"] = "answer", content
        else:
            fields["status"] = "success"
    elif name == "call_user":
        fields["status"] = "infeasible"
    place = next((args[k] for k in _POINT_ARGS if k in args), None)
    if place is None and "x" in args and "y" in args:
        place = f"({args['x']}, {args['y']})"
    if place is None:
        place = next((p for p in call.positional if _NUMBER.search(_BOX_TOKENS.sub(" ", p))), None)
    end = next((args[k] for k in _END_ARGS if k in args), None)
    if end is not None:
        fields["end_point"] = grid.place(end, fields, "end")
    if place is None:
        if action in ("click", "long_press"):
            problems.append(f"{call.name} gives no point")
        return None
    return grid.place(place, fields)


def _bare_point(text: str, fields: dict[str, Any], grid: _Grid, problems: list[str]) -> Point | None:
    """A point from an answer without a call: the first coordinate group, or the whole answer "x, y"."""
    pair = _BARE_PAIR.match(text)
    if pair is not None:
        return grid.place(f"{pair.group(1)},{pair.group(2)}", fields)
    groups = list(_COORDS.finditer(text))
    if not groups:
        return None
    if len(groups) > 1:
        problems.append(f"{len(groups)} coordinate groups in the answer; used the first")
    return grid.place(groups[0].group(0), fields)


# --- coordinates ------------------------------------------------------------------------------------------

class _Grid:
    """Maps the model's numbers onto the 0..1000 grid of the original screenshot."""

    def __init__(self, size, point_format: str, resize: tuple[int, int, int], problems: list[str]):
        self.point_format, self.problems = point_format, problems
        self.extent: tuple[int, int] | None = (GRID, GRID)
        if point_format == "smart-resized-pixels":
            self.extent = None
            try:
                width, height = size
                factor, min_pixels, max_pixels = resize
                resized_h, resized_w = smart_resize(int(height), int(width), factor, min_pixels, max_pixels)
                self.extent = (resized_w, resized_h)
            except (TypeError, ValueError) as exc:
                problems.append(f"cannot map smart-resized pixels without a valid screenshot size ({exc})")

    def place(self, value: str, fields: dict[str, Any], which: str = "start") -> Point | None:
        numbers = [float(n) for n in _NUMBER.findall(_BOX_TOKENS.sub(" ", value))]
        if len(numbers) not in (2, 4):
            self.problems.append(f"{value.strip()[:40]!r} is not a point (x, y) or a box (x1, y1, x2, y2)")
            return None
        if self.extent is None:
            return None
        if all(0 < n < 1 for n in numbers) and "." in value:
            self.problems.append(f"{value.strip()[:40]!r} looks like 0..1 fractions, not {self.point_format}")
        width, height = self.extent
        if not all(0 <= x <= width for x in numbers[0::2]) or not all(0 <= y <= height for y in numbers[1::2]):
            unit = "0..1000 grid" if self.point_format == "0-1000" else "pixels of the resized screenshot"
            self.problems.append(f"{value.strip()[:40]!r} is outside the {width}x{height} {unit}; clamped")
        if len(numbers) == 4:
            x1, y1, x2, y2 = numbers
            if which == "start":
                fields["box"] = (*self._grid(min(x1, x2), min(y1, y2)), *self._grid(max(x1, x2), max(y1, y2)))
            return self._grid((x1 + x2) / 2, (y1 + y2) / 2)
        return self._grid(*numbers)

    def _grid(self, x: float, y: float) -> Point:
        width, height = self.extent
        return from_pixels(min(max(x, 0.0), width), min(max(y, 0.0), height), width, height)
