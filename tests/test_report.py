"""Run reports: report.html is built from what a run directory holds (metrics.jsonl, the stage report, the
trajectories file, the held-out examples) with its curves and annotated screenshots embedded, and it opens in
headless Chromium. The run directories are written by hand here, with hand-chosen numbers to look for."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tracer1 import pipeline
from tracer1.config import RewardConfig, dump_config, load_config
from tracer1.data.schema import write_samples
from tracer1.data.synthetic import generate_samples
from tracer1.engines.base import Completion, Prompt
from tracer1.eval.episodes import episode_report, paired_difference, save_trajectories
from tracer1.eval.planning import evaluate_planning, grounding_check
from tracer1.executors import A11yExecutor
from tracer1.plan import format_plan
from tracer1.report import (
    ReportError, Trajectory, TrajectoryError, TrajectoryStep, append_trajectory, build, read_trajectories,
    write_report, write_trajectories,
)
from tracer1.report.__main__ import main as report_main
from tracer1.report.annotate import RIGHT, TARGET, WRONG
from tracer1.report.plots import read_metrics, time_parts
from tracer1.run import TRAINERS, main as run_main

# The hand-made screen: 200 × 300 px, drawn at 560 / 300 = 1.8667× in the annotated picture, inside a 4 px frame.
SCALE, FRAME = 560 / 300, 4
NUMBERING = "steps should be numbered 1., 2., ... in order"
OK_BOX, CANCEL_BOX = (40, 100, 160, 140), (40, 200, 160, 240)


def screen_png(path: Path) -> None:
    image = Image.new("RGB", (200, 300), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    for box, text in ((OK_BOX, "OK"), (CANCEL_BOX, "Cancel")):
        draw.rectangle(box, fill=(200, 210, 230), outline=(90, 90, 90))
        draw.text((box[0] + 10, box[1] + 12), text, fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def measures(parse_rate: float, reward: float, grounded: float) -> dict:
    return {"samples": 8, "plans": 32, "parse_rate": parse_rate, "greedy_parse_rate": 0.5, "first_step_action": 0.5,
            "first_step_exact": 0.25, "first_step_grounded": grounded, "reward": reward, "greedy_reward": -0.3,
            "mean_completion_tokens": 40.0, "examples": []}


def training_run(run: Path, stage: int = 1) -> Path:
    """A stage run as the RL loop leaves it: 4 logged steps (step 3 logged twice, as a resumed run does), two
    evaluations, the before/after report and one two-step trajectory on a generated screenshot."""
    run.mkdir(parents=True, exist_ok=True)
    p = f"stage{stage}/"
    lines = []
    for step, reward, loss in ((1, -0.5, 1.0), (2, -0.25, 0.8), (3, 0.9, 0.6), (3, 0.0, 0.6), (4, 0.25, 0.4)):
        lines.append({"step": step, "time": 0.0, f"{p}reward_mean": reward, f"{p}reward_std": 0.1,
                      f"{p}loss": loss, f"{p}kl": 0.01 * step, f"{p}time/rollout": 2.0, f"{p}time/learner": 1.0})
    lines.insert(2, {"step": 2, "time": 0.0, f"{p}eval/parse_rate": 0.5, f"{p}eval/reward": -0.2})
    lines.append({"step": 4, "time": 0.0, f"{p}eval/parse_rate": 0.75, f"{p}eval/reward": 0.1})
    lines.append({"step": 4, "text": {f"{p}eval/example0": "a plan"}})
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (run / f"stage{stage}_report.json").write_text(json.dumps(
        {"stage": stage, "steps": 4, "seconds": 12.5,
         "before": measures(0.25, -0.5, 0.125) | {"problem_kinds": {"no step could be read": 14, NUMBERING: 10}},
         "after": measures(0.75, 0.1, 0.375) | {"problem_kinds": {NUMBERING: 6}}}))
    if not (run / "config.yaml").exists():
        (run / "config.yaml").write_text(f"stage: {stage}\n")
    screen_png(run / "screens" / "ep-1" / "00.png")
    steps = [TrajectoryStep(plan='<plan>\n1. click(target="OK")\n2. click(target="Cancel")\n</plan>',
                            screenshot="screens/ep-1/00.png", executed='click(target="OK", point=(500, 400))',
                            point=(100, 120), target_box=OK_BOX, correct=True, feedback="the dialog closed"),
             TrajectoryStep(plan='<plan>\n1. click(target="Cancel")\n</plan>', screenshot="screens/ep-1/00.png",
                            executed='click(target="Cancel", point=(100, 866))', point=(20, 260),
                            target_box=CANCEL_BOX, correct=False, feedback="nothing happened")]
    write_trajectories(run / "trajectories.jsonl", [Trajectory("ep-1", "Press OK, then Cancel", False, steps)])
    return run


def near(image: Image.Image, x: float, y: float, colour, radius: int = 1) -> bool:
    """Whether `colour` is at (x, y) or a pixel next to it."""
    return any(image.getpixel((round(x) + dx, round(y) + dy))[:3] == colour
               for dx in range(-radius, radius + 1) for dy in range(-radius, radius + 1))


def test_training_report_embeds_curves_table_and_annotated_trajectory(tmp_path):
    run = training_run(tmp_path / "stage1-x")
    page = write_report(run).read_text()
    assets = run / "report"
    curves = {p.stem for p in assets.glob("curve_*.png")}
    assert {"curve_reward", "curve_heldout_accuracy", "curve_heldout_reward", "curve_learner",
            "curve_step_time"} == curves  # none of stage 3's (episode success, signal, families)
    # every picture is in the page itself (self-contained: no file, script or address outside it)
    for png in assets.glob("*.png"):
        assert base64.b64encode(png.read_bytes()).decode() in page, png.name
    assert not re.search(r'(src|href)="(?!data:)', page) and "<script" not in page
    # before → after, as summary_table formats them, with the direction
    assert ("<td>plans that parse (sampled)</td><td>25.0%</td><td>75.0%</td><td class=\"up\">↑</td>"
            in page)
    assert "<td>stage-1 reward (sampled)</td><td>-0.500</td><td>+0.100</td>" in page
    assert "<td>first step: grounded</td><td>12.5%</td><td>37.5%</td>" in page
    # why sampled plans failed, before and after: the kinds most common after training first
    assert (f"<tr><td>{NUMBERING}</td><td>10</td><td>6</td></tr><tr><td>no step could be read</td><td>14</td>"
            "<td>0</td></tr>") in page
    assert "Held-out evaluation: before → after training" in page and "paired gain" not in page
    assert time_parts(read_metrics(run / "metrics.jsonl")) == ([1, 2, 3, 4], {"rollout": [2.0] * 4,
                                                                               "learner": [1.0] * 4})
    # metrics table: the stage prefix is gone, and step 3's second value (0.0, after the resume) wins over 0.9
    assert "<tr><td>reward_mean</td><td>0.25</td><td>-0.5</td><td>0.25</td><td>4</td></tr>" in page
    assert "<tr><td>eval/parse_rate</td><td>0.75</td><td>0.5</td><td>0.75</td><td>2</td></tr>" in page
    # the trajectory: its heading, instruction and outcome, both steps drawn, the executed step as text
    assert "ep-1" in page and "Press OK, then Cancel" in page and "failure</span>" in page
    assert "step 2 of 2" in page and "click(target=&quot;Cancel&quot;)" in page

    right = Image.open(assets / "trajectory1_step1.png").convert("RGB")
    wrong = Image.open(assets / "trajectory1_step2.png").convert("RGB")
    assert right.height == 560 + 2 * FRAME
    # the grounded point: a dot in the verdict colour at (x, y) × 1.8667 inside the frame
    assert near(right, FRAME + 100 * SCALE, FRAME + 120 * SCALE, RIGHT)
    assert near(wrong, FRAME + 20 * SCALE, FRAME + 260 * SCALE, WRONG)
    # the target box's left edge in amber, at its vertical middle
    assert near(right, FRAME + 40 * SCALE + 1, FRAME + 120 * SCALE, TARGET)
    assert near(wrong, FRAME + 40 * SCALE + 1, FRAME + 220 * SCALE, TARGET)
    # the panel's verdict bar: green for the right step, red for the wrong one
    panel_x = FRAME + round(200 * SCALE) + FRAME + 10
    assert right.getpixel((panel_x, FRAME + 5)) == RIGHT and wrong.getpixel((panel_x, FRAME + 5)) == WRONG


def test_a_run_with_rollouts_ahead_draws_their_staleness_overlap_and_log_prob_gap(tmp_path):
    run = training_run(tmp_path / "stage1-ahead")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        if "stage1/loss" in row:
            row.update({"stage1/staleness": min(row["step"] - 1, 1), "stage1/overlap": 0.9,
                        "stage1/behaviour_gap": 0.01, "stage1/tis_weight_mean": 1.0})
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
    write_report(run)
    assert (run / "report" / "curve_off_policy.png").is_file()
    assert read_metrics(run / "metrics.jsonl").values("staleness") == [0, 1, 1, 1]


def test_trajectories_file_round_trips_and_names_the_bad_line_and_field(tmp_path):
    path = tmp_path / "trajectories.jsonl"
    first = Trajectory("e1", "do it", True, [TrajectoryStep("plan", point=(1.5, 2), target_box=(0, 0, 4, 4),
                                                            correct=True)])
    write_trajectories(path, [first])
    append_trajectory(path, Trajectory("e2", "do more", None, []))
    assert read_trajectories(path) == [first, Trajectory("e2", "do more", None, [])]
    assert json.loads(path.read_text().splitlines()[0])["steps"][0] == {
        "screenshot": None, "plan": "plan", "executed": None, "point": [1.5, 2], "target_box": [0, 0, 4, 4],
        "correct": True, "feedback": None}

    with open(path, "a") as f:
        f.write(json.dumps({"episode": "e3", "instruction": "x", "success": None,
                            "steps": [{"plan": "p", "point": [1], "correct": "yes"}]}) + "\n")
    with pytest.raises(TrajectoryError, match=r"trajectories.jsonl: line 3: steps\[0\]\.point must be \[x, y\] "
                                              r"in pixels or null, not \[1\]; steps\[0\]\.correct must be true"):
        read_trajectories(path)
    with pytest.raises(TrajectoryError, match="must be relative to the run directory"):
        write_trajectories(path, [Trajectory("e", "i", None, [TrajectoryStep("p", screenshot="/abs/0.png")])])
    with pytest.raises(TrajectoryError, match=r"target_box \[4, 0, 0, 4\] must have x0 <= x1"):
        write_trajectories(path, [Trajectory("e", "i", None, [TrajectoryStep("p", target_box=(4, 0, 0, 4))])])


def episode(tag: str, family: str, i: int, success: bool, first_right: bool | None, shot: bytes | None = None):
    """One plan-act episode result as tracer1.envs.episode returns it (two decisions)."""
    rows = [{"screenshot": shot, "plan": f'<plan>\n1. click(target="{family} {i}")\n</plan>',
             "executed": f'click(target="{family} {i}", point=(500, 400))', "point": [100, 120],
             "target_box": list(OK_BOX), "correct": first_right, "feedback": None},
            {"screenshot": shot, "plan": "<plan>\n1. done()\n</plan>", "executed": None, "point": None,
             "target_box": None, "correct": success, "feedback": "episode succeeded" if success else "budget"}]
    return {"episode": f"eval-{tag}-{i:04d}-{family}", "env": "builtin", "task": family, "seed": i,
            "instruction": f"do {family} number {i}", "success": success, "steps": 2,
            "end": "success" if success else "budget", "looped": False, "trajectory": rows}


# Held-out episodes, before and after: (family, success before, success after) per episode. Trained families:
# 2/8 → 6/8 (4 gained, none lost); the held-out family: 2/4 → 2/4 (1 gained, 1 lost).
TRAINED = [("click-button", False, True), ("enter-text", False, True), ("click-button", True, True),
           ("enter-text", False, False), ("click-button", False, True), ("enter-text", True, True),
           ("click-button", False, False), ("enter-text", False, True)]
HELD_OUT = [("drag-item", True, False), ("drag-item", False, True), ("drag-item", True, True),
            ("drag-item", False, False)]


def planact_run(run: Path) -> Path:
    """A stage-3 run as tracer1.train.planact leaves it: stage3_report.json from episode results (the real
    episode_report / paired_difference), 4 logged steps with two evaluations, and trajectories.jsonl with the
    first episode's screenshots."""
    run.mkdir(parents=True, exist_ok=True)
    screen_png(run / "screen.png")
    shot = (run / "screen.png").read_bytes()
    results = {}
    for phase, which in (("before", 1), ("after", 2)):
        results[phase] = {
            "trained": [episode("trained", e[0], i, e[which], e[which] or i == 0, shot if i == 0 else None)
                        for i, e in enumerate(TRAINED)],
            "held_out": [episode("held-out", e[0], i, e[which], None) for i, e in enumerate(HELD_OUT)]}
    report = {"stage": 3, "planner": "runs/stage2-x/checkpoints/final", "checkpoint": str(run / "final"),
              "steps": 4, "resumed_from": None, "seconds": 99.5, "trained_families": ["click-button", "enter-text"],
              "held_out_families": ["drag-item"],
              "success_curve": [{"step": s, "success": 0.25 * s} for s in range(1, 5)],
              **{phase: {k: episode_report(v) for k, v in results[phase].items()} for phase in results},
              "paired_gain": {k: paired_difference(results["before"][k], results["after"][k])
                              for k in results["after"]}}
    (run / "stage3_report.json").write_text(json.dumps(report))
    p, lines = "stage3/", []
    for step in range(1, 5):
        lines.append({"step": step, "time": 0.0, f"{p}success_rate": 0.25 * step, f"{p}return_mean": 0.2 * step,
                      f"{p}groups_with_signal": 0.5, f"{p}replays": step % 2, f"{p}kept_groups": 2,
                      f"{p}episodes_lost": 0, f"{p}episodes_dropped": 0, f"{p}decisions_per_episode": 3.5,
                      f"{p}env_utilisation": 0.7, f"{p}loss": 1.0 / step, f"{p}kl": 0.01 * step,
                      f"{p}grad_norm": 2.0, f"{p}time/plan": 3.0, f"{p}time/env": 2.0, f"{p}time/episodes": 6.0,
                      f"{p}time/learner": 1.5, f"{p}time/sync": 0.5, f"{p}time/step": 8.0})
        if step in (2, 4):
            lines.append({"step": step, "time": 0.0, f"{p}eval/trained_success": 0.25 * step,
                          f"{p}eval/held_out_success": 0.5})
    lines.append({"step": 4, "text": {f"{p}episode0": "do it → success"}})
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    save_trajectories(run, results["after"]["trained"])
    return run


