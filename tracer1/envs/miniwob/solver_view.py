"""What a scripted solver sees (`SolverView`) and the steps solvers build from it.

Steps name their element exactly: its text when that text picks it out (`find_element`), else `#<id>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracer1.envs.base import Element, find_element
from tracer1.envs.miniwob.dom import DomView
from tracer1.plan import Step


class SolverError(RuntimeError):
    """The page is not in a state the solver understands."""


@dataclass(frozen=True)
class SolverView:
    """What a solver sees: the utterance, MiniWoB's fields, the DOM and the steps executed so far in this
    episode."""

    utterance: str
    fields: dict[str, str]
    dom: DomView
    history: tuple[Step, ...]

    @property
    def elements(self) -> list[Element]:
        return self.dom.elements

    def node(self, element: Element):
        return self.dom.node(element)

    def tag(self, element: Element) -> str:
        return self.node(element).tag

    def classes(self, element: Element) -> str:
        return self.node(element).classes

    def html_id(self, element: Element) -> str:
        return self.node(element).id or ""

    def name(self, element: Element) -> str:
        """A target that names `element` exactly: its text if that finds it, else `#<id>`."""
        if element.text and find_element(self.elements, element.text) == element:
            return element.text
        return f"#{element.id}"

    def by_role(self, *roles: str) -> list[Element]:
        return [e for e in self.elements if e.role in roles]

    def by_text(self, text: str, *roles: str) -> Element | None:
        key = " ".join(text.split()).casefold()
        return next((e for e in self.elements if " ".join(e.text.split()).casefold() == key
                     and (not roles or e.role in roles)), None)

    def by_html_id(self, html_id: str, *roles: str) -> Element | None:
        return next((e for e in self.by_role(*roles) if self.html_id(e) == html_id), None)

    def textboxes(self) -> list[Element]:
        return self.by_role("textbox")

    def links(self, text: str) -> list[Element]:
        """MiniWoB's task links (class `alink`) that read exactly `text`."""
        return [e for e in self.elements if "alink" in self.classes(e) and e.text == text]

    def label_text(self, control: Element) -> str:
        """The text beside a checkbox or radio button (the other children of its parent <label>)."""
        parent = self.node(control).parent
        if parent is None:
            return ""
        texts = [c.text for c in parent.children if c.ref != self.node(control).ref and c.text]
        return " ".join(" ".join(texts).split())

    def ancestors(self, element: Element) -> list:
        """The MiniWoB DOM nodes above `element`, nearest first."""
        found, node = [], self.node(element).parent
        while node is not None:
            found.append(node)
            node = node.parent
        return found

    def inside(self, element: Element, html_id: str = "", cls: str = "") -> bool:
        """Whether some ancestor of `element` has this HTML id or this class."""
        return any((html_id and a.id == html_id) or (cls and cls in a.classes.split())
                   for a in self.ancestors(element))

    def clicked(self, element: Element) -> bool:
        """Whether a step of this episode's history named `element` (by text or id)."""
        names = {f"#{element.id}", element.text.casefold()} - {""}
        return any(s.action == "click" and s.target is not None and s.target.casefold() in names
                   for s in self.history)

    def field(self, *keys: str) -> str:
        """The first of MiniWoB's fields `keys` that is set, else the first quoted text of the utterance."""
        for key in keys:
            if key in self.fields:
                return self.fields[key]
        quoted = re.findall(r'"([^"]*)"', self.utterance)
        if quoted:
            return quoted[0]
        raise SolverError(f"no {keys[0]} in {self.utterance!r}")


def click(view: SolverView, element: Element) -> Step:
    return Step("click", target=view.name(element))


def fill(view: SolverView, box: Element, text: str) -> Step | None:
    """The next step to make textbox `box` hold exactly `text`, or None when it already does."""
    if box.value == text:
        return None
    if not box.value:
        return Step("type", target=view.name(box), text=text)
    # Wrong content: focus it, select everything, then typing replaces the selection.
    last = view.history[-1] if view.history else None
    if not box.focused:
        return click(view, box)
    if last is not None and last.action == "press" and last.key == "ctrl+a":
        return Step("type", text=text)
    return Step("press", key="ctrl+a")


def submit(view: SolverView, *names: str) -> Step:
    """A click on the first button on screen named one of `names` (default "Submit")."""
    for name in names or ("Submit",):
        button = view.by_text(name, "button")
        if button is not None:
            return click(view, button)
    raise SolverError(f"no {' / '.join(names or ('Submit',))} button on screen")
