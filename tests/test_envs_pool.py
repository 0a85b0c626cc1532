"""`EnvWorker`, the plain class inside each stage-3 environment actor, without Ray: slots of live envs that start
episodes, take one decision per call, report the end with its result, and lose only the episode whose env fails."""

from __future__ import annotations

import pytest

from tracer1.config import EnvConfig, ExecutorConfig, RewardConfig
from tracer1.envs.episode import EpisodeSpec
from tracer1.envs.pool import EnvWorker
from tracer1.plan import format_plan


def worker(slots=2, align=False, **env):
    return EnvWorker(EnvConfig(**env), ExecutorConfig(), RewardConfig(), slots=slots, horizon=4, align=align)


def expert(w, slot):  # the oracle's plan from the slot's live state, as a planner would write it
    return format_plan(w.episodes[slot].env.oracle_plan(4))


def test_an_episode_played_with_the_experts_plans_succeeds_and_reports_its_decisions():
    w = worker(align=True)
    [u] = w.start([(0, EpisodeSpec("e0", "builtin", "toggle", 11))], budget=20)
    assert u.sample is not None and u.sample.instruction and u.sample.history == []
    for _ in range(20):
        [u] = w.act([(0, expert(w, 0))])
        if u.done:
            break
        assert u.sample.history, "the next decision shows the steps taken"
    assert u.result["success"] and u.result["end"] == "success"
    assert len(u.result["alignment"]) == u.result["steps"] == len(u.result["trajectory"])
    assert all(a == pytest.approx(1.0) for a in u.result["alignment"])  # the expert's plan aligns perfectly
    assert all(row["correct"] for row in u.result["trajectory"])


def test_history_shows_steps_as_planned_without_the_executors_points():
    w = worker()
    w.start([(0, EpisodeSpec("e0", "builtin", "toggle", 11))], budget=20)
    [u] = w.act([(0, expert(w, 0))])
    step = u.sample.history[0]
    assert step.target is not None and step.point is None
    assert w.episodes[0].env.history[0].point is not None  # the env itself executed a grounded point


def test_an_unreadable_plan_is_a_decision_that_uses_the_budget():
    w = worker()
    w.start([(0, EpisodeSpec("e0", "builtin", "toggle", 11))], budget=2)
    [u] = w.act([(0, "no plan here")])
    assert not u.done
    [u] = w.act([(0, "still nothing")])
    assert u.done and u.result["end"] == "budget" and u.result["unreadable_plans"] == 2


def test_a_step_that_raises_loses_only_its_episode(monkeypatch):
    w = worker()
    w.start([(0, EpisodeSpec("e0", "builtin", "toggle", 11)), (1, EpisodeSpec("e1", "builtin", "toggle", 12))],
            budget=20)
    broken = w.episodes[0].env

    def crash(*args, **kwargs):
        raise RuntimeError("the env died")

    monkeypatch.setattr(broken, "step", crash)
    lost, fine = w.act([(0, expert(w, 0)), (1, expert(w, 1))])
    assert lost.lost and "the env died" in lost.lost and lost.result is None
    assert fine.lost is None and fine.sample is not None
    assert w.envs[0] is None and w.episodes[0] is None  # rebuilt on the slot's next start
    [again] = w.start([(0, EpisodeSpec("e2", "builtin", "toggle", 13))], budget=20)
    assert again.sample is not None


def test_a_reset_that_keeps_failing_is_reported_lost_with_the_reason():
    w = worker(max_steps=3)  # no settings_combo task fits in 3 steps
    [u] = w.start([(0, EpisodeSpec("e0", "builtin", "settings_combo", 5))], budget=3)
    assert u.lost and "reset failed 3 times" in u.lost


def test_acting_in_a_slot_without_an_episode_is_lost_not_an_error():
    [u] = worker().act([(1, "1. go_home()")])
    assert u.lost and "no episode" in u.lost
