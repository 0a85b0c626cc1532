"""The rollout-scaling benchmark's measurement on a real local Ray with two of its fake engines (actors that sleep a
fixed latency per call): call_pool gives each worker its even, in-order share, the two sleep at the same time, and
the efficiency the bench reports is ideal / measured wall. And the rewards benchmark can start each measurement
cold: the caches it clears exist."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import ray

from tracer1.train.actors import call_pool

BENCH = Path(__file__).resolve().parents[1] / "bench" / "rollout_scaling.py"
LATENCY = 0.3  # seconds each fake engine sleeps per call


@pytest.fixture(scope="module")
def scaling():
    spec = importlib.util.spec_from_file_location("rollout_scaling", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the bench ships its fake class by value, found through sys.modules
    sys.path.insert(0, str(BENCH.parent))  # as when it runs as a script: bench/common.py is importable
    spec.loader.exec_module(module)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield module
    ray.shutdown()


def test_two_fake_engines_share_the_batch_and_sleep_in_parallel(scaling):
    fakes = scaling.start_fakes(2, LATENCY, group_size=3, tokens=5)

    items = [(f"item-{i}", b"x" * 16) for i in range(4)]
    out = call_pool(fakes, "rollout", items, retries=0, label=lambda item: item[0])
    texts = [[c.text for c in group] for group in out.results]
    assert texts == [["item-0 by worker 0"] * 3, ["item-1 by worker 0"] * 3,
                     ["item-2 by worker 1"] * 3, ["item-3 by worker 1"] * 3]
    assert all(c.token_ids == [0, 1, 2, 3, 4] for group in out.results for c in group)

    row = scaling.scaling_row(fakes, per_worker=2, item_bytes=1024, latency_s=LATENCY, repeats=2)
    assert (row["workers"], row["items"], row["completions_per_call"]) == (2, 4, 12)
    assert row["busy_s"] >= LATENCY  # each fake slept its latency
    assert row["wall_min_s"] >= LATENCY  # no call beats the sleep ...
    assert row["wall_s"] < 2 * LATENCY  # ... and the two slept at once (one after the other takes 2 latencies)
    assert row["efficiency"] == pytest.approx(LATENCY / row["wall_s"])
    assert row["overhead_s"] == pytest.approx(row["wall_s"] - LATENCY)
    assert 0.5 < row["efficiency"] <= 1.0


def test_the_rewards_bench_empties_the_parse_and_reward_caches():
    from tracer1.plan import Step, parse_plan, step_signature
    from tracer1.plan.grammar import _read_line
    from tracer1.rewards.match import _token_set, token_f1

    sys.path.insert(0, str(BENCH.parent))
    spec = importlib.util.spec_from_file_location("rewards_throughput", BENCH.parent / "rewards_throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    parse_plan('<plan>\n1. click(target="OK")\n</plan>'), step_signature(Step("wait")), token_f1("a b", "b c")
    module.clear_caches()
    assert [c.cache_info().currsize for c in (_read_line, step_signature, _token_set)] == [0, 0, 0]


def test_the_stage_3_bench_drops_the_warm_up_step_and_splits_the_step_into_its_parts():
    spec = importlib.util.spec_from_file_location("stage3_step", BENCH.parent / "stage3_step.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCH.parent))
    spec.loader.exec_module(module)
    keys = [key for _, key in module.PARTS]
    rows = [{**dict.fromkeys(keys, 100.0), "env_utilisation": 0.9, "decisions": 1, "success_rate": 1.0},
            *({"time/plan": p, "time/env": 2.0, "busy/execute": 0.5, "busy/env_step": 1.0, "time/learner": 4.0,
               "time/sync": 1.0, "time/step": p + 7.0, "env_utilisation": u, "decisions": 100, "success_rate": 0.5}
              for p, u in ((3.0, 0.1), (5.0, 0.3)))]
    out = module.summarise(rows)
    assert out["steps_kept"] == 2 and out["parts"]["plan"]["mean"] == 4.0 and out["parts"]["step"]["mean"] == 11.0
    assert out["parts"]["learner"]["share"] == pytest.approx(4 / 11)
    assert out["env_utilisation"]["mean"] == pytest.approx(0.2) and out["success_rate"] == 0.5


def test_the_staleness_study_pairs_two_runs_sample_by_sample_and_reads_the_curve_against_wall_time(tmp_path):
    spec = importlib.util.spec_from_file_location("staleness_learning", BENCH.parent / "staleness_learning.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCH.parent))
    spec.loader.exec_module(module)
    out = module.paired({"a": 0.0, "b": 1.0, "c": 0.5, "gone": 9.0}, {"a": 0.5, "b": 1.0, "c": 1.5})
    assert out["samples"] == 3 and out["mean"] == pytest.approx(0.5)  # only the samples both scored
    half = 1.959964 * 0.5 / 3 ** 0.5  # stdev of (0.5, 0, 1) is 0.5
    assert out["ci95"] == pytest.approx([0.5 - half, 0.5 + half])
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(row) for row in (
        {"step": 1, "time": 110.0, "stage1/time/step": 10.0},
        {"step": 2, "time": 115.0, "stage1/time/step": 5.0, "stage1/eval/reward": 0.25},
        {"step": 2, "time": 130.0, "stage1/eval/reward": 0.5})))
    (tmp_path / "stage1_report.json").write_text(json.dumps({"before": {"reward": -0.5}}))
    assert module.curve(tmp_path) == [(0, 0.0, -0.5), (2, 15.0, 0.25), (2, 30.0, 0.5)]