def test_a_stage3_run_shows_plan_act_success_before_and_after_per_set_and_family(tmp_path, monkeypatch):
    def no_examples(*_):  # stage 1–2's held-out examples: stage 3 writes its trajectories itself
        raise AssertionError("write_training_trajectories called for stage 3")

    monkeypatch.setattr(build, "write_training_trajectories", no_examples)
    run = planact_run(tmp_path / "stage3-x")
    page = write_report(run).read_text()
    report = json.loads((run / "stage3_report.json").read_text())
    trained, held = report["paired_gain"]["trained"], report["paired_gain"]["held_out"]
    assert (trained["mean"], trained["gained"], trained["lost"]) == (0.5, 4, 0) and trained["excludes_zero"]
    assert (held["mean"], held["gained"], held["lost"]) == (0.0, 1, 1) and not held["excludes_zero"]

    def interval(stats, key="success_rate"):
        return f"{stats[key]:.1%} [{stats['ci95'][0]:.1%}, {stats['ci95'][1]:.1%}]"

    before, after = report["before"], report["after"]
    # one row per set: before and after with their intervals, the paired gain (green only when its interval
    # excludes 0), and how many episodes were gained / lost. Trained: mean 0.5, sd sqrt(2/7), n 8 → ± 0.3704;
    # held out: mean 0, sd sqrt(2/3), n 4 → ± 0.8002
    assert interval(before["trained"]["overall"]).startswith("25.0% [")
    assert (f"<tr><td>held-out seeds, trained families</td><td>{interval(before['trained']['overall'])}</td>"
            f"<td>{interval(after['trained']['overall'])}</td>"
            '<td class="up">+50.0% [+13.0%, +87.0%]</td><td>yes</td><td>4 / 0</td></tr>') in page
    assert (f"<tr><td>held-out families</td><td>{interval(before['held_out']['overall'])}</td>"
            f"<td>{interval(after['held_out']['overall'])}</td>"
            '<td class="">+0.0% [-80.0%, +80.0%]</td><td>no</td><td>1 / 1</td></tr>') in page
    # first decisions: right in every successful episode and in episode 0 (trained), not judged (held out)
    assert (f"<tr><td>held-out seeds, trained families: first decision right</td>"
            f"<td>{interval(before['trained']['first_decision'], 'rate')}</td>"
            f"<td>{interval(after['trained']['first_decision'], 'rate')}</td>") in page
    assert before["trained"]["first_decision"]["right"] == 3 and after["trained"]["first_decision"]["right"] == 6
    assert "<tr><td>held-out families: first decision right</td><td>n/a</td><td>n/a</td>" in page
    # per family, trained and held out
    assert ("<tr><td>click-button</td><td>held-out seeds, trained families</td><td>25.0% (1/4)</td>"
            '<td>75.0% (3/4)</td><td class="up">↑</td></tr>') in page
    assert ("<tr><td>enter-text</td><td>held-out seeds, trained families</td><td>25.0% (1/4)</td>"
            '<td>75.0% (3/4)</td><td class="up">↑</td></tr>') in page
    assert ("<tr><td>drag-item</td><td>held-out families</td><td>50.0% (2/4)</td><td>50.0% (2/4)</td>"
            '<td class="">=</td></tr>') in page
    assert "8 episodes per set, played greedily; steps: 4 · seconds: 99.5 · trained families: click-button, " \
           "enter-text · held-out families: drag-item" in page
    assert "Held-out evaluation: before → after training" not in page  # not stages 1–2's table

    curves = {p.stem for p in (run / "report").glob("curve_*.png")}
    assert curves == {"curve_family_success", "curve_episode_success", "curve_signal", "curve_learner",
                      "curve_step_time"}
    for png in (run / "report").glob("*.png"):
        assert base64.b64encode(png.read_bytes()).decode() in page, png.name
    # the metrics: stage 3's prefix removed; time/step beyond plan + env + learner + sync is "other"
    assert "logged as stage3/…" in page
    assert "<tr><td>groups_with_signal</td><td>0.5</td><td>0.5</td><td>0.5</td><td>4</td></tr>" in page
    assert "<tr><td>eval/trained_success</td><td>1</td><td>0.5</td><td>1</td><td>2</td></tr>" in page
    assert time_parts(read_metrics(run / "metrics.jsonl")) == ([1, 2, 3, 4], {
        "plan": [3.0] * 4, "env": [2.0] * 4, "learner": [1.5] * 4, "sync": [0.5] * 4, "other": [1.0] * 4})
    # the held-out episodes it wrote, drawn step by step; episode 0 on its screenshot
    assert "eval-trained-0000-click-button" in page and "do click-button number 0" in page
    assert (run / "screens" / "eval-trained-0000-click-button" / "00.png").is_file()
    first = Image.open(run / "report" / "trajectory1_step1.png").convert("RGB")
    assert near(first, FRAME + 100 * SCALE, FRAME + 120 * SCALE, RIGHT)  # the grounded point on the screen


