"""The executor contract: a frozen tool agent turns the first step of a plan into a concrete action.

    executor = make_executor(config.executor)                  # a11y grounder by default
    obs = observation_from_env(obs, info, env)                 # or observation_from_sample(sample)
    ex = executor.execute(plan.steps[0], obs)
    ex.step      # what to send to the env: click(target="Wi-Fi", point=(500, 168)), the tool call, the answer
    ex.point, ex.element, ex.result, ex.problems, ex.seconds

The stage-2 reward scores `Execution.grounded_step` (the concrete step with its point; the same as `step` unless
the executor names the element for the env): `grounded_reward(plan, ex.grounded_step, label, cfg,
result=ex.result)`. A step that cannot be executed (an unreadable step, a target nothing on screen matches, a
grounding answer without a point) gives `step=None` and says why in `problems`: executors never raise on a bad
step, a bad observation or bad model output. Infrastructure failures (an engine that crashes) do raise, so the
actor running the executor is restarted and the item retried (DESIGN.md §6).

What an executor does with each action:

* `click`, `long_press`, and `type`/`scroll` that name a `target`: ground the target to a point on the 0..1000
  grid of the screenshot (the a11y grounder from the accessibility tree, the VLM grounder from the screenshot);
* a step that already has a `point` is passed through unchanged (the planner grounded it itself);
* `press`, `open_app`, `wait`, `finish`, untargeted `scroll`/`type`: passed through, nothing to ground;
* `answer`: passed through, `result` = its text; `call`: run by the toolbox executor, `result` = the tool's text.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from tracer1.envs.base import Element, element_at, parse_a11y_text
from tracer1.plan import Point, Step, as_step

# Actions that act at a place on screen; `click`/`long_press` always need one, `type`/`scroll` only when they
# name a target (untargeted typing goes to the focused field, untargeted scrolling scrolls the screen).
LOCATED_ACTIONS = ("click", "long_press", "type", "scroll")


class Observation(TypedDict, total=False):
    """What an executor sees: the env's observation dict plus what the env puts in `info` (all keys optional;
    each executor says which it needs).

    * `screenshot`: the screen as a uint8 array (H, W, 3) (what the envs return), a PIL image or PNG bytes;
    * `width`, `height`: the screenshot's size in pixels (read from the screenshot when absent);
    * `a11y`: the accessibility tree as `a11y_text` (built-in world, MiniWoB's DOM; the toolbox puts its tool
      outputs here, which hold no elements);
    * `elements`: the `Element`s on screen (`info["elements"]`); preferred over parsing `a11y`;
    * `instruction`: the task's instruction;
    * `images`: name -> PIL image, the images tool calls can name (toolbox);
    * `tool_outputs`: the tool calls so far with their results (toolbox);
    * `label`: the sample's `GroundingLabel` (offline stage 2; only the oracle executor reads it).
    """

    screenshot: Any
    width: int
    height: int
    a11y: str
    elements: list[Element]
    instruction: str
    images: Mapping[str, Any]
    tool_outputs: str
    label: Any


@dataclass
class Execution:
    """What the executor made of one planned step."""

    planned: Step | None                 # the step as the planner wrote it (None: it could not be read)
    step: Step | None                    # the concrete step for the env (None: nothing can be executed)
    point: Point | None = None           # where it acts, 0..1000 of the screenshot
    element: Element | None = None       # the element at that point (or the one the target matched)
    result: str | None = None            # a tool call's output text, or an answer's text
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0                 # wall time of execute (in a batch: the batch's time / its size)
    info: dict[str, Any] = field(default_factory=dict)  # executor details: match score, raw model answer, ...

    @property
    def grounded_step(self) -> Step | None:
        """The concrete step with its point: what the stage-2 reward scores. It is `step` itself unless the
        executor names the element for the env instead of the point (`A11yExecutor(act_by="element")`)."""
        if self.step is not None and self.step.point is None and self.point is not None:
            return self.step._replace(point=self.point)
        return self.step

    @property
    def ok(self) -> bool:
        """True when there is a step to send to the env (problems may still describe a doubtful match)."""
        return self.step is not None


class Executor:
    """Base class: `execute` checks the step, times the work and never raises on bad input; subclasses
    implement `_execute(step, observation)` for a valid `Step`."""

    kind = "base"

    def execute(self, step: Step | str | None, observation: Mapping[str, Any] | None) -> Execution:
        start = time.perf_counter()
        problems: list[str] = []
        planned = coerce_step(step, problems)
        if planned is None:
            execution = Execution(None, None, problems=problems)
        else:
            execution = self._execute(planned, observation if isinstance(observation, Mapping) else {})
            execution.problems[:0] = problems
        execution.seconds = time.perf_counter() - start
        return execution

    def execute_many(self, steps: Sequence[Step | str | None],
                     observations: Sequence[Mapping[str, Any]]) -> list[Execution]:
        """One execution per (step, observation) pair; executors backed by a model batch them."""
        if len(steps) != len(observations):
            raise ValueError(f"{len(steps)} steps but {len(observations)} observations")
        return [self.execute(s, o) for s, o in zip(steps, observations)]

    def _execute(self, step: Step, observation: Mapping[str, Any]) -> Execution:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the executor holds (engines, sandboxes); a no-op by default."""


