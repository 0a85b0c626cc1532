"""The pipeline's bookkeeping: which overrides reach which stage, how stage 2 finds stage 1's checkpoint, and the
claims computed from the stage reports with their spread over seeds. The stages themselves are replaced by a
function writing reports (they are exercised for real in test_train_rl.py)."""

from __future__ import annotations

import json

import pytest

from tracer1 import pipeline
from tracer1.config import load_config


def test_overrides_go_to_every_stage_or_to_the_one_named():
    seeds, name, every, only, last = pipeline.split_args(
        ["seeds=0,2", "name=x", "algorithm.lr=1e-4", "stage1.algorithm.total_steps=5", "stage2.env.grounding=online",
         "stage3.algorithm.total_steps=7", "stage3.tasks_per_step=2"])
    assert (seeds, name, every, last) == ([0, 2], "x", ["algorithm.lr=1e-4"], 3)
    # stage3.X is stage 3's own override when X is a run setting, and a key of the stage3 section otherwise
    assert only == {1: ["algorithm.total_steps=5"], 2: ["env.grounding=online"],
                    3: ["algorithm.total_steps=7", "stage3.tasks_per_step=2"]}
    assert pipeline.split_args(["stages=2"])[4] == 2


def fake_stages(out_dir, numbers, calls):
    """Each stage run writes a report whose before/after values come from `numbers[(seed, stage)]`."""

    def run_stage(argv):
        calls.append(argv)
        args = dict(a.split("=", 1) for a in argv)
        seed, stage = int(args["seed"]), int(args["stage"])
        before, after = numbers[(seed, stage)]
        run = out_dir / args["run_name"]
        run.mkdir(parents=True)
        if stage == 3:
            gain = after - before
            body = {"before": planact(before), "after": planact(after),
                    "paired_gain": {"trained": {"mean": gain, "ci95": [gain - 0.05, gain + 0.05]}}}
        else:
            body = {"before": before, "after": after, "planner": str(out_dir / "sft")}
        (run / f"stage{stage}_report.json").write_text(json.dumps(body))
        return 0

    return run_stage


def report(reward, grounded):
    return {"reward": reward, "first_step_grounded": grounded}


def planact(success):
    return {"trained": {"overall": {"success_rate": success, "ci95": [success - 0.1, success + 0.1],
                                    "episodes": 200}}}


def test_the_claims_are_the_gains_of_each_stage_with_their_spread(tmp_path, monkeypatch, capsys):
    numbers = {  # seed → (SFT, stage 1) for the stage-1 run, (stage 1, stage 2) for the stage-2 run
        (0, 1): (report(-0.5, 0.30), report(-0.1, 0.35)), (0, 2): (report(-0.1, 0.35), report(-0.05, 0.50)),
        (1, 1): (report(-0.4, 0.20), report(-0.2, 0.25)), (1, 2): (report(-0.2, 0.25), report(-0.20, 0.20)),
    }
    calls = []
    monkeypatch.setattr(pipeline, "run_stage", fake_stages(tmp_path, numbers, calls))
    assert pipeline.run_pipeline(["seeds=0,1", "name=t", f"logging.out_dir={tmp_path}", "stages=2"]) == 0
    assert f"checkpoint.init_from={tmp_path / 't-seed0-stage1'}" in calls[1]
    saved = json.loads((tmp_path / "t" / "pipeline_report.json").read_text())
    s1, s2 = saved["claims"]["stage1_reward_gain"], saved["claims"]["stage2_grounded_gain"]
    assert s1["gain"]["values"] == pytest.approx([0.4, 0.2]) and s1["gain"]["mean"] == pytest.approx(0.3)
    assert s1["gain"]["std"] == pytest.approx(0.1414, abs=1e-4) and s1["holds_on_every_seed"]
    assert s2["gain"]["values"] == pytest.approx([0.15, -0.05]) and not s2["holds_on_every_seed"]
    assert "does NOT hold on every seed" in capsys.readouterr().out
    assert (tmp_path / "t" / "pipeline_report.md").read_text().startswith("== t: SFT → stage 1 → stage 2")
    assert "Held out" not in (tmp_path / "t" / "pipeline_report.md").read_text()  # the fakes give no sample count


