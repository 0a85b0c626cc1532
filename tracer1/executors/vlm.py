"""The VLM grounder: a frozen grounding model (UI-TARS-1.5 style) finds where a step acts on the screenshot.

    executor = VLMExecutor(engine, processor_or_tokenizer=processor)     # or render=my_render
    ex = executor.execute(Step("click", target="the Save button"), observation)

For each step that needs grounding (see `executors.base`), it

1. resizes the screenshot the way the model's image processor would (`smart_resize` with `min_pixels` /
   `max_pixels`), so the pixels the model answers in are the pixels of the image it was given;
2. builds a grounding prompt: the instruction derived from the step (`step_instruction`) in UI-TARS's
   grounding template (`prompt_style="grounding"`: output format, a click-only action space, the instruction)
   or the bare query of REFERENCE.md (`"query"`: "Query: <target>. Output only the coordinate of one point.");
3. renders it with the model's chat template: `render(messages, images) -> Prompt`, or
   `processor_or_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)`;
4. calls `engine.generate` greedily (temperature 0, n=1, no stop strings) and reads the answer with
   `uitars.parse_grounding_answer`, mapping its point into the 0..1000 grid of the original screenshot.

The executed step is the planned step with that point: the model grounds, the planner decides (a model answer
with another action, or other text for a `type`, does not change the step; its fields are kept in
`Execution.info["answer"]`). `execute_many` sends one batch to the engine and asks once per distinct
(step, screenshot): the G plans of a GRPO group often share their first step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tracer1.engines.base import Prompt, RolloutEngine, Sampling
from tracer1.envs.base import element_at
from tracer1.executors.base import (
    Execution, Executor, coerce_step, elements_of, needs_grounding, passthrough, screen_size, screenshot_image,
)
from tracer1.executors.uitars import POINT_FORMATS, parse_grounding_answer
from tracer1.plan import Step, smart_resize
from tracer1.plan.coords import SMART_RESIZE_FACTOR, UITARS_MAX_PIXELS, UITARS_MIN_PIXELS

Render = Callable[[list[dict[str, Any]], list[Any]], Prompt]
PROMPT_STYLES = ("grounding", "query")

GROUNDING_TEMPLATE = """You are a GUI agent. You are given a task and a screenshot. You need to perform the next \
action to complete the task.

## Output Format
Action: ...

## Action Space
click(start_box='<|box_start|>(x1,y1)<|box_end|>')

