"""The built-in GUI world: a PIL-drawn phone whose oracle solves every generated task, from any state.

What these tests pin down: the oracle succeeds on 500 generated tasks of 2 to 12+ steps; pixels and
accessibility boxes come from one layout (each element draws inside its box and nowhere else); a point and an
exact target act the same; bad actions are no-ops with problems; back/home navigate; an early choice (the
shop's category, a switch) decides what a later screen offers; the oracle recovers from detours.
"""

from __future__ import annotations

import collections
import random

import gymnasium
import numpy as np
import pytest
from PIL import ImageChops

from tracer1.envs.base import a11y_text, find_element, parse_a11y_text
from tracer1.envs.builtin import ENV_ID, FAMILIES, BuiltinEnv, Episode, make_task
from tracer1.envs.builtin.render import render
from tracer1.plan import Step, format_step, to_pixels

N_TASKS = 500


def run_oracle(env: BuiltinEnv, seed: int, **options):
    """Reset on `seed` and let the oracle play; returns (steps taken, last reward, last info)."""
    env.reset(seed=seed, options=options or None)
    steps = 0
    while True:
        _, reward, terminated, truncated, info = env.step(env.oracle_action())
        steps += 1
        assert info["problems"] == [], (seed, info["problems"])
        if terminated or truncated:
            return steps, reward, info


def first_seed(family: str, pred=lambda task: True, start: int = 0) -> int:
    return next(s for s in range(start, start + 5000) if pred(make_task(s, family)))


@pytest.fixture(scope="module")
def oracle_runs():
    env = BuiltinEnv()
    runs = {}
    for seed in range(N_TASKS):
        steps, reward, info = run_oracle(env, seed)
        runs[seed] = (env.task, steps, reward, info)
    return runs


# -- the oracle and the task generator ----------------------------------------------------------------------------

def test_the_oracle_solves_500_generated_tasks_within_max_steps(oracle_runs):
    failures = [(s, t.family) for s, (t, steps, reward, info) in oracle_runs.items()
                if not (reward == 1.0 and info["success"] and steps <= 20)]
    assert failures == []
    # the generator's own count of oracle steps is what the episode took
    assert all(steps == task.oracle_steps for task, steps, _, _ in oracle_runs.values())


def test_tasks_range_from_two_to_more_than_twelve_steps(oracle_runs):
    lengths = collections.Counter(steps for _, steps, _, _ in oracle_runs.values())
    share = lambda lo, hi: sum(n for k, n in lengths.items() if lo <= k <= hi) / N_TASKS  # noqa: E731
    assert min(lengths) == 2 and max(lengths) >= 15
    assert share(2, 4) >= 0.15          # open an app, go home, flip a switch
    assert share(5, 8) >= 0.25          # one app, a few screens
    assert share(9, 11) >= 0.08         # several screens, typing
    assert share(12, 20) >= 0.08        # checkout, two apps one after the other
    families = collections.Counter(task.family for task, _, _, _ in oracle_runs.values())
    assert set(families) == set(FAMILIES)


def test_a_seed_decides_the_whole_task():
    a, b = make_task(11), make_task(11)
    assert (a.family, a.instruction, a.initial, a.oracle_steps) == (b.family, b.instruction, b.initial, b.oracle_steps)
    assert len({make_task(s).instruction for s in range(20)}) > 15
    assert make_task(3, "shop_checkout").family == "shop_checkout"
    with pytest.raises(ValueError, match="unknown builtin task family"):
        make_task(0, "fly_to_the_moon")


def test_oracle_plan_forecasts_the_steps_the_oracle_then_takes():
    env = BuiltinEnv()
    env.reset(seed=first_seed("shop_checkout"), options={"task": "shop_checkout"})
    plan = env.oracle_plan(horizon=10)
    assert env.history == []  # planning simulates on a copy
    taken = []
    for _ in range(len(plan)):
        taken.append(env.oracle_action())
        env.step(taken[-1])
    assert taken == plan and len(plan) == 10
    assert env.oracle_plan(horizon=50)[-1] == Step("finish", status="success")


def test_oracle_targets_name_elements_by_their_text(oracle_runs):
    env = BuiltinEnv()
    for seed in range(60):
        env.reset(seed=seed)
        while True:
            step = env.oracle_action()
            if step.target is not None:
                assert not step.target.startswith("#")
                assert find_element(env.elements, step.target) is not None
            _, _, terminated, truncated, _ = env.step(step)
            if terminated or truncated:
                break


# -- what is drawn is what the accessibility tree says -------------------------------------------------------------

