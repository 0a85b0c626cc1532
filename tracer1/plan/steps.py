"""The action vocabulary of the plan language: one `Step` type for GUI and tool actions.

A step is what the planner writes on one numbered line of its plan, e.g.
`click(target="the Wi-Fi row", point=(512, 88))`. `target` is the grounding instruction the frozen executor
receives; `point` (0..1000 of the screenshot) is optional, for planners that ground by themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from collections.abc import Callable
from functools import lru_cache, wraps
from typing import Any, NamedTuple, Union

Point = tuple[int, int]
ArgValue = Union[str, int, float, bool]

GRID = 1000  # coordinates are normalised to 0..GRID of the screenshot, on both axes
DIRECTIONS = ("up", "down", "left", "right")
FINISH_STATUSES = ("success", "infeasible")
# Keys a planner usually needs; `press` accepts any key name of this shape (e.g. "ctrl+a") as well.
COMMON_KEYS = ("enter", "back", "home", "recents", "tab", "escape", "backspace", "delete", "space",
               "up", "down", "left", "right", "pageup", "pagedown")
KEY_PATTERN = re.compile(r"[a-z0-9_]+(?:[+\-][a-z0-9_]+)*\Z")
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class ActionSpec:
    """What one action takes: its fields in canonical order, which are required, and what it is for."""

    name: str
    fields: tuple[str, ...]
    required: tuple[str, ...] = ()
    needs_location: bool = False  # needs a `target` or a `point`
    doc: str = ""


ACTIONS: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec("click", ("target", "point"), needs_location=True, doc="tap or click an element"),
        ActionSpec("long_press", ("target", "point"), needs_location=True, doc="press and hold an element"),
        ActionSpec("type", ("target", "point", "text"), ("text",), doc="type text (into target, if given)"),
        ActionSpec("scroll", ("target", "point", "direction"), ("direction",),
                   doc="scroll the screen (or target) up/down/left/right"),
        ActionSpec("press", ("key",), ("key",), doc="press a key: enter, back, home, ..."),
        ActionSpec("open_app", ("app",), ("app",), doc="open an app by name"),
        ActionSpec("wait", (), doc="wait for the screen to change"),
        ActionSpec("finish", ("status",), doc="end the task (status success or infeasible)"),
        ActionSpec("answer", ("text",), ("text",), doc="end the task with an answer"),
        ActionSpec("call", ("tool", "args"), ("tool",), doc="call a tool: call(tool=\"ocr\", image=\"a.png\")"),
    )
}


class Step(NamedTuple):
    """One action of a plan. Unused fields stay None; `args` holds a tool call's keyword arguments in order.

    Immutable and hashable (a NamedTuple: parsing builds millions of them, and it is 3x cheaper to build
    than a frozen dataclass)."""

    action: str
    target: str | None = None
    point: Point | None = None
    text: str | None = None
    direction: str | None = None
    key: str | None = None
    app: str | None = None
    status: str | None = None
    tool: str | None = None
    args: tuple[tuple[str, ArgValue], ...] = ()


def step_problems(step: Step) -> list[str]:
    """Why `step` is not a valid step of the plan language (empty when it is)."""
    fields = {name: value for name in _FIELDS if (value := getattr(step, name)) is not None}
    return field_problems(step.action, fields, step.args)


def field_problems(action: str, fields: dict, args: tuple = ()) -> list[str]:
    """Why a step with this action, these set fields (name -> value, None left out) and tool arguments would
    not be valid. The parser checks what it read with this before it builds a `Step`."""
    spec = ACTIONS.get(action)
    if spec is None:
        return [f"unknown action {action!r}; known: {', '.join(ACTIONS)}"]
    problems = []
    for name, value in fields.items():
        if name not in spec.fields:
            problems.append(f"{action} takes no {name}")
        elif (problem := _CHECKS[name](value)) is not None:
            problems.append(problem)
    for name in spec.required:
        if name not in fields:
            problems.append(f"{action} needs {name}=")
    if args:
        problems += _args_problems(args) if action == "call" else [f"{action} takes no tool arguments"]
    if spec.needs_location and "target" not in fields and "point" not in fields:
        problems.append(f"{action} needs target= or point=")
    return problems


def _args_problems(args) -> list[str]:
    problems = []
    for name, value in args:
        if not NAME_PATTERN.match(name) or name == "tool":
            problems.append(f"tool argument name {name!r} is not allowed")
        if not isinstance(value, (str, int, float)) or value != value or value in (float("inf"), float("-inf")):
            problems.append(f"tool argument {name}={value!r} is not a string, number or boolean")
    if len({name for name, _ in args}) != len(args):
        problems.append("a tool argument is given twice")
    return problems


_FIELDS = ("target", "point", "text", "direction", "key", "app", "status", "tool")
_CHECKS = {  # each returns a problem, or None when the value is fine
    "target": lambda v: None if v.strip() else "target is empty",
    "point": lambda v: None if _valid_point(v) else f"point {v} is not two integers in 0..{GRID}",
    "text": lambda v: None,
    "direction": lambda v: None if v in DIRECTIONS else f"direction {v!r} is not one of {', '.join(DIRECTIONS)}",
    "key": lambda v: None if KEY_PATTERN.match(v) else f"key {v!r} is not a key name such as enter, back or ctrl+a",
    "app": lambda v: None if v.strip() else "app is empty",
    "status": lambda v: None if v in FINISH_STATUSES else f"status {v!r} is not one of {', '.join(FINISH_STATUSES)}",
    "tool": lambda v: None if NAME_PATTERN.match(v) else f"tool {v!r} is not a name",
}


def _valid_point(point) -> bool:
    return (isinstance(point, tuple) and len(point) == 2
            and all(type(v) is int and 0 <= v <= GRID for v in point))


# --- equality for the repetition test ---------------------------------------------------------------------

def _norm(text: str | None) -> str | None:
    """Case, spacing and trailing punctuation do not make two steps different."""
    if text is None:
        return None
    return " ".join(text.split()).strip(".!?,;:").casefold()


CACHED_TEXT = 4096  # characters of text an argument may carry and still be cached (see `short_cache`)


def short_cache(maxsize: int, size: Callable[[Any], int] = len):
    """`functools.lru_cache` for the arguments whose `size` is at most `CACHED_TEXT`; larger ones are computed
    without entering the cache, so scoring megabytes of model output leaves no huge strings behind in it. For
    pure functions of one argument; the result has `cache_info` and `cache_clear` as lru_cache's does."""
    def decorate(fn):
        cached = lru_cache(maxsize=maxsize)(fn)

        @wraps(fn)
        def call(arg):
            return cached(arg) if size(arg) <= CACHED_TEXT else fn(arg)

        call.cache_info, call.cache_clear = cached.cache_info, cached.cache_clear
        return call

    return decorate


