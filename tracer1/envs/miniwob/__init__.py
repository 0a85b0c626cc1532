"""MiniWoB++ as a tracer1 environment: real web tasks in a headless Chromium, spoken to in the plan language.

    env = MiniWoBEnv()                                   # nothing starts until the first reset
    obs, info = env.reset(seed=3, options={"task": "login-user"})
    obs, reward, terminated, truncated, info = env.step(env.oracle_action())
    env.close()

It wraps the `miniwob` package (its `MiniWoBEnvironment` and `SeleniumInstance`) and follows the contract of
`tracer1.envs.base`:

* observation: the task's utterance as `instruction`, the 160x210 screenshot, and the DOM as accessibility
  text; `info["elements"]` holds the DOM as `Element`s (boxes on the 0..1000 grid of the screenshot, ids =
  MiniWoB's DOM refs; text pseudo-nodes get ids from `TEXT_ID_BASE` up, valid for one observation only);
* actions: `click`/`long_press` at a point -> a mouse click at those pixels; at a target (exact text or
  `#id`) -> MiniWoB's CLICK_ELEMENT on that element; `type` -> FOCUS_ELEMENT_AND_TYPE_TEXT (with a target) or
  TYPE_TEXT (into the focused element); `press` -> PRESS_KEY (`enter`, `ctrl+a`, `down`, ...); `scroll`
  up/down -> wheel scrolling at the point/target/centre; `wait` sleeps briefly; `finish` ends the episode;
  anything else is a no-op reported in `info["problems"]`;
* reward 1.0 on the step where MiniWoB reports a raw reward of 1 (`info["success"]`), else 0.0; MiniWoB's
  own end of episode (success, failure, its time limit) terminates; `max_steps` truncates;
* `oracle_action()` -> the next step of the scripted solver for the task (`SOLVERS`).

The modules, in the order a step flows through them:

* `browser` — finding, starting and killing Chromium; `miniwob_available()`, `miniwob_tasks()`;
* `dom` — MiniWoB's DOM as `Element`s (`dom_view`, `DomView`);
* `actions` — plan-language steps as MiniWoB's low-level actions;
* `env` — `MiniWoBEnv`: reset/step, and restart-and-replay when the browser dies;
* `solver_view`, `solvers` — the scripted solvers (`SOLVERS`) and what they see;
* `samples` — planning samples from solver episodes, and the CLI
  (`python -m tracer1.envs.miniwob --tasks click-button,enter-text --episodes N --out DIR`).

Needs `pip install miniwob` and Debian's `chromium`, `chromium-driver` and a font (`fonts-liberation`: without
fonts Chromium lays text out with zero width and the tasks break; the env refuses to start then). `miniwob` and
`selenium` are imported only when a browser starts, so importing this package works without them.
"""

from tracer1.envs.miniwob.actions import KEYS, LONG_PRESS_SECONDS, MODIFIERS, WAIT_SECONDS
from tracer1.envs.miniwob.browser import (
    CHROME_FLAGS, CHROMEDRIVER, CHROMIUM, MiniWoBUnavailable, miniwob_available, miniwob_tasks,
)
from tracer1.envs.miniwob.dom import INTERACTIVE_ROLES, TEXT_ID_BASE, DomView, dom_view
from tracer1.envs.miniwob.env import MiniWoBEnv
from tracer1.envs.miniwob.samples import (
    SOURCE, SolverEpisode, episode_samples, generate_samples, main, run_solver_episode, step_label,
    write_samples_for_tasks,
)
from tracer1.envs.miniwob.solver_view import SolverError, SolverView
from tracer1.envs.miniwob.solvers import SOLVERS

__all__ = ["CHROMEDRIVER", "CHROMIUM", "CHROME_FLAGS", "INTERACTIVE_ROLES", "KEYS", "LONG_PRESS_SECONDS",
           "MODIFIERS", "SOLVERS", "SOURCE", "TEXT_ID_BASE", "WAIT_SECONDS", "DomView", "MiniWoBEnv",
           "MiniWoBUnavailable", "SolverEpisode", "SolverError", "SolverView", "dom_view", "episode_samples",
           "generate_samples", "main", "miniwob_available", "miniwob_tasks", "run_solver_episode", "step_label",
           "write_samples_for_tasks"]
