"""The built-in phone's state as plain data.

`World` is what an episode never changes (the shop's catalogue, the Wi-Fi networks in range, the paired
Bluetooth devices); `State` is everything an action can change: the navigation stack of screens, the settings,
contacts, cart, orders and notes. `State.clone()` is a cheap deep copy (the oracle simulates on clones).

Nothing here iterates a `set` of strings: string hashing is randomised per process, and every episode must be
the same bytes in every process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Contact:
    name: str
    phone: str
    email: str


@dataclass(frozen=True)
class Product:
    name: str
    category: str
    price: int  # cents
    blurb: str

    @property
    def price_text(self) -> str:
        return money(self.price)


@dataclass(frozen=True)
class Note:
    title: str
    body: str


def money(cents: int) -> str:
    return f"${cents // 100}.{cents % 100:02d}"


@dataclass
class Screen:
    """One screen on the navigation stack. `arg` says which thing it shows (a contact's name, a product, a
    note's title); `fields` hold its drafts and selectors (a text box's content, a quantity), `scroll` its
    scroll offset in pixels, `focus` the focused text box's key, `notice` a transient message."""

    name: str
    arg: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    scroll: int = 0
    focus: str | None = None
    notice: str | None = None

    @property
    def key(self) -> tuple[str, str | None]:
        return self.name, self.arg

    def clone(self) -> Screen:
        return Screen(self.name, self.arg, dict(self.fields), self.scroll, self.focus, self.notice)


@dataclass(frozen=True)
class World:
    """What no action changes."""

    products: tuple[Product, ...]
    categories: tuple[str, ...]          # the shop's categories, "All" excluded
    networks: tuple[str, ...]            # Wi-Fi networks in range
    devices: tuple[str, ...]             # paired Bluetooth devices
    phone_model: str = "Pixel 7"

    def product(self, name: str) -> Product | None:
        return next((p for p in self.products if p.name == name), None)

    def in_category(self, category: str, by_price: bool = False) -> list[Product]:
        items = [p for p in self.products if category == "All" or p.category == category]
        return sorted(items, key=lambda p: (p.price, p.name)) if by_price else items


DEFAULT_SETTINGS: dict[str, Any] = {
    "wifi": True, "airplane": False, "wifi_network": None, "bluetooth": False, "bt_device": None,
    "dark_mode": False, "adaptive": True, "brightness": 50, "font_size": "Default", "volume": 5, "vibrate": True,
    "dnd": False, "saver": False, "device_name": "My Phone",
}


@dataclass
class State:
    stack: list[Screen]
    settings: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SETTINGS))
    contacts: list[Contact] = field(default_factory=list)     # kept sorted by name
    favourites: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    messages: list[tuple[str, str]] = field(default_factory=list)
    category: str = "All"
    sort_by_price: bool = False
    cart: dict[str, int] = field(default_factory=dict)       # product name -> quantity, in the order added
    orders: list[tuple[tuple[tuple[str, int], ...], str]] = field(default_factory=list)  # (items, address)
    notes: list[Note] = field(default_factory=list)
    dialog: tuple[str, str] | None = None                     # ("delete_note", title)
    visited: list[tuple[str, str | None]] = field(default_factory=list)  # every screen opened, in order

    @property
    def top(self) -> Screen:
        return self.stack[-1]

    def contact(self, name: str) -> Contact | None:
        return next((c for c in self.contacts if c.name == name), None)

    def note(self, title: str) -> Note | None:
        return next((n for n in self.notes if n.title == title), None)

    def clone(self) -> State:
        return State(
            stack=[s.clone() for s in self.stack], settings=dict(self.settings), contacts=list(self.contacts),
            favourites=list(self.favourites), calls=list(self.calls), messages=list(self.messages),
            category=self.category, sort_by_price=self.sort_by_price, cart=dict(self.cart),
            orders=list(self.orders), notes=list(self.notes), dialog=self.dialog,
            visited=list(self.visited))
