"""The accessibility/DOM grounder: a deterministic executor that finds a step's `target` among the elements of
the accessibility tree (built-in world) or the DOM (MiniWoB++) and acts at that element.

Matching, in order:

1. **exactly as the env would**: `#<id>`, or the element's text (case- and space-insensitive) with the env's
   own tie-breaking (`envs.base.find_element`: the first enabled one). Oracle and solver steps always match
   here, so grounding them never changes what the env would have done with the bare target;
2. **a quoted name**: `the "Save" button` -> the element whose text is exactly "Save";
3. **the head of the target**, when it places itself ("the Wi-Fi row *in Settings*", "Save *on the dialog*"):
   these same rules on the words before the first in/on/inside/under/within/of, when they match anything;
4. **token overlap**: the target's words against each element's text (see `_score`): token F1 between the
   target's content words and the element's text words, plus a little for words found in the element's value
   and for role words that fit it ("switch", "button", "field", "row", ...); non-interactive elements
   (headings, static text) are discounted for actions that act on something. Ties go to, in order: the higher
   text F1, an enabled element, an element whose role suits the action (a text box for `type`), the smaller
   box (the more specific element), the earlier element in the tree. Below `min_score` nothing matches.

The point is the element's centre unless a smaller element covers it (a button inside a row): then the
nearest point of the element that the env's hit test (`element_at`, innermost element wins) resolves to this
element. Steps with a point are passed through unchanged (not re-grounded: the planner's point is its action).

`act_by` says how the concrete step names the place: `"point"` (default: the step gets the point, and the env
hit-tests it, as for any GUI agent) or `"element"` (the step names the matched element as `#<id>`, so MiniWoB
acts on the DOM node itself: CLICK_ELEMENT, FOCUS_ELEMENT_AND_TYPE_TEXT; a coordinate click on a <select>
opens the browser's popup instead, and type-ahead then goes elsewhere; a target the env already reads as that
element is kept as written, so the executed history keeps the planner's words). Either way `Execution.point` holds the
point and `Execution.grounded_step` the step with it, which is what rewards score.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from tracer1.envs.base import Element, element_at, find_element
from tracer1.executors.base import Execution, Executor, elements_of, needs_grounding, passthrough
from tracer1.plan import Point, Step

# Words that carry no identity: articles, prepositions, politeness and the verbs of the actions themselves.
STOPWORDS = frozenset(
    "a an the on in at of to into onto for with and or that which this its it is from by please "
    "named called labelled labeled titled saying says reads read click tap press select choose open hit "
    "type enter long touch".split())
# Words that name a kind of element; they explain a target word when the element has that role.
ROLE_WORDS: dict[str, frozenset[str]] = {role: frozenset(words.split()) for role, words in {
    "button": "button btn key icon app",
    "switch": "switch toggle setting",
    "checkbox": "checkbox check box tickbox tick",
    "radio": "radio button option choice",
    "textbox": "field textbox text box input bar textfield area",
    "item": "row item entry list tile card",
    "link": "link hyperlink",
    "tab": "tab",
    "slider": "slider",
    "image": "image icon picture photo",
    "combobox": "dropdown select menu combobox list",
    "option": "option choice entry",
    "heading": "heading title header",
    "label": "label",
    "shape": "shape",
}.items()}
# Roles one does not act on: discounted for click/long_press/type/scroll when something better matches.
STATIC_ROLES = frozenset({"text", "heading", "label", "group", "list", "table", "row", "cell"})
STATIC_DISCOUNT = 0.8
VALUE_WEIGHT = 0.3     # share of a target word found only in the element's value (a row's subtitle)
ROLE_BONUS = 0.2       # the target names the element's kind ("the Wi-Fi *switch*")
ACT_BY = ("point", "element")
MIN_SCORE = 0.3        # below this nothing matches: acting on a poor guess is worse than reporting it

_QUOTED = re.compile(r"[\"'“‘]([^\"'“”‘’]+)[\"'”’]")
_HYPHEN = re.compile(r"(?<=[a-z0-9])[-‐](?=[a-z0-9])")   # wi-fi -> wifi, e-mail -> email
_CONTEXT = re.compile(r"(.+?)\s+(?:in|on|inside|under|within|of)\s+(?:the\s+)?\S.*", re.I | re.S)
_TOKEN = re.compile(r"[a-z0-9]+(?:[.,:][0-9]+)*")          # words, and numbers like 12.40 or 10:30


def tokens(text: str | None) -> list[str]:
    """The words of `text` for matching: lower case, hyphens inside words dropped, numbers kept whole."""
    if not text:
        return []
    return _TOKEN.findall(_HYPHEN.sub("", text.casefold()))


def content_words(text: str | None) -> set[str]:
    """`tokens` without stopwords (all tokens when every word is a stopword, e.g. a button named "On")."""
    words = tokens(text)
    kept = {w for w in words if w not in STOPWORDS}
    return kept or set(words)


class Match(NamedTuple):
    """How a target matched an element: `how` is "exact", "quoted" or "fuzzy"; `score` 1.0 for exact."""

    element: Element
    how: str
    score: float


def _score(target_words: set[str], element: Element, action: str) -> tuple[float, float]:
    """(score, text F1) of `element` for a target with these content words (see the module docstring)."""
    text_words = content_words(element.text)
    role_words = ROLE_WORDS.get(element.role, frozenset())
    explained = {w for w in target_words if w in role_words and w not in text_words}
    wanted = target_words - explained
    if not wanted:
        return 0.0, 0.0
    hits = len(wanted & text_words)
    value_hits = len((wanted - text_words) & content_words(element.value))
    if hits == 0 and value_hits == 0:
        return 0.0, 0.0
    f1 = 2 * hits / (len(wanted) + len(text_words)) if text_words else 0.0
    score = f1 + VALUE_WEIGHT * value_hits / len(wanted) + (ROLE_BONUS if explained else 0.0)
    if element.role in STATIC_ROLES and action in ("click", "long_press", "type", "scroll"):
        score *= STATIC_DISCOUNT
    return score, f1


def _suits(element: Element, action: str) -> bool:
    return element.role == "textbox" if action == "type" else element.role not in STATIC_ROLES


def _area(element: Element) -> int:
    x1, y1, x2, y2 = element.box
    return (x2 - x1) * (y2 - y1)


def match_target(elements: list[Element], target: str, action: str = "click",
                 min_score: float = MIN_SCORE) -> Match | None:
    """The element `target` names on this screen (see the module docstring for the rules), or None."""
    exact = find_element(elements, target)
    if exact is not None:
        return Match(exact, "exact", 1.0)
    for quoted in _QUOTED.findall(target):
        found = find_element(elements, quoted)
        if found is not None:
            return Match(found, "quoted", 1.0)
    context = _CONTEXT.match(target)
    if context is not None:  # "the Wi-Fi row in Settings": the words after "in" say where, not what
        found = match_target(elements, context.group(1), action, min_score)
        if found is not None:
            return found
    words = content_words(target)
    if not words:
        return None
    best, best_key = None, None
    for index, element in enumerate(elements):
        score, f1 = _score(words, element, action)
        if score <= 0:
            continue
        # higher is better on every component; index and area are negated so earlier/smaller win ties
        key = (round(score, 6), round(f1, 6), element.enabled, _suits(element, action), -_area(element), -index)
        if best_key is None or key > best_key:
            best, best_key = element, key
    if best is None or best_key[0] < min_score:
        return None
    return Match(best, "fuzzy", best_key[0])


def clickable_point(elements: list[Element], element: Element, lattice: int = 9) -> Point | None:
    """A point inside `element` that the env's hit test resolves to `element`: its centre when nothing smaller
    covers it, else the lattice point of its box nearest the centre that is not covered. None when smaller
    elements cover all of it."""
    center = element.center
    if element_at(elements, center) == element:
        return center
    x1, y1, x2, y2 = element.box
    candidates = [(round(x1 + (x2 - x1) * (i + 0.5) / lattice), round(y1 + (y2 - y1) * (j + 0.5) / lattice))
                  for i in range(lattice) for j in range(lattice)]
    candidates.sort(key=lambda p: (p[0] - center[0]) ** 2 + (p[1] - center[1]) ** 2)
    return next((p for p in candidates if element_at(elements, p) == element), None)


class A11yExecutor(Executor):
    """Grounds targets in the accessibility tree / DOM (see the module docstring). Needs `elements` or `a11y`
    in the observation; no screenshot, no model."""

    kind = "a11y"

    def __init__(self, min_score: float = MIN_SCORE, fuzzy: bool = True, act_by: str = "point"):
        if act_by not in ACT_BY:
            raise ValueError(f"act_by {act_by!r} is not one of {', '.join(ACT_BY)}")
        self.min_score = min_score
        self.fuzzy = fuzzy   # False: exact names only (`#id` or the element's text), as the env itself reads them
        self.act_by = act_by

    def _execute(self, step: Step, observation: Mapping[str, Any]) -> Execution:
        if step.action == "call":
            return Execution(step, None, problems=["the a11y executor does not run tools; use executor.kind="
                                                   "'toolbox' for call steps"])
        if not needs_grounding(step):
            return passthrough(step, observation)
        elements = elements_of(observation)
        if not elements:
            return Execution(step, None, problems=["the observation has no elements and no accessibility text "
                                                   "to ground the target in"])
        found = (match_target(elements, step.target, step.action, self.min_score) if self.fuzzy
                 else _exact(elements, step.target))
        if found is None:
            problem = f"no element on screen matches target {step.target!r}"
            if step.action == "scroll":  # a list or page that is no element: scroll the screen instead
                unplaced = step._replace(target=None)
                return Execution(step, unplaced, problems=[problem + "; scrolled the screen"])
            return Execution(step, None, problems=[problem])
        point = clickable_point(elements, found.element)
        info = {"match": found.how, "score": round(found.score, 3), "element_id": found.element.id}
        if point is None:
            return Execution(step, None, element=found.element, info=info, problems=[
                f"{found.element.role} {found.element.text!r} is covered by other elements; no point acts on it"])
        problems = [] if found.element.enabled else [f"{found.element.role} {found.element.text!r} is disabled"]
        if self.act_by == "point":
            concrete = step._replace(point=point)
        elif find_element(elements, step.target) == found.element:  # the env reads it so: keep the words
            concrete = step
        else:
            concrete = step._replace(target=f"#{found.element.id}")
        return Execution(step, concrete, point=point, element=found.element, problems=problems, info=info)


def _exact(elements: list[Element], target: str) -> Match | None:
    element = find_element(elements, target)
    return None if element is None else Match(element, "exact", 1.0)