def test_a_stage3_run_without_trajectories_writes_none_and_draws_the_evaluations_from_step_0(tmp_path,
                                                                                               monkeypatch):
    run = planact_run(tmp_path / "stage3-x")
    (run / "trajectories.jsonl").unlink()
    called = []
    monkeypatch.setattr(build, "write_training_trajectories", lambda *a: called.append(a) or (None, None))
    drawn = []
    monkeypatch.setattr(build, "training_charts", lambda m, before: drawn.append(before) or [])
    page = write_report(run).read_text()
    assert not called and not (run / "trajectories.jsonl").exists() and "Trajectories" not in page
    assert drawn == [{"trained_success": 0.25, "held_out_success": 0.5}]  # before, at step 0 of the curve
    assert "+50.0% [+13.0%, +87.0%]" in page


class OracleForFirstEngine:
    """A stand-in engine (no model can be trained to order here): the reference plan for prompt "0", text with
    no plan for every other prompt."""

    def __init__(self, samples):
        self.samples = samples

    def generate(self, prompts, sampling):
        texts = [format_plan(self.samples[0].future) if p.text == "0" else "I do not know" for p in prompts]
        return [[Completion(0, t, [1, 2], [0.0, 0.0])] * sampling.n for t in texts]


def test_a_training_run_draws_its_held_out_examples_on_their_screenshots(tmp_path):
    clicks = [s for s in generate_samples(3, seed=1, split="eval") if s.future[0].action == "click"][:2]
    write_samples(tmp_path / "eval.parquet", clicks)
    report = evaluate_planning(OracleForFirstEngine(clicks), [Prompt("0"), Prompt("1")], clicks,
                               reward_cfg=RewardConfig(), horizon=10, n=1, temperature=1.0, max_new_tokens=8,
                               grounded=grounding_check(A11yExecutor(), RewardConfig()))
    good, bad = report.examples
    assert good["grounded"] is True and bad["grounded"] is False and report.first_step_grounded == 0.5
    (x0, y0, x1, y1), (x, y) = good["target_box"], good["point"]
    assert x0 <= x <= x1 and y0 <= y <= y1 and good["executed"].endswith(f"point=({x}, {y}))")
    assert bad["executed"] is None and bad["first_step"] is None and bad["width"] == clicks[1].width

    run = tmp_path / "runs" / "sft-x"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(dump_config(load_config([f"data.eval_path={tmp_path / 'eval.parquet'}"])))
    (run / "sft_report.json").write_text(json.dumps({"stage": "sft", "before": report.to_dict(),
                                                     "after": report.to_dict()}))
    page = write_report(run).read_text()
    drawn = read_trajectories(run / "trajectories.jsonl")
    assert [t.episode for t in drawn] == [f"{clicks[0].sample_id} (before training)",
                                          f"{clicks[0].sample_id} (after training)",
                                          f"{clicks[1].sample_id} (before training)",
                                          f"{clicks[1].sample_id} (after training)"]
    step = drawn[0].steps[0]
    assert (run / step.screenshot).read_bytes() == clicks[0].screenshot  # read back from the held-out data
    w, h = clicks[0].width, clicks[0].height
    assert step.point == pytest.approx((x * w / 1000, y * h / 1000))          # 0..1000 grid → pixels
    assert step.target_box == pytest.approx((x0 * w / 1000, y0 * h / 1000, x1 * w / 1000, y1 * h / 1000))
    assert step.correct is True and drawn[2].steps[0].correct is False and drawn[2].steps[0].point is None
    assert "reference first step: " in drawn[2].steps[0].feedback
    assert "(after training)" in page and len(list((run / "report").glob("trajectory*_step1.png"))) == 4


