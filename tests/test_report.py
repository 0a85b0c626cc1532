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
from tracer1.eval.planning import evaluate_planning, grounding_check
from tracer1.executors import A11yExecutor
from tracer1.plan import format_plan
from tracer1.report import (
    ReportError, Trajectory, TrajectoryError, TrajectoryStep, append_trajectory, read_trajectories, write_report,
    write_trajectories,
)
from tracer1.report.__main__ import main as report_main
from tracer1.report.annotate import RIGHT, TARGET, WRONG
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
            "curve_step_time"} <= curves
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
    assert pipeline.run_pipeline(["seeds=0", "name=p", f"logging.out_dir={tmp_path / 'runs'}"]) == 0
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
