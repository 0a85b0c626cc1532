"""The executor contract: bad steps become problems, steps with nothing to ground pass through, observations are
read from every env's dicts and from samples, and the factory builds what the config names."""

import io

import numpy as np
import pytest
from PIL import Image

from tracer1.config import EnvConfig, ExecutorConfig
from tracer1.envs.base import Element, a11y_text
from tracer1.executors import (
    A11yExecutor, Execution, OracleExecutor, ToolboxExecutor, VLMExecutor, make_executor, observation_from_env,
    observation_from_sample,
)
from tracer1.executors.base import coerce_step, elements_of, needs_grounding, screen_size, screenshot_image
from tracer1.plan import Step

SCREEN = [Element(1, "button", "Save", (600, 900, 950, 980)), Element(2, "textbox", "Title", (50, 100, 950, 180))]


@pytest.mark.parametrize("bad, why", [
    (None, "no step"),
    ("click(", "step:"),
    ("not a step at all", "not a step"),
    (Step("click"), "needs target= or point="),
    (Step("scroll", direction="sideways"), "direction"),
    (42, "not int"),
])
def test_bad_steps_are_problems_not_exceptions(bad, why):
    execution = A11yExecutor().execute(bad, {"elements": SCREEN})
    assert execution.step is None and not execution.ok
    assert any(why in p for p in execution.problems), execution.problems


def test_step_text_is_read_and_trailing_text_reported():
    problems = []
    assert coerce_step('click(target="Save")', problems) == Step("click", target="Save") and problems == []
    assert coerce_step('click(target="Save") and more', problems) == Step("click", target="Save")
    assert problems and "after the step" in problems[0]


@pytest.mark.parametrize("step", [
    Step("press", key="enter"), Step("open_app", app="Contacts"), Step("wait"), Step("finish", status="success"),
    Step("scroll", direction="down"), Step("type", text="hello"),
])
def test_steps_with_nothing_to_ground_pass_through(step):
    assert not needs_grounding(step)
    execution = A11yExecutor().execute(step, {})  # no elements needed
    assert execution.step == step and execution.problems == [] and execution.point is None


def test_answers_pass_through_with_their_text_as_result():
    execution = A11yExecutor().execute(Step("answer", text="42"), {})
    assert execution.step == Step("answer", text="42") and execution.result == "42"


def test_a_pointed_step_is_not_regrounded():
    step = Step("click", target="something else entirely", point=(700, 940))
    execution = A11yExecutor().execute(step, {"elements": SCREEN})
    assert execution.step == step and execution.point == (700, 940) and execution.element.text == "Save"


def test_execution_is_timed():
    execution = A11yExecutor().execute(Step("click", target="Save"), {"elements": SCREEN})
    assert execution.ok and 0 < execution.seconds < 1


def test_execute_many_keeps_order_and_checks_lengths():
    executor = A11yExecutor()
    out = executor.execute_many([Step("click", target="Title"), None, Step("wait")], [{"elements": SCREEN}] * 3)
    assert [e.element.text if e.element else None for e in out] == ["Title", None, None]
    assert out[1].step is None and out[2].step == Step("wait")
    with pytest.raises(ValueError):
        executor.execute_many([Step("wait")], [])


# --- observations ---------------------------------------------------------------------------------------------

def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_screenshots_in_every_form_give_size_and_image():
    array = np.zeros((64, 48, 3), np.uint8)
    for shot in (array, Image.fromarray(array), _png(array)):
        assert screen_size({"screenshot": shot}) == (48, 64)
        assert screenshot_image({"screenshot": shot}).size == (48, 64)
    assert screen_size({"width": 10, "height": 20}) == (10, 20)
    assert screen_size({}) is None and screenshot_image({}) is None
    assert screenshot_image({"screenshot": b"not a png"}) is None


def test_elements_come_from_info_or_from_a11y_text():
    assert elements_of({"elements": SCREEN, "a11y": ""}) == SCREEN
    assert elements_of({"a11y": a11y_text(SCREEN)}) == SCREEN
    assert elements_of({"a11y": '[1] ocr(image="img0") -> "text"'}) == []  # toolbox outputs hold no elements


def test_observation_from_the_builtin_env():
    from tracer1.envs.builtin import BuiltinEnv

    env = BuiltinEnv()
    obs, info = env.reset(seed=1)
    observation = observation_from_env(obs, info, env)
    assert observation["elements"] == info["elements"] and (observation["width"], observation["height"]) == (360, 640)
    assert "images" not in observation  # the built-in world's task has no images


def test_observation_from_the_toolbox_env_carries_its_images():
    from tracer1.envs.toolbox import ToolboxEnv

    env = ToolboxEnv()
    obs, info = env.reset(seed=2, options={"task": "tags_total"})
    observation = observation_from_env(obs, info, env)
    assert set(observation["images"]) == {"img0", "img1"} and observation["elements"][0].role == "image"


def test_observation_from_a_builtin_sample():
    from tracer1.data.synthetic import generate_samples

    sample = next(generate_samples(1, seed=3))
    observation = observation_from_sample(sample)
    assert observation["label"] == sample.label and observation["a11y"] == sample.a11y
    assert screen_size(observation) == (360, 640) and screenshot_image(observation).size == (360, 640)


# --- the factory ----------------------------------------------------------------------------------------------

class _NoEngine:
    def generate(self, prompts, sampling):
        raise AssertionError("not called in this test")


def test_factory_builds_each_kind():
    assert make_executor(ExecutorConfig()).act_by == "point"
    assert make_executor(ExecutorConfig(), env_config=EnvConfig(name="miniwob")).act_by == "element"
    assert isinstance(make_executor(ExecutorConfig(kind="oracle")), OracleExecutor)
    toolbox = make_executor(ExecutorConfig(kind="toolbox"), env_config=EnvConfig(sandbox_timeout_s=3))
    assert isinstance(toolbox, ToolboxExecutor) and toolbox.python_timeout_s == 3
    config = ExecutorConfig(kind="vlm", model_path="ByteDance-Seed/UI-TARS-1.5-7B", point_format="0-1000")
    vlm = make_executor(config, engine=_NoEngine(), render=lambda messages, images: None)
    assert isinstance(vlm, VLMExecutor) and vlm.point_format == "0-1000"


def test_factory_errors_name_what_is_missing():
    config = ExecutorConfig(kind="vlm", model_path="ByteDance-Seed/UI-TARS-1.5-7B")
    with pytest.raises(ValueError, match="RolloutEngine"):
        make_executor(config)
    with pytest.raises(ValueError, match="chat template"):
        make_executor(config, engine=_NoEngine())
    with pytest.raises(ValueError, match="unknown executor kind"):
        make_executor("telepathy")


def test_execution_defaults():
    execution = Execution(None, None)
    assert not execution.ok and execution.problems == [] and execution.info == {} and execution.grounded_step is None


def test_grounded_step_carries_the_point_when_the_env_gets_the_element():
    named = Execution(Step("click", target="Save"), Step("click", target="#1"), point=(775, 940))
    assert named.grounded_step == Step("click", target="#1", point=(775, 940))
    pointed = Execution(Step("click", target="Save"), Step("click", target="Save", point=(775, 940)), point=(775, 940))
    assert pointed.grounded_step is pointed.step