def test_a_finished_stage_writes_its_report_and_a_pipeline_links_every_stage(tmp_path, monkeypatch, capsys):
    def fake_stage(config, run_dir):  # a stand-in trainer: what a finished stage leaves, without the training
        training_run(run_dir, config.stage)
        return 0

    for stage in (1, 2):
        monkeypatch.setitem(TRAINERS, stage, fake_stage)
    monkeypatch.setattr(pipeline, "run_stage", run_main)
    assert pipeline.run_pipeline(["seeds=0", "name=p", f"logging.out_dir={tmp_path / 'runs'}", "stages=2"]) == 0
    out = capsys.readouterr().out
    for name in ("p-seed0-stage1", "p-seed0-stage2", "p"):
        assert f"report: {tmp_path / 'runs' / name / 'report.html'}" in out
    page = (tmp_path / "runs" / "p" / "report.html").read_text()
    assert 'href="../p-seed0-stage1/report.html"' in page and 'href="../p-seed0-stage2/report.html"' in page
    assert "stage 1 − SFT: mean trajectory reward" in page and page.count("data:image/png;base64,") >= 4


def test_bad_input_is_named_and_the_command_line_says_so(tmp_path, capsys):
    assert report_main([str(tmp_path / "nowhere")]) == 2
    assert f"{tmp_path / 'nowhere'}: no such run directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.yaml").write_text("stage: 1\n")
    assert report_main([str(tmp_path / "empty")]) == 2
    assert "nothing to report" in capsys.readouterr().err
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": \n')
    with pytest.raises(ReportError, match=r"metrics.jsonl: line 2: not JSON"):
        write_report(tmp_path / "broken")


