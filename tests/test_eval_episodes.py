"""Plan-act success measured for paired gains: held-out episodes that never meet training seeds and are the same
for every run seed, the first decision on its own, the paired difference with its interval, and greedy results
kept beside the weights they measured."""

from __future__ import annotations

import json

import pytest

from tracer1.config import load_config
from tracer1.eval.episodes import (
    cached_results, episode_report, first_decisions, held_out_episodes, paired_difference, results_file,
)


def result(episode, success, first=None, task="toggle"):
    return {"episode": episode, "env": "builtin", "task": task, "success": success, "steps": 2, "looped": False,
            "trajectory": [{"correct": first, "screenshot": b"png"}, {"correct": None, "screenshot": None}]}


def test_held_out_episodes_take_turns_over_families_and_do_not_depend_on_the_run():
    specs = held_out_episodes("builtin", ["toggle", "call"], 5, "trained", keep_screenshots=2)
    assert [s.task for s in specs] == ["toggle", "call", "toggle", "call", "toggle"]
    assert [s.keep_screenshots for s in specs] == [True, True, False, False, False]
    assert len({s.seed for s in specs}) == 5 and specs == held_out_episodes("builtin", ["toggle", "call"], 5,
                                                                            "trained", keep_screenshots=2)


def test_the_paired_difference_matches_episodes_by_id_and_gives_a_normal_interval():
    before = [result(f"e{i}", i < 10) for i in range(100)]
    after = [result(f"e{i}", i < 30 or i >= 95) for i in reversed(range(100))]  # order does not matter
    gain = paired_difference(before, after)
    # differences: 20 of +1, 5 of +1 (95..99), the rest 0 -> mean 0.25, sd = sqrt(25 · 0.75² + 75 · 0.25²)/sqrt(99)
    sd = ((25 * 0.75 ** 2 + 75 * 0.25 ** 2) / 99) ** 0.5
    assert gain["mean"] == pytest.approx(0.25) and gain["episodes"] == 100 and gain["gained"] == 25
    assert gain["ci95"] == pytest.approx([0.25 - 1.959964 * sd / 10, 0.25 + 1.959964 * sd / 10], abs=1e-6)
    assert gain["excludes_zero"]
    same = paired_difference(before, before)
    assert same["mean"] == 0 and same["ci95"] == [0, 0] and not same["excludes_zero"]
    assert paired_difference(before, [result("other", True)])["episodes"] == 0


def test_first_decisions_count_only_the_judged_ones():
    out = first_decisions([result("a", False, True), result("b", False, False), result("c", True, None)])
    assert (out["judged"], out["right"], out["rate"]) == (2, 1, 0.5) and out["ci95"][0] < 0.5 < out["ci95"][1]
    report = episode_report([result("a", True, True, "call"), result("b", False, False)])
    assert report["by_family"]["call"]["success_rate"] == 1.0 and report["overall"]["episodes"] == 2


def test_greedy_results_are_kept_beside_the_weights_and_read_back(tmp_path):
    config = load_config(["stage=3"])
    specs = held_out_episodes("builtin", ["toggle"], 2, "trained")
    calls = []

    def play():
        calls.append(1)
        return [result("eval-trained-0000-toggle", True, True), result("eval-trained-0001-toggle", False)]

    first = cached_results(tmp_path, specs, config, 20, play)
    again = cached_results(tmp_path, specs, config, 20, play)
    assert len(calls) == 1 and [r["success"] for r in again] == [True, False]
    assert first[0]["trajectory"][0]["screenshot"] == b"png"  # this run keeps them; the file does not
    assert json.loads(results_file(tmp_path, specs, config, 20).read_text())["results"][0]["trajectory"][0][
        "screenshot"] is None
    assert results_file(tmp_path, specs, config, 12) != results_file(tmp_path, specs, config, 20)
    other = load_config(["stage=3", "horizon=1"])
    assert results_file(tmp_path, specs, other, 20) != results_file(tmp_path, specs, config, 20)
