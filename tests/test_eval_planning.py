"""Offline planning evaluation, with hand-counted numbers. The engine here is a scripted stand-in that replays
fixed completions (the measures are what is under test, not a model)."""

from __future__ import annotations

import pytest

from tracer1.config import RewardConfig
from tracer1.data.schema import Sample
from tracer1.engines.base import Completion, Prompt
from tracer1.eval import evaluate_planning
from tracer1.plan import ACTIONS, Step, format_plan
from tracer1.rewards import GroundingLabel

WIFI = Step("click", target="the Wi-Fi row")
BACK = Step("press", key="back")


class ScriptedEngine:
    """Replays `greedy[i]` for temperature 0 and `sampled[i]` (a list) otherwise, for prompt i."""

    def __init__(self, greedy: list[str], sampled: list[list[str]]):
        self.greedy, self.sampled = greedy, sampled

    def generate(self, prompts, sampling):
        out = []
        for prompt in prompts:
            i = int(prompt.text)
            texts = [self.greedy[i]] * sampling.n if sampling.temperature == 0 else self.sampled[i][:sampling.n]
            out.append([Completion(i, t, list(range(len(t.split()))), [0.0] * len(t.split())) for t in texts])
        return out


def sample(i: int, future: list[Step]) -> Sample:
    return Sample(sample_id=f"s{i}", episode_id="e", step_index=i, source="test", instruction="turn on wifi",
                  history=[], future=future, label=GroundingLabel(action="click", box=(0, 0, 100, 100)))


def test_parse_rate_first_step_and_reward_by_hand():
    samples = [sample(0, [WIFI, BACK]), sample(1, [BACK])]
    perfect0, perfect1 = format_plan([WIFI, BACK]), format_plan([BACK])
    engine = ScriptedEngine(
        greedy=[perfect0, format_plan([Step("click", target="the Bluetooth row")])],
        sampled=[[perfect0, "no plan at all"], [perfect1, "<plan>\n1. press(key=\"back\")\n2. oops(\n</plan>"]])
    prompts = [Prompt("0"), Prompt("1")]
    report = evaluate_planning(engine, prompts, samples, reward_cfg=RewardConfig(), horizon=10, n=2,
                               temperature=1.0, max_new_tokens=64,
                               grounded=lambda step, s: step.target == "the Wi-Fi row")
    assert report.plans == 4
    assert report.parse_rate == pytest.approx(2 / 4)          # two perfect plans; one empty, one with a problem
    assert report.greedy_parse_rate == 1.0
    assert report.first_step_action == pytest.approx(1 / 2)    # sample 1 wanted press, got click
    assert report.first_step_exact == pytest.approx(1 / 2)
    assert report.first_step_grounded == pytest.approx(1 / 2)
    # sampled: 1.0 (perfect), -1.0 (unparseable), 1.0 (perfect), 1.0 - 0.5 (right step, one bad line)
    assert report.reward == pytest.approx((1.0 - 1.0 + 1.0 + 0.5) / 4)
    assert report.greedy_reward == pytest.approx((1.0 + 0.0) / 2)  # a wrong action scores sim 0
    # per sample, for paired comparisons of two policies on the same held-out samples
    assert report.sample_rewards == pytest.approx({"s0": (1.0 - 1.0) / 2, "s1": (1.0 + 0.5) / 2})
    assert report.examples[0]["greedy_plan"] == perfect0
    # the two failing sampled plans, by kind of problem (each plan counted once per kind)
    assert report.problem_kinds == {"no <plan> block; read numbered steps from the text": 1,
                                    "no step could be read": 1,
                                    f"unknown action '…'; known: {', '.join(ACTIONS)}": 1}


def test_prompts_and_samples_must_pair_up():
    with pytest.raises(ValueError, match="1 prompts for 2 samples"):
        evaluate_planning(ScriptedEngine([], []), [Prompt("0")], [sample(0, [WIFI]), sample(1, [WIFI])],
                          reward_cfg=RewardConfig(), horizon=10, n=1, temperature=1.0, max_new_tokens=8)
