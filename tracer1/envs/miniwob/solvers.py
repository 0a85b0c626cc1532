"""Scripted solvers for common MiniWoB++ tasks: the oracle behind `MiniWoBEnv.oracle_action()`.

A solver reads a `SolverView` (the screen, the utterance, MiniWoB's fields and the steps already taken) and
returns the next `Step`. Solvers look at the page's state (a box already checked, a field already filled, a tab
already open) so they also finish an episode someone else started.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tracer1.envs.base import Element
from tracer1.envs.miniwob.dom import TEXTBOX_TAGS
from tracer1.envs.miniwob.solver_view import SolverError, SolverView, click, fill, submit
from tracer1.plan import Step


def click_test(view: SolverView) -> Step:
    buttons = view.by_role("button")
    if not buttons:
        raise SolverError("no button")
    return click(view, buttons[0])


def click_button(view: SolverView) -> Step:
    """click-button / click-test-2: the button whose label the utterance names."""
    target = view.field("target")
    button = view.by_text(target, "button")
    if button is None:
        raise SolverError(f"no button {target!r}")
    return click(view, button)


def click_button_sequence(view: SolverView) -> Step:
    one, two = view.by_text("ONE", "button"), view.by_text("TWO", "button")
    if one is None or two is None:
        raise SolverError("buttons ONE and TWO not found")
    return click(view, two if view.node(one).tampered or view.clicked(one) else one)


def click_link(view: SolverView) -> Step:
    target = view.field("target")
    links = view.links(target)
    if not links:
        raise SolverError(f"no link {target!r}")
    return click(view, links[0])


def click_dialog(view: SolverView) -> Step:
    closers = [e for e in view.by_role("button") if "ui-dialog-titlebar-close" in view.classes(e)]
    if not closers:
        raise SolverError("no dialog close button")
    return click(view, closers[0])


def click_dialog_2(view: SolverView) -> Step:
    target = view.field("target")
    if target.lower() == "x":
        return click_dialog(view)
    button = view.by_text(target, "button")
    if button is None:
        raise SolverError(f"no dialog button {target!r}")
    return click(view, button)


def click_option(view: SolverView) -> Step:
    target = view.field("target")
    for radio in view.by_role("radio"):
        if view.label_text(radio) == target:
            return submit(view) if radio.checked else click(view, radio)
    raise SolverError(f"no option {target!r}")


def click_checkboxes(view: SolverView) -> Step:
    """click-checkboxes(-large): tick exactly the named boxes, then Submit."""
    wanted = {v for k, v in view.fields.items() if k.startswith("target")}
    if not wanted and "nothing" not in view.utterance.lower():
        match = re.match(r"Select (.*) and click Submit\.?$", view.utterance)
        wanted = {w.strip() for w in match.group(1).split(",")} if match else set()
    for box in view.by_role("checkbox"):
        if box.checked != (view.label_text(box) in wanted):
            return click(view, box)
    return submit(view)


def click_tab(view: SolverView) -> Step:
    target = view.field("target")
    tab = view.by_text(f"Tab #{target}", "tab")
    if tab is None:
        raise SolverError(f"no Tab #{target}")
    return click(view, tab)


def click_tab_2(view: SolverView) -> Step:
    """Open tabs one by one until the named link shows, then click it."""
    target = view.field("target")
    links = view.links(target)
    if links:
        return click(view, links[0])
    for tab in view.by_role("tab"):
        parent = view.node(tab).parent
        active = parent is not None and "ui-tabs-active" in parent.classes
        if not active and not view.clicked(tab):
            return click(view, tab)
    raise SolverError(f"link {target!r} is in no tab")


def click_collapsible(view: SolverView) -> Step:
    headers = [e for e in view.by_role("tab") if "ui-accordion-header" in view.classes(e)]
    collapsed = [h for h in headers if "ui-accordion-header-collapsed" in view.classes(h)]
    if headers and len(collapsed) == len(headers):
        return click(view, headers[0])
    return submit(view)


_WIDGET_TAGS = {"button": ("button",), "checkbox": ("input_checkbox",), "radio": ("input_radio",),
                "text": ("input_text",), "textarea": ("textarea",)}


def click_widget(view: SolverView) -> Step:
    kind = view.field("target")
    tags = _WIDGET_TAGS.get(kind)
    if tags is None:
        raise SolverError(f"unknown widget {kind!r}")
    for element in view.elements:
        if view.tag(element) in tags:
            return click(view, element)
    raise SolverError(f"no {kind} widget")


def enter_text(view: SolverView) -> Step:
    """enter-text / enter-text-dynamic: type the quoted text, then Submit."""
    return fill(view, view.textboxes()[0], view.field("target")) or submit(view)


def enter_text_2(view: SolverView) -> Step:
    text = view.field("text")
    text = text.lower() if "lower case" in view.utterance or view.fields.get("case") == "lower" else text.upper()
    return fill(view, view.textboxes()[0], text) or submit(view)


def focus_text(view: SolverView) -> Step:
    return click(view, view.textboxes()[0])


def focus_text_2(view: SolverView) -> Step:
    target = view.fields.get("target")
    n = int(target) if target and target.isdigit() else None
    if n is None:
        match = re.search(r"(\d)(?:st|nd|rd|th)", view.utterance)
        n = int(match.group(1)) if match else 1
    boxes = sorted(view.textboxes(), key=lambda e: view.html_id(e))
    wanted = next((b for b in boxes if view.html_id(b) == f"tt{n}"), None) or boxes[n - 1]
    return click(view, wanted)


def enter_password(view: SolverView) -> Step:
    password = view.field("target", "password")
    for box in view.textboxes():
        step = fill(view, box, password)
        if step is not None:
            return step
    return submit(view)


def _fill_login(view: SolverView) -> Step | None:
    """The next step filling the username and password boxes (found by HTML id), None once both are right."""
    values = {"username": view.field("username"), "password": view.fields.get("password", "")}
    for box in view.textboxes():
        key = view.html_id(box)
        if key in values:
            step = fill(view, box, values[key])
            if step is not None:
                return step
    return None


def login_user(view: SolverView) -> Step:
    return _fill_login(view) or submit(view, "Login", "Log in", "Submit")


def login_user_popup(view: SolverView) -> Step:
    """login-user with a popup that may open when a field gets focus: dismiss it (Cancel), then log in."""
    cancel = view.by_html_id("popup-cancel", "button")
    if cancel is not None:
        return click(view, cancel)
    step = _fill_login(view)
    if step is not None:
        return step
    button = view.by_html_id("subbtn", "button")
    if button is None:
        raise SolverError("no login button")
    return click(view, button)


def choose_list(view: SolverView) -> Step:
    """Pick the option from the <select> by typing its name (keyboard type-ahead), fixing up with the arrow
    keys when type-ahead lands on another option, then Submit."""
    target = view.field("target")
    select = next(iter(view.by_role("combobox")), None)
    if select is None:
        raise SolverError("no list")
    if select.value == target:
        return submit(view)
    typed = any(s.action == "type" and s.text == target for s in view.history)
    if not typed:
        return Step("type", target=view.name(select), text=target)
    if not select.focused:
        return click(view, select)
    options = view.dom.selects.get(select.id, (None, []))[1]
    if target not in options or select.value not in options:
        raise SolverError(f"option {target!r} not in the list")
    return Step("press", key="down" if options.index(target) > options.index(select.value) else "up")


def _movie_field(label: str) -> str | None:
    label = label.lower()
    for key, words in (("year", ("year", "date")), ("director", ("director",)), ("genre", ("genre",))):
        if any(w in label for w in words):
            return key
    return None


def _label_of(view: SolverView, box: Element) -> str:
    """The text that labels a textbox: the text in its nearest container that holds no other textbox."""
    ref = view.node(box).ref
    node = view.node(box).parent
    while node is not None:
        inside = node.subtree_elements
        if sum(1 for d in inside if d.tag in TEXTBOX_TAGS) > 1:
            break
        texts = [d.text for d in inside if d.ref != ref and d.text]
        if texts:
            return " ".join(texts)
        node = node.parent
    return ""


def multi_form(view: SolverView) -> Step:
    """multi-orderings / multi-layouts: fill year, director and genre, whatever the order, labels and their
    placement, then press the form's button (a <button> or a styled <div>, its label varies)."""
    for box in view.textboxes():
        label = _label_of(view, box)
        key = _movie_field(label)
        if key is None or key not in view.fields:
            raise SolverError(f"no field for the textbox labelled {label!r}")
        step = fill(view, box, view.fields[key])
        if step is not None:
            return step
    buttons = view.by_role("button") or [e for e in view.elements
                                         if {"final", "ui-submit"} & set(view.classes(e).split())]
    if not buttons:
        raise SolverError("no submit button")
    return click(view, buttons[-1])


