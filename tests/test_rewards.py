"""Stage-1 and stage-2 rewards, each case worked out by hand.

Defaults used unless a test says otherwise (see `RewardConfig`): γ = 0.9, λ_align = 1, λ_rep = 0.5,
sim weights type = location = value = 1, normalised, format penalty 0.5, unparseable −1, radius 0.14.
"""

import pytest
from hypothesis import given, settings, strategies as st

from plan_strategies import plans
from tracer1.config import RewardConfig
from tracer1.plan import Step, format_plan, same_step
from tracer1.rewards import (
    GroundingLabel, LiveFeedback, grounded_reward, live_reward, repeat_flags, score_plan, step_similarity,
    trajectory_reward,
)

CFG = RewardConfig()
A = Step("click", target="Settings")
B = Step("click", target="Wi-Fi")
C = Step("click", target="Bluetooth")
DONE = Step("finish")
BACK = Step("press", key="back")


def reward(plan_steps, reference, horizon=10, cfg=CFG):
    return trajectory_reward(format_plan(plan_steps), reference, cfg, horizon)


# --- stage 1: similarity of one step ----------------------------------------------------------------------

def test_similarity_is_type_then_arguments():
    assert step_similarity(A, A, CFG) == 1.0
    assert step_similarity(Step("long_press", target="Settings"), A, CFG) == 0.0  # wrong type: nothing
    # right type, wrong target ("settings" vs "wi fi": token F1 0): (1 + 0) / 2
    assert step_similarity(B, A, CFG) == 0.5
    # typing: target F1 1; text {weather, paris} vs {weather, in, paris}: P 1, R 2/3, F1 0.8 -> (1 + 1 + 0.8) / 3
    pred = Step("type", target="the search box", text="weather paris")
    ref = Step("type", target="the search box", text="weather in Paris")
    assert step_similarity(pred, ref, CFG) == pytest.approx(2.8 / 3)
    assert step_similarity(Step("scroll", direction="up"), Step("scroll", direction="down"), CFG) == 0.5
    assert step_similarity(Step("wait"), Step("wait"), CFG) == 1.0  # no arguments: type alone


def test_similarity_of_points_uses_the_014_radius():
    ref = Step("click", point=(500, 500))
    assert step_similarity(Step("click", point=(500, 639)), ref, CFG) == 1.0  # 0.139 < 0.14
    assert step_similarity(Step("click", point=(500, 641)), ref, CFG) == 0.5  # 0.141: type only
    # a prediction with a target but no point cannot be compared with a point-only reference
    assert step_similarity(Step("click", target="OK"), ref, CFG) == 0.5


def test_a_different_tool_is_a_different_action():
    ref = Step("call", tool="calculator", args=(("expression", "3*7"),))
    assert step_similarity(Step("call", tool="ocr", args=(("expression", "3*7"),)), ref, CFG) == 0.0
    assert step_similarity(Step("call", tool="calculator", args=(("expression", "3*7"),)), ref, CFG) == 1.0
    assert step_similarity(Step("call", tool="calculator"), ref, CFG) == 0.5  # argument missing


# --- stage 1: the eight worked trajectories ------------------------------------------------------------------

def test_1_exact_match_scores_one():
    assert reward([A, B, DONE], [A, B, DONE]) == pytest.approx(1.0)


def test_2_type_mismatch_scores_zero():
    assert reward([BACK], [A]) == 0.0


def test_3_a_repeated_step_is_penalised():
    # t1: 1; t2: sim(A, B) = 0.5, rep 1 -> 0.5 - 0.5 = 0; t3: 0.81 * 1. R = 1.81 / (1 + 0.9 + 0.81)
    score = score_plan(format_plan([A, A, DONE]), [A, B, DONE], CFG, 10)
    assert score.sims == (1.0, 0.5, 1.0)
    assert score.repeats == (0, 1, 0)
    assert score.reward == pytest.approx(1.81 / 2.71)


def test_4_a_cyclic_abab_plan():
    # against A B C DONE: t1 1; t2 0.9; t3 sim(A, C) 0.5 - rep 0.5 = 0; t4 sim(B, DONE) 0 - 0.5 -> -0.5 * 0.729
    # R = (1.9 - 0.3645) / (1 + 0.9 + 0.81 + 0.729)
    assert reward([A, B, A, B], [A, B, C, DONE]) == pytest.approx(1.5355 / 3.439)


def test_5_a_shorter_plan_misses_the_steps_it_lacks():
    assert reward([A, B], [A, B, DONE]) == pytest.approx(1.9 / 2.71)