def screens(seeds, width=360, height=640):
    """(phone) on every screen the oracle passes through in these tasks."""
    for seed in seeds:
        ep = Episode(make_task(seed, width=width, height=height), width, height, 40)
        while not ep.over:
            yield ep.phone
            ep.step(ep.oracle())


@pytest.mark.parametrize("width,height", [(360, 640), (240, 427)])
def test_every_element_draws_inside_its_box_and_nowhere_else(width, height):
    checked = collections.Counter()
    for phone in screens(range(12), width, height):
        layout, dark = phone.layout, phone.state.settings["dark_mode"]
        full = render(layout, dark)
        for i, (widget, element) in enumerate(zip(layout.widgets, layout.elements())):
            # leaving one widget out changes pixels, and only inside its box
            changed = ImageChops.difference(full, render(layout, dark, skip=i)).getbbox()
            assert changed is not None, (widget.kind, widget.text)
            x1, y1, x2, y2 = widget.box
            assert x1 <= changed[0] and y1 <= changed[1] and changed[2] <= x2 and changed[3] <= y2, \
                (widget.kind, widget.text, widget.box, changed)
            # the element's box on the 0..1000 grid is that pixel box
            px1, py1 = to_pixels(element.box[:2], width, height)
            px2, py2 = to_pixels(element.box[2:], width, height)
            assert max(abs(px1 - x1), abs(py1 - y1), abs(px2 - x2), abs(py2 - y2)) <= 1
            checked[widget.kind] += 1
    assert {"heading", "item", "switch", "textbox", "button", "icon"} <= set(checked)


def test_a11y_text_reads_back_to_the_elements():
    env = BuiltinEnv()
    obs, info = env.reset(seed=5)
    assert parse_a11y_text(obs["a11y"]) == info["elements"]
    assert obs["a11y"] == a11y_text(env.elements)


def test_rendering_is_deterministic_per_seed():
    one, two = BuiltinEnv(), BuiltinEnv()
    for env in (one, two):
        env.reset(seed=21)
        for _ in range(3):
            env.step(env.oracle_action())
    assert one.screenshot_png() == two.screenshot_png()
    two.reset(seed=22)
    assert one.screenshot_png() != two.screenshot_png()


# -- actions ------------------------------------------------------------------------------------------------------

def test_clicking_an_elements_centre_acts_like_naming_it():
    compared = 0
    for phone in screens(range(8)):
        for e in phone.elements:
            if find_element(phone.elements, e.text) is not e:
                continue  # a text that names another element first
            by_name, by_point = phone.clone(), phone.clone()
            problems_a, acted_a = by_name.act(Step("click", target=e.text))
            problems_b, acted_b = by_point.act(Step("click", point=e.center))
            assert acted_a == acted_b == e
            assert by_name.state == by_point.state and problems_a == problems_b
            compared += 1
    assert compared > 100


BAD_ACTIONS = [
    Step("click", target="No such button"),
    Step("click", point=(500, 10)),                         # the status bar: nothing there
    Step("click", target="9:41"),                           # the clock is drawn but is no element
    Step("type", target="Display", text="hello"),           # not a text box
    Step("type", text="hello"),                             # no text box has the focus
    Step("scroll", direction="left"),
    Step("scroll", direction="up"),                         # already at the top
    Step("press", key="f5"),
    Step("press", key="enter"),
    Step("open_app", app="Browser"),
    Step("call", tool="ocr"),
    "click the big blue button",                            # not a step
    'click(targett="Display")',                             # a misspelt argument
]


@pytest.mark.parametrize("action", BAD_ACTIONS, ids=[a if isinstance(a, str) else format_step(a) for a in BAD_ACTIONS])
def test_invalid_actions_are_no_ops_with_problems(action):
    env = BuiltinEnv()
    env.reset(seed=0, options={"task": "stepper"})
    env.step(Step("open_app", app="Settings"))
    before = env.phone.state.clone()
    _, reward, terminated, truncated, info = env.step(action)
    assert info["problems"] and reward == 0.0 and not terminated
    assert env.phone.state == before


def test_a_disabled_button_and_a_heading_do_nothing():
    env = BuiltinEnv()
    env.reset(seed=0, options={"task": "shop_quantity"})
    env.step(Step("open_app", app="Shop"))
    env.step(Step("click", target=next(e.text for e in env.elements if e.text.startswith("Cart ("))))
    _, _, _, _, info = env.step(Step("click", target="Checkout"))
    assert info["problems"] == ['button "Checkout" is disabled']
    _, _, _, _, info = env.step(Step("click", target="Cart"))
    assert info["problems"] == ['click on heading "Cart" does nothing']


