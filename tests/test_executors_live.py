"""Online stage 2: `LiveExecutorWorker` executes each plan's first step in a live env brought to the planning
sample's state, and the env's feedback is what `live_reward` scores.

Built-in world first (no browser: fast), then MiniWoB++ in a real headless Chromium."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image

from tracer1.config import EnvConfig, ExecutorConfig, RewardConfig
from tracer1.data.synthetic import generate_samples
from tracer1.envs.base import parse_a11y_text
from tracer1.executors.live import LiveExecutorWorker, NotLive
from tracer1.executors.worker import ExecutorWorker
from tracer1.plan import Step, format_plan
from tracer1.rewards import live_reward
from tracer1.rewards.worker import RewardItem, score_item

CFG = RewardConfig()


def episode(family: str, seed: int = 0) -> list:
    """The planning samples of one oracle episode of `family`, as `python -m tracer1.data.synthetic` writes them."""
    return list(generate_samples(1, seed=seed, tasks=[family]))


def plan(*steps: Step) -> str:
    return format_plan(list(steps))


@pytest.fixture(scope="module")
def worker():
    worker = LiveExecutorWorker(ExecutorConfig(), EnvConfig())
    yield worker
    worker.close()


# Episodes used below (seed 0), one sample per oracle step:
#   toggle  "Switch dark mode off."      0 open_app(app="Settings")  1 click "Display"  2 click "Dark mode"  3 finish
#   open_app "Launch Notes."             0 click(target="Notes")     1 finish
#   delete_note "Remove the "Recipes" note."  0 open_app  1 long_press "Recipes"  2 click "Delete" (dialog)  3 finish

# --- the built-in world: restoring a sample's state ------------------------------------------------------------

def test_the_live_env_is_brought_to_the_samples_state(worker):
    for sample in episode("toggle") + episode("add_contact"):
        seen = worker.observe(sample)
        assert seen["a11y"] == sample.a11y and seen["instruction"] == sample.instruction
        recorded = np.asarray(Image.open(io.BytesIO(sample.screenshot)).convert("RGB"))
        assert np.array_equal(seen["screenshot"], recorded)  # the same screen, pixel for pixel


def test_every_plan_starts_from_the_samples_state_again(worker):
    sample = episode("toggle")[2]  # the Display page, dark mode on
    away, right = plan(Step("press", key="back")), plan(Step("click", target="Dark mode"))
    out = worker.first_steps([(away, sample), (right, sample), (away, sample)])
    assert [x.feedback.progress for x in out] == [-1, 1, -1]  # the back press did not stay for the next plan
    assert worker.observe(sample)["a11y"] == sample.a11y


def test_the_task_is_rebuilt_from_the_seed_and_the_pool_of_families_that_drew_it():
    # `make_task(seed)` draws the family from the generator's pool (`--tasks`, the run's env.tasks), which the
    # samples do not record: the worker tries the run's env.tasks, then every family, then the family alone
    for tasks in ([], ["toggle"], ["toggle", "open_app"]):
        samples = list(generate_samples(2, seed=1, tasks=tasks))
        live = LiveExecutorWorker(ExecutorConfig(), EnvConfig(tasks=tasks))
        assert all(live.observe(s)["a11y"] == s.a11y for s in samples)
    # samples drawn from a pool of several families, read by a run with other env.tasks, cannot be rebuilt
    live = LiveExecutorWorker(ExecutorConfig(), EnvConfig())
    with pytest.raises(NotLive, match="no built-in task rebuilt from the sample's seed"):
        live.observe(samples[0])


# --- the built-in world: what the env says about a step -------------------------------------------------------

def test_the_reference_step_makes_progress_and_a_wrong_switch_does_not(worker):
    sample = episode("toggle")[2]
    other = next(e for e in parse_a11y_text(sample.a11y) if e.role == "switch" and e.text != "Dark mode")
    (step, result, right, _), (_, _, wrong, _) = worker.first_steps([
        (plan(Step("click", target="the Dark mode switch"), Step("finish")), sample),
        (plan(Step("click", target=other.text), Step("finish")), sample)])
    assert step.action == "click" and sample.label.box is not None  # grounded by the a11y executor ...
    x1, y1, x2, y2 = sample.label.box
    assert x1 <= step.point[0] <= x2 and y1 <= step.point[1] <= y2  # ... on the switch the label names
    assert result is None
    # the oracle needed 2 steps (click, finish) and now needs 1 (finish); the state is the reference's
    assert (right.executed, right.progress, right.solvable, right.matches_reference) == (True, 1, True, True)
    assert right.made_progress and live_reward(plan(Step("click", target="Dark mode")), right, CFG) == 1.0
    # flipping Adaptive brightness changes the phone but not the distance to the goal
    assert (wrong.executed, wrong.progress, wrong.solvable, wrong.matches_reference) == (True, 0, True, False)
    assert not wrong.made_progress and live_reward(plan(Step("click", target=other.text)), wrong, CFG) == 0.0


def test_another_route_counts_when_it_brings_the_goal_as_close(worker):
    sample = episode("open_app")[0]  # home screen; the reference taps the Notes icon
    assert sample.future[0] == Step("click", target="Notes")
    feedback = worker.first_steps([(plan(Step("open_app", app="Notes")), sample)])[0].feedback
    assert feedback.progress == 1 and feedback.made_progress
    assert feedback.matches_reference  # both push the Notes app: the very same state


def test_a_detour_a_step_back_and_a_target_nothing_matches(worker):
    start, dialog = episode("toggle")[0], episode("delete_note")[2]
    out = worker.first_steps([
        (plan(Step("press", key="home")), start),           # from the shop to home: Settings is as far as before
        (plan(Step("click", target="Cancel")), dialog),      # closes the Delete dialog: one more step to go
        (plan(Step("click", target="the Bluetooth row")), dialog)])  # nothing like it on screen
    assert [(x.feedback.executed, x.feedback.progress, x.feedback.made_progress) for x in out] == [
        (True, 0, False), (True, -1, False), (False, 0, False)]
    assert out[2][0] is None and "no element on screen matches" in out[2][2].problems[0]
    assert all(live_reward(plan(Step("wait")), x.feedback, CFG) == 0.0 for x in out)


def test_ending_steps_are_judged_by_the_env(worker):
    samples = episode("toggle")
    done, early = samples[3], samples[1]
    out = worker.first_steps([(plan(Step("finish")), done), (plan(Step("finish", status="infeasible")), done),
                              (plan(Step("finish")), early)])
    feedback = [x.feedback for x in out]
    assert [(f.terminated, f.success, f.env_reward, f.made_progress) for f in feedback] == [
        (True, True, 1.0, True), (True, False, 0.0, False), (True, False, 0.0, False)]


def test_an_answer_is_the_result_and_the_env_judges_it(worker):
    sample = next(s for s in episode("phone_lookup") if s.future[0].action == "answer")
    (step, result, right, _), (_, _, wrong, _) = worker.first_steps([
        (plan(sample.future[0]), sample), (plan(Step("answer", text="555-000-0000")), sample)])
    assert step == sample.future[0] and result == sample.future[0].text
    assert right.success and right.made_progress and not wrong.success and not wrong.made_progress


# --- what cannot be live, and the rewards ---------------------------------------------------------------------

def test_an_unreadable_plan_reaches_no_env(worker):
    sample = episode("toggle")[2]
    (step, result, feedback, fell_back), = worker.first_steps([("I would rather not plan.", sample)])
    assert step is None and result is None and not feedback.executed and not fell_back
    assert live_reward("I would rather not plan.", feedback, CFG) == CFG.unparseable


def test_samples_that_cannot_be_restored_are_executed_offline(worker):
    sample = episode("toggle")[2]
    converted = dataclasses.replace(sample, source="androidcontrol")   # a dataset with no env to replay it in
    moved = dataclasses.replace(sample, sample_id="moved", meta={**sample.meta, "seed": sample.meta["seed"] + 1})
    pairs = [(plan(Step("click", target="Dark mode")), s) for s in (converted, moved)]
    offline = ExecutorWorker(ExecutorConfig(), EnvConfig()).first_steps(pairs)
    out = worker.first_steps(pairs)
    assert [(x.step, x.result) for x in out] == [(x.step, x.result) for x in offline]  # the recorded screen
    assert [(x.feedback, x.fell_back) for x in out] == [(None, True), (None, True)]
    assert worker.stats()["offline_reasons"].keys() >= {
        "no live env for 'androidcontrol' samples",
        "no built-in task rebuilt from the sample's seed replays its history to its screen"}
    with pytest.raises(NotLive):
        worker.observe(converted)


def test_the_loop_builds_reward_items_from_what_the_worker_returns(worker):
    sample = episode("toggle")[2]
    plans = [plan(Step("click", target="Dark mode"), Step("finish")),
             plan(Step("click", target="Adaptive brightness")), "no plan"]
    items = [RewardItem(f"plan {i}", text, label=sample.label, executed=step, result=result, feedback=feedback)
             for i, (text, (step, result, feedback, _)) in enumerate(zip(plans, worker.first_steps(
                 [(text, sample) for text in plans])))]
    assert [score_item(item, CFG, horizon=10, stage=2) for item in items] == [1.0, 0.0, -1.0]


# --- MiniWoB++ in a real browser --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def miniwob():
    from tracer1.envs.miniwob import MiniWoBEnv, episode_samples, miniwob_available, run_solver_episode

    why = miniwob_available()
    if why is not None:  # as tests/test_miniwob.py: CI installs it, so a missing piece is a broken install
        pytest.fail(f"MiniWoB++ cannot run: {why}. Install with `make system-deps` and `make install`.",
                    pytrace=False)
    env = MiniWoBEnv(max_steps=20)
    try:
        samples = {task: episode_samples(run_solver_episode(env, task, 3)) for task in ("login-user",
                                                                                        "click-checkboxes")}
    finally:
        env.close()
    worker = LiveExecutorWorker(ExecutorConfig(), EnvConfig(name="miniwob"))
    yield worker, samples
    worker.close()


def test_miniwob_pages_come_back_by_reset_and_replay(miniwob):
    worker, samples = miniwob
    login = samples["login-user"]           # type the username, type the password, click Login
    assert [s.future[0].action for s in login] == ["type", "type", "click"]
    assert all(worker.observe(s)["a11y"] == s.a11y for s in login)
    # typing into the box leaves MiniWoB's focus there across its own reset; MiniWoBEnv.reset drops it
    worker.first_steps([(plan(login[0].future[0]), login[0])])
    assert worker.observe(login[0])["a11y"] == login[0].a11y and "focused=true" not in login[0].a11y


def test_miniwob_feedback_is_the_reference_page_or_the_tasks_reward(miniwob):
    worker, samples = miniwob
    first, last = samples["click-checkboxes"][0], samples["click-checkboxes"][-1]   # last: click Submit
    wrong = next(e for e in parse_a11y_text(first.a11y)
                 if e.role == "checkbox" and f"#{e.id}" != first.future[0].target)
    out = worker.first_steps([(plan(first.future[0]), first), (plan(Step("click", target=f"#{wrong.id}")), first),
                              (plan(Step("click", target="Submit")), first), (plan(last.future[0]), last)])
    right, other, early, submit = (x.feedback for x in out)
    assert right.matches_reference and right.made_progress and not right.terminated
    assert other.executed and not other.matches_reference and not other.made_progress   # the wrong box ticked
    assert early.terminated and not early.success and early.env_reward == 0.0            # submitted too soon
    assert submit.terminated and submit.success and submit.env_reward == 1.0 and submit.made_progress
    assert worker.stats()["offline_reasons"] == {}