def test_6_a_longer_plan_pays_for_steps_past_the_reference_end():
    # the episode ended after DONE; the extra step scores 0 and widens the normaliser to 4 steps
    assert reward([A, B, DONE, C], [A, B, DONE]) == pytest.approx(2.71 / 3.439)
    # ... but steps beyond the horizon are never looked at
    assert reward([A, B, DONE, C, C, C], [A, B, DONE, BACK], horizon=3) == pytest.approx(1.0)


def test_7_discounting_weighs_near_steps_more():
    first_wrong, last_wrong = [BACK, B, DONE], [A, B, BACK]
    reference = [A, B, DONE]
    assert reward(first_wrong, reference) == pytest.approx(1.71 / 2.71)  # 0 + 0.9 + 0.81
    assert reward(last_wrong, reference) == pytest.approx(1.9 / 2.71)    # 1 + 0.9 + 0
    flat = RewardConfig(gamma=1.0)
    assert reward(first_wrong, reference, cfg=flat) == reward(last_wrong, reference, cfg=flat) == pytest.approx(2 / 3)


def test_8_an_unparseable_plan_scores_below_any_readable_plan():
    assert trajectory_reward("I would rather not.", [A], CFG, 10) == -1.0
    # a readable plan that is all wrong and repeats itself: sims 0, repeats charged at t2..t4
    # R = -0.5 * (0.9 + 0.81 + 0.729) / 3.439
    worst = reward([BACK] * 4, [A, B, C, DONE])
    assert worst == pytest.approx(-1.2195 / 3.439)
    assert worst > -1.0


def test_format_problems_cost_the_format_penalty_once():
    untagged = "1. click(target=\"Settings\")\n2. finish()"  # no <plan> block: one problem
    assert trajectory_reward(untagged, [A, DONE], CFG, 10) == pytest.approx(1.0 - 0.5)


def test_a_repeat_the_reference_makes_too_is_not_penalised():
    down = Step("scroll", direction="down")
    assert reward([down, down, A], [down, down, A]) == pytest.approx(1.0)
    # with no such repeat in the reference, the second scroll is charged: (1 + 0.9*(0.5-0.5) + 0.81) / 2.71
    assert reward([down, down, A], [down, Step("scroll", direction="up"), A]) == pytest.approx(1.81 / 2.71)


def test_raw_reward_is_the_papers_sum():
    raw = RewardConfig(normalize=False)
    assert reward([A, B, DONE], [A, B, DONE], cfg=raw) == pytest.approx(2.71)
    assert reward([A, A, DONE], [A, B, DONE], cfg=raw) == pytest.approx(1.81)


def test_lambda_rep_zero_removes_the_repetition_penalty():
    assert reward([A, A, DONE], [A, B, DONE], cfg=RewardConfig(lambda_rep=0.0)) == pytest.approx(2.26 / 2.71)


# --- stage 2: grounded execution ----------------------------------------------------------------------------

FIRST = format_plan([Step("click", target="the Send button"), DONE])
SEND_BOX = GroundingLabel("click", box=(400, 400, 600, 500))


def test_a_click_counts_inside_the_box_edges_included():
    assert grounded_reward(FIRST, Step("click", point=(600, 500)), SEND_BOX, CFG) == 1.0
    assert grounded_reward(FIRST, Step("click", point=(601, 450)), SEND_BOX, CFG) == 0.0
    assert grounded_reward(FIRST, Step("click", point=(601, 450)), SEND_BOX, RewardConfig(box_margin=5)) == 1.0


def test_without_a_box_a_click_counts_within_014_of_the_point():
    label = GroundingLabel("click", point=(500, 500))
    assert grounded_reward(FIRST, Step("click", point=(500, 639)), label, CFG) == 1.0
    assert grounded_reward(FIRST, Step("click", point=(500, 641)), label, CFG) == 0.0


def test_wrong_action_not_executed_or_unreadable():
    assert grounded_reward(FIRST, Step("long_press", point=(500, 450)), SEND_BOX, CFG) == 0.0
    assert grounded_reward(FIRST, None, SEND_BOX, CFG) == 0.0
    assert grounded_reward("no plan here", Step("click", point=(500, 450)), SEND_BOX, CFG) == -1.0
    untagged = '1. click(target="the Send button")'
    assert grounded_reward(untagged, Step("click", point=(500, 450)), SEND_BOX, CFG) == pytest.approx(1.0 - 0.5)


def test_typed_text_scroll_and_keys():
    plan = format_plan([Step("type", text="weather Paris")])
    label = GroundingLabel("type", text="weather in Paris")
    assert grounded_reward(plan, Step("type", text="weather Paris"), label, CFG) == 1.0  # F1 0.8 >= 0.5
    assert grounded_reward(plan, Step("type", text="rain"), label, CFG) == 0.0
    odyssey = RewardConfig(text_match="contain_or_edit")
    assert grounded_reward(plan, Step("type", text="Paris"), GroundingLabel("type", text="paris"), odyssey) == 1.0
    scroll = GroundingLabel("scroll", direction="down")
    assert grounded_reward(plan, Step("scroll", direction="down"), scroll, CFG) == 1.0
    assert grounded_reward(plan, Step("scroll", direction="up"), scroll, CFG) == 0.0
    assert grounded_reward(plan, Step("press", key="back"), GroundingLabel("press", key="home"), CFG) == 0.0


