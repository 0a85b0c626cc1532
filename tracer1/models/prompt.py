"""Planner prompts and SFT targets: the one place they are built, for training and for generation alike.

    prompt = build_prompt(bundle, instruction="Turn on Wi-Fi", screenshot=png, a11y=text, history=steps,
                          horizon=10, history_len=4)
    target = plan_target(sample.future, horizon=10)          # "<plan>\\n1. click(...)\\n...\\n</plan>"
    ids = tokenize_target(bundle, target)                    # + the end-of-turn token id

A prompt is the chat-template rendering of a system message (the plan language in brief) and one user message
(the screenshot for vision models, the task, the last K executed steps, the accessibility text), ending with the
generation prompt. Engines consume it as is; `tracer1.models.inputs` turns prompts (plus completion ids) into
the tensors both the engines and the learner use, so the prompt a model is trained on is byte for byte the one it
samples from. (`task_only_prompt`, the task and steps taken alone, is a training exercise of the SFT warm start,
never a prompt to sample from.)

Budget: `max_prompt_tokens` counts text tokens and image tokens. Over budget, the accessibility text is cut
(whole lines, from the end) and marked; the instruction, the screenshot and the system message never are.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from tracer1.engines.base import Prompt
from tracer1.models.inputs import encode_for_training, tokenize_target  # noqa: F401  (part of this API)
from tracer1.plan import ACTIONS, GRID, Step, format_plan, format_step, smart_resize

if TYPE_CHECKING:
    from tracer1.data.schema import Sample
    from tracer1.models.loading import PlannerBundle

__all__ = ["build_prompt", "encode_for_training", "plan_target", "prompt_from_sample", "prompts_for_run",
           "system_prompt", "task_only_prompt", "tokenize_target", "user_text"]

CUT_MARK = "[... {n} more lines cut]"
# Bumped whenever the prompt's wording or order changes: the cached SFT warm start is keyed by it, so a planner
# trained on one prompt format is never served another.
PROMPT_FORMAT = 2


def _signature(name: str) -> str:
    if name == "call":
        return "call(tool, ...)"
    return f"{name}({', '.join(ACTIONS[name].fields)})"


def system_prompt(horizon: int) -> str:
    """The plan language in brief, generated from the action table so it never falls out of step with it. Kept
    short on purpose: every prompt of every sample and rollout pays for each of its tokens."""
    actions = ", ".join(_signature(name) for name in ACTIONS)
    return (
        "You plan for an agent that uses a phone, a computer or tools. From the task, the screen and the steps "
        f"taken, write the next steps (at most {horizon}), one call per line:\n"
        "<plan>\n1. click(target=\"the Wi-Fi row\")\n2. scroll(direction=\"down\")\n</plan>\n"
        f"Actions: {actions}. target describes the element in words; point=(x, y) on a 0..{GRID} grid is "
        "optional. Only the first step runs, then you plan again. End with finish(status=\"success\") or "
        "answer(text=...)."
    )


def user_text(instruction: str, *, a11y: str | None = None, history: Sequence[Step] = (), horizon: int,
              history_len: int = 4, a11y_cut: int = 0) -> str:
    """The user message's text (the screenshot, when there is one, goes before it). `history` is every step
    executed so far, oldest first; the last `history_len` are shown, numbered as executed. `a11y_cut` is how
    many lines of `a11y` were cut to fit the budget (it is then already cut)."""
    lines = [f"Task: {instruction}"]
    shown = list(history)[-history_len:] if history_len > 0 else []
    if not history:
        lines.append("Steps taken: none yet.")
    elif not shown:
        lines.append(f"Steps taken: {len(history)} (not shown).")
    else:
        lines.append("Steps taken:" if len(shown) == len(history)
                     else f"Steps taken (the last {len(shown)} of {len(history)}):")
        first = len(history) - len(shown) + 1
        lines += [f"{first + i}. {format_step(step)}" for i, step in enumerate(shown)]
    if a11y is not None:
        lines.append(f"Screen elements (id, role, text, box on the 0..{GRID} grid):")
        if a11y:
            lines.append(a11y)
        if a11y_cut:
            lines.append(CUT_MARK.format(n=a11y_cut))
    # The task again, last: right before the plan, where a small planner's attention reaches it most easily
    # (after the screen text it was far back, and plans followed the screen rather than the task).
    lines.append(f"Plan the next {horizon} steps for the task: {instruction}" if horizon > 1
                 else f"Plan the next step for the task: {instruction}")
    return "\n".join(lines)


def plan_target(future_steps: Sequence[Step], horizon: int) -> str:
    """The SFT target: the canonical plan of the first `horizon` reference steps. The end-of-turn token is not
    part of the text: `tokenize_target` appends its id, so it can never be read back as plain text."""
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1, got {horizon}")
    return format_plan(list(future_steps)[:horizon])


# --- images ---------------------------------------------------------------------------------------------------

def resize_for_model(bundle: PlannerBundle, image: Any, max_image_pixels: int) -> Any:
    """The screenshot (PNG bytes or PIL) as RGB, smart-resized the way the model's image processor would, to at
    most `max_image_pixels` (and within the processor's own bounds), so the processor leaves it as it is."""
    from PIL import Image

    if isinstance(image, (bytes, bytearray, memoryview)):
        image = Image.open(io.BytesIO(bytes(image)))
    if not isinstance(image, Image.Image):
        raise TypeError(f"screenshot must be PNG bytes or a PIL image, got {type(image).__name__}")
    image = image.convert("RGB")
    factor, min_pixels, max_pixels = image_geometry(bundle)
    height, width = smart_resize(image.height, image.width, factor=factor, min_pixels=min_pixels,
                                 max_pixels=max(min(max_pixels, max_image_pixels), min_pixels))
    if (width, height) != image.size:
        image = image.resize((width, height), Image.Resampling.BICUBIC)
    return image


def image_geometry(bundle: PlannerBundle) -> tuple[int, int, int]:
    """(side factor = patch × merge, min_pixels, max_pixels) of the bundle's image processor."""
    proc = bundle.processor.image_processor
    size = proc.size if isinstance(proc.size, dict) else dict(proc.size)
    min_pixels = size.get("shortest_edge") or getattr(proc, "min_pixels", None) or 56 * 56
    max_pixels = size.get("longest_edge") or getattr(proc, "max_pixels", None) or 28 * 28 * 1280
    return proc.patch_size * proc.merge_size, int(min_pixels), int(max_pixels)


def image_tokens(bundle: PlannerBundle, image: Any) -> int:
    """Placeholder tokens an already resized image expands to."""
    factor = image_geometry(bundle)[0]
    return (image.width // factor) * (image.height // factor)


# --- prompts --------------------------------------------------------------------------------------------------

def _render(bundle: PlannerBundle, system: str | None, user: str, with_image: bool) -> str:
    if with_image:
        content: Any = [{"type": "image"}, {"type": "text", "text": user}]
    else:
        content = user
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages.append({"role": "user", "content": content})
    owner = bundle.processor if bundle.processor is not None else bundle.tokenizer
    return owner.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _count(bundle: PlannerBundle, text: str, extra: int) -> int:
    return len(bundle.tokenizer(text, add_special_tokens=False)["input_ids"]) + extra


def _check_task(instruction: str, horizon: int) -> None:
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1, got {horizon}")
    if not instruction or not instruction.strip():
        raise ValueError("instruction is empty")


def build_prompt(bundle: PlannerBundle, *, instruction: str, screenshot: Any = None, a11y: str | None = None,
                 history: Sequence[Step] = (), horizon: int, history_len: int = 4, max_prompt_tokens: int = 2048,
                 max_image_pixels: int = 200704) -> Prompt:
    """The planner prompt for one decision point (see the module docstring). Text-only models get the
    accessibility text and no image; vision models get the screenshot (smart-resized) and the text when given."""
    _check_task(instruction, horizon)
    images = ()
    if screenshot is not None and bundle.is_vision:
        images = (resize_for_model(bundle, screenshot, max_image_pixels),)
    extra = sum(image_tokens(bundle, im) - 1 for im in images)  # the template writes one placeholder per image
    system = system_prompt(horizon)

    def render(a11y_text: str | None, cut: int) -> str:
        user = user_text(instruction, a11y=a11y_text, history=history, horizon=horizon, history_len=history_len,
                         a11y_cut=cut)
        return _render(bundle, system, user, bool(images))

    text = render(a11y, 0)
    if a11y and _count(bundle, text, extra) > max_prompt_tokens:
        text = _fit_a11y(bundle, a11y, render, max_prompt_tokens, extra)
    return Prompt(text=text, images=images)


def _fit_a11y(bundle: PlannerBundle, a11y: str, render, budget: int, extra: int) -> str:
    """The rendering with the most leading lines of `a11y` that fits `budget` (none, when even that is over:
    the instruction is never cut). Binary search over the line count: each probe is one tokenisation."""
    lines = a11y.split("\n")
    lo, hi = 0, len(lines) - 1  # lo lines always "fit" (0 lines is the floor); hi = the most that might
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _count(bundle, render("\n".join(lines[:mid]), len(lines) - mid), extra) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return render("\n".join(lines[:lo]), len(lines) - lo)


def task_only_prompt(bundle: PlannerBundle, *, instruction: str, history: Sequence[Step] = (), horizon: int,
                     history_len: int = 4) -> Prompt:
    """A training-only prompt: the task and the steps taken, without the screen and without the system message
    (the chat template's default system message, if it has one, stands in). The SFT warm start pairs it with the
    same oracle plan as the full prompt (`sft.task_only_sequences`): practice in writing plans at a small part of
    a full prompt's compute. Engines never sample from it; `build_prompt` is the planner's prompt."""
    _check_task(instruction, horizon)
    user = user_text(instruction, history=history, horizon=horizon, history_len=history_len)
    return Prompt(text=_render(bundle, None, user, with_image=False))


def prompt_from_sample(bundle: PlannerBundle, sample: Sample, *, horizon: int, history_len: int = 4,
                       max_prompt_tokens: int = 2048, max_image_pixels: int = 200704, use_a11y: bool = True
                       ) -> Prompt:
    """`build_prompt` for a planning sample (its screenshot, a11y text and history)."""
    return build_prompt(bundle, instruction=sample.instruction, screenshot=sample.screenshot,
                        a11y=sample.a11y if use_a11y else None, history=sample.history, horizon=horizon,
                        history_len=history_len, max_prompt_tokens=max_prompt_tokens,
                        max_image_pixels=max_image_pixels)


def prompts_for_run(bundle: PlannerBundle, samples: Sequence[Sample], config, *, horizon: int | None = None,
                    desc: str | None = None) -> list[Prompt]:
    """`prompt_from_sample` for each sample with a run config's prompt settings (`horizon` unless given,
    `rollout.history_len`, `model.max_prompt_tokens`, `model.max_image_pixels`); `desc` shows a progress bar."""
    horizon = config.horizon if horizon is None else horizon
    return [prompt_from_sample(bundle, s, horizon=horizon, history_len=config.rollout.history_len,
                               max_prompt_tokens=config.model.max_prompt_tokens,
                               max_image_pixels=config.model.max_image_pixels)
            for s in tqdm(samples, desc=desc, unit="prompt", leave=False, disable=desc is None)]