def test_back_and_home_navigate():
    env = BuiltinEnv()
    env.reset(seed=0, options={"task": "toggle"})
    env.step(Step("open_app", app="Settings"))
    env.step(Step("click", target="Display"))
    env.step(Step("click", target="Font size"))
    assert env.phone.screen == ("settings.font", None)
    env.step(Step("press", key="back"))
    assert env.phone.screen == ("settings.display", None)
    env.step(Step("click", target="Back"))                 # the navigation bar's button does the same
    assert env.phone.screen == ("settings", None)
    env.step(Step("press", key="home"))
    assert env.phone.screen == ("home", None)
    _, _, _, _, info = env.step(Step("press", key="back"))
    assert info["problems"] == ["already on the home screen"]
    env.step(Step("click", target="Notes"))                # an icon opens its app
    assert env.phone.app == "Notes"


def test_scrolling_reveals_the_rest_of_a_long_list():
    env = BuiltinEnv()
    env.reset(seed=first_seed("call", lambda t: len(t.initial.contacts) >= 20), options={"task": "call"})
    env.step(Step("open_app", app="Contacts"))
    last = env.phone.state.contacts[-1].name
    assert find_element(env.elements, last) is None
    while find_element(env.elements, last) is None:
        _, _, _, _, info = env.step(Step("scroll", direction="down"))
        assert info["problems"] == []
    _, _, _, _, info = env.step(Step("scroll", direction="down"))
    assert info["problems"] == ["already at the bottom"]
    _, _, _, _, info = env.step(Step("type", target="Search contacts", text=last))
    assert info["problems"] == ["no element named 'Search contacts' on this screen"]  # scrolled out of view
    while find_element(env.elements, "Search contacts") is None:
        env.step(Step("scroll", direction="up"))
    env.step(Step("type", target="Search contacts", text=last))  # a search narrows the list to one
    assert [e.text for e in env.elements if e.role == "item"] == [last]


def test_long_press_asks_before_deleting_a_note():
    env = BuiltinEnv()
    env.reset(seed=first_seed("delete_note"), options={"task": "delete_note"})
    title = env.task.subgoals[0].title
    env.step(Step("open_app", app="Notes"))
    env.step(Step("long_press", target=title))
    assert [e.text for e in env.elements[:3]] == [f'Delete "{title}"?', "Cancel", "Delete"]
    env.step(Step("press", key="back"))                     # back closes the dialog
    assert env.phone.state.note(title) is not None
    env.step(Step("long_press", target=title))
    env.step(Step("click", target="Delete"))
    assert env.phone.state.note(title) is None and find_element(env.elements, title) is None


# -- ending an episode --------------------------------------------------------------------------------------------

def test_finishing_early_fails_and_the_right_end_scores_one():
    env = BuiltinEnv()
    env.reset(seed=4, options={"task": "call"})
    _, reward, terminated, _, info = env.step(Step("finish", status="success"))
    assert (reward, terminated, info["success"]) == (0.0, True, False)
    _, _, _, _, info = env.step(Step("wait"))
    assert info["problems"] == ["the episode is over; call reset()"]

    env.reset(seed=first_seed("phone_lookup"), options={"task": "phone_lookup"})
    answer = env.task.final.text
    _, reward, _, _, _ = env.step(Step("answer", text="555-000-0000"))
    assert reward == 0.0
    env.reset(seed=first_seed("phone_lookup"), options={"task": "phone_lookup"})
    _, reward, _, _, info = env.step(Step("answer", text=answer))
    assert reward == 1.0 and info["success"]
    _, reward, terminated, _, info = env.step(Step("answer", text=answer))  # the reward comes once
    assert (reward, terminated, info["success"]) == (0.0, True, True) and info["problems"]

    env.reset(seed=first_seed("call_missing"), options={"task": "call_missing"})
    _, reward, _, _, _ = env.step(Step("finish", status="success"))  # there is nobody to call
    assert reward == 0.0
    steps, reward, info = run_oracle(env, first_seed("call_missing"), task="call_missing")
    assert reward == 1.0 and env.history[-1] == Step("finish", status="infeasible")


def test_max_steps_truncates_without_reward():
    env = BuiltinEnv(max_steps=5)
    env.reset(seed=0)
    for i in range(5):
        _, reward, terminated, truncated, info = env.step(Step("wait"))
        assert truncated == (i == 4)
    assert (reward, terminated, info["success"]) == (0.0, False, False)
    _, _, _, _, info = env.step(env.oracle_action())
    assert info["problems"] == ["the episode is over; call reset()"]


# -- choices whose effect shows later -----------------------------------------------------------------------------