def test_the_report_says_how_many_held_out_samples_a_gain_is_made_of(tmp_path, monkeypatch, capsys):
    def held(reward, grounded):
        return {**report(reward, grounded), "samples": 48}

    numbers = {(0, 1): (held(-0.5, 0.25), held(-0.1, 0.25)), (0, 2): (held(-0.1, 0.25), held(0.0, 0.2708))}
    monkeypatch.setattr(pipeline, "run_stage", fake_stages(tmp_path, numbers, []))
    assert pipeline.run_pipeline(["seeds=0", "name=t", f"logging.out_dir={tmp_path}", "stages=2"]) == 0
    assert "Held out: 48 samples" in capsys.readouterr().out and "one sample = 2.1%" in (
        tmp_path / "t" / "pipeline_report.md").read_text()


def test_a_bad_shared_override_fails_before_any_stage_runs(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(pipeline, "run_stage", fake_stages(tmp_path, {}, calls))
    assert pipeline.run_pipeline(["algorithm.lr=-1", f"logging.out_dir={tmp_path}"]) == 2
    assert calls == [] and "algorithm.lr" in capsys.readouterr().err


def test_stage_3_starts_from_stage_2_and_its_claim_is_the_paired_gain_on_every_seed(tmp_path, monkeypatch, capsys):
    numbers = {(0, 1): (report(-0.5, 0.3), report(-0.1, 0.35)), (0, 2): (report(-0.1, 0.35), report(0.0, 0.4)),
               (0, 3): (0.10, 0.30), (1, 1): (report(-0.5, 0.3), report(-0.1, 0.35)),
               (1, 2): (report(-0.1, 0.35), report(0.0, 0.4)), (1, 3): (0.10, 0.12)}
    calls = []
    monkeypatch.setattr(pipeline, "run_stage", fake_stages(tmp_path, numbers, calls))
    assert pipeline.run_pipeline(["seeds=0,1", "name=t", f"logging.out_dir={tmp_path}",
                                  "stage3.algorithm.total_steps=4", "stage3.tasks_per_step=2"]) == 0
    assert calls[2][:3] == ["stage=3", "run_name=t-seed0-stage3", f"checkpoint.init_from={tmp_path / 't-seed0-stage2'}"]
    assert "algorithm.total_steps=4" in calls[2] and "stage3.tasks_per_step=2" in calls[2]
    # the SFT warm start and stage 1's policy are played on stage 3's episodes too: success per stage
    compare = next(a for a in calls[2] if a.startswith("stage3.compare_with="))
    assert load_config(["stage=3", compare]).stage3.compare_with == [str(tmp_path / "sft"),
                                                                      str(tmp_path / "t-seed0-stage1")]
    assert not any("total_steps=4" in a for call in calls[:2] for a in call)
    claim = json.loads((tmp_path / "t" / "pipeline_report.json").read_text())["claims"]["stage3_planact_gain"]
    assert claim["gain"]["values"] == pytest.approx([0.2, 0.02])
    assert not claim["holds_on_every_seed"]  # seed 1's interval [-3%, +7%] includes 0
    text = (tmp_path / "t" / "pipeline_report.md").read_text()
    assert text.startswith("== t: SFT → stage 1 → stage 2 → stage 3") and "+20.0% [+15.0%, +25.0%]" in text


def test_a_bad_stage_3_override_fails_before_any_stage_runs(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(pipeline, "run_stage", fake_stages(tmp_path, {}, calls))
    assert pipeline.run_pipeline(["stage3.tasks_per_step=0", f"logging.out_dir={tmp_path}"]) == 2
    assert calls == [] and "stage3.tasks_per_step" in capsys.readouterr().err
