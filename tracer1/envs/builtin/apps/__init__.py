"""The apps of the built-in phone. Each module defines its screens (layout functions that fill a `Page` from the
state), the commands its widgets run, and hooks that set up a screen when it is opened:

    SCREENS[name](page, state, world, screen)     COMMANDS[name](state, world, *args) -> problem or None
    ON_PUSH[name](state, world, screen)
"""

from __future__ import annotations

from tracer1.envs.builtin.apps import contacts, home, notes, settings, shop
from tracer1.envs.builtin.apps.home import HOME_ICONS, WORKING_APPS, app_root

MODULES = (home, settings, contacts, shop, notes)
SCREENS = {k: v for m in MODULES for k, v in m.SCREENS.items()}
COMMANDS = {k: v for m in MODULES for k, v in m.COMMANDS.items()}
ON_PUSH = {k: v for m in MODULES for k, v in m.ON_PUSH.items()}
APPS = tuple(HOME_ICONS)

__all__ = ["APPS", "COMMANDS", "HOME_ICONS", "ON_PUSH", "SCREENS", "WORKING_APPS", "app_root"]
