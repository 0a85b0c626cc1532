"""The built-in GUI world as a gymnasium env (see `tracer1.envs.base` for the shared contract).

    env = BuiltinEnv()                                          # or gymnasium.make("tracer1/Builtin-v0")
    obs, info = env.reset(seed=7, options={"task": "shop_cheapest"})
    while True:
        obs, reward, terminated, truncated, info = env.step(env.oracle_action())
        if terminated or truncated:
            break

* `reset(seed, options={"task": family or Task})`: the seed decides the whole task (phone, instruction, start
  screen); without a family one is drawn by weight from `tasks` (all families when empty);
* `step(action)`: a `Step` or its canonical text. GUI actions act on the phone (`phone.Phone.act`); a problem
  (bad text, nothing at the point, an unknown target, a disabled button, ...) makes the step a no-op, listed
  in `info["problems"]`. `finish(status)` and `answer(text)` end the episode (terminated) with reward 1.0 when
  the task is then a success: its goal holds (finish), the answer matches, or finish(status="infeasible") on an
  impossible task. `max_steps` steps without an end truncate it (reward 0.0);
* observation: `{"instruction", "screenshot" (H, W, 3) uint8, "a11y"}`; info: `elements`, `success` (the episode
  ended in success), `goal_met` (the goal holds now), `problems`, `task`, `app`, `screen`, `acted_on`;
* `oracle_action()`: the expert's next step from the current state; `oracle_plan(horizon)`: its next steps,
  simulated on a copy of the state.
"""

from __future__ import annotations

import io
import string

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from PIL import Image

from tracer1.envs.base import Element, a11y_text
from tracer1.envs.builtin.oracle import next_step
from tracer1.envs.builtin.phone import Phone
from tracer1.envs.builtin.render import render
from tracer1.envs.builtin.tasks import FAMILIES, Task, make_task
from tracer1.plan import Step, as_step, step_problems

_TEXT = spaces.Text(max_length=1 << 16, charset=string.printable + "…")
END_ACTIONS = ("finish", "answer")
MIN_SCALE = 0.25  # below a quarter of a 360x640 phone, text no longer fits in its rows


class Episode:
    """One task being carried out: the phone, the steps so far and how it ended. Cheap to copy (the oracle
    plans on copies)."""

    def __init__(self, task: Task, width: int, height: int, max_steps: int):
        self.task, self.max_steps = task, max_steps
        self.phone = Phone(task.world, task.initial.clone(), width, height)
        self.steps = 0
        self.history: list[Step] = []
        self.over = False           # ended: by finish/answer, or cut off at max_steps
        self.truncated = False      # cut off at max_steps
        self.success = False

    def copy(self) -> Episode:
        twin = Episode.__new__(Episode)
        twin.__dict__.update(self.__dict__)
        twin.phone, twin.history = self.phone.clone(), list(self.history)
        return twin

    def step(self, step: Step | None) -> tuple[list[str], Element | None]:
        """Carry out a step (None: an action that could not be read, which only takes time); returns its
        problems and the element it acted on."""
        if self.over:
            return ["the episode is over; call reset()"], None
        self.steps += 1
        if step is None:
            problems, element = [], None
        elif step.action in END_ACTIONS:
            problems, element = step_problems(step), None
            if not problems:
                self.over = True
                self.success = self.task.judge(self.phone, step)
        else:
            problems, element = self.phone.act(step)
        if step is not None and not problems:
            self.history.append(step)
        if not self.over and self.steps >= self.max_steps:
            self.over = self.truncated = True
        return problems, element

    def oracle(self) -> Step:
        return next_step(self.phone, self.task.subgoals, self.task.final, self.task.prefs)

    def plan(self, horizon: int) -> list[Step]:
        """The oracle's next `horizon` steps (fewer when it finishes first), simulated on a copy."""
        twin, steps = self.copy(), []
        twin.max_steps = twin.steps + horizon + 1  # a forecast is not cut off by the episode's step limit
        while len(steps) < horizon and not twin.over:
            step = twin.oracle()
            steps.append(step)
            problems, _ = twin.step(step)
            if problems:
                raise RuntimeError(f"oracle step {step} failed in simulation: {problems}")
        return steps


