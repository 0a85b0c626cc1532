"""Stage 3's task side: the families it trains on and holds out, the curriculum that favours families at the
frontier, the episode return (shaping can never beat success), and the replay of a stored success into an
all-fail group."""

from __future__ import annotations

import random

import pytest

from tracer1.config import ConfigError, RunConfig, Stage3Config, load_config
from tracer1.envs.episode import EpisodeSpec
from tracer1.eval.episodes import held_out_episodes
from tracer1.train.curriculum import Curriculum, ReplayBuffer, episode_return, group_specs, task_families


def test_held_out_families_are_never_trained_on():
    train, held = task_families(RunConfig(stage=3))
    assert held == ["bt_connect", "delete_note"] and not set(train) & set(held) and "toggle" in train
    train, held = task_families(load_config(["stage=3", "env.tasks=[toggle,call]", "stage3.held_out_families=[]"]))
    assert (train, held) == (["toggle", "call"], [])
    with pytest.raises(ValueError, match="unknown built-in task families nope"):
        task_families(load_config(["stage=3", "stage3.held_out_families=[nope]"]))


def test_training_seeds_never_meet_the_evaluation_seeds():
    config = load_config(["stage=3", "stage3.train_seeds=50"])
    cur = Curriculum(["toggle"], config)
    trained = {seed for step in range(300) for _, seed in cur.draw(1, step)}
    assert len(trained) == 50  # a finite pool, so tasks recur and their successes can be replayed
    evaluated = {s.seed for s in held_out_episodes("builtin", ["toggle"], 500, "trained")}
    assert not trained & evaluated


def test_the_curriculum_draws_families_at_the_frontier_more_often():
    cur = Curriculum(["solved", "frontier", "hopeless", "unseen"], load_config(["stage=3"]))
    for i in range(32):
        cur.record("solved", True)
        cur.record("hopeless", False)
        cur.record("frontier", i % 3 == 0)
    assert [cur.weight(f) for f in cur.families] == [0.25, 1.0, 0.25, 1.0]
    drawn = [f for step in range(400) for f, _ in cur.draw(1, step)]
    assert drawn.count("frontier") > 2.5 * drawn.count("solved") and drawn.count("unseen") > 2.5 * drawn.count(
        "hopeless")
    assert len({f for f, _ in cur.draw(4, 1)}) == 4  # distinct families while there are enough
    assert cur.draw(3, 7) == cur.draw(3, 7)  # a step's tasks are a function of (seed, step, history)
    off = Curriculum(["solved", "frontier"], load_config(["stage=3", "stage3.curriculum=false"]))
    off.record("solved", True)
    assert off.weight("solved") == 1.0


def test_the_curriculum_state_survives_a_resume():
    config = load_config(["stage=3", "stage3.curriculum_window=4"])
    cur = Curriculum(["a", "b"], config)
    for ok in (True, True, False, True, True):
        cur.record("a", ok)
    again = Curriculum(["a", "b"], config)
    again.load(cur.state())
    assert again.rate("a") == cur.rate("a") == 0.75 and again.rate("b") is None


def result(success, correct=(), alignment=()):
    return {"success": success, "trajectory": [{"correct": c} for c in correct], "alignment": list(alignment)}


def test_shaping_never_lets_a_failing_episode_beat_a_successful_one():
    s3 = Stage3Config(align_weight=0.45, progress_weight=0.5)
    rng = random.Random(0)
    for _ in range(2000):
        n, m = rng.randint(1, 20), rng.randint(1, 20)
        best_failure = result(False, [True] * n, [1.0] * n)  # every step right and perfectly aligned, no finish
        worst_success = result(True, [rng.choice([False, None])] * m, [0.0] * m)
        assert episode_return(best_failure, s3) < episode_return(worst_success, s3)
    # looping longer does not pay: shaping is a mean over decisions, not a sum
    assert episode_return(result(False, [True, False] * 10), s3) == episode_return(result(False, [True, False]), s3)
    with pytest.raises(ConfigError, match="must be below success_weight"):
        load_config(["stage3.align_weight=0.6", "stage3.progress_weight=0.4"])


def test_the_return_is_success_plus_the_weighted_shaping_means():
    s3 = Stage3Config(align_weight=0.2, progress_weight=0.1)
    r = result(True, [True, None, False, True], [0.5, None, 1.0, 0.0])
    assert episode_return(r, s3) == pytest.approx(1.0 + 0.2 * 0.5 + 0.1 * 0.5)


def test_a_stored_success_is_replayed_only_into_an_all_fail_group_of_its_task():
    from dataclasses import dataclass

    @dataclass
    class Ep:
        success: bool
        decisions: list
        replayed: bool = False

    buffer = ReplayBuffer(capacity=2)
    long, short = Ep(True, [1, 2, 3, 4]), Ep(True, [1, 2])
    buffer.add(("toggle", 1), long)
    buffer.add(("toggle", 1), short)  # the shortest success of a task is kept
    buffer.add(("toggle", 1), Ep(True, [1, 2, 3]))
    assert buffer.episodes[("toggle", 1)] is short
    mixed = [Ep(False, [1]), Ep(True, [1])]
    assert not buffer.rescue(("toggle", 1), mixed)  # a group with a success has signal already
    failed = [Ep(False, [1]), Ep(False, [1, 2])]
    assert buffer.rescue(("toggle", 1), failed)
    assert failed[0].success is False and failed[1].replayed and failed[1].decisions == [1, 2]
    assert not buffer.rescue(("call", 1), [Ep(False, [1]), Ep(False, [1])])  # no success of that family stored
    other_seed = [Ep(False, [1]), Ep(False, [1])]
    assert buffer.rescue(("toggle", 2), other_seed) and other_seed[1].decisions == [1, 2, 3]  # the family's latest
    buffer.add(("call", 1), Ep(True, [1]))
    buffer.add(("call", 2), Ep(True, [1]))  # capacity 2: the least recently stored task goes
    assert list(buffer.episodes) == [("call", 1), ("call", 2)]


def test_group_specs_play_each_task_group_size_times_with_distinct_names():
    groups = group_specs("builtin", [("toggle", 5), ("call", 9)], 3, step=7)
    assert [[(s.task, s.seed) for s in g] for g in groups] == [[("toggle", 5)] * 3, [("call", 9)] * 3]
    assert len({s.episode for g in groups for s in g}) == 6 and all(isinstance(s, EpisodeSpec) for g in groups
                                                                    for s in g)
