"""The home screen (a grid of app icons and a date line) and the placeholder apps behind the distractor icons."""

from __future__ import annotations

from tracer1.envs.builtin.model import Screen, State, World
from tracer1.envs.builtin.ui import Page

# The four working apps and eight that only show a placeholder screen (distractors on the home screen).
WORKING_APPS = {"Settings": "settings", "Contacts": "contacts", "Shop": "shop", "Notes": "notes"}
HOME_ICONS = ["Settings", "Contacts", "Shop", "Notes", "Camera", "Clock", "Calendar", "Maps", "Music", "Photos",
              "Mail", "Weather"]


def app_root(app: str) -> Screen:
    """The first screen of an app (by its exact name)."""
    return Screen(WORKING_APPS[app]) if app in WORKING_APPS else Screen("app", app)


def home(page: Page, state: State, world: World, screen: Screen) -> None:
    page.gap(12)
    page.text("Tuesday, 14 May")
    page.gap(8)
    page.icons(HOME_ICONS)


def placeholder(page: Page, state: State, world: World, screen: Screen) -> None:
    page.appbar(screen.arg or "App")
    page.gap(8)
    page.text("Nothing here yet.")


SCREENS = {"home": home, "app": placeholder}
COMMANDS: dict = {}
ON_PUSH: dict = {}
