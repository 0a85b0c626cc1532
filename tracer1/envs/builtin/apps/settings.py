"""Settings: switches, steppers and radio choices on sub-pages; Wi-Fi networks and paired Bluetooth devices that
show only while their switch is on; a device name typed into a form."""

from __future__ import annotations

from tracer1.envs.builtin.model import Screen, State, World
from tracer1.envs.builtin.ui import Page

FONT_SIZES = ("Small", "Default", "Large", "Largest")
# switch texts -> settings keys (a switch's text never equals its page's title, so targets are unambiguous)
SWITCHES = {"Wi-Fi": "wifi", "Airplane mode": "airplane", "Use Bluetooth": "bluetooth", "Dark mode": "dark_mode",
            "Adaptive brightness": "adaptive", "Vibrate on ring": "vibrate", "Do not disturb": "dnd",
            "Battery saver": "saver"}
# stepper key -> (label, step, low, high, unit)
STEPPERS = {"brightness": ("Brightness", 10, 0, 100, "%"), "volume": ("Volume", 1, 0, 10, "")}
SWITCH_PAGE = {"wifi": "settings.network", "airplane": "settings.network", "bluetooth": "settings.bluetooth",
               "dark_mode": "settings.display", "adaptive": "settings.display", "vibrate": "settings.sound",
               "dnd": "settings.sound", "saver": "settings.battery"}
STEPPER_PAGE = {"brightness": "settings.display", "volume": "settings.sound"}


def _switch(page: Page, state: State, text: str) -> None:
    key = SWITCHES[text]
    page.switch(text, bool(state.settings[key]), ("toggle", key))


def stepper(page: Page, state: State, key: str) -> None:
    label, step, _, _, unit = STEPPERS[key]
    lower = label.lower()
    page.stepper(label, f"{state.settings[key]}{unit}", (f"Decrease {lower}", ("step", key, -step)),
                 (f"Increase {lower}", ("step", key, step)))


def root(page: Page, state: State, world: World, screen: Screen) -> None:
    s = state.settings
    page.appbar("Settings")
    wifi = "Wi-Fi off" if not s["wifi"] else (f"Wi-Fi: {s['wifi_network']}" if s["wifi_network"] else "Wi-Fi on")
    page.item("Network & internet", ("push", "settings.network"), value=wifi, chevron=True)
    page.item("Bluetooth", ("push", "settings.bluetooth"), value="On" if s["bluetooth"] else "Off", chevron=True)
    page.item("Display", ("push", "settings.display"), value=f"{s['brightness']}%", chevron=True)
    page.item("Sound", ("push", "settings.sound"), value=f"Volume {s['volume']}", chevron=True)
    page.item("Battery", ("push", "settings.battery"), value="82%", chevron=True)
    page.item("About phone", ("push", "settings.about"), value=s["device_name"], chevron=True)


def network(page: Page, state: State, world: World, screen: Screen) -> None:
    s = state.settings
    page.appbar("Network & internet")
    _switch(page, state, "Wi-Fi")
    _switch(page, state, "Airplane mode")
    page.item("Wi-Fi networks", ("push", "settings.wifi"),
              value=(s["wifi_network"] or "Not connected") if s["wifi"] else "Off", chevron=True)


def wifi(page: Page, state: State, world: World, screen: Screen) -> None:
    s = state.settings
    page.appbar("Wi-Fi networks")
    if not s["wifi"]:
        page.text("Wi-Fi is off.")
        page.button("Turn on Wi-Fi", ("toggle", "wifi"))
        return
    page.section("Available networks")
    for i, name in enumerate(world.networks):
        page.item(name, ("connect", name), value="Connected" if s["wifi_network"] == name else
                  ("Open" if i % 3 == 2 else "Secured"))


