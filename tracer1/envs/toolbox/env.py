"""The toolbox world as a gymnasium env that speaks the plan language.

    env = ToolboxEnv()
    obs, info = env.reset(seed=3, options={"task": "tags_total"})
    obs, reward, terminated, truncated, info = env.step(env.oracle_action())   # call(tool="ocr", image="img0")
    info["result"]                                                             # "NOTEBOOK\\n$12.40"

It follows `tracer1.envs.base`'s contract, for tools instead of screens:

* observation: `instruction`, `screenshot` (the task's images side by side under their names "img0", "img1",
  640x360 uint8), `a11y` and `tool_outputs`: the tool calls so far with their results, one line each,
  `[1] ocr(image="img0") -> "NOTEBOOK\\n$12.40"` (the form GTA samples use; "" before the first call);
* `call(tool=..., ...)` runs the tool from `TOOLS` (image arguments name the task's images) and puts its result
  text in `info["result"]`; a call that cannot be carried out (unknown tool, bad arguments, a failing Python run)
  still counts as a step, returns "error: <why>" as its result and says why in `info["problems"]`;
* `answer(text=...)` ends the episode: reward 1.0 when GTA's matcher accepts the answer (`gta_answer_match`
  against the task's whitelist), else 0.0; `finish` ends it with 0.0; other actions are no-ops reported in
  `info["problems"]`; `max_steps` truncates;
* info: `task` (the family), `task_id`, `success`, `problems`, `elements` (one `Element` of role "image" per
  image, with its box on the 0..1000 grid of the screenshot), `result` (after a call);
* `oracle_action()` -> the next gold step: the first gold call not yet made successfully, then the answer.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from tracer1.envs.base import Element
from tracer1.envs.toolbox.images import MONTAGE_SIZE
from tracer1.envs.toolbox.tasks import FAMILIES, Task, make_task
from tracer1.envs.toolbox.tools import ToolResult, call_tool
from tracer1.plan import Step, as_step, box_from_pixels, step_signature
from tracer1.plan.grammar import quote
from tracer1.rewards.match import gta_answer_match

_TEXT = spaces.Text(max_length=1 << 16, min_length=0, charset=string.printable)


def describe_call(step: Step) -> str:
    """`ocr(image="img0")`: a tool call as the observation lists it."""
    args = ", ".join(f"{k}={quote(v) if isinstance(v, str) else v}" for k, v in step.args)
    return f"{step.tool}({args})"


def tool_outputs_text(calls: Sequence[tuple[Step, str]]) -> str:
    """The calls so far with their results, one line each: `[1] ocr(image="img0") -> "text"`."""
    return "\n".join(f"[{i}] {describe_call(step)} -> {quote(result)}" for i, (step, result) in enumerate(calls, 1))


class ToolboxEnv(gym.Env):
    """Tool-use tasks over generated images (see the module docstring). `config` is an `EnvConfig` (its
    `tasks`, `max_steps`, `sandbox_timeout_s` and `sandbox_memory_mb` are used); keywords override it."""

    metadata = {"render_modes": []}

    def __init__(self, config=None, *, tasks: Sequence[str] | None = None, split: str = "train",
                 max_steps: int | None = None, sandbox_timeout_s: float | None = None,
                 sandbox_memory_mb: int | None = None):
        self.tasks = list(tasks if tasks is not None else (getattr(config, "tasks", None) or []))
        unknown = [t for t in self.tasks if t not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown toolbox task(s) {', '.join(unknown)}; tasks: {', '.join(FAMILIES)}")
        self.split = split
        self.max_steps = max_steps or getattr(config, "max_steps", None) or 20
        self.sandbox_timeout_s = sandbox_timeout_s or getattr(config, "sandbox_timeout_s", None) or 10.0
        self.sandbox_memory_mb = sandbox_memory_mb or getattr(config, "sandbox_memory_mb", None) or 512
        width, height = MONTAGE_SIZE
        self.observation_space = spaces.Dict({
            "instruction": _TEXT,
            "screenshot": spaces.Box(0, 255, (height, width, 3), np.uint8),
            "a11y": _TEXT,
            "tool_outputs": _TEXT,
        })
        self.action_space = _TEXT   # a step's canonical text (a `Step` is accepted too)
        self.task: Task | None = None
        self._screenshot: np.ndarray | None = None
        self._elements: list[Element] = []
        self._calls: list[tuple[Step, str]] = []
        self._done_calls: set = set()
        self._steps = 0
        self._over = False
        self._success = False

    # --- gymnasium API -------------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        task_seed = int(seed) if seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        family = options.get("task")
        if family is None and self.tasks:
            family = self.tasks[int(np.random.default_rng(task_seed).integers(len(self.tasks)))]
        if family is not None and family not in FAMILIES:
            raise ValueError(f"unknown toolbox task {family!r}; tasks: {', '.join(FAMILIES)}")
        self.task = make_task(task_seed, family, options.get("split", self.split))
        image, boxes = self.task.screenshot()
        self._screenshot = np.asarray(image.convert("RGB"))
        w, h = image.size
        self._elements = [Element(id=i + 1, role="image", text=name, box=box_from_pixels(*box, w, h))
                          for i, (name, box) in enumerate(boxes.items())]
        self._calls, self._done_calls = [], set()
        self._steps, self._over, self._success = 0, False, False
        return self._observation(), self._info([])

    def step(self, action: Step | str):
        if self.task is None:
            raise RuntimeError("call reset() before step()")
        problems: list[str] = []
        if self._over:
            problems.append("the episode is over; call reset()")
            return self._observation(), 0.0, True, False, self._info(problems)
        step = as_step(action, problems, where="action")
        self._steps += 1
        reward, terminated, result = 0.0, False, None
        if step is None:
            pass
        elif step.action == "call":
            outcome = self.run_call(step)
            result = outcome.text
            self._calls.append((step, outcome.text))
            if outcome.ok:
                self._done_calls.add(step_signature(step))
            else:
                problems.append(outcome.error or outcome.text)
        elif step.action in ("answer", "finish"):
            terminated = True
            self._success = step.action == "answer" and gta_answer_match(step.text or "", self.task.gt_answer) is True
            reward = 1.0 if self._success else 0.0
        else:
            problems.append(f"the toolbox takes call(tool=..., ...) and answer(text=...) steps, not {step.action}")
        truncated = not terminated and self._steps >= self.max_steps
        self._over = terminated or truncated
        info = self._info(problems)
        if result is not None:
            info["result"] = result
        return self._observation(), reward, terminated, truncated, info

    def oracle_action(self) -> Step:
        """The next gold step: the first gold tool call not yet made successfully, then the answer."""
        if self.task is None:
            raise RuntimeError("call reset() before oracle_action()")
        for step in self.task.calls:
            if step_signature(step) not in self._done_calls:
                return step
        return self.task.steps[-1]

    def close(self) -> None:
        pass

    # --- helpers -------------------------------------------------------------------------------------------

    def run_call(self, step: Step) -> ToolResult:
        """Run one tool call against the current task's images (what `step` does for a call)."""
        return call_tool(step.tool, step.args, self.task.images, python_timeout_s=self.sandbox_timeout_s,
                         python_memory_mb=self.sandbox_memory_mb)

    @property
    def calls(self) -> list[tuple[Step, str]]:
        """The calls made so far, with their results."""
        return list(self._calls)

    def _observation(self) -> dict:
        text = tool_outputs_text(self._calls)
        return {"instruction": self.task.instruction, "screenshot": self._screenshot, "a11y": text,
                "tool_outputs": text}

    def _info(self, problems: list[str]) -> dict:
        return {"task": self.task.family, "task_id": self.task.id, "success": self._success,
                "problems": problems, "elements": list(self._elements),
                "images": list(self.task.images)}