@pytest.mark.slow
def test_the_report_opens_in_headless_chromium_with_curves_and_a_trajectory(tmp_path):
    from tracer1.envs.miniwob.browser import CHROME_FLAGS, CHROMIUM

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: install Chromium with `make system-deps`", pytrace=False)
    page = write_report(training_run(tmp_path / "stage1-x"))
    shot = tmp_path / "page.png"
    subprocess.run([CHROMIUM, *CHROME_FLAGS, "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
                    "--window-size=1280,3200", f"--screenshot={shot}", page.resolve().as_uri()],
                   check=True, capture_output=True, timeout=90)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape == (3200, 1280, 3) and pixels.std() > 20  # not a blank page
    colours = pixels.reshape(-1, 3)

    def count(rgb, tolerance=12):
        return int((np.abs(colours - np.array(rgb)).max(axis=1) <= tolerance).sum())

    assert count((31, 119, 180)) > 200   # matplotlib's first colour: the reward curve and its markers
    assert count(RIGHT) > 500 and count(WRONG) > 500   # the two steps' frames and verdict bars
    assert count(TARGET) > 100            # the target boxes


def test_plan_act_success_per_stage_comes_from_stage_3s_compared_start_and_end_policies():
    from tracer1.report.build import planact_by_stage

    def rates(rate):
        return {"overall": {"success_rate": rate, "ci95": [rate - 0.05, rate + 0.05]}}

    row = {"planact": {"compared": {"runs/.cache/sft-x": rates(0.16), "runs/s1": rates(0.145)},
                       "before": {"trained": rates(0.10)}, "after": {"trained": rates(0.145)}}}
    stages = planact_by_stage(row)
    assert list(stages) == ["SFT", "stage 1", "stage 2", "stage 3"]
    assert [rate for rate, _ in stages.values()] == [0.16, 0.145, 0.10, 0.145]
    assert stages["stage 2"][1] == pytest.approx([0.05, 0.15])
    assert planact_by_stage({"sft": {}}) == {}  # a pipeline that stopped after stage 2
