"""Plan-language steps as MiniWoB's low-level actions.

`resolve` turns a step into a *plan*: a list of `(action type name, kwargs)` pairs for MiniWoB's
`create_action`, and floats that are pauses in seconds. Plans are plain data so the env can replay an episode's
plans after a browser restart. A step MiniWoB cannot carry out resolves to an empty plan and a problem.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracer1.envs.base import Element, element_at, find_element
from tracer1.envs.miniwob.dom import TASK_HEIGHT, TASK_WIDTH, TEXT_ID_BASE, DomView
from tracer1.plan import Step, to_pixels

WAIT_SECONDS = 0.5      # what `wait()` waits
LONG_PRESS_SECONDS = 0.6
# MiniWoB's key syntax for the plan language's key names (combinations: ctrl+a -> C-a, shift+tab -> S-<Tab>)
KEYS = {"enter": "<Enter>", "return": "<Enter>", "tab": "<Tab>", "escape": "<Escape>", "esc": "<Escape>",
        "backspace": "<Backspace>", "delete": "<Delete>", "space": "<Space>", "up": "<ArrowUp>",
        "down": "<ArrowDown>", "left": "<ArrowLeft>", "right": "<ArrowRight>", "pageup": "<PageUp>",
        "pagedown": "<PageDown>", "home": "<Home>", "end": "<End>", "insert": "<Insert>",
        **{f"f{i}": f"<F{i}>" for i in range(1, 13)}}
MODIFIERS = {"ctrl": "C-", "control": "C-", "shift": "S-", "alt": "A-", "meta": "M-", "cmd": "M-"}


def miniwob_key(key: str) -> str | None:
    """MiniWoB's name for a plan-language key (`ctrl+a` -> `C-a`, `enter` -> `<Enter>`), None if it has none."""
    from miniwob.constants import ALL_POSSIBLE_KEYS

    *mods, base = key.lower().replace("-", "+").split("+")
    if any(m not in MODIFIERS for m in mods):
        return None
    prefixes = {MODIFIERS[m] for m in mods}
    name = KEYS.get(base, base if len(base) == 1 else None)
    if name is None:
        return None
    combo = "".join(p for p in ("A-", "C-", "M-", "S-") if p in prefixes) + name  # MiniWoB's modifier order
    return combo if combo in ALL_POSSIBLE_KEYS else None


@dataclass(frozen=True)
class _Where:
    """Where a step acts: the element (if any), its DOM ref when MiniWoB can act on the element itself, and
    the pixels to act at otherwise. All None: the step names no place (typing into the focused element)."""

    element: Element | None = None
    ref: int | None = None
    xy: tuple[float, float] | None = None


def _node_center(view: DomView, element: Element) -> tuple[float, float]:
    node = view.node(element)
    x = min(max(node.left + node.width / 2, 0.0), TASK_WIDTH - 0.5)
    y = min(max(node.top + node.height / 2, 0.0), TASK_HEIGHT - 0.5)
    return x, y


def _locate(step: Step, view: DomView, problems: list[str]) -> _Where | None:
    if step.point is not None:
        x, y = to_pixels(step.point, TASK_WIDTH, TASK_HEIGHT)
        xy = min(x, TASK_WIDTH - 0.5), min(y, TASK_HEIGHT - 0.5)  # grid 1000 is one past the last pixel
        return _Where(element_at(view.elements, step.point), None, xy)
    if step.target is not None:
        element = find_element(view.elements, step.target)
        if element is None:
            problems.append(f"no element on screen is named {step.target!r} (exact text or #id)")
            return None
        ref = element.id if element.id < TEXT_ID_BASE else None  # text pseudo-nodes have no ref to act on
        return _Where(element, ref, _node_center(view, element))
    return _Where()


def _at(xy: tuple[float, float]) -> dict:
    return {"coords": np.array(xy, dtype=np.float32)}


def resolve(step: Step, view: DomView, problems: list[str]) -> tuple[list, Element | None]:
    """The plan for a step on this screen (empty when it is a no-op) and the element it acts on.

    `click`/`long_press` at a point -> a mouse click (or press and release) at those pixels; at a target ->
    CLICK_ELEMENT (long presses and text pseudo-nodes: at its centre); `type` -> FOCUS_ELEMENT_AND_TYPE_TEXT
    with a target, TYPE_TEXT into the focused element without; `press` -> PRESS_KEY; `scroll` up/down -> the
    wheel at the point/target/centre; `wait` pauses; `finish` does nothing here (the env ends the episode)."""
    a = step.action
    if a == "press":
        key = miniwob_key(step.key)
        if key is None:
            problems.append(f"key {step.key!r} has no meaning in a web page")
            return [], None
        from miniwob.constants import ALL_POSSIBLE_KEYS

        return [("PRESS_KEY", {"key": ALL_POSSIBLE_KEYS.index(key)})], None
    if a == "wait":
        return [WAIT_SECONDS], None
    if a == "finish":
        return [], None
    if a not in ("click", "long_press", "type", "scroll"):
        problems.append(f"{a} has no meaning in MiniWoB (no-op)")
        return [], None
    if a == "scroll" and step.direction not in ("up", "down"):
        problems.append(f"MiniWoB scrolls up or down only, not {step.direction}")
        return [], None
    where = _locate(step, view, problems)
    if where is None:
        return [], None
    element = where.element
    if a == "click":
        if where.ref is not None:
            return [("CLICK_ELEMENT", {"ref": where.ref})], element
        return [("CLICK_COORDS", _at(where.xy))], element
    if a == "long_press":
        return [("MOUSEDOWN_COORDS", _at(where.xy)), LONG_PRESS_SECONDS, ("MOUSEUP_COORDS", _at(where.xy))], element
    if a == "type":
        if where.xy is None:
            return [("TYPE_TEXT", {"text": step.text})], next((e for e in view.elements if e.focused), None)
        if where.ref is not None:
            return [("FOCUS_ELEMENT_AND_TYPE_TEXT", {"ref": where.ref, "text": step.text})], element
        return [("CLICK_COORDS", _at(where.xy)), ("TYPE_TEXT", {"text": step.text})], element
    kind = "SCROLL_UP_COORDS" if step.direction == "up" else "SCROLL_DOWN_COORDS"
    return [(kind, _at(where.xy or (TASK_WIDTH / 2, TASK_HEIGHT / 2)))], element