# --- steps ----------------------------------------------------------------------------------------------------

def coerce_step(step, problems: list[str]) -> Step | None:
    """`step` (a `Step` or one step's text) as a `Step`, kept even when read with problems (they are listed)."""
    if step is None:
        problems.append("no step to execute (the plan had no readable first step)")
        return None
    return as_step(step, problems, where="step", strict=False)


def needs_grounding(step: Step) -> bool:
    """Whether the executor must find where `step` acts: a located action with a target and no point."""
    return step.action in LOCATED_ACTIONS and step.point is None and step.target is not None


def passthrough(step: Step, observation: Mapping[str, Any]) -> Execution:
    """The execution of a step that needs no grounding: itself, with its point's element and an answer's text."""
    element = None
    if step.point is not None:
        element = element_at(elements_of(observation), step.point)
    result = step.text if step.action == "answer" else None
    return Execution(step, step, point=step.point, element=element, result=result)


# --- observations ---------------------------------------------------------------------------------------------

def elements_of(observation: Mapping[str, Any]) -> list[Element]:
    """The elements on screen: `elements` when given, else parsed from the `a11y` text ([] when neither)."""
    elements = observation.get("elements")
    if elements is not None:
        return list(elements)
    text = observation.get("a11y")
    return parse_a11y_text(text) if isinstance(text, str) and text else []


def screenshot_image(observation: Mapping[str, Any]):
    """The screenshot as an RGB PIL image, or None when the observation has none (or it cannot be decoded)."""
    from PIL import Image, UnidentifiedImageError

    shot = observation.get("screenshot")
    if shot is None:
        return None
    if isinstance(shot, Image.Image):
        return shot.convert("RGB") if shot.mode != "RGB" else shot
    if isinstance(shot, (bytes, bytearray)):
        try:
            return Image.open(io.BytesIO(shot)).convert("RGB")
        except (UnidentifiedImageError, OSError):
            return None
    try:
        import numpy as np

        array = np.asarray(shot, dtype=np.uint8)
        return Image.fromarray(array).convert("RGB") if array.ndim in (2, 3) and array.size else None
    except (TypeError, ValueError):
        return None


def screen_size(observation: Mapping[str, Any]) -> tuple[int, int] | None:
    """(width, height) of the screenshot in pixels: `width`/`height` when given, else the screenshot's shape."""
    width, height = observation.get("width"), observation.get("height")
    if width and height:
        return int(width), int(height)
    shot = observation.get("screenshot")
    shape = getattr(shot, "shape", None)
    if shape is not None and len(shape) >= 2:
        return int(shape[1]), int(shape[0])
    size = getattr(shot, "size", None)  # a PIL image
    if isinstance(size, tuple) and len(size) == 2:
        return int(size[0]), int(size[1])
    image = screenshot_image(observation) if isinstance(shot, (bytes, bytearray)) else None
    return image.size if image is not None else None


