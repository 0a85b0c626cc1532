"""The phone: a `State`, the screen it shows, and what each plan-language action does to it.

`Phone.act(step)` carries out one GUI action and returns the problems that kept it from doing anything (an
empty list when it acted). Where it acts: at `step.point` (0..1000 grid) when given, else at the element its
`target` names exactly (`find_element`: text, case-insensitive, or `#id`). What the actions do:

* click / long_press: run the element's command (open a screen, flip a switch, ...); a disabled element, one
  with no command, or a point on nothing is a no-op with a problem;
* type: replace the text of the text box at the point/target (which gets the focus), or of the focused box;
* scroll up/down: move the screen's list by about a page ("down" shows what is below);
* press: back (close a dialog, else go back one screen), home, enter (close the keyboard), backspace (delete the
  last character of the focused box); other keys do nothing here;
* open_app: open an app from anywhere by its name on the home screen; wait: nothing changes.
"""

from __future__ import annotations

from tracer1.envs.base import Element, element_at, find_element
from tracer1.envs.builtin.apps import APPS, COMMANDS, ON_PUSH, SCREENS, app_root
from tracer1.envs.builtin.model import Screen, State, World
from tracer1.envs.builtin.ui import Layout, Page, Widget
from tracer1.plan import Step, step_problems


class Phone:
    def __init__(self, world: World, state: State, width: int = 360, height: int = 640):
        self.world, self.state = world, state
        self.width, self.height = width, height
        self._layout: Layout | None = None

    def clone(self) -> Phone:
        return Phone(self.world, self.state.clone(), self.width, self.height)

    # -- what is on screen ------------------------------------------------------------------------------------

    @property
    def layout(self) -> Layout:
        if self._layout is None:
            top = self.state.top
            page = Page(self.width, self.height)
            SCREENS[top.name](page, self.state, self.world, top)
            self._layout = page.build(top.scroll)
            top.scroll = self._layout.scroll  # the list may have shrunk (a search)
        return self._layout

    @property
    def elements(self) -> list[Element]:
        return self.layout.elements()

    def widget(self, element: Element) -> Widget:
        return self.layout.widgets[element.id - 1]

    @property
    def screen(self) -> tuple[str, str | None]:
        return self.state.top.key

    @property
    def app(self) -> str | None:
        """The app on screen (its home-screen name), None on the home screen."""
        if len(self.state.stack) < 2:
            return None
        root = self.state.stack[1]
        return root.arg if root.name == "app" else next(a for a in APPS if app_root(a).name == root.name)

    # -- acting -----------------------------------------------------------------------------------------------

    def act(self, step: Step) -> tuple[list[str], Element | None]:
        """Carry out one GUI action. Returns (problems, the element acted on)."""
        problems = step_problems(step)
        if problems:
            return problems, None
        handler = getattr(self, "_" + step.action, None)
        if handler is None:
            return [f"{step.action} has no meaning on the phone (no-op)"], None
        element = handler(step, problems)
        self._layout = None
        return problems, element

    def _locate(self, step: Step, problems: list[str]) -> Element | None:
        elements = self.elements
        if step.point is not None:
            element = element_at(elements, step.point)
            if element is None:
                problems.append(f"nothing on screen at {step.point}")
            return element
        element = find_element(elements, step.target)
        if element is None:
            problems.append(f"no element named {step.target!r} on this screen")
        return element

    def _click(self, step: Step, problems: list[str]) -> Element | None:
        element = self._locate(step, problems)
        if element is not None:
            w = self.widget(element)
            cmd = w.cmd if step.action == "click" else w.long_cmd
            if not w.enabled:
                problems.append(f'{w.role} "{w.text}" is disabled')
            elif cmd is None:
                problems.append(f'{step.action} on {w.role} "{w.text}" does nothing')
            else:
                self.run(cmd, problems)
        return element

    _long_press = _click

    def _type(self, step: Step, problems: list[str]) -> Element | None:
        top = self.state.top
        if step.target is not None or step.point is not None:
            element = self._locate(step, problems)
            if element is None:
                return None
            w = self.widget(element)
            if w.role != "textbox":
                problems.append(f'{w.role} "{w.text}" is not a text box')
                return element
            key = w.cmd[1]
        else:
            key = top.focus
            element = next((e for e in self.elements if e.focused), None)
            if key is None or self.state.dialog:
                problems.append("no text box has the focus; name one with target=")
                return None
        top.fields[key], top.focus = step.text, key
        if key == "search":
            top.scroll = 0
        return element

    def _scroll(self, step: Step, problems: list[str]) -> Element | None:
        element = None
        if step.target is not None or step.point is not None:
            element = self._locate(step, problems)
            if element is None:
                return None
        if step.direction not in ("up", "down"):
            problems.append(f"this screen scrolls up or down, not {step.direction}")
            return element
        layout, top = self.layout, self.state.top
        if layout.max_scroll == 0 or layout.dialog:
            problems.append("nothing to scroll on this screen")
            return element
        delta = layout.scroll_step if step.direction == "down" else -layout.scroll_step
        new = min(max(0, top.scroll + delta), layout.max_scroll)
        if new == top.scroll:
            problems.append(f"already at the {'bottom' if step.direction == 'down' else 'top'}")
        top.scroll = new
        return element

    def _press(self, step: Step, problems: list[str]) -> None:
        key, top = step.key, self.state.top
        if key in ("back", "home"):
            self.run((key,), problems)
        elif key == "enter":
            if top.focus is None:
                problems.append("enter: no text box has the focus")
            top.focus = None
        elif key == "backspace":
            if top.focus is None or not top.fields.get(top.focus):
                problems.append("backspace: no text to delete")
            else:
                top.fields[top.focus] = top.fields[top.focus][:-1]
        else:
            problems.append(f"key {key!r} does nothing on this phone")

    def _open_app(self, step: Step, problems: list[str]) -> None:
        wanted = " ".join(step.app.split()).casefold()
        app = next((a for a in APPS if a.casefold() == wanted), None)
        if app is None:
            problems.append(f"no app named {step.app!r}; apps: {', '.join(APPS)}")
        else:
            self.run(("open", app), problems)

    def _wait(self, step: Step, problems: list[str]) -> None:
        return None

    # -- commands ---------------------------------------------------------------------------------------------

    def run(self, cmd: tuple, problems: list[str]) -> None:
        """Run a widget's command (see `apps`); its problem, if any, goes to `problems`."""
        state, name, args = self.state, cmd[0], cmd[1:]
        problem = None
        if name == "push":
            self.push(Screen(args[0], args[1] if len(args) > 1 else None))
        elif name == "back":
            if state.dialog is not None:
                state.dialog = None
            elif len(state.stack) == 1:
                problem = "already on the home screen"
            else:
                state.stack.pop()
        elif name == "home":
            if len(state.stack) == 1 and state.dialog is None:
                problem = "already on the home screen"
            del state.stack[1:]
            state.dialog = None
        elif name == "open":
            del state.stack[1:]
            state.dialog = None
            self.push(app_root(args[0]))
        elif name == "focus":
            state.top.focus = args[0]
        else:
            problem = COMMANDS[name](state, self.world, *args)
        if problem:
            problems.append(problem)

    def push(self, screen: Screen) -> None:
        hook = ON_PUSH.get(screen.name)
        if hook is not None:
            hook(self.state, self.world, screen)
        self.state.dialog = None
        self.state.stack.append(screen)
        self.state.visited.append(screen.key)
