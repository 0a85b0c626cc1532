"""The oracle: the next expert step computed from the phone's current state (never a replay), so it also
recovers after a detour.

A task's goal is a list of `Subgoal`s. `next_step` returns the task's final step (finish/answer) when every
subgoal holds, else the next step of the first one that does not. Subgoals share `goto` (reach a screen:
back out of wrong screens, open the app, tap through, scrolling a list when the link is out of view) and
`fill` (type a form's fields, then press its button). Steps name their element by its exact text, so
`find_element` resolves them (`#id` only if a text were ever ambiguous on a screen).
"""

from __future__ import annotations

from dataclasses import dataclass

from tracer1.envs.base import find_element
from tracer1.envs.builtin.apps import APPS, app_root
from tracer1.envs.builtin.apps import settings as settings_app
from tracer1.envs.builtin.phone import Phone
from tracer1.envs.builtin.ui import Widget
from tracer1.plan import Step

Key = tuple[str, "str | None"]
HOME: Key = ("home", None)


class OracleError(RuntimeError):
    """The oracle found no way forward: a bug in a task or in the oracle, never a policy's fault."""


@dataclass(frozen=True)
class Prefs:
    """An expert's habits, drawn per task: how it opens apps, goes back and finds contacts."""

    open_app: bool = False      # open_app(app) rather than tapping the home-screen icon
    back_button: bool = False   # tap the on-screen Back button rather than press(key="back")
    search: bool = False        # search for a contact rather than scroll to it
    sort: bool = False          # sort a product list by price before looking for the cheapest


def route_of(app: str, *rest: Key) -> list[Key]:
    return [HOME, app_root(app).key, *rest]


# -- acting on widgets ----------------------------------------------------------------------------------------

def find_widget(phone: Phone, pred) -> tuple[Widget | None, bool]:
    """The first widget on this screen satisfying `pred`, and whether it is in view (else scrolled out)."""
    layout = phone.layout
    for w in layout.widgets:
        if pred(w):
            return w, True
    for w in layout.hidden:
        if pred(w):
            return w, False
    return None, False


def target_of(phone: Phone, widget: Widget) -> str:
    index = phone.layout.widgets.index(widget)
    element = find_element(phone.elements, widget.text)
    return widget.text if element is not None and element.id == index + 1 else f"#{index + 1}"


def reveal(phone: Phone, widget: Widget) -> Step:
    """Scroll toward a widget that is out of view."""
    return Step("scroll", direction="up" if widget.box[1] < phone.layout.viewport[0] else "down")


def act_on(phone: Phone, pred, what: str, action: str = "click") -> Step:
    widget, shown = find_widget(phone, pred)
    if widget is None:
        raise OracleError(f"no {what} on screen {phone.screen}")
    if not shown:
        return reveal(phone, widget)
    return Step(action, target=target_of(phone, widget))


def tap(phone: Phone, text: str, action: str = "click") -> Step:
    return act_on(phone, lambda w: w.text == text, repr(text), action)


def type_into(phone: Phone, label: str, text: str) -> Step:
    """Type into the text box labelled `label` (scrolling to it first when it is out of view)."""
    step = act_on(phone, lambda w: w.role == "textbox" and w.text == label, f"text box {label!r}", "type")
    return step._replace(text=text) if step.action == "type" else step


def back(prefs: Prefs) -> Step:
    return Step("click", target="Back") if prefs.back_button else Step("press", key="back")


# -- navigation -------------------------------------------------------------------------------------------------

def _pushes(w: Widget, key: Key) -> bool:
    cmd = w.cmd
    return cmd is not None and cmd[0] == "push" and (cmd[1], cmd[2] if len(cmd) > 2 else None) == key


