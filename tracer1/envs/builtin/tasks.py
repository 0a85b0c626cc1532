"""Tasks for the built-in phone, generated deterministically from a seed.

A task is a random phone (world + state, sometimes opened on some screen other than home), an instruction, the
subgoals that make its goal (see `oracle`), the step that ends it (finish, answer, or finish(infeasible)) and
the expert's habits. `make_task(seed, family)` draws one; `FAMILIES` lists the families with the apps they use.
Families range from two oracle steps (open an app) to over twelve (buy a product and check out; two tasks in
two apps), with choices whose effect shows later (the shop's category decides the product list; a switch
decides what a sub-page lists) and distractors (look-alike names, irrelevant rows and apps).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from tracer1.envs.builtin import oracle as o
from tracer1.envs.builtin.apps import HOME_ICONS, settings as settings_app
from tracer1.envs.builtin.model import Screen, State, World
from tracer1.envs.builtin.phone import Phone
from tracer1.envs.builtin.world import FIRST, LAST, make_state, make_world
from tracer1.plan import Step

SUCCESS = Step("finish", status="success")
INFEASIBLE = Step("finish", status="infeasible")


@dataclass
class Task:
    family: str
    instruction: str
    app: str                        # the app the task is about ("Home" for home-screen tasks, "A+B" for two)
    world: World
    initial: State
    subgoals: tuple[o.Subgoal, ...]
    final: Step                     # what ends the task: finish(success), answer(text) or finish(infeasible)
    prefs: o.Prefs
    seed: int
    oracle_steps: int = 0           # length of the oracle's solution from the initial state (final step included)

    @property
    def name(self) -> str:
        return self.family

    def judge(self, phone: Phone, step: Step) -> bool:
        """Whether ending the episode with `step` (finish or answer) in this state is a success."""
        if self.final.action == "answer":
            return step.action == "answer" and _norm(step.text) == _norm(self.final.text)
        if self.final.status == "infeasible":
            return step.action == "finish" and step.status == "infeasible"
        return (step.action == "finish" and step.status in (None, "success")
                and all(g.done(phone) for g in self.subgoals))

    def goal_met(self, phone: Phone) -> bool:
        return all(g.done(phone) for g in self.subgoals)


def _norm(text: str | None) -> str:
    return " ".join((text or "").split()).strip(".!").casefold()


@dataclass
class Spec:
    instruction: str
    app: str
    subgoals: list
    final: Step = SUCCESS
    start: str | None = "any"      # "any": a random start screen now and then; "home"; "elsewhere"


def _pick(rng: random.Random, *templates: str) -> str:
    return rng.choice(templates)


# -- settings -----------------------------------------------------------------------------------------------------

SWITCH_NAMES = {"wifi": "Wi-Fi", "airplane": "airplane mode", "bluetooth": "Bluetooth", "dark_mode": "dark mode",
                "adaptive": "adaptive brightness", "vibrate": "vibrate on ring", "dnd": "Do not disturb",
                "saver": "battery saver"}


def open_app(rng, world, state):
    app = rng.choice(HOME_ICONS)
    return Spec(_pick(rng, f"Open the {app} app.", f"Launch {app}.", f"Go to {app}."), app,
                [o.Seen(o.route_of(app))], start="home")


def go_home(rng, world, state):
    return Spec(_pick(rng, "Go back to the home screen.", "Return to the home screen."), "Home",
                [o.Seen([o.HOME])], start="elsewhere")


def _toggle(rng, state):
    key = rng.choice(sorted(SWITCH_NAMES))
    value = not state.settings[key]
    text = _pick(rng, f"turn {'on' if value else 'off'} {SWITCH_NAMES[key]}",
                 f"switch {SWITCH_NAMES[key]} {'on' if value else 'off'}")
    return text, o.Setting(key, value)


def _stepper(rng, state):
    key = rng.choice(["brightness", "volume"])
    _, step, low, high, unit = settings_app.STEPPERS[key]
    now = state.settings[key]
    options = [v for v in range(low, high + 1, step) if v != now and abs(v - now) <= 4 * step]
    value = rng.choice(options)
    return f"set the {key} to {value}{unit}", o.Setting(key, value)


def _font(rng, state):
    size = rng.choice([s for s in settings_app.FONT_SIZES if s != state.settings["font_size"]])
    return f"change the font size to {size}", o.FontSize(size)


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def toggle(rng, world, state):
    text, goal = _toggle(rng, state)
    return Spec(_sentence(text), "Settings", [goal])


def stepper(rng, world, state):
    text, goal = _stepper(rng, state)
    return Spec(_sentence(text), "Settings", [goal])


def font_size(rng, world, state):
    text, goal = _font(rng, state)
    return Spec(_sentence(text), "Settings", [goal])


def settings_combo(rng, world, state):
    makers = rng.sample([_toggle, _stepper, _font], 2) + ([_toggle] if rng.random() < 0.4 else [])
    parts, goals = [], []
    for make in makers:
        text, goal = make(rng, state)
        if any(getattr(g, "key", None) == getattr(goal, "key", None) for g in goals):
            continue  # the same setting twice
        parts.append(text)
        goals.append(goal)
    instruction = _sentence(", ".join(parts[:-1]) + " and " + parts[-1]) if len(parts) > 1 else _sentence(parts[0])
    return Spec(instruction, "Settings", goals)


def wifi_connect(rng, world, state):
    net = rng.choice([n for n in world.networks if n != state.settings["wifi_network"]])
    if rng.random() < 0.5:
        state.settings.update(wifi=False, wifi_network=None)
    return Spec(_pick(rng, f"Connect to the Wi-Fi network {net}.", f"Join the {net} Wi-Fi network."), "Settings",
                [o.Connected("wifi", net)])


def bt_connect(rng, world, state):
    dev = rng.choice([d for d in world.devices if d != state.settings["bt_device"]])
    return Spec(_pick(rng, f"Connect to {dev} over Bluetooth.", f"Connect the phone to {dev} with Bluetooth."),
                "Settings", [o.Connected("bt", dev)])


def verify_listed(rng, world, state):
    """Turn a switch on, then check on its page that an item is listed (the switch decides what is there)."""
    if rng.random() < 0.5:
        state.settings.update(bluetooth=False, bt_device=None)
        dev = rng.choice(world.devices)
        return Spec(f"Turn on Bluetooth and check that {dev} is among the paired devices.", "Settings",
                    [o.Setting("bluetooth", True), o.Seen(o.settings_route("settings.bluetooth"), dev)])
    state.settings.update(wifi=False, wifi_network=None)
    net = rng.choice(world.networks)
    return Spec(f"Turn Wi-Fi on, then open the list of Wi-Fi networks and find {net}.", "Settings",
                [o.Setting("wifi", True), o.Seen(o.settings_route("settings.wifi"), net)])


def device_name(rng, world, state):
    name = rng.choice([n for n in ("Kai's Phone", "Work Phone", "Travel phone", "Home Phone", "Ana's Pixel")
                       if n != state.settings["device_name"]])
    return Spec(_pick(rng, f"Rename the phone to {name}.", f"Change the device name to {name}."), "Settings",
                [o.DeviceName(name)])


# -- contacts -----------------------------------------------------------------------------------------------------

MESSAGES = ["See you at 6", "Running late", "Happy birthday!", "Call me back", "On my way", "Thanks for lunch"]


def _someone(rng, state) -> str:
    return rng.choice(state.contacts).name


def call(rng, world, state):
    name = _someone(rng, state)
    return Spec(_pick(rng, f"Call {name}.", f"Phone {name}.", f"Start a call with {name}."), "Contacts",
                [o.Called(name)])


def message(rng, world, state):
    name, text = _someone(rng, state), rng.choice(MESSAGES)
    return Spec(_pick(rng, f'Send {name} the message "{text}".', f'Text {name}: "{text}".'), "Contacts",
                [o.Messaged(name, text)])


def favourite(rng, world, state):
    name = _someone(rng, state)
    if name in state.favourites:
        return Spec(f"Remove {name} from favourites.", "Contacts", [o.Favourite(name, False)])
    return Spec(_pick(rng, f"Add {name} to favourites.", f"Mark {name} as a favourite contact."), "Contacts",
                [o.Favourite(name, True)])


def _new_name(rng, state) -> str:
    """A name that is not a contact, sharing a first or last name with one (a look-alike)."""
    taken = {c.name for c in state.contacts}
    base = _someone(rng, state).split()
    while True:
        name = f"{base[0]} {rng.choice(LAST)}" if rng.random() < 0.5 else f"{rng.choice(FIRST)} {base[1]}"
        if name not in taken:
            return name


def add_contact(rng, world, state):
    name = _new_name(rng, state)
    number = f"555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"
    return Spec(f"Add a new contact {name} with phone number {number}.", "Contacts", [o.ContactAdded(name, number)])


def phone_lookup(rng, world, state):
    c = rng.choice(state.contacts)
    return Spec(_pick(rng, f"What is {c.name}'s phone number?", f"Look up {c.name}'s mobile number."), "Contacts",
                [o.Seen(o.contact_route(c.name), "Mobile")], Step("answer", text=c.phone))


def call_missing(rng, world, state):
    name = _new_name(rng, state)
    return Spec(f"Call {name} (say it is infeasible if there is no such contact).", "Contacts",
                [o.Searched(name)], INFEASIBLE)


# -- shop ---------------------------------------------------------------------------------------------------------

ADDRESSES = ["12 Elm St", "4 Rue Cler", "221B Baker St", "9 Harbour Rd", "77 Hill Ave"]


def _product(rng, world, category: str | None = None):
    return rng.choice([p for p in world.products if category is None or p.category == category])


def _shop_start(rng, state):
    state.category = rng.choice(["All", "All", "Books", "Toys"])


def shop_cheapest(rng, world, state):
    """The early choice: the category picked on the first screen decides which list the cheapest comes from."""
    _shop_start(rng, state)
    category = rng.choice(world.categories)
    cheapest = min(world.in_category(category), key=lambda p: p.price)
    return Spec(_pick(rng, f"In Shop, choose the {category} category and add the cheapest item to the cart.",
                      f"Pick {category} in the shop, then put its cheapest product in the cart."), "Shop",
                [o.Category(category), o.InCart(cheapest.name, category, 1)])


def shop_quantity(rng, world, state):
    _shop_start(rng, state)
    p = _product(rng, world)
    qty = rng.randint(2, 4)
    return Spec(f"Add {qty} {p.name} to the cart (under {p.category}).", "Shop", [o.InCart(p.name, p.category, qty)])


def shop_checkout(rng, world, state):
    _shop_start(rng, state)
    p, qty, address = _product(rng, world), rng.randint(1, 3), rng.choice(ADDRESSES)
    if rng.random() < 0.3:  # a leftover item in the cart that must go
        other = _product(rng, world)
        if other.name != p.name:
            state.cart[other.name] = 1
    return Spec(f"Buy {qty} {p.name} from {p.category} and ship the order to {address}; nothing else.", "Shop",
                [o.Ordered(p.name, p.category, qty, address)])


# -- notes --------------------------------------------------------------------------------------------------------

NEW_NOTES = {"Shopping": "bread and cheese", "Ideas": "a blog about birds", "Plan": "pack on Friday",
             "Reminder": "water the plants", "Films": "Alien, Heat", "Quotes": "less is more"}


def new_note(rng, world, state):
    title = rng.choice([t for t in NEW_NOTES if state.note(t) is None])
    return Spec(f'Create a note titled "{title}" that says "{NEW_NOTES[title]}".', "Notes",
                [o.NoteSaved(title, NEW_NOTES[title])])


def edit_note(rng, world, state):
    note = rng.choice(state.notes)
    body = rng.choice([b for b in NEW_NOTES.values() if b != note.body])
    return Spec(f'Change the note "{note.title}" so that it says "{body}".', "Notes", [o.NoteSaved(note.title, body)])


def delete_note(rng, world, state):
    note = rng.choice(state.notes)
    return Spec(_pick(rng, f'Delete the note "{note.title}".', f'Remove the "{note.title}" note.'), "Notes",
                [o.NoteDeleted(note.title)])


# -- across apps --------------------------------------------------------------------------------------------------

def number_to_note(rng, world, state):
    """Read a phone number in Contacts, then write it in Notes."""
    c = rng.choice(state.contacts)
    title = f"{c.name.split()[0]}'s number"
    return Spec(f'Look up {c.name}\'s phone number and save it in a new note titled "{title}".', "Contacts+Notes",
                [o.Visited(o.contact_route(c.name)), o.NoteSaved(title, c.phone)])


def price_to_message(rng, world, state):
    """Read a price in Shop, then send it from Contacts."""
    _shop_start(rng, state)
    p = _product(rng, world)
    name = _someone(rng, state)
    return Spec(f"Find the price of {p.name} ({p.category}) in the shop and send it to {name} as a message.",
                "Shop+Contacts",
                [o.ProductViewed(p.name, p.category), o.Messaged(name, p.price_text)])


COMBINABLE = {"Settings": ["toggle", "stepper", "font_size", "device_name"],
              "Contacts": ["call", "message", "favourite", "add_contact"],
              "Shop": ["shop_cheapest", "shop_quantity"], "Notes": ["new_note", "delete_note", "edit_note"]}


def two_apps(rng, world, state):
    """Two tasks in two apps, one after the other."""
    first, second = rng.sample(sorted(COMBINABLE), 2)
    a = FAMILIES[rng.choice(COMBINABLE[first])][0](rng, world, state)
    b = FAMILIES[rng.choice(COMBINABLE[second])][0](rng, world, state)
    instruction = f"{a.instruction[:-1]}, then {b.instruction[0].lower()}{b.instruction[1:]}"
    return Spec(instruction, f"{a.app}+{b.app}", a.subgoals + b.subgoals)


# family -> (maker, weight)
FAMILIES: dict[str, tuple[Callable, float]] = {
    "open_app": (open_app, 0.6), "go_home": (go_home, 0.4),
    "toggle": (toggle, 1.0), "stepper": (stepper, 0.8), "font_size": (font_size, 0.5),
    "settings_combo": (settings_combo, 0.8), "wifi_connect": (wifi_connect, 0.8), "bt_connect": (bt_connect, 0.5),
    "verify_listed": (verify_listed, 0.7), "device_name": (device_name, 0.6),
    "call": (call, 0.8), "message": (message, 0.8), "favourite": (favourite, 0.6), "add_contact": (add_contact, 0.6),
    "phone_lookup": (phone_lookup, 0.6), "call_missing": (call_missing, 0.4),
    "shop_cheapest": (shop_cheapest, 1.0), "shop_quantity": (shop_quantity, 0.8), "shop_checkout": (shop_checkout, 1.0),
    "new_note": (new_note, 0.7), "edit_note": (edit_note, 0.5), "delete_note": (delete_note, 0.6),
    "number_to_note": (number_to_note, 0.7), "price_to_message": (price_to_message, 0.6), "two_apps": (two_apps, 1.2),
}

START_SCREENS = [("Settings", ()), ("Settings", (("settings.display", None),)), ("Contacts", ()), ("Shop", ()),
                 ("Shop", (("shop.products", None),)), ("Notes", ()), ("Camera", ()), ("Clock", ())]


def _start(rng: random.Random, phone: Phone, where: str | None) -> None:
    if where == "home" or (where == "any" and rng.random() < 0.75):
        return
    app, rest = rng.choice(START_SCREENS)
    phone.run(("open", app), [])
    for name, arg in rest:
        phone.push(Screen(name, arg))


def solve(task: Task, width: int = 360, height: int = 640, limit: int = 60) -> list[Step]:
    """The oracle's steps from the task's initial state to its final step (included)."""
    phone = Phone(task.world, task.initial.clone(), width, height)
    steps = []
    for _ in range(limit):
        step = o.next_step(phone, task.subgoals, task.final, task.prefs)
        steps.append(step)
        if step.action in ("finish", "answer"):
            return steps
        problems, _ = phone.act(step)
        if problems:
            raise o.OracleError(f"{task.family} (seed {task.seed}): oracle step {step} failed: {problems}")
    raise o.OracleError(f"{task.family} (seed {task.seed}): no end after {limit} oracle steps")


def make_task(seed: int, family: str | None = None, families: tuple[str, ...] = (), width: int = 360,
              height: int = 640, max_steps: int = 20) -> Task:
    """The task for `seed` (of `family`, or drawn by weight from `families` / all). Its oracle solution fits in
    `max_steps` on a `width` x `height` screen (a draw that would not is replaced by the next draw)."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown builtin task family {family!r}; known: {', '.join(FAMILIES)}")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown builtin task families {unknown}; known: {', '.join(FAMILIES)}")
    rng = random.Random(f"tracer1-builtin:{seed}")
    pool = [family] if family else sorted(families or FAMILIES)
    for _ in range(100):
        name = pool[0] if len(pool) == 1 else rng.choices(pool, weights=[FAMILIES[f][1] for f in pool])[0]
        world = make_world(rng)
        state = make_state(rng, world)
        spec = FAMILIES[name][0](rng, world, state)
        phone = Phone(world, state, width, height)
        _start(rng, phone, spec.start)
        prefs = o.Prefs(open_app=rng.random() < 0.4, back_button=rng.random() < 0.25, search=rng.random() < 0.5,
                        sort=rng.random() < 0.4)
        task = Task(name, spec.instruction, spec.app, world, phone.state, tuple(spec.subgoals), spec.final, prefs,
                    seed)
        if task.goal_met(phone) and spec.final == SUCCESS:
            continue  # nothing to do: draw again
        steps = solve(task, width, height)
        if len(steps) <= max_steps:
            task.oracle_steps = len(steps)
            return task
    raise RuntimeError(f"no {family or 'builtin'} task fits in {max_steps} steps for seed {seed}")