def bluetooth(page: Page, state: State, world: World, screen: Screen) -> None:
    s = state.settings
    page.appbar("Bluetooth")
    _switch(page, state, "Use Bluetooth")
    if not s["bluetooth"]:
        page.text("Turn on Bluetooth to see devices.")
        return
    page.section("Paired devices")
    for name in world.devices:
        page.item(name, ("bt_connect", name), value="Connected" if s["bt_device"] == name else "Paired")


def display(page: Page, state: State, world: World, screen: Screen) -> None:
    page.appbar("Display")
    _switch(page, state, "Dark mode")
    stepper(page, state, "brightness")
    _switch(page, state, "Adaptive brightness")
    page.item("Font size", ("push", "settings.font"), value=state.settings["font_size"], chevron=True)


def font_size(page: Page, state: State, world: World, screen: Screen) -> None:
    page.appbar("Font size")
    page.section("Text size")
    for size in FONT_SIZES:
        page.radio(size, state.settings["font_size"] == size, ("set", "font_size", size))


def sound(page: Page, state: State, world: World, screen: Screen) -> None:
    page.appbar("Sound")
    stepper(page, state, "volume")
    _switch(page, state, "Vibrate on ring")
    _switch(page, state, "Do not disturb")


def battery(page: Page, state: State, world: World, screen: Screen) -> None:
    page.appbar("Battery")
    page.text("Battery level", "82%")
    _switch(page, state, "Battery saver")
    page.text("Last full charge", "6 hours ago")


def about(page: Page, state: State, world: World, screen: Screen) -> None:
    page.appbar("About phone")
    page.item("Device name", ("push", "settings.name"), value=state.settings["device_name"], chevron=True)
    page.text("Model", world.phone_model)
    page.text("Android version", "14")
    page.text("Build number", "UQ1A.240105")


def device_name(page: Page, state: State, world: World, screen: Screen) -> None:
    page.appbar("Device name")
    page.text("Current name", state.settings["device_name"])
    page.textbox("New device name", screen.fields.get("name", ""), "name", screen.focus == "name")
    page.button("Save", ("save_name",))


# -- commands ---------------------------------------------------------------------------------------------------

def toggle(state: State, world: World, key: str) -> str | None:
    state.settings[key] = not state.settings[key]
    if key == "wifi" and not state.settings[key]:
        state.settings["wifi_network"] = None
    if key == "bluetooth" and not state.settings[key]:
        state.settings["bt_device"] = None
    return None


def step(state: State, world: World, key: str, delta: int) -> str | None:
    _, _, low, high, _ = STEPPERS[key]
    value = state.settings[key] + delta
    if not low <= value <= high:
        return f"{STEPPERS[key][0].lower()} is already at its {'lowest' if delta < 0 else 'highest'}"
    state.settings[key] = value
    return None


def set_value(state: State, world: World, key: str, value) -> str | None:
    if state.settings[key] == value:
        return f"{value} is already selected"
    state.settings[key] = value
    return None


def connect(state: State, world: World, name: str) -> str | None:
    if state.settings["wifi_network"] == name:
        return f"already connected to {name}"
    state.settings["wifi_network"] = name
    return None


def bt_connect(state: State, world: World, name: str) -> str | None:
    if state.settings["bt_device"] == name:
        return f"{name} is already connected"
    state.settings["bt_device"] = name
    return None


def save_name(state: State, world: World) -> str | None:
    name = state.top.fields.get("name", "").strip()
    if not name:
        return "the device name is empty"
    state.settings["device_name"] = name
    state.stack.pop()
    return None


SCREENS = {"settings": root, "settings.network": network, "settings.wifi": wifi, "settings.bluetooth": bluetooth,
           "settings.display": display, "settings.font": font_size, "settings.sound": sound,
           "settings.battery": battery, "settings.about": about, "settings.name": device_name}
COMMANDS = {"toggle": toggle, "step": step, "set": set_value, "connect": connect, "bt_connect": bt_connect,
            "save_name": save_name}
ON_PUSH: dict = {}