def _text_size(step: Step) -> int:
    return sum(len(v) for v in (step.target, step.text, step.app, step.tool) if v) + sum(
        len(k) + (len(v) if isinstance(v, str) else 0) for k, v in step.args)


@short_cache(1 << 16, size=_text_size)  # steps recur across a GRPO group and its reference; results are immutable
def step_signature(step: Step) -> tuple:
    """Everything that identifies a step except its point (compared with a tolerance, see `same_step`).

    When the step has a point, the point says where it acts and the target's wording is left out.
    """
    target = None if step.point is not None else _norm(step.target)
    args = tuple((name, _norm(v) if isinstance(v, str) else v) for name, v in step.args)
    return (step.action, target, _norm(step.text), step.direction, step.key, _norm(step.app),
            step.status, step.tool, args)


def same_step(a: Step, b: Step, point_tolerance: int = 0) -> bool:
    """Whether two steps do the same thing: same action and arguments (normalised text), and points no
    more than `point_tolerance` grid units apart on each axis. One pointed and one unpointed step differ."""
    if (a.point is None) != (b.point is None) or step_signature(a) != step_signature(b):
        return False
    if a.point is None:
        return True
    return abs(a.point[0] - b.point[0]) <= point_tolerance and abs(a.point[1] - b.point[1]) <= point_tolerance