def test_the_category_chosen_first_decides_which_products_the_list_offers():
    env = BuiltinEnv()
    seed = first_seed("shop_cheapest", lambda t: t.initial.category == "All" and not t.prefs.sort)
    env.reset(seed=seed, options={"task": "shop_cheapest"})
    category, goal = env.task.subgoals[0].category, env.task.subgoals[1]
    wrong = next(c for c in env.task.world.categories if c != category)
    env.step(Step("open_app", app="Shop"))
    env.step(Step("click", target=wrong))                 # the wrong early choice
    env.step(Step("click", target="Show products"))
    layout = env.phone.layout
    offered = [w.text for w in layout.widgets + layout.hidden if w.role == "item"]
    assert goal.product not in offered                    # no click on this screen reaches the product
    assert env.oracle_action() in (Step("press", key="back"), Step("click", target="Back"))
    # the oracle goes back, makes the right choice, and the product is then on offer
    while env.phone.screen != ("shop.products", None) or env.phone.state.category != category:
        env.step(env.oracle_action())
    layout = env.phone.layout
    assert goal.product in [w.text for w in layout.widgets + layout.hidden if w.role == "item"]
    steps = 0
    while True:
        _, reward, terminated, truncated, info = env.step(env.oracle_action())
        steps += 1
        if terminated or truncated:
            break
    assert reward == 1.0 and env.phone.state.cart == {goal.product: 1}
    assert Step("click", target=wrong) in env.history and Step("click", target=category) in env.history


def test_a_switch_decides_what_its_sub_page_lists():
    env = BuiltinEnv()
    seed = first_seed("verify_listed", lambda t: "Wi-Fi" in t.instruction)
    env.reset(seed=seed, options={"task": "verify_listed"})
    network = env.task.subgoals[1].text
    for step in (Step("open_app", app="Settings"), Step("click", target="Network & internet"),
                 Step("click", target="Wi-Fi networks")):
        env.step(step)
    assert [e.text for e in env.elements if e.role == "item"] == []
    _, reward, _, _, _ = env.step(Step("finish", status="success"))
    assert reward == 0.0
    env.reset(seed=seed, options={"task": "verify_listed"})
    for step in (Step("open_app", app="Settings"), Step("click", target="Network & internet"),
                 Step("click", target="Wi-Fi"), Step("click", target="Wi-Fi networks")):
        env.step(step)
    layout = env.phone.layout
    assert network in [w.text for w in layout.widgets + layout.hidden if w.role == "item"]
    steps, reward, _ = run_oracle(env, seed, task="verify_listed")
    assert reward == 1.0


# -- detours ------------------------------------------------------------------------------------------------------

def random_detour(env: BuiltinEnv, rng: random.Random, n: int) -> None:
    for _ in range(n):
        e = rng.choice(env.elements)
        step = rng.choice([Step("click", point=e.center), Step("click", target=e.text), Step("press", key="back"),
                           Step("press", key="home"), Step("scroll", direction=rng.choice(["up", "down"])),
                           Step("open_app", app=rng.choice(["Shop", "Notes", "Contacts", "Settings", "Maps"])),
                           Step("type", point=e.center, text="zz"), Step("long_press", point=e.center)])
        if env.step(step)[2]:
            return


def test_after_a_detour_the_oracle_still_succeeds():
    env = BuiltinEnv(max_steps=60)
    rng = random.Random(0)
    solved = 0
    for seed in range(100):
        env.reset(seed=seed)
        random_detour(env, rng, rng.randint(2, 8))
        if env.episode.over:
            continue
        while not env.episode.over:
            _, reward, _, _, info = env.step(env.oracle_action())
            assert info["problems"] == [], (seed, env.task.family)
        assert reward == 1.0, (seed, env.task.family, env.history)
        solved += 1
    assert solved > 80


# -- gymnasium ----------------------------------------------------------------------------------------------------

def test_registered_with_gymnasium_and_observations_fit_the_spaces():
    env = gymnasium.make(ENV_ID, width=240, height=427)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert obs["screenshot"].shape == (427, 240, 3) and obs["screenshot"].dtype == np.uint8
    step = env.unwrapped.oracle_action()
    assert env.action_space.contains(format_step(step))
    obs, reward, terminated, truncated, info = env.step(format_step(step))  # canonical text works too
    assert info["problems"] == [] and env.unwrapped.history == [step]
    assert set(info) >= {"elements", "success", "problems", "task"}
    env.close()


def test_config_sizes_and_task_lists_reach_the_env():
    from tracer1.config import EnvConfig

    env = BuiltinEnv.from_config(EnvConfig(screen_width=300, screen_height=600, max_steps=12, tasks=["toggle"]))
    obs, info = env.reset(seed=1)
    assert obs["screenshot"].shape == (600, 300, 3) and info["task"] == "toggle" and env.max_steps == 12
    with pytest.raises(ValueError, match="too small"):
        BuiltinEnv(width=64, height=64)