## User Instruction
{instruction}"""
QUERY_TEMPLATE = "Query: {instruction}. Output only the coordinate of one point."


def step_instruction(step: Step) -> str:
    """The grounding instruction for a step, e.g. `Click the Save button`, `Type "Paris" into the search box`."""
    target = step.target or "the screen"
    if step.action == "type":
        return f'Type "{step.text}" into {target}'
    if step.action == "scroll":
        return f"Scroll {step.direction} on {target}"
    if step.action == "long_press":
        return f"Long press {target}"
    return f"Click {target}"


def grounding_messages(step: Step, style: str = "grounding") -> list[dict[str, Any]]:
    """The chat messages of a grounding request: one user turn, the screenshot then the prompt text (Qwen-VL's
    usual order, and the order of tracer1's planner prompts)."""
    if style == "query":
        text = QUERY_TEMPLATE.format(instruction=step.target or step_instruction(step))
    else:
        text = GROUNDING_TEMPLATE.format(instruction=step_instruction(step))
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


def chat_template_renderer(processor_or_tokenizer) -> Render:
    """A `Render` from anything with `apply_chat_template` (a transformers processor or tokenizer): the chat
    text with the generation prompt; the images travel beside it in the `Prompt`."""
    apply = getattr(processor_or_tokenizer, "apply_chat_template", None)
    if apply is None:
        raise TypeError(f"{type(processor_or_tokenizer).__name__} has no apply_chat_template")

    def render(messages: list[dict[str, Any]], images: list[Any]) -> Prompt:
        text = apply(messages, add_generation_prompt=True, tokenize=False)
        return Prompt(text=text, images=tuple(images))

    return render


def processor_resize(processor) -> tuple[int, int, int] | None:
    """(factor, min_pixels, max_pixels) of a Qwen-VL processor's image processor (transformers 5 keeps the
    pixel bounds in `size.shortest_edge` / `size.longest_edge`, older versions in `min_pixels` / `max_pixels`),
    or None when `processor` has no such image processor (a tokenizer, a test double)."""
    image_processor = getattr(processor, "image_processor", None)
    if image_processor is None:
        return None
    size = getattr(image_processor, "size", None)
    low = getattr(image_processor, "min_pixels", None) or _get(size, "min_pixels") or _get(size, "shortest_edge")
    high = getattr(image_processor, "max_pixels", None) or _get(size, "max_pixels") or _get(size, "longest_edge")
    patch, merge = getattr(image_processor, "patch_size", None), getattr(image_processor, "merge_size", None)
    if not (isinstance(low, int) and isinstance(high, int) and isinstance(patch, int) and isinstance(merge, int)):
        return None
    return patch * merge, low, high


def _get(size, key: str):
    if size is None:
        return None
    return size.get(key) if isinstance(size, Mapping) else getattr(size, key, None)


class VLMExecutor(Executor):
    """Grounds steps with a VLM through any `RolloutEngine` (see the module docstring)."""

    kind = "vlm"

    def __init__(self, engine: RolloutEngine, *, render: Render | None = None, processor_or_tokenizer=None,
                 point_format: str = "smart-resized-pixels", min_pixels: int | None = None,
                 max_pixels: int | None = None, factor: int | None = None, max_new_tokens: int = 128,
                 prompt_style: str = "grounding"):
        if point_format not in POINT_FORMATS:
            raise ValueError(f"point_format {point_format!r} is not one of {', '.join(POINT_FORMATS)}")
        if prompt_style not in PROMPT_STYLES:
            raise ValueError(f"prompt_style {prompt_style!r} is not one of {', '.join(PROMPT_STYLES)}")
        if render is None:
            if processor_or_tokenizer is None:
                raise ValueError("VLMExecutor needs render= or processor_or_tokenizer= to apply the model's chat "
                                 "template")
            render = chat_template_renderer(processor_or_tokenizer)
        self.engine, self.render = engine, render
        self.point_format, self.prompt_style = point_format, prompt_style
        # The image must reach the model at the size the model answers in: take the processor's bounds when
        # it has them (a smaller max_pixels there would rescale the image again), else UI-TARS-1.5's.
        bounds = processor_resize(processor_or_tokenizer) or (SMART_RESIZE_FACTOR, UITARS_MIN_PIXELS,
                                                               UITARS_MAX_PIXELS)
        self.factor = factor or bounds[0]
        self.min_pixels = min_pixels or bounds[1]
        self.max_pixels = max_pixels or bounds[2]
        self.sampling = Sampling(n=1, temperature=0.0, max_new_tokens=max_new_tokens, stop=())

    def _execute(self, step: Step, observation: Mapping[str, Any]) -> Execution:
        return self._ground([step], [observation])[0]

    def execute_many(self, steps: Sequence[Step | str | None],
                     observations: Sequence[Mapping[str, Any]]) -> list[Execution]:
        if len(steps) != len(observations):
            raise ValueError(f"{len(steps)} steps but {len(observations)} observations")
        start = time.perf_counter()
        results: list[Execution | None] = [None] * len(steps)
        todo, todo_steps, todo_obs = [], [], []
        for i, (raw, obs) in enumerate(zip(steps, observations)):
            problems: list[str] = []
            step = coerce_step(raw, problems)
            if step is None:
                results[i] = Execution(None, None, problems=problems)
            else:
                todo.append((i, problems))
                todo_steps.append(step)
                todo_obs.append(obs if isinstance(obs, Mapping) else {})
        for (i, problems), execution in zip(todo, self._ground(todo_steps, todo_obs)):
            execution.problems[:0] = problems
            results[i] = execution
        share = (time.perf_counter() - start) / max(1, len(steps))
        for execution in results:
            execution.seconds = share
        return results

    # -- internals --------------------------------------------------------------------------------------------

    def _ground(self, steps: list[Step], observations: list[Mapping[str, Any]]) -> list[Execution]:
        """Pass through what needs no grounding; prompt the model once per distinct (step, screenshot)."""
        results: list[Execution | None] = [None] * len(steps)
        prompts: list[Prompt] = []
        asked: dict[tuple, int] = {}          # (step, id of the observation's screenshot) -> prompt index
        waiting: list[tuple[int, int, tuple[int, int]]] = []  # (step index, prompt index, original size)
        images: dict[int, Any] = {}           # id of a screenshot -> its resized image (one resize per screen)
        for i, (step, obs) in enumerate(zip(steps, observations)):
            if step.action == "call":
                results[i] = Execution(step, None, problems=["the VLM executor does not run tools; use "
                                                             "executor.kind='toolbox' for call steps"])
                continue
            if not needs_grounding(step):
                results[i] = passthrough(step, obs)
                continue
            shot, size = obs.get("screenshot"), screen_size(obs)
            key = (step, id(shot))
            if key not in asked:
                if id(shot) not in images:
                    images[id(shot)] = self._model_image(obs)
                image = images[id(shot)]
                if image is None or size is None:
                    results[i] = Execution(step, None, problems=["the observation has no readable screenshot to "
                                                                 "ground the target in"])
                    continue
                asked[key] = len(prompts)
                prompts.append(self.render(grounding_messages(step, self.prompt_style), [image]))
            waiting.append((i, asked[key], size))
        if prompts:
            completions = self.engine.generate(prompts, self.sampling)
            for i, k, size in waiting:
                results[i] = self._read(steps[i], observations[i], completions[k], size)
        return results

    def _model_image(self, observation: Mapping[str, Any]):
        image = screenshot_image(observation)
        if image is None:
            return None
        height, width = smart_resize(image.height, image.width, self.factor, self.min_pixels, self.max_pixels)
        return image if image.size == (width, height) else image.resize((width, height))

    def _read(self, step: Step, observation: Mapping[str, Any], completions, size) -> Execution:
        text = completions[0].text if completions else None
        answer = parse_grounding_answer(text, size, self.point_format, min_pixels=self.min_pixels,
                                        max_pixels=self.max_pixels, factor=self.factor)
        info = {"raw": text, "answer": answer.fields}
        problems = [f"grounding answer: {p}" for p in answer.problems]
        if answer.point is None:
            problems.append(f"the grounding model gave no point for {step.target!r}")
            return Execution(step, None, problems=problems, info=info)
        element = element_at(elements_of(observation), answer.point)
        return Execution(step, step._replace(point=answer.point), point=answer.point, element=element,
                         problems=problems, info=info)
