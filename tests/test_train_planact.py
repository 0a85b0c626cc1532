"""Stage 3 end to end on a local Ray, shrunk: GRPO over plan-act episodes in the built-in world and in MiniWoB++
(a browser per env), from a planner checkpoint; held-out episodes (unseen seeds of the trained families, and the
held-out families) before and after, a paired gain, a loadable checkpoint, the report and the per-step metrics
the issue names (success, groups with signal, replays, lost episodes, env utilisation, the parts' times)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import ray

from tracer1.models.loading import load_planner
from tracer1.models.tiny import build_tiny_planner
from tracer1.run import main

SMALL = ["--config", str(Path(__file__).parents[1] / "configs" / "smoke.yaml"), "stage=3", "checkpoint.resume=never",
         "stage3.tasks_per_step=2", "stage3.envs_per_actor=4", "stage3.max_decisions=3", "rollout.group_size=2"]


def metrics_of(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def planner(tmp_path_factory):
    return build_tiny_planner(tmp_path_factory.mktemp("planner") / "vl", kind="vl", seed=0)


@pytest.mark.slow
def test_stage_3_in_the_built_in_world(tmp_path, planner, capsys):
    out, twin = tmp_path / "runs", tmp_path / "twin"
    shutil.copytree(planner, twin)  # the same weights elsewhere: no shared cache of results
    try:
        assert main([*SMALL, f"logging.out_dir={out}", "run_name=s3", f"checkpoint.init_from={planner}",
                     "algorithm.total_steps=2", "stage3.eval_episodes=4", "stage3.align_weight=0.2",
                     f"stage3.compare_with=[{twin}]"]) == 0
    finally:
        ray.shutdown()
    run = out / "s3"
    report = json.loads((run / "stage3_report.json").read_text())
    assert report["held_out_families"] == ["bt_connect", "delete_note"]
    assert set(report["after"]) == set(report["paired_gain"]) == {"trained", "held_out"}
    for name in ("trained", "held_out"):
        assert report["before"][name]["overall"]["episodes"] == report["after"][name]["overall"]["episodes"] == 4
        assert report["paired_gain"][name]["episodes"] == 4
    assert [c["step"] for c in report["success_curve"]] == [1, 2]
    # another policy played on the same episodes first (then the start policy's weights were loaded back): with
    # the same weights it does exactly what the starting policy does
    assert report["compared"][str(twin)] == report["before"]["trained"]
    episodes = json.loads((run / "stage3_episodes.json").read_text())
    assert [e["episode"] for e in episodes["before"]["trained"]] == [e["episode"] for e in episodes["after"]["trained"]]
    steps = [m for m in metrics_of(run) if "stage3/success_rate" in m]
    assert [m["step"] for m in steps] == [1, 2]
    for key in ("groups_with_signal", "replays", "episodes_lost", "env_utilisation", "time/plan", "time/env",
                "time/learner", "time/sync", "decisions_per_episode"):
        assert all(f"stage3/{key}" in m for m in steps), key
    assert all(m["stage3/episodes_lost"] == 0 and m["stage3/decisions_per_episode"] <= 3 for m in steps)
    assert load_planner(run / "checkpoints" / "final").is_vision
    assert (run / "report.html").is_file() and (run / "trajectories.jsonl").is_file()
    assert list((run / "screens").rglob("*.png"))  # example episodes drawn on their screenshots
    printed = capsys.readouterr().out
    assert "stage 3 (plan-act episodes)" in printed and "paired gain" in printed


@pytest.mark.slow
def test_stage_3_plays_the_next_steps_episodes_ahead_of_the_learner(tmp_path, planner):
    """max_staleness 1: step 1's episodes come from the starting weights, and so do step 2's, played while the
    learner updated on step 1 (staleness 1); step 3's from step 1's weights. The curriculum drew each step's tasks
    when the weights that play them were pushed, so the tasks are those of a second run with the same seed."""
    out = tmp_path / "runs"
    args = [*SMALL, f"logging.out_dir={out}", f"checkpoint.init_from={planner}", "algorithm.total_steps=3",
            "algorithm.max_staleness=1", "stage3.eval_episodes=2", "stage3.held_out_families=[]"]
    try:
        for name in ("a1", "a2"):
            assert main([*args, f"run_name={name}"]) == 0
    finally:
        ray.shutdown()
    runs = [[m for m in metrics_of(out / name) if "stage3/success_rate" in m] for name in ("a1", "a2")]
    assert [m["stage3/staleness"] for m in runs[0]] == [0, 1, 1]
    assert all(m["stage3/episodes_lost"] == 0 and 0 <= m["stage3/overlap"] <= 1 for m in runs[0])
    assert [m["stage3/curriculum_weight_mean"] for m in runs[0]] == [m["stage3/curriculum_weight_mean"]
                                                                     for m in runs[1]]
    assert (out / "a1" / "stage3_report.json").is_file()


@pytest.mark.slow
def test_a_stage_3_run_resumes_from_its_checkpoint_with_the_curriculum_and_the_evaluation_before(tmp_path, planner,
                                                                                                capsys):
    out = tmp_path / "runs"
    args = [*SMALL[:-1], f"logging.out_dir={out}", "run_name=r3", f"checkpoint.init_from={planner}",
            "algorithm.total_steps=2", "checkpoint.every_steps=1", "stage3.eval_episodes=2",
            "stage3.held_out_families=[]", "rollout.group_size=2"]
    args.remove("checkpoint.resume=never")
    try:
        assert main(args) == 0
        run = out / "r3"
        state = json.loads((run / "checkpoints" / "step-000001" / "trainer_state.json").read_text())
        assert state["step"] == 1 and sum(map(len, state["curriculum"].values())) == 4  # 2 tasks x 2 episodes
        first = json.loads((run / "stage3_report.json").read_text())
        (run / "stage3_report.json").unlink()  # as if it had died before the end
        assert main(args) == 0
    finally:
        ray.shutdown()
    assert "resuming from" in capsys.readouterr().out
    again = json.loads((run / "stage3_report.json").read_text())
    assert again["before"] == first["before"] and again["resumed_from"].endswith("step-000001")
    assert [c["step"] for c in again["success_curve"]] == [1, 2]


@pytest.mark.slow
def test_stage_3_in_miniwob(tmp_path, planner):
    from tracer1.envs.miniwob import miniwob_available

    if (why := miniwob_available()) is not None:  # CI installs it: a missing piece is a broken install
        pytest.fail(f"MiniWoB++ cannot run: {why}", pytrace=False)
    out = tmp_path / "runs"
    try:
        assert main([*SMALL, f"logging.out_dir={out}", "run_name=m3", f"checkpoint.init_from={planner}",
                     "env.name=miniwob", "env.tasks=[click-test,click-button]", "stage3.envs_per_actor=2",
                     "algorithm.total_steps=1", "stage3.eval_episodes=2", "stage3.tasks_per_step=1"]) == 0
    finally:
        ray.shutdown()
    report = json.loads((out / "m3" / "stage3_report.json").read_text())
    assert report["held_out_families"] == [] and set(report["after"]) == {"trained"}
    assert report["after"]["trained"]["overall"]["episodes"] == 2
    assert [m["step"] for m in metrics_of(out / "m3") if "stage3/success_rate" in m] == [1]
