"""The toolbox executor: gold tool-call trajectories execute to the gold results and answer, offline samples get
their images back, bad calls are problems, and hostile Python stays in the sandbox."""

import os

import pytest

from tracer1.config import RewardConfig
from tracer1.envs.toolbox import FAMILIES, make_task
from tracer1.executors import ToolboxExecutor, observation_from_sample, sample_images
from tracer1.plan import Step, format_plan
from tracer1.rewards import grounded_reward
from tracer1.rewards.match import gta_answer_match


@pytest.fixture(scope="module")
def executor():
    return ToolboxExecutor(python_timeout_s=10, python_memory_mb=256)


@pytest.mark.parametrize("family", FAMILIES)
def test_gold_trajectory_executes_to_the_gold_answer(executor, family):
    task = make_task(seed=5, family=family)
    observation = {"images": task.images}
    for call, expected in zip(task.calls, task.results):
        execution = executor.execute(call, observation)
        assert execution.problems == [] and execution.step == call
        assert execution.result == expected, (family, call)
    answer = executor.execute(task.steps[-1], observation)
    assert answer.step == task.steps[-1] and gta_answer_match(answer.result, task.gt_answer) is True


def test_offline_samples_score_full_reward_through_their_regenerated_images(executor):
    from tracer1.envs.toolbox import generate_samples

    cfg = RewardConfig()
    samples = list(generate_samples(3, seed=40))
    for sample in samples:
        observation = observation_from_sample(sample)
        assert set(observation["images"]) == set(sample.meta["images"])
        execution = executor.execute(sample.future[0], observation)
        reward = grounded_reward(format_plan(sample.future), execution.grounded_step, sample.label, cfg,
                                 execution.result)
        assert reward == 1.0, (sample.sample_id, execution)


def test_sample_images_need_the_task_in_meta():
    from tracer1.envs.toolbox import generate_samples

    sample = next(generate_samples(1, seed=1))
    assert sample_images(sample).keys() == make_task(sample.meta["seed"], sample.meta["task"]).images.keys()
    sample.meta = {}
    assert sample_images(sample) is None


@pytest.mark.parametrize("step, problem", [
    (Step("call", tool="teleport", args=(("to", "Mars"),)), "unknown tool"),
    (Step("call", tool="ocr", args=(("image", "img9"),)), "no image named 'img9'"),
    (Step("call", tool="calculator", args=(("expression", "2 +* 3"),)), "calculator"),
    (Step("call", tool="calculator"), "needs expression="),
])
def test_calls_that_fail_are_executed_steps_with_an_error_result(executor, step, problem):
    task = make_task(seed=1, family="receipt_total")
    execution = executor.execute(step, {"images": task.images})
    assert execution.step == step and execution.result.startswith("error: ")
    assert problem in execution.problems[0], execution.problems


def test_gui_steps_are_not_the_toolbox_executors_job(executor):
    execution = executor.execute(Step("click", target="img0"), {})
    assert execution.step is None and "not click" in execution.problems[0]
    assert executor.execute(Step("finish", status="success"), {}).step == Step("finish", status="success")


def test_hostile_python_stays_contained(executor, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("intact")
    code = "\n".join([
        "import os, socket",
        f"open({str(victim)!r}, 'w').write('owned')",
        "socket.create_connection(('1.1.1.1', 80), timeout=1)",
        "os.system('touch /tmp/tracer1-executor-escape')",
    ])
    execution = executor.execute(Step("call", tool="python", args=(("code", code),)), {})
    assert execution.step is not None and execution.result.startswith("error: ") and execution.problems
    assert victim.read_text() == "intact" and not os.path.exists("/tmp/tracer1-executor-escape")
    ok = executor.execute(Step("call", tool="python", args=(("code", "print(6 * 7)"),)), {})
    assert ok.result == "42" and ok.problems == []  # the sandbox still works afterwards
