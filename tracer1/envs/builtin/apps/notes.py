"""Notes: a list (tap to edit, long-press to delete behind a confirmation dialog) and an editor with a title and
a body typed into text boxes."""

from __future__ import annotations

from tracer1.envs.builtin.model import Note, Screen, State, World
from tracer1.envs.builtin.ui import Page


def root(page: Page, state: State, world: World, screen: Screen) -> None:
    page.appbar("Notes", ("New note", ("push", "notes.edit")))
    if not state.notes:
        page.text("No notes yet")
    for n in state.notes:
        page.item(n.title, ("push", "notes.edit", n.title), sub=n.body.split("\n")[0] or " ",
                  long_cmd=("ask_delete", n.title))
    if state.dialog and state.dialog[0] == "delete_note":
        page.dialog(f'Delete "{state.dialog[1]}"?', [("Cancel", ("cancel",)), ("Delete", ("delete_note",))])


def edit(page: Page, state: State, world: World, screen: Screen) -> None:
    page.appbar("Edit note" if screen.arg is not None else "New note")
    page.textbox("Title", screen.fields.get("title", ""), "title", screen.focus == "title")
    page.textbox("Body", screen.fields.get("body", ""), "body", screen.focus == "body", tall=True)
    page.button("Save", ("save_note",))


# -- commands ---------------------------------------------------------------------------------------------------

def ask_delete(state: State, world: World, title: str) -> str | None:
    state.dialog = ("delete_note", title)
    return None


def cancel(state: State, world: World) -> str | None:
    state.dialog = None
    return None


def delete_note(state: State, world: World) -> str | None:
    title = state.dialog[1] if state.dialog else None
    state.dialog = None
    state.notes = [n for n in state.notes if n.title != title]
    return None


def save_note(state: State, world: World) -> str | None:
    screen = state.top
    title = " ".join(screen.fields.get("title", "").split())
    body = screen.fields.get("body", "").strip()
    if not title:
        return "the note has no title"
    if title != screen.arg and state.note(title) is not None:
        return f"a note titled {title} already exists"
    note = Note(title, body)
    index = next((i for i, n in enumerate(state.notes) if n.title == screen.arg), None)
    if index is None:
        state.notes.insert(0, note)
    else:
        state.notes[index] = note
    state.stack.pop()
    return None


def _init_edit(state: State, world: World, screen: Screen) -> None:
    note = state.note(screen.arg) if screen.arg is not None else None
    screen.fields["title"] = note.title if note else ""
    screen.fields["body"] = note.body if note else ""


SCREENS = {"notes": root, "notes.edit": edit}
COMMANDS = {"ask_delete": ask_delete, "cancel": cancel, "delete_note": delete_note, "save_note": save_note}
ON_PUSH = {"notes.edit": _init_edit}
