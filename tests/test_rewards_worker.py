"""RewardWorker: the same rewards as the reward functions, in order; a hung, raising or dying item scores the
failure value with its reason and the items after it are still scored."""

from __future__ import annotations

import pytest

from tracer1.config import RewardConfig
from tracer1.plan import Step
from tracer1.rewards import GroundingLabel, LiveFeedback, grounded_reward, live_reward, score_plan
from tracer1.rewards.worker import RewardItem, RewardWorker

REFERENCE = (Step("click", target="Wi-Fi"), Step("finish", status="success"))
PERFECT = '<plan>\n1. click(target="Wi-Fi")\n2. finish(status="success")\n</plan>'


def test_stage_1_scores_match_the_reward_function_in_order():
    cfg = RewardConfig()
    items = [RewardItem("perfect", PERFECT, REFERENCE), RewardItem("junk", "no plan at all", REFERENCE),
             RewardItem("half", '<plan>\n1. click(target="Wi-Fi")\n</plan>', REFERENCE)]
    with RewardWorker(cfg, horizon=10, stage=1) as worker:
        scored = worker.score(items)
    assert [s.key for s in scored] == ["perfect", "junk", "half"]
    assert [s.reward for s in scored] == [score_plan(i.plan, REFERENCE, cfg, 10).reward for i in items]
    assert scored[0].reward == pytest.approx(1.0) and scored[1].reward == -1.0  # perfect; unparseable
    assert all(s.error is None for s in scored) and worker.timeouts == 0


def test_stage_2_scores_the_executed_step_against_the_label():
    cfg = RewardConfig()
    label = GroundingLabel(action="click", box=(0, 100, 1000, 200))
    items = [RewardItem("in box", PERFECT, label=label, executed=Step("click", point=(500, 150))),
             RewardItem("outside", PERFECT, label=label, executed=Step("click", point=(500, 900))),
             RewardItem("no label", PERFECT, executed=Step("click", point=(500, 150)))]
    with RewardWorker(cfg, horizon=10, stage=2) as worker:
        scored = worker.score(items)
    assert [s.reward for s in scored[:2]] == [1.0, 0.0]
    assert scored[0].reward == grounded_reward(PERFECT, items[0].executed, label, cfg)
    assert scored[2].reward == cfg.failure_value and "needs a grounding label" in scored[2].error


def test_stage_2_online_scores_the_live_feedback_and_falls_back_to_the_label():
    cfg = RewardConfig()
    label = GroundingLabel(action="click", box=(0, 100, 1000, 200))
    closer = LiveFeedback(executed=True, progress=1, solvable=True)
    items = [RewardItem("progress", PERFECT, label=label, executed=Step("click", point=(500, 900)), feedback=closer),
             RewardItem("no-op", PERFECT, label=label, executed=Step("click", point=(500, 150)),
                        feedback=LiveFeedback(executed=False, progress=0, solvable=True)),
             RewardItem("not restored", PERFECT, label=label, executed=Step("click", point=(500, 150)))]
    with RewardWorker(cfg, horizon=10, stage=2) as worker:
        scored = worker.score(items)
    # the feedback decides even where the label disagrees; without feedback the label does (offline)
    assert [s.reward for s in scored] == [1.0, 0.0, 1.0] and all(s.error is None for s in scored)
    assert scored[0].reward == live_reward(PERFECT, closer, cfg)


def test_hung_raising_and_dying_items_fail_alone():
    cfg = RewardConfig(deadline_s=1.0, failure_value=-1.5)
    plans = ["ab", "HANG", "abc", "BOOM", "abcd", "DIE", "abcde"]
    with RewardWorker(cfg, horizon=10, stage=1, scorer="reward_scorers:misbehaving") as worker:
        scored = worker.score([RewardItem(f"plan {i}", p) for i, p in enumerate(plans)])
    assert [s.reward for s in scored] == [2.0, -1.5, 3.0, -1.5, 4.0, -1.5, 5.0]
    assert "1 s deadline" in scored[1].error
    assert scored[3].error.startswith("ZeroDivisionError: division by zero (at ")
    assert scored[5].error == "the scoring process died"
    assert worker.timeouts == 1 and worker.restarts == 2  # after the hang and after the death


def test_a_bad_stage_is_refused():
    with pytest.raises(ValueError, match="stage must be 1 or 2"):
        RewardWorker(RewardConfig(), horizon=10, stage=3)


def test_a_scorer_that_cannot_load_is_named():
    worker = RewardWorker(RewardConfig(), horizon=10, stage=1, scorer="no_such_module:score")
    with pytest.raises(RuntimeError, match="'no_such_module:score' did not start"):
        worker.score([RewardItem("a", PERFECT, REFERENCE)])
    worker.close()


@pytest.mark.parametrize("stage", [1, 2])
def test_a_failed_or_hung_item_never_scores_above_an_unparseable_plan(stage):
    # even with a failure value above the unparseable score (one that skipped validation), failing the scorer
    # must not pay better than writing junk: that would be a reward to hack
    cfg = RewardConfig(deadline_s=1.0).model_copy(update={"failure_value": 0.5})
    label = GroundingLabel(action="click", box=(0, 100, 1000, 200))
    items = [RewardItem(name, plan, REFERENCE, label=label, executed=None)
             for name, plan in [("junk", "no plan at all"), ("boom", "BOOM"), ("hang", "HANG")]]
    with RewardWorker(cfg, horizon=10, stage=stage, scorer="reward_scorers:failing_or_real") as worker:
        junk, boom, hang = worker.score(items)
    assert junk.error is None and junk.reward == cfg.unparseable
    assert "RuntimeError: a scorer bug" in boom.error and "deadline" in hang.error
    assert boom.reward <= junk.reward and hang.reward <= junk.reward


def test_a_failure_value_above_the_unparseable_score_is_refused():
    with pytest.raises(ValueError, match="failure_value"):
        RewardConfig(failure_value=0.0)
    assert RewardConfig().failure_value <= RewardConfig().unparseable
    RewardConfig(unparseable=-2.0, failure_value=-2.0)  # equal is allowed


def test_a_scoring_child_whose_parent_is_gone_exits_quietly(capfd):
    worker = RewardWorker(RewardConfig(), horizon=10, stage=1)
    worker.score([RewardItem("a", PERFECT, REFERENCE)])  # the child is up and waiting for the next items
    child = worker._process
    worker._send.close()  # what the child sees when a killed reward actor's end of the pipe closes
    assert child.wait(timeout=30) == 0
    worker._kill()
    assert "Traceback" not in capfd.readouterr().err