def goto(phone: Phone, route: list[Key], prefs: Prefs) -> Step | None:
    """The next step toward the screen `route[-1]` (reached through `route`), or None when it is on screen.

    On a screen of the route (however it was reached): open the next one. Elsewhere in the right app: tap a
    fixed button that opens a later screen of the route (the cart button), else go back. In another app: open
    the app (or go home first)."""
    state = phone.state
    keys = [s.key for s in state.stack]
    if state.dialog is not None:
        return back(prefs)
    same_app = (len(keys) >= 2 and keys[1] == route[1]) if len(route) >= 2 else len(keys) == 1
    at = None
    if len(keys) == 1:
        at = 0
    elif same_app:
        at = max((j for j in range(1, len(route)) if route[j] == keys[-1]), default=None)
    if at is not None:
        if at == len(route) - 1:
            return None
        nxt = route[at + 1]
        if at == 0:
            app = next(a for a in APPS if app_root(a).key == nxt)
            return Step("open_app", app=app) if prefs.open_app else tap(phone, app)
        helper = PUSH_HELPERS.get(nxt[0])
        step = helper(phone, nxt, prefs) if helper else None
        return step or act_on(phone, lambda w: _pushes(w, nxt), f"link to {nxt}")
    if same_app:  # a fixed button straight to a later screen of the route (the cart) beats backing out
        for j in range(len(route) - 1, 1, -1):
            widget, shown = find_widget(phone, lambda w: _pushes(w, route[j]))
            if widget is not None and shown and not widget.scrolls:
                return Step("click", target=target_of(phone, widget))
        return back(prefs)
    if len(route) == 1:
        return Step("press", key="home")
    if prefs.open_app:
        return Step("open_app", app=next(a for a in APPS if app_root(a).key == route[1]))
    return Step("press", key="home") if len(keys) > 2 else back(prefs)


def _to_contact(phone: Phone, key: Key, prefs: Prefs) -> Step | None:
    """On the contact list: search for the contact when the list hides it (or the expert likes searching)."""
    name = key[1]
    query = phone.state.top.fields.get("search", "")
    widget, shown = find_widget(phone, lambda w: _pushes(w, key))
    if widget is None or (prefs.search and not shown and query != name):
        return type_into(phone, "Search contacts", name)
    return None


PUSH_HELPERS = {"contacts.detail": _to_contact}


def fill(phone: Phone, route: list[Key], fields: list[tuple[str, str, str]], submit: str,
         prefs: Prefs) -> Step:
    """Reach a form, type each field that differs ((key, label, text)), then press its button."""
    step = goto(phone, route, prefs)
    if step is not None:
        return step
    top = phone.state.top
    for key, label, text in fields:
        if top.fields.get(key, "") != text:
            return type_into(phone, label, text)
    return tap(phone, submit)


def stuck(goal, phone: Phone) -> Step:
    raise OracleError(f"{goal!r} is not done, yet there is nothing left to do on {phone.screen}")


# -- subgoals ---------------------------------------------------------------------------------------------------

class Subgoal:
    """A condition on the state that the task needs, and the next step toward it."""

    def done(self, phone: Phone) -> bool:
        raise NotImplementedError

    def next(self, phone: Phone, prefs: Prefs) -> Step:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


class Setting(Subgoal):
    """A switch on/off, or a stepper at a value, on its settings page."""

    def __init__(self, key: str, value):
        self.key, self.value = key, value

    def done(self, phone):
        return phone.state.settings[self.key] == self.value

    def next(self, phone, prefs):
        if self.key in settings_app.STEPPERS:
            page = settings_app.STEPPER_PAGE[self.key]
            step = goto(phone, settings_route(page), prefs)
            if step:
                return step
            label = settings_app.STEPPERS[self.key][0].lower()
            up = phone.state.settings[self.key] < self.value
            return tap(phone, f"{'Increase' if up else 'Decrease'} {label}")
        if self.key == "wifi" and phone.screen[0] == "settings.wifi" and self.value:
            return tap(phone, "Turn on Wi-Fi")
        step = goto(phone, settings_route(settings_app.SWITCH_PAGE[self.key]), prefs)
        if step:
            return step
        return tap(phone, next(t for t, k in settings_app.SWITCHES.items() if k == self.key))


SETTINGS_PARENT = {"settings.network": "settings", "settings.wifi": "settings.network",
                   "settings.bluetooth": "settings", "settings.display": "settings", "settings.font":
                   "settings.display", "settings.sound": "settings", "settings.battery": "settings",
                   "settings.about": "settings", "settings.name": "settings.about"}


def settings_route(page: str) -> list[Key]:
    chain = []
    while page != "settings":
        chain.insert(0, (page, None))
        page = SETTINGS_PARENT[page]
    return route_of("Settings", *chain)


class FontSize(Subgoal):
    def __init__(self, size: str):
        self.size = size

    def done(self, phone):
        return phone.state.settings["font_size"] == self.size

    def next(self, phone, prefs):
        return goto(phone, settings_route("settings.font"), prefs) or tap(phone, self.size)


