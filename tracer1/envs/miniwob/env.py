"""`MiniWoBEnv`: MiniWoB++ tasks as a gymnasium env in the plan language (contract in the package docstring).

One Chromium serves every task: switching tasks loads the task's page in the same browser. When the browser or
its driver dies, the env starts a new one, resets the same task with the same seed, replays the plans carried
out so far and then the pending one: the episode goes on as if nothing happened.
"""

from __future__ import annotations

import logging
import string
import time
import weakref
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from tracer1.envs.base import Element, a11y_text
from tracer1.envs.miniwob.actions import resolve
from tracer1.envs.miniwob.browser import (
    CHROMEDRIVER, CHROMIUM, BrowserConfig, BrowserState, MiniWoBUnavailable, browser_errors, make_backend,
    miniwob_available, miniwob_tasks,
)
from tracer1.envs.miniwob.dom import TASK_HEIGHT, TASK_WIDTH, DomView, dom_view, read_selects
from tracer1.plan import Step, as_step

log = logging.getLogger(__name__)

_BLUR = "if (document.activeElement && document.activeElement.blur) document.activeElement.blur();"

_TEXT_SPACE = spaces.Text(max_length=1 << 16, charset=string.printable)


class MiniWoBEnv(gym.Env):
    """MiniWoB++ tasks in the plan language (see `tracer1.envs.miniwob`). One browser for every task; nothing
    starts until the first reset."""

    metadata = {"render_modes": []}
    WIDTH, HEIGHT = TASK_WIDTH, TASK_HEIGHT

    def __init__(self, task: str | None = None, *, max_steps: int = 30, chromium: str = CHROMIUM,
                 chromedriver: str = CHROMEDRIVER, headless: bool = True, extra_flags: Sequence[str] = (),
                 command_timeout: float = 30.0, time_limit_ms: int | None = None, wait_ms: float = 0.0,
                 max_restarts: int = 3, data_mode: str = "train"):
        self.task = task
        self.max_steps = max_steps
        self.max_restarts = max_restarts
        self._cfg = BrowserConfig(chromium, chromedriver, headless, tuple(extra_flags), command_timeout,
                                  time_limit_ms, wait_ms, data_mode)
        self._state = BrowserState()
        self._finalizer = weakref.finalize(self, self._state.kill)  # no orphaned Chromium if close() is skipped
        self._backend = None
        self._backend_task: str | None = None
        self.observation_space = spaces.Dict({
            "instruction": _TEXT_SPACE,
            "screenshot": spaces.Box(0, 255, (self.HEIGHT, self.WIDTH, 3), np.uint8),
            "a11y": _TEXT_SPACE,
        })
        self.action_space = _TEXT_SPACE  # a step's canonical text (a `Step` is accepted too)
        self.restarts = 0         # browser restarts over the env's life
        self._seed: int | None = None
        self._plans: list = []    # each step's plan this episode, replayed after a restart
        self._history: list[Step] = []
        self._view = DomView([], {})
        self._obs: dict[str, Any] | None = None
        self._utterance = ""
        self._fields: tuple = ()
        self._steps = 0
        self._done = False        # MiniWoB ended the episode
        self._over = False        # the episode ended (MiniWoB, finish(), or max_steps)
        self._success = False
        self._raw_reward = 0.0
        self._reason = None

    # -- public API ------------------------------------------------------------------------------------------

    @property
    def elements(self) -> list[Element]:
        return list(self._view.elements)

    @property
    def history(self) -> list[Step]:
        """The steps executed so far in this episode."""
        return list(self._history)

    @property
    def fields(self) -> tuple:
        """MiniWoB's fields parsed from the utterance, e.g. (("username", "vina"), ("password", "US"))."""
        return self._fields

    @property
    def seed_used(self) -> int | None:
        return self._seed

    @property
    def time_limit_ms(self) -> int | None:
        """MiniWoB's per-episode time limit in ms (None: the task's own, 10 s for most tasks); a new value holds
        from the next reset. A slow planner needs a longer one: MiniWoB ends the episode, failed, when it runs out."""
        return self._cfg.time_limit_ms

    @time_limit_ms.setter
    def time_limit_ms(self, value: int | None) -> None:
        self._cfg.time_limit_ms = None if value is None else int(value)

    def browser_pids(self) -> list[int]:
        """The process ids of this env's Chromium (all its processes) and chromedriver."""
        return self._state.pids()

    def chromium_pid(self) -> int | None:
        """The main Chromium process (the browser, not a renderer or helper)."""
        return self._state.chromium_pid()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        task = options.get("task", self.task)
        if not task:
            raise ValueError("MiniWoBEnv.reset needs a task: MiniWoBEnv(task=...) or options={'task': name}")
        if task.startswith("flight."):
            raise ValueError(f"FlightWoB task {task!r} is not supported (MiniWoB++ tasks only)")
        if task not in miniwob_tasks():
            raise ValueError(f"unknown MiniWoB task {task!r} (see miniwob_tasks())")
        self.task = task
        # MiniWoB is deterministic only with a seed, and replay after a restart needs one: draw it if not given.
        self._seed = int(seed) if seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        self._plans, self._history = [], []
        self._steps, self._done, self._success, self._raw_reward, self._reason = 0, False, False, 0.0, None
        self._over = False
        obs, info = self._with_browser(self._reset_backend)
        self._take(obs, info)
        return self._observation(), self._info([])

    def step(self, action: Step | str):
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        problems: list[str] = []
        step = as_step(action, problems, where="action")
        if self._over:
            problems.append("the episode is over; call reset()")
            return self._observation(), 0.0, True, False, self._info(problems)
        self._steps += 1
        plan, acted_on, terminated = [], None, False
        if step is not None:
            plan, acted_on = resolve(step, self._view, problems)
            terminated = step.action == "finish"
        obs, info = self._with_browser(lambda: self._perform(plan))
        self._plans.append(plan)
        if step is not None and not problems:
            self._history.append(step)
        self._take(obs, info)
        reward = 0.0
        if self._done:
            terminated = True
            reward = 1.0 if self._success else 0.0
        truncated = not terminated and self._steps >= self.max_steps
        self._over = terminated or truncated
        info_out = self._info(problems)
        info_out["acted_on"] = acted_on
        return self._observation(), reward, terminated, truncated, info_out

    def oracle_action(self) -> Step:
        """The next step of the scripted solver for the current task, from the current DOM, utterance and
        fields (see `tracer1.envs.miniwob.solvers.SOLVERS` for the tasks covered)."""
        from tracer1.envs.miniwob.solver_view import SolverView
        from tracer1.envs.miniwob.solvers import SOLVERS

        if self._obs is None:
            raise RuntimeError("call reset() before oracle_action()")
        if self._done or self._over:
            return Step("finish", status="success" if self._success else "infeasible")
        solver = SOLVERS.get(self.task)
        if solver is None:
            raise NotImplementedError(f"no scripted solver for MiniWoB task {self.task!r}; "
                                      f"solved tasks: {', '.join(sorted(SOLVERS))}")
        return solver(SolverView(self._utterance, dict(self._fields), self._view, tuple(self._history)))

    def kill_browser(self) -> None:
        """Kill the browser processes (as a crash would); the next call restarts and replays."""
        self._state.kill()

    def close(self) -> None:
        if self._backend is not None:
            try:
                self._backend.instance.driver.quit()
            except Exception:  # noqa: BLE001 - the browser may be gone already
                pass
        self._drop_browser()

    # -- the browser: start, switch task, restart and replay ---------------------------------------------------

    def _drop_browser(self) -> None:
        self._state.kill()
        self._backend = None
        self._backend_task = None

    def _reset_backend(self):
        if self._backend is None:
            why = miniwob_available(self._cfg.chromium, self._cfg.chromedriver)
            if why is not None:
                raise MiniWoBUnavailable(why)
            try:
                self._backend = make_backend(self.task, self._cfg, self._state)
            except MiniWoBUnavailable:  # e.g. no fonts: a browser was started, don't leave it behind
                self._state.kill()
                raise
            self._backend_task = self.task
        if self._backend_task != self.task:
            self._backend.instance.switch_task(self.task)
            self._backend_task = self.task
        # MiniWoB's reset rebuilds the task's DOM but keeps the keyboard focus: after an episode that typed into a
        # box, the same seed's fresh page would come back with that box focused (and `type` without a target would
        # go there). Every reset starts unfocused, as a fresh browser does.
        self._backend.instance.driver.execute_script(_BLUR)
        return self._backend.reset(seed=self._seed)

    def _restart(self, error: BaseException) -> None:
        self.restarts += 1
        log.warning("MiniWoB browser failed (%s: %s); restarting it (restart %d) and replaying %d steps of %s "
                    "seed %s", type(error).__name__, str(error).split("\n")[0][:200], self.restarts,
                    len(self._plans), self.task, self._seed)
        self._drop_browser()
        self._reset_backend()
        for plan in self._plans:  # exactly as before: the same actions, observations and pauses
            self._perform(plan)

    def _with_browser(self, call):
        """Run `call` against the browser; when the browser dies, restart it, replay this episode's plans and
        run `call` again (`max_restarts` failures in a row at most, restarts included, then the error
        propagates)."""
        errors = browser_errors()
        failures, error = 0, None
        while True:
            try:
                if error is not None:
                    self._restart(error)
                return call()
            except errors as exc:
                failures += 1
                if failures > self.max_restarts:
                    raise
                error = exc

    def _perform(self, plan: list):
        """Carry out a plan; returns MiniWoB's (observation, info) after its last action (a no-op when empty,
        so there is always a fresh observation)."""
        backend = self._backend
        types = backend.action_types
        result = None
        for action in plan:
            if isinstance(action, float):
                time.sleep(action)
                continue
            kind, kwargs = action
            result = backend.step(backend.create_action(types[kind], **kwargs))
            if result[2]:  # done: later actions have nothing to act on
                break
        if result is None:
            result = backend.step(backend.create_action(types.NONE))
        obs, _, _, _, info = result
        return obs, info

    # -- observations ----------------------------------------------------------------------------------------

    def _take(self, obs: dict, info: dict) -> None:
        """Record MiniWoB's observation. Once the episode is done, MiniWoB's page is its reward screen: no
        elements, and the utterance and fields stay those of the episode."""
        if info.get("done", False):
            self._done = True
            self._raw_reward = float(info.get("raw_reward") or 0.0)
            self._success = self._raw_reward == 1.0
            self._reason = info.get("reason")
            self._view = DomView([], {})
        else:
            self._utterance = obs["utterance"]
            self._fields = tuple(tuple(f) for f in obs["fields"])
            root = info["root_dom"]
            selects = read_selects(root, self._backend.instance.driver)
            self._view = dom_view(root, self.WIDTH, self.HEIGHT, selects)
        self._obs = {"instruction": self._utterance, "screenshot": np.asarray(obs["screenshot"], np.uint8),
                     "a11y": a11y_text(self._view.elements)}

    def _observation(self) -> dict[str, Any]:
        return dict(self._obs)

    def _info(self, problems: list[str]) -> dict[str, Any]:
        return {"elements": list(self._view.elements), "success": self._success, "problems": problems,
                "task": self.task, "seed": self._seed, "fields": self._fields, "done": self._done,
                "raw_reward": self._raw_reward, "reason": self._reason, "restarts": self.restarts,
                "steps": self._steps}
