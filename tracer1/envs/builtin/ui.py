"""Screen layout: one list of widgets that both the renderer and the accessibility tree read.

A screen's layout function fills a `Page` top to bottom (app bar, scrolling content, fixed footer buttons, the
navigation bar); `Page.build(scroll)` places the content at the scroll offset and returns a `Layout`. Only
widgets wholly inside the viewport are drawn and exposed, so an element's box is always exactly where its
pixels are. Sizes are those of a 360x640 phone, scaled to the screen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tracer1.envs.base import Element
from tracer1.plan import box_from_pixels

PixelBox = tuple[int, int, int, int]  # (x1, y1, x2, y2) in pixels, x2 and y2 exclusive


@dataclass(slots=True)
class Widget:
    """One thing drawn on screen. `text` is its accessible name; `label` the text drawn when that differs
    (glyph buttons); `cmd` / `long_cmd` what a click / long press does (see `apps.COMMANDS`)."""

    kind: str
    role: str
    text: str
    box: PixelBox
    value: str | None = None
    checked: bool | None = None
    focused: bool = False
    enabled: bool = True
    cmd: tuple | None = None
    long_cmd: tuple | None = None
    label: str | None = None
    sub: str | None = None
    scrolls: bool = True

    def moved(self, dy: int) -> Widget:
        x1, y1, x2, y2 = self.box
        return Widget(self.kind, self.role, self.text, (x1, y1 + dy, x2, y2 + dy), self.value, self.checked,
                      self.focused, self.enabled, self.cmd, self.long_cmd, self.label, self.sub, self.scrolls)


@dataclass(frozen=True)
class Metrics:
    """Pixel sizes for a screen: those of a 360x640 phone times `s`."""

    width: int
    height: int
    s: float

    @classmethod
    def of(cls, width: int, height: int) -> Metrics:
        return cls(width, height, min(width / 360, height / 640))

    def __call__(self, value: float) -> int:
        return max(1, round(value * self.s))

    @property
    def status_h(self) -> int:
        return self(24)

    @property
    def appbar_h(self) -> int:
        return self(56)

    @property
    def nav_h(self) -> int:
        return self(48)

    @property
    def pad(self) -> int:
        return self(16)

    def font(self, kind: str) -> int:
        return max(7, round({"body": 15, "small": 12, "title": 20, "icon": 20}[kind] * self.s))


@dataclass
class Layout:
    width: int
    height: int
    widgets: list[Widget]            # exposed, in reading order; element ids are index + 1
    hidden: list[Widget]             # content scrolled out of view, placed where it would be drawn
    backdrop: list[Widget] = field(default_factory=list)  # drawn under an open dialog, not exposed
    scroll: int = 0
    max_scroll: int = 0
    scroll_step: int = 0
    viewport: tuple[int, int] = (0, 0)
    appbar: bool = True
    dialog: bool = False
    _elements: list[Element] | None = None

    def elements(self) -> list[Element]:
        if self._elements is None:
            self._elements = [
                Element(id=i + 1, role=w.role, text=w.text,
                        box=box_from_pixels(*w.box, self.width, self.height), value=w.value,
                        checked=w.checked, focused=w.focused, enabled=w.enabled)
                for i, w in enumerate(self.widgets)]
        return self._elements


class Page:
    """Builds one screen. Content methods add widgets below the previous one (y relative to the content top)."""

    def __init__(self, width: int, height: int):
        self.m = Metrics.of(width, height)
        self.W, self.H = width, height
        self.title: str | None = None
        self.top: list[Widget] = []
        self.content: list[Widget] = []
        self.footer_specs: list[tuple] = []
        self.dialog_specs: tuple | None = None
        self.y = 0

    # -- chrome -----------------------------------------------------------------------------------------------

    def appbar(self, title: str, action: tuple[str, tuple] | None = None) -> None:
        """The app bar: a title and, on the right, an optional action button (text, command)."""
        m = self.m
        y1, y2 = m.status_h, m.status_h + m.appbar_h
        x_end = self.W - m.pad
        if action is not None:
            from tracer1.envs.builtin.render import text_width

            w = text_width(action[0], m.font("body")) + 2 * m(12)
            bx2 = self.W - m(8)
            bx1 = max(self.W // 2, bx2 - w)
            self.top.append(Widget("action", "button", action[0], (bx1, y1 + m(10), bx2, y2 - m(10)),
                                   cmd=action[1], scrolls=False))
            x_end = bx1 - m(8)
        self.title = title
        self.top.insert(0, Widget("heading", "heading", title, (m.pad, y1, x_end, y2), scrolls=False))

    def footer(self, text: str, cmd: tuple | None, enabled: bool = True) -> None:
        """A full-width button fixed above the navigation bar."""
        self.footer_specs.append((text, cmd, enabled))

    def dialog(self, title: str, buttons: list[tuple[str, tuple]]) -> None:
        self.dialog_specs = (title, buttons)

    # -- content ----------------------------------------------------------------------------------------------

    def _add(self, widget: Widget, height: int) -> Widget:
        self.content.append(widget)
        self.y += height
        return widget

    def gap(self, height: float) -> None:
        self.y += self.m(height)

    def section(self, text: str) -> None:
        m = self.m
        self._add(Widget("section", "text", text, (m.pad, self.y, self.W - m.pad, self.y + m(36))), m(36))

    def text(self, text: str, value: str | None = None) -> None:
        m = self.m
        h = m(56) if value is not None else m(40)
        self._add(Widget("text", "text", text, (m.pad, self.y, self.W - m.pad, self.y + h), value=value), h)

    def item(self, text: str, cmd: tuple | None = None, value: str | None = None, sub: str | None = None,
             long_cmd: tuple | None = None, chevron: bool = False, right: int = 0) -> Widget:
        """A list row; `right` leaves that many pixels free on the right (for a button beside it)."""
        m = self.m
        h = m(64) if sub else m(56)
        box = (0, self.y, self.W - right, self.y + h)
        return self._add(Widget("nav" if chevron else "item", "item", text, box, value=value, cmd=cmd,
                                long_cmd=long_cmd, sub=sub), h)

    def switch(self, text: str, checked: bool, cmd: tuple) -> None:
        m = self.m
        self._add(Widget("switch", "switch", text, (0, self.y, self.W, self.y + m(56)), checked=checked, cmd=cmd),
                  m(56))

    def radio(self, text: str, checked: bool, cmd: tuple) -> None:
        m = self.m
        self._add(Widget("radio", "radio", text, (0, self.y, self.W, self.y + m(48)), checked=checked, cmd=cmd),
                  m(48))

    def checkbox(self, text: str, checked: bool, cmd: tuple) -> None:
        m = self.m
        self._add(Widget("checkbox", "checkbox", text, (0, self.y, self.W, self.y + m(56)), checked=checked,
                         cmd=cmd), m(56))

    def textbox(self, label: str, value: str, key: str, focused: bool, tall: bool = False) -> None:
        m = self.m
        h = m(96) if tall else m(56)
        y = self.y + m(8)
        self.content.append(Widget("textbox", "textbox", label, (m.pad, y, self.W - m.pad, y + h), value=value,
                                   focused=focused, cmd=("focus", key)))
        self.y += h + m(16)

    def button(self, text: str, cmd: tuple | None, enabled: bool = True) -> None:
        self.buttons([(text, cmd, enabled)])

    def buttons(self, specs: list[tuple]) -> None:
        """Buttons side by side in one row: (text, cmd) or (text, cmd, enabled)."""
        m = self.m
        n = len(specs)
        gap = m(12)
        width = (self.W - 2 * m.pad - gap * (n - 1)) // n
        y = self.y + m(8)
        for i, spec in enumerate(specs):
            text, cmd = spec[0], spec[1]
            enabled = spec[2] if len(spec) > 2 else True
            x = m.pad + i * (width + gap)
            self.content.append(Widget("button", "button", text, (x, y, x + width, y + m(44)), cmd=cmd,
                                       enabled=enabled))
        self.y += m(60)

    def side_button(self, text: str, label: str, cmd: tuple, width: int) -> None:
        """A small button at the right end of the row just added (see `item(right=...)`)."""
        m = self.m
        row = self.content[-1]
        y_mid = (row.box[1] + row.box[3]) // 2
        self.content.append(Widget("small", "button", text, (self.W - width, y_mid - m(18), self.W - m(8),
                                                             y_mid + m(18)), cmd=cmd, label=label))

    def stepper(self, text: str, value: str, dec: tuple[str, tuple], inc: tuple[str, tuple]) -> None:
        """A value with "−" and "+" buttons; dec / inc are (accessible name, command)."""
        m = self.m
        h, b = m(56), m(40)
        y = self.y
        x_inc = self.W - m.pad - b
        x_dec = x_inc - m(12) - b
        top = y + (h - b) // 2
        self.content.append(Widget("stepper", "text", text, (m.pad, y, x_dec - m(8), y + h), value=value))
        self.content.append(Widget("round", "button", dec[0], (x_dec, top, x_dec + b, top + b), cmd=dec[1],
                                   label="-"))
        self.content.append(Widget("round", "button", inc[0], (x_inc, top, x_inc + b, top + b), cmd=inc[1],
                                   label="+"))
        self.y += h

    def icons(self, names: list[str], columns: int = 4) -> None:
        """The home screen's grid of app icons."""
        m = self.m
        cell_w = self.W // columns
        cell_h = m(96)
        for i, name in enumerate(names):
            r, c = divmod(i, columns)
            x, y = c * cell_w, self.y + r * cell_h
            self.content.append(Widget("icon", "button", name, (x + m(4), y + m(4), x + cell_w - m(4),
                                                                y + cell_h - m(4)), cmd=("open", name)))
        self.y += cell_h * ((len(names) + columns - 1) // columns)

    # -- placing ----------------------------------------------------------------------------------------------

    def build(self, scroll: int = 0) -> Layout:
        m, W, H = self.m, self.W, self.H
        top = m.status_h + (m.appbar_h if self.title is not None else 0)
        nav_top = H - m.nav_h
        footer: list[Widget] = []
        bottom = nav_top
        for text, cmd, enabled in reversed(self.footer_specs):
            bottom -= m(56)
            footer.insert(0, Widget("button", "button", text, (m.pad, bottom + m(6), W - m.pad, bottom + m(50)),
                                    cmd=cmd, enabled=enabled, scrolls=False))
        view_h = max(1, bottom - top)
        max_scroll = max(0, self.y - view_h)
        scroll = min(max(0, scroll), max_scroll)
        shown, hidden = [], []
        for w in self.content:
            placed = w.moved(top - scroll)
            (shown if placed.box[1] >= top and placed.box[3] <= bottom else hidden).append(placed)
        nav = [Widget("nav_back", "button", "Back", (W // 2 - m(112), nav_top, W // 2 - m(48), H),
                      cmd=("back",), scrolls=False),
               Widget("nav_home", "button", "Home", (W // 2 - m(32), nav_top, W // 2 + m(32), H),
                      cmd=("home",), scrolls=False)]
        widgets = self.top + shown + footer
        layout = Layout(W, H, widgets + nav, hidden, scroll=scroll, max_scroll=max_scroll,
                        scroll_step=max(m(56), view_h - m(56)), viewport=(top, bottom),
                        appbar=self.title is not None)
        if self.dialog_specs is not None:
            title, buttons = self.dialog_specs
            x1, x2 = m(32), W - m(32)
            y1 = H // 2 - m(80)
            y2 = H // 2 + m(80)
            panel = Widget("dialog", "dialog", title, (x1, y1, x2, y2), scrolls=False)
            bw = (x2 - x1 - m(24) * (len(buttons) + 1)) // max(1, len(buttons))
            row = [Widget("dbutton", "button", text, (x1 + m(24) + i * (bw + m(24)), y2 - m(60),
                                                      x1 + m(24) + i * (bw + m(24)) + bw, y2 - m(16)),
                          cmd=cmd, scrolls=False)
                   for i, (text, cmd) in enumerate(buttons)]
            layout.backdrop, layout.widgets, layout.dialog = widgets, [panel, *row, *nav], True
        return layout