class Connected(Subgoal):
    """Connected to a Wi-Fi network (kind "wifi") or a Bluetooth device ("bt"): its switch first."""

    def __init__(self, kind: str, name: str):
        self.kind, self.name = kind, name

    def done(self, phone):
        return phone.state.settings["wifi_network" if self.kind == "wifi" else "bt_device"] == self.name

    def next(self, phone, prefs):
        switch = "wifi" if self.kind == "wifi" else "bluetooth"
        if not phone.state.settings[switch]:
            return Setting(switch, True).next(phone, prefs)
        page = "settings.wifi" if self.kind == "wifi" else "settings.bluetooth"
        return goto(phone, settings_route(page), prefs) or tap(phone, self.name)


class DeviceName(Subgoal):
    def __init__(self, name: str):
        self.name = name

    def done(self, phone):
        return phone.state.settings["device_name"] == self.name

    def next(self, phone, prefs):
        return fill(phone, settings_route("settings.name"), [("name", "New device name", self.name)], "Save", prefs)


def contact_route(name: str, *rest: Key) -> list[Key]:
    return route_of("Contacts", ("contacts.detail", name), *rest)


class Called(Subgoal):
    def __init__(self, name: str):
        self.name = name

    def done(self, phone):
        return self.name in phone.state.calls

    def next(self, phone, prefs):
        return goto(phone, contact_route(self.name), prefs) or tap(phone, "Call")


class Messaged(Subgoal):
    def __init__(self, name: str, text: str):
        self.name, self.text = name, text

    def done(self, phone):
        return (self.name, self.text) in phone.state.messages

    def next(self, phone, prefs):
        route = contact_route(self.name, ("contacts.message", self.name))
        return fill(phone, route, [("body", "Type a message", self.text)], "Send", prefs)


class Favourite(Subgoal):
    def __init__(self, name: str, value: bool = True):
        self.name, self.value = name, value

    def done(self, phone):
        return (self.name in phone.state.favourites) == self.value

    def next(self, phone, prefs):
        return goto(phone, contact_route(self.name), prefs) or tap(phone, "Favourite")


class ContactAdded(Subgoal):
    def __init__(self, name: str, phone_number: str):
        self.name, self.phone_number = name, phone_number

    def done(self, phone):
        c = phone.state.contact(self.name)
        return c is not None and c.phone == self.phone_number

    def next(self, phone, prefs):
        return fill(phone, route_of("Contacts", ("contacts.new", None)),
                    [("name", "Name", self.name), ("phone", "Phone", self.phone_number)], "Save", prefs)


class Searched(Subgoal):
    """The contact list shows the results of searching `query` (to see that nobody matches)."""

    def __init__(self, query: str):
        self.query = query

    def done(self, phone):
        return phone.screen == ("contacts", None) and phone.state.top.fields.get("search") == self.query

    def next(self, phone, prefs):
        return goto(phone, route_of("Contacts"), prefs) or type_into(phone, "Search contacts", self.query)


class Seen(Subgoal):
    """A screen is open, with an element of this text in view when `text` is given (to read an answer, or to
    check a result)."""

    def __init__(self, route: list[Key], text: str | None = None):
        self.route, self.text = route, text

    def done(self, phone):
        return phone.screen == self.route[-1] and phone.state.dialog is None and \
            (self.text is None or any(e.text == self.text for e in phone.elements))

    def next(self, phone, prefs):
        return goto(phone, self.route, prefs) or reveal(phone, find_widget(phone, lambda w: w.text == self.text)[0])


class Visited(Subgoal):
    """A screen has been opened at some point (to look something up before using it elsewhere)."""

    def __init__(self, route: list[Key]):
        self.route = route

    def done(self, phone):
        return self.route[-1] in phone.state.visited

    def next(self, phone, prefs):
        return goto(phone, self.route, prefs) or stuck(self, phone)


class Category(Subgoal):
    """The shop's category filter is set to `category` (on the shop's first screen)."""

    def __init__(self, category: str):
        self.category = category

    def done(self, phone):
        return phone.state.category == self.category

    def next(self, phone, prefs):
        return goto(phone, route_of("Shop"), prefs) or tap(phone, self.category)