class BuiltinEnv(gym.Env):
    """The built-in phone world (see the module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 2}

    def __init__(self, task: str | None = None, *, width: int = 360, height: int = 640, max_steps: int = 20,
                 tasks: tuple[str, ...] | list[str] = (), render_mode: str | None = None):
        if min(width / 360, height / 640) < MIN_SCALE:
            raise ValueError(f"screen {width}x{height} is too small for the built-in phone: it needs at least "
                             f"{MIN_SCALE:g} of 360x640 on both axes (e.g. 90x160)")
        if task is not None and task not in FAMILIES:
            raise ValueError(f"unknown builtin task family {task!r}; known: {', '.join(FAMILIES)}")
        self.family, self.families = task, tuple(tasks)
        make_task(0, task, self.families, width, height, max_steps)  # fail on unknown families now
        self.width, self.height, self.max_steps = width, height, max_steps
        self.render_mode = render_mode
        self.observation_space = spaces.Dict({
            "instruction": _TEXT,
            "screenshot": spaces.Box(0, 255, (height, width, 3), np.uint8),
            "a11y": _TEXT,
        })
        self.action_space = _TEXT  # a step's canonical text (a `Step` is accepted too)
        self.episode: Episode | None = None
        self._image: Image.Image | None = None

    @classmethod
    def from_config(cls, cfg) -> BuiltinEnv:
        """From an `EnvConfig`: screen size, step limit and task families."""
        return cls(width=cfg.screen_width, height=cfg.screen_height, max_steps=cfg.max_steps, tasks=tuple(cfg.tasks))

    # -- gymnasium --------------------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        task = options.get("task", self.family)
        if not isinstance(task, Task):
            task_seed = int(seed) if seed is not None else int(self.np_random.integers(0, 2**31 - 1))
            task = make_task(task_seed, task, self.families, self.width, self.height, self.max_steps)
        self.episode = Episode(task, self.width, self.height, self.max_steps)
        return self._observation(), self._info([], None)

    def step(self, action: Step | str):
        if self.episode is None:
            raise RuntimeError("call reset() before step()")
        ep = self.episode
        problems: list[str] = []
        step = action if isinstance(action, Step) else as_step(str(action), problems, where="action")
        was_over = ep.over
        more, element = ep.step(step)
        problems += more
        reward = 1.0 if ep.over and not was_over and ep.success else 0.0  # on the step that ends it well
        return self._observation(), reward, ep.over and not ep.truncated, ep.truncated, self._info(problems, element)

    def render(self):
        return np.asarray(self.image())

    # -- the oracle -------------------------------------------------------------------------------------------

    def oracle_action(self) -> Step:
        """The expert's next step from the current state."""
        return self._episode().oracle()

    def oracle_plan(self, horizon: int = 10) -> list[Step]:
        """The expert's next `horizon` steps from the current state (simulated on a copy; the env is unchanged)."""
        return self._episode().plan(horizon)

    # -- views ------------------------------------------------------------------------------------------------

    @property
    def task(self) -> Task:
        return self._episode().task

    @property
    def phone(self) -> Phone:
        return self._episode().phone

    @property
    def elements(self) -> list[Element]:
        return self.phone.elements

    @property
    def history(self) -> list[Step]:
        return list(self._episode().history)

    def image(self) -> Image.Image:
        """The screenshot as a PIL image."""
        phone = self.phone
        return render(phone.layout, dark=bool(phone.state.settings["dark_mode"]))

    def screenshot_png(self, compress_level: int = 1) -> bytes:
        buffer = io.BytesIO()
        self.image().save(buffer, format="PNG", optimize=False, compress_level=compress_level)
        return buffer.getvalue()

    # -- internals --------------------------------------------------------------------------------------------

    def _episode(self) -> Episode:
        if self.episode is None:
            raise RuntimeError("call reset() first")
        return self.episode

    def _observation(self) -> dict:
        ep = self._episode()
        return {"instruction": ep.task.instruction, "screenshot": np.asarray(self.image()),
                "a11y": a11y_text(ep.phone.elements)}

    def _info(self, problems: list[str], element: Element | None) -> dict:
        ep = self._episode()
        return {"elements": list(ep.phone.elements), "success": ep.over and ep.success,
                "goal_met": ep.task.goal_met(ep.phone), "problems": problems, "task": ep.task.family,
                "app": ep.task.app, "screen": ep.phone.screen, "acted_on": element, "steps": ep.steps}
