"""MiniWoB's DOM as tracer1 `Element`s: which nodes count, their roles, and boxes on the 0..1000 grid.

Element ids are MiniWoB's DOM refs. Text pseudo-nodes get negative refs that change every step, so they get ids
from `TEXT_ID_BASE` up instead, valid for one observation only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tracer1.envs.base import Element
from tracer1.plan import box_from_xywh

TASK_WIDTH, TASK_HEIGHT = 160, 210  # MiniWoB's task area, in pixels (FlightWoB tasks are not supported)
TEXT_ID_BASE = 100_000

# MiniWoB's tags are lower-case, and <input>s carry their type: input_text, input_checkbox, ...
TEXTBOX_TAGS = {"textarea", "input_text", "input_password", "input_email", "input_search", "input_tel",
                "input_url", "input_number", "input_date", "input_time", "input_datetime-local",
                "input_month", "input_week"}
_ROLES = {"button": "button", "input_button": "button", "input_submit": "button", "input_reset": "button",
          "a": "link", "input_checkbox": "checkbox", "input_radio": "radio", "input_range": "slider",
          "select": "combobox", "option": "option", "img": "image", "svg": "image", "canvas": "image",
          "circle": "shape", "rect": "shape", "polygon": "shape", "ellipse": "shape", "path": "shape",
          "line": "shape", "li": "item", "ul": "list", "ol": "list", "label": "label", "table": "table",
          "td": "cell", "th": "cell", "tr": "row", **{f"h{i}": "heading" for i in range(1, 7)},
          **{tag: "textbox" for tag in TEXTBOX_TAGS}}
INTERACTIVE_ROLES = {"button", "link", "tab", "textbox", "checkbox", "radio", "slider", "combobox", "option",
                     "image", "shape"}

# MiniWoB's DOM has no <select> state: read each one's chosen option and options from the page.
_SELECTS_JS = """
var out = [];
for (var ref in core.previousDOMInfo) {
  var e = core.previousDOMInfo[ref];
  if (e instanceof HTMLSelectElement) {
    var opts = Array.prototype.map.call(e.options, function (o) { return o.textContent.trim(); });
    out.push([+ref, e.selectedIndex >= 0 ? opts[e.selectedIndex] : null, opts]);
  }
}
return out;
"""


def _role(node) -> str:
    classes = node.classes  # always a string in miniwob's DOMElement ("" when none)
    if "ui-tabs-anchor" in classes or "ui-accordion-header" in classes:  # jQuery UI tabs and accordions
        return "tab"
    if node.tag in _ROLES:
        return _ROLES[node.tag]
    return "text" if node.text else "group"


def _descendant_text(node) -> str:
    texts = [child.text if child.is_leaf else _descendant_text(child) for child in node.children]
    return " ".join(t for t in texts if t)


@dataclass
class DomView:
    """One observation's DOM as tracer1 sees it: the elements, and for each the MiniWoB DOM node behind it."""

    elements: list[Element]
    nodes: dict[int, Any]                      # element id -> miniwob DOMElement
    selects: dict[int, tuple[str | None, list[str]]] = field(default_factory=dict)  # ref -> (selected, options)

    def node(self, element: Element):
        return self.nodes[element.id]


def dom_view(root, width: int, height: int, selects: dict | None = None) -> DomView:
    """The elements of a MiniWoB DOM tree: everything inside the `width` x `height` task area that has text, is
    interactive, or is a visible leaf (coloured boxes); the page body and empty containers are left out.
    Buttons and links built from several nodes are named by their text (jQuery UI's close button is "Close")."""
    selects = selects or {}
    elements, nodes = [], {}
    for node in root.subtree_elements[1:]:  # [0] is <body>
        if node.left >= width or node.top >= height or node.right <= 0 or node.bottom <= 0:
            continue
        role = _role(node)
        text = node.text or ""
        if not node.is_leaf and node.tag in ("button", "a"):
            text = _descendant_text(node)
        text = " ".join(text.split())
        if not (text or role in INTERACTIVE_ROLES or (node.is_leaf and node.width * node.height >= 64)):
            continue
        checked = value = None
        if node.tag in ("input_checkbox", "input_radio"):
            checked = bool(node.value)
        elif role in ("textbox", "slider"):
            value = "" if node.value is None else str(node.value)
        elif node.tag == "select":
            value = (selects.get(node.ref) or (None, []))[0]
        ident = node.ref if node.ref > 0 else TEXT_ID_BASE - node.ref
        element = Element(id=ident, role=role, text=text, box=box_from_xywh(node.left, node.top, node.width,
                          node.height, width, height), value=value, checked=checked, focused=bool(node.focused))
        elements.append(element)
        nodes[ident] = node
    return DomView(elements, nodes, selects)


def read_selects(root, driver) -> dict[int, tuple[str | None, list[str]]]:
    """Each <select>'s chosen option and options, by DOM ref; empty when the page has none or does not answer
    (a missing select value is not worth an episode)."""
    if not any(node.tag == "select" for node in root.subtree_elements):
        return {}
    try:
        return {ref: (selected, options) for ref, selected, options in driver.execute_script(_SELECTS_JS)}
    except Exception:  # noqa: BLE001
        return {}