def to_product(phone: Phone, product: str, category: str, prefs: Prefs) -> Step | None:
    """Toward a product's page: pick its category first when the current one does not list it."""
    state = phone.state
    if phone.screen == ("shop.product", product):
        return None
    if product not in [p.name for p in phone.world.in_category(state.category)]:
        return goto(phone, route_of("Shop"), prefs) or tap(phone, category)
    if prefs.sort and phone.screen == ("shop.products", None) and not state.sort_by_price:
        return tap(phone, "Sort by price")
    return goto(phone, route_of("Shop", ("shop.products", None), ("shop.product", product)), prefs)


class ProductViewed(Subgoal):
    """A product's page has been opened (to read its price)."""

    def __init__(self, product: str, category: str):
        self.product, self.category = product, category

    def done(self, phone):
        return ("shop.product", self.product) in phone.state.visited

    def next(self, phone, prefs):
        return to_product(phone, self.product, self.category, prefs) or stuck(self, phone)


class InCart(Subgoal):
    """`qty` of a product in the cart (no more, no fewer), chosen through its category's product list."""

    def __init__(self, product: str, category: str, qty: int = 1):
        self.product, self.category, self.qty = product, category, qty

    def done(self, phone):
        return phone.state.cart.get(self.product, 0) == self.qty

    def next(self, phone, prefs):
        state = phone.state
        have = state.cart.get(self.product, 0)
        if have > self.qty:
            return goto(phone, route_of("Shop", ("shop.cart", None)), prefs) or tap(phone, f"Remove {self.product}")
        need = self.qty - have
        if phone.screen == ("shop.product", self.product):
            chosen = int(state.top.fields.get("qty", "1"))
            if chosen != need:
                return tap(phone, "Increase quantity" if chosen < need else "Decrease quantity")
            return tap(phone, "Add to cart")
        return to_product(phone, self.product, self.category, prefs)


class Ordered(Subgoal):
    """An order of exactly `qty` of one product shipped to `address` (the cart is fixed up first)."""

    def __init__(self, product: str, category: str, qty: int, address: str):
        self.product, self.category, self.qty, self.address = product, category, qty, address

    def done(self, phone):
        return (((self.product, self.qty),), self.address) in phone.state.orders

    def next(self, phone, prefs):
        extra = next((n for n in phone.state.cart if n != self.product), None)
        if extra is not None:
            return goto(phone, route_of("Shop", ("shop.cart", None)), prefs) or tap(phone, f"Remove {extra}")
        in_cart = InCart(self.product, self.category, self.qty)
        if not in_cart.done(phone):
            return in_cart.next(phone, prefs)
        route = route_of("Shop", ("shop.cart", None), ("shop.checkout", None))
        return fill(phone, route, [("address", "Shipping address", self.address)], "Place order", prefs)


class NoteSaved(Subgoal):
    """A note with this title and body (a new one, or an existing one edited)."""

    def __init__(self, title: str, body: str):
        self.title, self.body = title, body

    def done(self, phone):
        note = phone.state.note(self.title)
        return note is not None and note.body == self.body

    def next(self, phone, prefs):
        exists = phone.state.note(self.title) is not None
        route = route_of("Notes", ("notes.edit", self.title if exists else None))
        return fill(phone, route, [("title", "Title", self.title), ("body", "Body", self.body)], "Save", prefs)


class NoteDeleted(Subgoal):
    def __init__(self, title: str):
        self.title = title

    def done(self, phone):
        return phone.state.note(self.title) is None

    def next(self, phone, prefs):
        if phone.state.dialog == ("delete_note", self.title):
            return tap(phone, "Delete")
        return goto(phone, route_of("Notes"), prefs) or tap(phone, self.title, "long_press")


def next_step(phone: Phone, subgoals, final: Step, prefs: Prefs) -> Step:
    """The expert's next step: the final step once every subgoal holds, else a step toward the first that
    does not."""
    for goal in subgoals:
        if not goal.done(phone):
            return goal.next(phone, prefs)
    return final


__all__ = ["Called", "Category", "Connected", "ContactAdded", "DeviceName", "Favourite", "FontSize", "InCart",
           "Messaged", "NoteDeleted", "NoteSaved", "OracleError", "Ordered", "Prefs", "ProductViewed", "Searched",
           "Seen", "Setting", "Subgoal", "Visited", "contact_route", "find_widget", "goto", "next_step", "route_of",
           "settings_route"]