def test_answers_match_by_gaia_or_gta_rules():
    plan = format_plan([Step("answer", text="$1,000")])
    assert grounded_reward(plan, Step("answer", text="$1,000"), GroundingLabel("answer", text="1000"), CFG) == 1.0
    gta = GroundingLabel("answer", answers={"whitelist": [["cat", "kitten"], ["2", "two"]], "blacklist": None})
    assert grounded_reward(plan, Step("answer", text="Two kittens? No: 2 cats"), gta, CFG) == 0.0  # "cats" != "cat"
    assert grounded_reward(plan, Step("answer", text="I see two cat figures"), gta, CFG) == 1.0


def test_tool_results_are_checked_against_the_expected_answer():
    plan = format_plan([Step("call", tool="calculator", args=(("expression", "3*7"),))])
    label = GroundingLabel("call", tool="calculator", text="21")
    executed = Step("call", tool="calculator", args=(("expression", "3*7"),))
    assert grounded_reward(plan, executed, label, CFG, result="21.0") == 1.0  # GAIA: numbers compare as numbers
    assert grounded_reward(plan, executed, label, CFG, result="20") == 0.0
    assert grounded_reward(plan, Step("call", tool="ocr"), label, CFG, result="21") == 0.0


# --- stage 2 online: the live env's feedback -----------------------------------------------------------------
# R = 1 if the step made progress else 0, − format penalty once, unparseable −1 (the offline scale).

def test_a_step_that_brings_the_goal_closer_scores_one():
    # built-in world: the oracle needed 5 steps from the sample's state and needs 4 after the step
    closer = LiveFeedback(executed=True, progress=1, solvable=True, matches_reference=False)
    assert live_reward(FIRST, closer, CFG) == 1.0
    untagged = '1. click(target="the Send button")'          # parsed with a problem: 1 − 0.1
    assert live_reward(untagged, closer, CFG) == pytest.approx(1.0 - 0.5)
    assert live_reward("no plan here", closer, CFG) == -1.0


def test_no_progress_a_detour_or_a_broken_task_scores_zero():
    assert live_reward(FIRST, LiveFeedback(executed=True, progress=0, solvable=True), CFG) == 0.0  # a no-op
    assert live_reward(FIRST, LiveFeedback(executed=True, progress=-1, solvable=True), CFG) == 0.0  # led away
    # fewer oracle steps, but to an end that fails (the wrong item ordered): not progress
    assert live_reward(FIRST, LiveFeedback(executed=True, progress=2, solvable=False), CFG) == 0.0
    assert live_reward(FIRST, LiveFeedback.not_executed("no element on screen matches"), CFG) == 0.0


def test_an_ending_step_is_judged_by_the_env_alone():
    won = LiveFeedback(executed=True, env_reward=1.0, terminated=True, success=True, matches_reference=False)
    lost = LiveFeedback(executed=True, terminated=True, success=False, progress=1, solvable=True,
                        matches_reference=True)
    assert live_reward(FIRST, won, CFG) == 1.0 and live_reward(FIRST, lost, CFG) == 0.0


def test_without_an_oracle_the_reference_outcome_decides():
    # MiniWoB++: the page after the step is (not) the page after the reference step
    assert live_reward(FIRST, LiveFeedback(executed=True, matches_reference=True), CFG) == 1.0
    assert live_reward(FIRST, LiveFeedback(executed=True, matches_reference=False), CFG) == 0.0
    assert live_reward(FIRST, LiveFeedback(executed=True), CFG) == 0.0  # nothing known: no credit


# --- properties -----------------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(plans, st.integers(0, 50))
def test_repeat_flags_agree_with_same_step(steps, tolerance):
    expected = [int(any(same_step(steps[t], steps[j], tolerance) for j in range(t))) for t in range(len(steps))]
    assert repeat_flags(steps, tolerance) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | plans.map(format_plan), plans, st.integers(1, 12))
def test_rewards_never_raise_and_stay_in_range(text, reference, horizon):
    score = trajectory_reward(text, list(reference), CFG, horizon)
    # unparseable, or between -λ_rep/λ_align - format penalty and 1
    assert score == -1.0 or -0.5 - 0.1 - 1e-9 <= score <= 1.0 + 1e-9
    label = GroundingLabel("click", box=(0, 0, 10, 10))
    assert grounded_reward(text, reference[0], label, CFG) in (-1.0, -0.1, 0.0, 0.9, 1.0)
