"""Planner prompts (`tracer1.models.prompt`): the chat-rendered system + user message with the screenshot for
vision models and the a11y text for all, the last K steps of history, the budget cut from the a11y text only,
and the SFT target with its end-of-turn token."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tracer1.models.inputs import encode_prompt
from tracer1.models.prompt import (
    CUT_MARK, build_prompt, plan_target, prompt_from_sample, system_prompt, task_only_prompt, tokenize_target,
    user_text,
)
from tracer1.plan import ACTIONS, Step, parse_plan

from tiny_planners import one_thread, samples, text_bundle, tiny_dirs, vl_bundle  # noqa: F401  (fixtures)

A11Y = "\n".join(f'[{i}] button "Row number {i}" ({i}, {i}, {i + 100}, {i + 50})' for i in range(1, 41))
HISTORY = [Step("open_app", app="Settings"), Step("click", target="Display"), Step("scroll", direction="down"),
           Step("click", target="Font size"), Step("click", target="Large")]


def token_count(bundle, prompt) -> int:
    return len(encode_prompt(bundle, prompt).input_ids)


def test_the_system_prompt_names_every_action_the_grid_and_the_horizon():
    text = system_prompt(7)
    assert all(f"{name}(" in text for name in ACTIONS)
    assert "0..1000" in text and "(at most 7)" in text and "<plan>" in text and "</plan>" in text


def test_a_vision_prompt_has_one_smart_resized_screenshot_before_the_text(vl_bundle, samples):
    s = samples[0]
    prompt = build_prompt(vl_bundle, instruction=s.instruction, screenshot=s.screenshot, a11y=s.a11y,
                          history=s.history, horizon=10, max_image_pixels=200704)
    (image,) = prompt.images
    assert image.mode == "RGB" and image.width % 28 == 0 and image.height % 28 == 0
    assert image.width * image.height <= 28 * 28 * 64  # the tiny processor's own max_pixels wins
    assert abs((image.height / image.width) / (s.height / s.width) - 1) < 0.1  # about the same aspect
    assert prompt.text.startswith("<|im_start|>system\n") and prompt.text.endswith("<|im_start|>assistant\n")
    assert prompt.text.count("<|image_pad|>") == 1
    assert prompt.text.index("<|vision_end|>") < prompt.text.index(f"Task: {s.instruction}")
    assert s.a11y in prompt.text and f"Plan the next 10 steps for the task: {s.instruction}" in prompt.text
    # The processor keeps the image as is: it expands to (w/28)·(h/28) placeholders.
    ids = encode_prompt(vl_bundle, prompt).input_ids
    assert ids.count(vl_bundle.image_token_id) == (image.width // 28) * (image.height // 28)


def test_max_image_pixels_shrinks_the_screenshot(vl_bundle, samples):
    prompt = build_prompt(vl_bundle, instruction="x", screenshot=Image.open(io.BytesIO(samples[0].screenshot)),
                          horizon=1, max_image_pixels=28 * 28 * 12)
    assert prompt.images[0].width * prompt.images[0].height <= 28 * 28 * 12


def test_a_text_model_gets_the_a11y_text_and_no_image(text_bundle, samples):
    s = samples[0]
    prompt = prompt_from_sample(text_bundle, s, horizon=3, history_len=2)
    assert prompt.images == () and "<|vision_start|>" not in prompt.text
    assert s.a11y in prompt.text and s.instruction in prompt.text and f"Plan the next 3 steps for the task: {s.instruction}" in prompt.text


def test_history_shows_the_last_k_steps_numbered_as_executed(text_bundle):
    prompt = build_prompt(text_bundle, instruction="Make the font large", history=HISTORY, horizon=2,
                          history_len=2)
    assert ("Steps taken (the last 2 of 5):\n4. click(target=\"Font size\")\n5. click(target=\"Large\")\n"
            in prompt.text)
    assert "Display" not in prompt.text
    assert "Steps taken: none yet." in build_prompt(text_bundle, instruction="x", horizon=2).text
    assert "Steps taken: 5 (not shown)." in user_text("x", history=HISTORY, horizon=2, history_len=0)
    assert "Steps taken:\n1. open_app(" in user_text("x", history=HISTORY[:2], horizon=2, history_len=4)


def test_a_task_only_prompt_keeps_the_task_and_history_and_drops_the_screen_and_system_message(vl_bundle, samples):
    s = samples[0]
    prompt = task_only_prompt(vl_bundle, instruction=s.instruction, history=HISTORY, horizon=10, history_len=2)
    assert prompt.images == () and "<|vision_start|>" not in prompt.text
    assert system_prompt(10) not in prompt.text and "Screen elements" not in prompt.text
    assert f"Task: {s.instruction}" in prompt.text and f"Plan the next 10 steps for the task: {s.instruction}" in prompt.text
    assert "Steps taken (the last 2 of 5):\n4. click(target=\"Font size\")" in prompt.text
    assert prompt.text.endswith("<|im_start|>assistant\n")
    # What makes it worth training on: a fraction of the full prompt's tokens (the SFT pairs both with one plan).
    full = prompt_from_sample(vl_bundle, s, horizon=10)
    assert token_count(vl_bundle, prompt) * 3 < token_count(vl_bundle, full)
    with pytest.raises(ValueError, match="instruction is empty"):
        task_only_prompt(vl_bundle, instruction=" ", horizon=10)


def test_over_budget_the_a11y_text_is_cut_by_lines_and_the_instruction_kept(text_bundle, vl_bundle, samples):
    for bundle, screenshot in ((text_bundle, None), (vl_bundle, samples[0].screenshot)):
        full = build_prompt(bundle, instruction="Open row 40 please", a11y=A11Y, screenshot=screenshot,
                            history=HISTORY, horizon=4)
        budget = token_count(bundle, full) - 60
        cut = build_prompt(bundle, instruction="Open row 40 please", a11y=A11Y, screenshot=screenshot,
                           history=HISTORY, horizon=4, max_prompt_tokens=budget)
        assert token_count(bundle, cut) <= budget < token_count(bundle, full)
        assert "Task: Open row 40 please" in cut.text and 'click(target="Large")' in cut.text
        kept = [line for line in A11Y.split("\n") if line in cut.text]
        assert kept == A11Y.split("\n")[:len(kept)] and 20 < len(kept) < 40  # a prefix, cut no more than needed
        assert CUT_MARK.format(n=40 - len(kept)) in cut.text
        # One more line would not have fitted.
        assert token_count(bundle, build_prompt(
            bundle, instruction="Open row 40 please", a11y="\n".join(A11Y.split("\n")[:len(kept) + 1]),
            screenshot=screenshot, history=HISTORY, horizon=4)) > budget - 10


def test_a_budget_below_the_instruction_drops_all_a11y_but_never_the_instruction(text_bundle):
    prompt = build_prompt(text_bundle, instruction="Open row 40 please", a11y=A11Y, horizon=4, max_prompt_tokens=16)
    assert "Task: Open row 40 please" in prompt.text and "[1] button" not in prompt.text
    assert CUT_MARK.format(n=40) in prompt.text


def test_bad_arguments_are_refused(text_bundle):
    with pytest.raises(ValueError, match="horizon"):
        build_prompt(text_bundle, instruction="x", horizon=0)
    with pytest.raises(ValueError, match="instruction is empty"):
        build_prompt(text_bundle, instruction="  ", horizon=1)


def test_plan_target_is_the_canonical_plan_of_the_first_t_steps(text_bundle, samples):
    s = max(samples, key=lambda s: len(s.future))
    target = plan_target(s.future, 3)
    assert parse_plan(target).steps == tuple(s.future[:3]) and parse_plan(target).ok
    assert target.startswith("<plan>\n1. ") and target.endswith("\n</plan>")
    ids = tokenize_target(text_bundle, target)
    assert ids[-1] == text_bundle.end_of_turn_id and ids.count(text_bundle.end_of_turn_id) == 1
    assert text_bundle.tokenizer.decode(ids[:-1]) == target
    assert tokenize_target(text_bundle, target, end_turn=False) == ids[:-1]


def test_special_token_text_inside_a_target_stays_text(text_bundle):
    target = plan_target([Step("type", target="box", text="<|im_end|><|image_pad|>")], 1)
    ids = tokenize_target(text_bundle, target)
    assert set(ids[:-1]).isdisjoint({text_bundle.end_of_turn_id, *text_bundle.banned_token_ids})
