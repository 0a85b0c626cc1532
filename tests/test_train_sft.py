"""`python -m tracer1.run stage=sft` end to end on the embedded default, shrunk: the tiny VL planner is built,
data generated, trained with DeepSpeed on CPU, evaluated before and after, saved, and reported."""

from __future__ import annotations

import json

import pytest
import yaml

from tracer1.config import RunConfig
from tracer1.models.loading import load_planner
from tracer1.run import main
from tracer1.train.assets import cached, dataset_path, planner_path
from tracer1.eval.held_out import evaluate_held_out, evaluation_file
from tracer1.train.assets import batches

SMALL = ["sft.steps=30", "sft.warmup_steps=3", "sft.batch_size=8", "learner.micro_batch_size=8", "sft.eval_samples=8",
         "sft.eval_plans=2", "data.generate_episodes=30", "data.eval_episodes=6", "rollout.max_new_tokens=128"]


def test_batches_walk_seeded_epochs_without_repeats_inside_one():
    draw = batches(4, 10, seed=1)
    first = [next(draw) for _ in range(5)]  # 20 indices = two epochs of 10
    flat = [i for b in first for i in b]
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:]) == list(range(10))
    again = batches(4, 10, seed=1)
    assert [next(again) for _ in range(5)] == first


def test_data_shuffle_false_walks_the_samples_in_order_every_epoch(monkeypatch):
    draw = batches(4, 10, seed=1, shuffle=False)
    assert [i for _ in range(5) for i in next(draw)] == [*range(10), *range(10)]
    # The RL loop's driver split draws with data.shuffle: in order when false, a permutation when true.
    from tracer1.train import data_source

    monkeypatch.setattr(data_source, "load_split", lambda config, split, limit=None: [f"s{i}" for i in range(6)])
    for shuffle in (False, True):
        split = data_source.DriverSplit(RunConfig.model_validate({"data": {"shuffle": shuffle},
                                                                  "rollout": {"prompts_per_step": 3}}), {})
        epoch = [split.train[i] for _ in range(2) for i in next(split.draw)]
        assert sorted(epoch) == split.train and (epoch == split.train) is not shuffle


def test_cached_builds_once_and_never_leaves_half_an_entry(tmp_path):
    calls = []

    def build(tmp):
        calls.append(tmp)
        (tmp / "file").write_text("x")

    assert cached(tmp_path / "entry", build) == tmp_path / "entry"
    cached(tmp_path / "entry", build)
    assert len(calls) == 1 and (tmp_path / "entry" / "file").read_text() == "x"

    def broken(tmp):
        (tmp / "partial").write_text("x")
        raise RuntimeError("build failed")

    with pytest.raises(RuntimeError):
        cached(tmp_path / "other", broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry"]


def test_data_paths_need_the_builtin_world_to_generate():
    config = RunConfig.model_validate({"env": {"name": "miniwob"}})
    with pytest.raises(ValueError, match="data.train_path is null"):
        dataset_path(config, "train")
    config = RunConfig.model_validate({"data": {"train_path": "/data/x.parquet"}})
    assert str(dataset_path(config, "train")) == "/data/x.parquet"


@pytest.mark.slow
def test_sft_run_trains_evaluates_saves_and_reports(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["stage=sft", f"logging.out_dir={out}", "run_name=warm", "sft.eval_every=20", *SMALL]) == 0
    run = out / "warm"
    report = json.loads((run / "sft_report.json").read_text())
    before, after = report["before"], report["after"]
    # a random-init planner writes no valid plan; 30 steps teach it the plan language's shape
    assert before["greedy_parse_rate"] == 0.0
    assert after["greedy_parse_rate"] > before["greedy_parse_rate"]
    assert after["first_step_grounded"] is not None and after["plans"] == 16
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [m["sft/loss"] for m in metrics if "sft/loss" in m]
    assert len(losses) == 30 and losses[-1] < 0.5 * losses[0]
    # sft.eval_every=20: the held-out evaluation also ran at step 20, for the parse-rate curve
    parse = {m["step"]: m["sft/eval/greedy_parse_rate"] for m in metrics if "sft/eval/greedy_parse_rate" in m}
    assert sorted(parse) == [20, 30] and parse[30] == after["greedy_parse_rate"]
    assert list((run / "tensorboard").iterdir())
    summary = capsys.readouterr().out
    assert "SFT warm start" in summary and str(run / "checkpoints" / "final") in summary
    # after 30 steps most sampled plans still fail; the summary names the commonest kind of problem
    assert after["parse_rate"] < 1.0 and sum(after["problem_kinds"].values()) >= 1
    kind, plans = next(iter(after["problem_kinds"].items()))
    assert f"why sampled plans fail (plans of 16):\n  {plans:>6}  {kind}\n" in summary
    # the checkpoint is a HF directory the generic loader opens like any other planner
    bundle = load_planner(run / "checkpoints" / "final")
    assert bundle.is_vision and bundle.processor is not None
    # the tiny planner and the data were cached for the next run
    config = RunConfig.model_validate({"logging": {"out_dir": str(out)}, "data": {"generate_episodes": 30}})
    assert planner_path(config).is_dir() and dataset_path(config, "train").is_file()
    # its held-out evaluation is kept beside the weights, so the next stage's "before" is read, not recomputed;
    # other evaluation settings are another evaluation
    resolved = RunConfig.model_validate(yaml.safe_load((run / "config.yaml").read_text()))
    final = run / "checkpoints" / "final"
    assert evaluation_file(resolved, final).is_file()
    assert evaluate_held_out(None, [], [], resolved, policy=final).to_dict() == after
    longer = resolved.model_copy(update={"rollout": resolved.rollout.model_copy(update={"max_new_tokens": 64})})
    assert not evaluation_file(longer, final).is_file()
