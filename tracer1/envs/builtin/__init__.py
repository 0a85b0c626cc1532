"""The built-in GUI world: a small phone drawn with PIL (home screen, Settings, Contacts, Shop, Notes and
placeholder apps), tasks generated from a seed, and an oracle that solves every task from any state.

    from tracer1.envs.builtin import BuiltinEnv, make_task, FAMILIES
    env = BuiltinEnv()                       # or gymnasium.make("tracer1/Builtin-v0", width=360, height=640)

Modules: `model` (the state as plain data), `ui` (layout: one widget list for pixels and accessibility),
`render` (PIL drawing), `apps` (screens and commands), `phone` (what actions do), `world` (random phones),
`oracle` (the expert), `tasks` (task families), `env` (the gymnasium env).
"""

import gymnasium

from tracer1.envs.builtin.env import BuiltinEnv, Episode
from tracer1.envs.builtin.oracle import OracleError, Prefs
from tracer1.envs.builtin.phone import Phone
from tracer1.envs.builtin.tasks import FAMILIES, Task, make_task, solve

ENV_ID = "tracer1/Builtin-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="tracer1.envs.builtin.env:BuiltinEnv")

__all__ = ["ENV_ID", "FAMILIES", "BuiltinEnv", "Episode", "OracleError", "Phone", "Prefs", "Task", "make_task",
           "solve"]
