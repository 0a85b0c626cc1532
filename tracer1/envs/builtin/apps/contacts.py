"""Contacts: a long list with a search box, a contact's page (call, message, favourite) and a new-contact form."""

from __future__ import annotations

from tracer1.envs.builtin.model import Contact, Screen, State, World
from tracer1.envs.builtin.ui import Page


def matches(state: State, query: str) -> list[Contact]:
    """The contacts the list shows for a search query (case-insensitive substring of the name)."""
    q = " ".join(query.split()).casefold()
    return [c for c in state.contacts if q in c.name.casefold()]


def root(page: Page, state: State, world: World, screen: Screen) -> None:
    page.appbar("Contacts", ("Add contact", ("push", "contacts.new")))
    query = screen.fields.get("search", "")
    page.textbox("Search contacts", query, "search", screen.focus == "search")
    shown = matches(state, query)
    if not shown:
        page.text("No contacts found")
    for c in shown:
        page.item(c.name, ("push", "contacts.detail", c.name),
                  value="Favourite" if c.name in state.favourites else None)


def detail(page: Page, state: State, world: World, screen: Screen) -> None:
    c = state.contact(screen.arg or "")
    page.appbar(screen.arg or "Contact")
    if c is None:
        page.text("Contact not found")
        return
    page.text("Mobile", c.phone)
    page.text("Email", c.email)
    page.buttons([("Call", ("call", c.name)), ("Message", ("push", "contacts.message", c.name))])
    page.checkbox("Favourite", c.name in state.favourites, ("fav", c.name))


def call(page: Page, state: State, world: World, screen: Screen) -> None:
    c = state.contact(screen.arg or "")
    page.appbar("Calling")
    page.text(screen.arg or "", c.phone if c else None)
    page.text("Call in progress")
    page.gap(120)
    page.button("End call", ("end_call",))


def message(page: Page, state: State, world: World, screen: Screen) -> None:
    page.appbar("New message")
    page.text("To", screen.arg or "")
    page.textbox("Type a message", screen.fields.get("body", ""), "body", screen.focus == "body", tall=True)
    page.button("Send", ("send", screen.arg))
    if screen.notice:
        page.text(screen.notice)


def new_contact(page: Page, state: State, world: World, screen: Screen) -> None:
    page.appbar("New contact")
    page.textbox("Name", screen.fields.get("name", ""), "name", screen.focus == "name")
    page.textbox("Phone", screen.fields.get("phone", ""), "phone", screen.focus == "phone")
    page.button("Save", ("save_contact",))


# -- commands ---------------------------------------------------------------------------------------------------

def do_call(state: State, world: World, name: str) -> str | None:
    state.calls.append(name)
    state.stack.append(Screen("contacts.call", name))
    return None


def end_call(state: State, world: World) -> str | None:
    state.stack.pop()
    return None


def send(state: State, world: World, name: str) -> str | None:
    body = state.top.fields.get("body", "").strip()
    if not body:
        return "the message is empty"
    state.messages.append((name, body))
    state.top.fields["body"] = ""
    state.top.focus = None
    state.top.notice = "Message sent"
    return None


def fav(state: State, world: World, name: str) -> str | None:
    if name in state.favourites:
        state.favourites.remove(name)
    else:
        state.favourites.append(name)
    return None


def save_contact(state: State, world: World) -> str | None:
    name = " ".join(state.top.fields.get("name", "").split())
    phone = state.top.fields.get("phone", "").strip()
    if not name:
        return "the contact has no name"
    if state.contact(name) is not None:
        return f"a contact named {name} already exists"
    state.contacts.append(Contact(name, phone, ""))
    state.contacts.sort(key=lambda c: c.name.casefold())
    state.stack.pop()
    return None


SCREENS = {"contacts": root, "contacts.detail": detail, "contacts.call": call, "contacts.message": message,
           "contacts.new": new_contact}
COMMANDS = {"call": do_call, "end_call": end_call, "send": send, "fav": fav, "save_contact": save_contact}
ON_PUSH: dict = {}