def use_autocomplete(view: SolverView) -> Step:
    """Type the prefix, pick the suggestion with the right ending, then Submit."""
    start, end = view.field("start"), view.fields.get("end", "")
    box = view.textboxes()[0]
    if box.value and box.value.lower().startswith(start.lower()) and box.value.endswith(end) \
            and box.value != start:
        return submit(view)
    items = [e for e in view.elements if e.text and view.inside(e, cls="ui-menu-item")
             and e.text.lower().startswith(start.lower()) and e.text.endswith(end)]
    if items:
        return click(view, items[0])
    if box.value != start:
        return fill(view, box, start) or submit(view)
    waits = len(view.history) - next((i + 1 for i in range(len(view.history) - 1, -1, -1)
                                      if view.history[i].action != "wait"), 0)
    if waits < 3:
        return Step("wait")  # the suggestions open after a delay
    raise SolverError(f"no suggestion starts with {start!r} and ends with {end!r}")


def search_engine(view: SolverView) -> Step:
    """Search for the query, page to the result's page (3 results a page), click the n-th result."""
    query, rank = view.field("query"), int(view.fields.get("rank", "1"))
    box = view.textboxes()[0]
    results = [e for e in view.by_role("link") if view.inside(e, html_id="page-content")]
    searched = any(s.action == "click" and s.target == "Search" for s in view.history)
    if box.value != query or not results or not searched:
        return fill(view, box, query) or submit(view, "Search")
    pages = [e for e in view.by_role("link") if view.inside(e, cls="page-item")]
    current = next((p for p in pages if view.inside(p, cls="active")), None)
    want = (rank - 1) // 3 + 1
    if current is not None and current.text != str(want):
        page = next((p for p in pages if p.text == str(want)), None)
        if page is None:
            page = next(p for p in pages if p.text == (">" if int(current.text) < want else "<"))
        return click(view, page)
    return click(view, results[(rank - 1) % 3])


SOLVERS: dict[str, Callable[[SolverView], Step]] = {
    "click-test": click_test,
    "click-test-2": click_button,
    "click-button": click_button,
    "click-button-sequence": click_button_sequence,
    "click-link": click_link,
    "click-dialog": click_dialog,
    "click-dialog-2": click_dialog_2,
    "click-option": click_option,
    "click-checkboxes": click_checkboxes,
    "click-checkboxes-large": click_checkboxes,
    "click-tab": click_tab,
    "click-tab-2": click_tab_2,
    "click-collapsible": click_collapsible,
    "click-widget": click_widget,
    "enter-text": enter_text,
    "enter-text-dynamic": enter_text,
    "enter-text-2": enter_text_2,
    "focus-text": focus_text,
    "focus-text-2": focus_text_2,
    "enter-password": enter_password,
    "login-user": login_user,
    "choose-list": choose_list,
    "login-user-popup": login_user_popup,
    "multi-orderings": multi_form,
    "multi-layouts": multi_form,
    "use-autocomplete": use_autocomplete,
    "search-engine": search_engine,
}