def observation_from_env(obs: Mapping[str, Any], info: Mapping[str, Any] | None = None, env=None) -> dict:
    """An executor observation from an env's `(observation, info)`: the observation's keys, `elements` from
    `info`, the screenshot's size, and (toolbox) the current task's images from `env`."""
    out = dict(obs)
    if info is not None and "elements" in info:
        out["elements"] = list(info["elements"])
    size = screen_size(out)
    if size is not None:
        out["width"], out["height"] = size
    images = getattr(getattr(env, "task", None), "images", None)
    if isinstance(images, Mapping):
        out["images"] = images
    return out


def observation_from_sample(sample) -> dict:
    """An executor observation from a planning `Sample` (offline stage 2): its PNG screenshot and size, its
    accessibility text, instruction and grounding label; toolbox samples also get their task's images back."""
    out: dict[str, Any] = {"instruction": sample.instruction, "label": sample.label}
    if sample.screenshot is not None:
        out["screenshot"] = sample.screenshot
    if sample.width and sample.height:
        out["width"], out["height"] = sample.width, sample.height
    if sample.a11y is not None:
        out["a11y"] = sample.a11y
    if sample.source == "toolbox":
        from tracer1.executors.toolbox import sample_images

        images = sample_images(sample)
        if images is not None:
            out["images"] = images
    return out


# --- the factory ----------------------------------------------------------------------------------------------

def make_executor(config, *, engine=None, render=None, processor_or_tokenizer=None, env_config=None,
                  **options) -> Executor:
    """The executor `config` (an `ExecutorConfig`) asks for.

    * `a11y`: `A11yExecutor(**options)`; in MiniWoB (`env_config.name == "miniwob"`) it names elements by
      their DOM ref (`act_by="element"`) unless `options` say otherwise;
    * `vlm`: `VLMExecutor` over `engine` (a `RolloutEngine` serving `config.model_path`), rendering prompts
      with `render(messages, images) -> Prompt` or `processor_or_tokenizer.apply_chat_template`;
    * `toolbox`: `ToolboxExecutor` with `env_config`'s sandbox limits (`env_config`: the run's `EnvConfig`,
      optional);
    * `oracle`: `OracleExecutor` (the sample's grounding label; a11y for what the label does not cover).
    """
    kind = getattr(config, "kind", config)
    if kind == "a11y":
        from tracer1.executors.a11y import A11yExecutor

        if getattr(env_config, "name", None) == "miniwob":
            options.setdefault("act_by", "element")
        return A11yExecutor(**options)
    if kind == "vlm":
        from tracer1.executors.vlm import VLMExecutor

        if engine is None:
            raise ValueError("executor.kind='vlm' needs a RolloutEngine serving executor.model_path "
                             f"({getattr(config, 'model_path', None)!r})")
        return VLMExecutor(engine, render=render, processor_or_tokenizer=processor_or_tokenizer,
                           point_format=getattr(config, "point_format", "smart-resized-pixels"),
                           max_new_tokens=getattr(config, "max_new_tokens", 128), **options)
    if kind == "toolbox":
        from tracer1.executors.toolbox import ToolboxExecutor

        limits = {}
        if env_config is not None:
            limits = {"python_timeout_s": env_config.sandbox_timeout_s,
                      "python_memory_mb": env_config.sandbox_memory_mb}
        return ToolboxExecutor(**limits, **options)
    if kind == "oracle":
        from tracer1.executors.oracle import OracleExecutor

        return OracleExecutor(**options)
    raise ValueError(f"unknown executor kind {kind!r}; kinds: a11y, vlm, toolbox, oracle")
