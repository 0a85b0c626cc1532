"""The a11y grounder: oracle targets land where the env would act, paraphrased targets find their element, the
documented tie-breaking holds, and MiniWoB DOM elements ground to clicks inside their nodes."""

import random

import pytest
from hypothesis import given, settings, strategies as st
from dom_nodes import dom_node

from tracer1.config import RewardConfig
from tracer1.envs.base import Element, element_at, find_element
from tracer1.executors import A11yExecutor, match_target, observation_from_env, observation_from_sample
from tracer1.executors.a11y import clickable_point, content_words
from tracer1.plan import Step, format_plan
from tracer1.rewards import grounded_reward

SEEDS = range(60)  # about 270 grounded oracle steps over every task family


def _oracle_episodes(seeds):
    """Play the oracle with every step grounded by the a11y executor; yields (planned, execution, elements
    the step was grounded on, info after the env acted)."""
    from tracer1.envs.builtin import BuiltinEnv

    env, executor = BuiltinEnv(), A11yExecutor()
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        while True:
            planned = env.oracle_action()
            elements = info["elements"]
            execution = executor.execute(planned, observation_from_env(obs, info))
            assert execution.ok, (seed, planned, execution.problems)
            obs, _, terminated, truncated, info = env.step(execution.step)
            yield planned, execution, elements, info
            if terminated or truncated:
                assert info["success"], f"seed {seed}: the oracle failed with grounded steps"
                break


def test_oracle_targets_ground_inside_their_element_and_episodes_still_succeed():
    grounded = inside = 0
    for planned, execution, elements, info in _oracle_episodes(SEEDS):
        if planned.target is None:
            continue
        grounded += 1
        wanted = find_element(elements, planned.target)  # what the env does with the bare target
        x1, y1, x2, y2 = wanted.box
        if x1 <= execution.point[0] <= x2 and y1 <= execution.point[1] <= y2 and info["acted_on"] == wanted:
            inside += 1
        assert info["problems"] == [], (planned, execution.step, info["problems"])
    assert grounded >= 200
    assert inside / grounded >= 0.99, f"{inside}/{grounded} grounded inside the oracle's element"


# Ways a planner might word a target, per role of the element the oracle named.
PARAPHRASES = {
    "button": ["the {t} button", "tap {t}", "the button labelled {t}"],
    "item": ["the {t} row", "the {t} entry in the list", "{t} item"],
    "textbox": ["the {t} field", "the {t} text box", "{t} input"],
    "switch": ["the {t} switch", "the {t} toggle"],
    "radio": ["the {t} option", "the {t} radio button"],
    "checkbox": ["the {t} checkbox", "the {t} check box"],
}


def test_paraphrased_oracle_targets_find_the_same_element():
    rng = random.Random(0)
    executor = A11yExecutor()
    total = right = 0
    for planned, _, elements, _ in _oracle_episodes(range(25)):
        if planned.target is None or planned.target.startswith("#"):
            continue
        wanted = find_element(elements, planned.target)
        for template in PARAPHRASES.get(wanted.role, ["the {t}"]):
            text = wanted.text if rng.random() < 0.5 else wanted.text.lower()
            execution = executor.execute(planned._replace(target=template.format(t=text)), {"elements": elements})
            total += 1
            right += execution.point is not None and element_at(elements, execution.point) == wanted
    assert total >= 250
    assert right / total >= 0.99, f"{right}/{total} paraphrased targets grounded on the oracle's element"


def test_stage2_reward_of_oracle_samples_under_the_a11y_executor_is_full():
    from tracer1.data.synthetic import generate_samples

    executor, cfg = A11yExecutor(), RewardConfig()
    samples = list(generate_samples(6, seed=11))
    for sample in samples:
        execution = executor.execute(sample.future[0], observation_from_sample(sample))
        reward = grounded_reward(format_plan(sample.future), execution.grounded_step, sample.label, cfg,
                                 execution.result)
        assert reward == 1.0, (sample.sample_id, sample.future[0], execution)


# --- matching rules, one example each ---------------------------------------------------------------------------

SETTINGS = [
    Element(1, "heading", "Settings", (44, 38, 956, 125)),
    Element(2, "item", "Network & internet", (0, 125, 1000, 212), value="Wi-Fi off"),
    Element(3, "item", "Bluetooth", (0, 212, 1000, 300), value="Off"),
    Element(4, "item", "About phone", (0, 562, 1000, 650), value="My Phone"),
    Element(5, "button", "Save", (50, 900, 400, 980), enabled=False),
    Element(6, "button", "Save", (600, 900, 950, 980)),
    Element(7, "textbox", "Search", (50, 700, 950, 760)),
    Element(8, "text", "Search", (50, 660, 950, 700)),
    Element(9, "switch", "Use Bluetooth", (0, 300, 1000, 380), checked=False),
]


@pytest.mark.parametrize("target, action, element_id, how", [
    ("SAVE", "click", 6, "exact"),                           # the env's rule: the first enabled one
    ("#5", "click", 5, "exact"),
    ('the "About phone" row', "click", 4, "quoted"),
    ("the about phone entry", "click", 4, "fuzzy"),
    ("the Wi-Fi row in Settings", "click", 2, "fuzzy"),      # "in Settings" places it; the value names it
    ("the Use Bluetooth switch", "click", 9, "fuzzy"),
    ("the bluetooth toggle", "click", 9, "fuzzy"),           # the role word picks the switch over the row
    ("the Bluetooth row", "click", 3, "fuzzy"),
    ("the search field", "type", 7, "fuzzy"),                # a text box, not the static text above it
])
def test_documented_matching_rules(target, action, element_id, how):
    found = match_target(SETTINGS, target, action)
    assert (found.element.id, found.how) == (element_id, how), found


def test_nothing_matches_a_target_with_no_shared_word():
    assert match_target(SETTINGS, "the shopping cart") is None
    assert match_target(SETTINGS, "the") is None
    execution = A11yExecutor().execute(Step("click", target="the shopping cart"), {"elements": SETTINGS})
    assert execution.step is None and "no element on screen matches" in execution.problems[0]


def test_exact_only_mode_reads_targets_as_the_env_does():
    executor = A11yExecutor(fuzzy=False)
    assert executor.execute(Step("click", target="Bluetooth"), {"elements": SETTINGS}).element.id == 3
    assert executor.execute(Step("click", target="the Bluetooth row"), {"elements": SETTINGS}).step is None


def test_disabled_elements_are_grounded_with_a_problem():
    execution = A11yExecutor().execute(Step("click", target="#5"), {"elements": SETTINGS})
    assert execution.element.id == 5 and execution.ok and "disabled" in execution.problems[0]


def test_an_unmatched_scroll_target_scrolls_the_screen():
    execution = A11yExecutor().execute(Step("scroll", target="the product list", direction="down"),
                                       {"elements": SETTINGS})
    assert execution.step == Step("scroll", direction="down") and execution.problems


def test_tools_are_not_the_a11y_executors_job():
    execution = A11yExecutor().execute(Step("call", tool="ocr", args=(("image", "img0"),)), {})
    assert execution.step is None and "toolbox" in execution.problems[0]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_target_text_is_matched_or_not_without_error(target):
    found = match_target(SETTINGS, target)
    assert found is None or found.element in SETTINGS


def test_content_words_drop_stopwords_and_keep_numbers():
    assert content_words("Tap the Wi-Fi switch") == {"wifi", "switch"}
    assert content_words("Pay $12.40 now") == {"pay", "12.40", "now"}
    assert content_words("On") == {"on"}  # a name made only of stopwords keeps them


def test_clickable_point_avoids_smaller_elements_covering_the_centre():
    row = Element(1, "item", "Ana", (0, 300, 1000, 400))
    call = Element(2, "button", "Call", (400, 320, 600, 380))  # right over the row's centre
    point = clickable_point([row, call], row)
    assert point != row.center and element_at([row, call], point) == row
    assert clickable_point([row], row) == row.center
    halves = [Element(3, "button", "Left", (0, 300, 500, 400)), Element(4, "button", "Right", (500, 300, 1000, 400))]
    assert clickable_point([row, *halves], row) is None  # every point of the row hits a smaller button
    execution = A11yExecutor().execute(Step("click", target="Ana"), {"elements": [row, *halves]})
    assert execution.step is None and "covered" in execution.problems[0]


# --- MiniWoB++ DOM, built without a browser ----------------------------------------------------------------------

@pytest.fixture
def miniwob_view():
    from miniwob.dom import DOMElement

    from tracer1.envs.miniwob.dom import dom_view

    root = DOMElement(dom_node(1, "BODY", 0, 0, 780, 210, children=[dom_node(2, "DIV", 0, 0, 160, 210, children=[
        dom_node(3, "DIV", 2, 2, 156, 40, text="Select USa and click Submit."),
        dom_node(4, "INPUT_checkbox", 6, 55, 20, 13, text="", value=False),
        dom_node(-2, "t", 29, 59, 19, 11, text="USa"),
        dom_node(5, "INPUT_checkbox", 6, 75, 20, 13, text="", value=False),
        dom_node(-3, "t", 29, 79, 19, 11, text="kQ"),
        dom_node(6, "INPUT_text", 8, 100, 80, 20, text="", value=""),
        dom_node(7, "A", 10, 125, 40, 12, text="Home", classes="alink"),
        dom_node(8, "BUTTON", 50, 150, 60, 25, text="Submit"),
    ])]))
    return dom_view(root, 160, 210)


def test_miniwob_targets_ground_inside_their_dom_nodes(miniwob_view):
    from tracer1.envs.miniwob.actions import resolve
    from tracer1.envs.miniwob.dom import TEXT_ID_BASE

    executor = A11yExecutor()
    observation = {"elements": miniwob_view.elements}
    cases = [  # target -> the DOM element it must act on
        ("Submit", 8), ("the submit button", 8), ("#4", 4), ("USa", TEXT_ID_BASE + 2), ("the Home link", 7),
        ("#6", 6), ("kQ", TEXT_ID_BASE + 3),
    ]
    for target, element_id in cases:
        execution = executor.execute(Step("click", target=target), observation)
        assert execution.element.id == element_id, (target, execution)
        # What MiniWoBEnv would send to the browser: a click at pixels inside the element's DOM node.
        problems = []
        plan, acted_on = resolve(execution.step, miniwob_view, problems)
        (kind, kwargs), = plan
        node = miniwob_view.node(execution.element)
        x, y = kwargs["coords"]
        assert kind == "CLICK_COORDS" and problems == [] and acted_on == execution.element
        assert node.left <= x <= node.left + node.width and node.top <= y <= node.top + node.height, target


def test_miniwob_element_mode_acts_on_the_dom_node_itself(miniwob_view):
    from tracer1.envs.miniwob.actions import resolve

    executor = A11yExecutor(act_by="element")
    observation = {"elements": miniwob_view.elements}
    click = executor.execute(Step("click", target="the submit button"), observation)
    assert click.step == Step("click", target="#8") and click.grounded_step.point == click.point
    problems = []
    assert resolve(click.step, miniwob_view, problems)[0] == [("CLICK_ELEMENT", {"ref": 8})]
    typing = executor.execute(Step("type", target="#6", text="hi"), observation)
    assert typing.step == Step("type", target="#6", text="hi")  # the env reads it so already: kept as written
    expected = [("FOCUS_ELEMENT_AND_TYPE_TEXT", {"ref": 6, "text": "hi"})]
    assert resolve(typing.step, miniwob_view, problems)[0] == expected
    assert executor.execute(Step("click", target="Submit"), observation).step == Step("click", target="Submit")
    placed = executor.execute(Step("click", target="Submit in the form"), observation)  # matched by its head
    assert placed.step == Step("click", target="#8")
    assert problems == []


def test_miniwob_typing_into_a_box_grounds_on_the_box(miniwob_view):
    from tracer1.envs.miniwob.actions import resolve

    execution = A11yExecutor().execute(Step("type", target="#6", text="hello"), {"elements": miniwob_view.elements})
    problems = []
    plan, acted_on = resolve(execution.step, miniwob_view, problems)
    assert [kind for kind, _ in plan] == ["CLICK_COORDS", "TYPE_TEXT"] and plan[1][1]["text"] == "hello"
    assert acted_on.id == 6 and problems == []


@pytest.mark.slow
def test_live_miniwob_solver_episodes_succeed_with_grounded_steps():
    """The scripted solvers' steps, grounded and sent as the executor says (MiniWoB: by DOM ref), still solve
    their tasks; every grounded point lies in the element the solver named."""
    from tracer1.envs.miniwob import MiniWoBEnv, miniwob_available

    why = miniwob_available()
    assert why is None, f"MiniWoB++ cannot run: {why} (make test installs chromium: make system-deps)"
    from tracer1.config import EnvConfig, ExecutorConfig
    from tracer1.executors import make_executor

    executor = make_executor(ExecutorConfig(), env_config=EnvConfig(name="miniwob"))
    env = MiniWoBEnv(max_steps=20)
    try:
        for task in ("choose-list", "click-checkboxes", "enter-text", "search-engine", "click-tab-2"):
            for seed in (0, 1):
                obs, info = env.reset(seed=seed, options={"task": task})
                for _ in range(20):
                    planned = env.oracle_action()
                    execution = executor.execute(planned, observation_from_env(obs, info))
                    if planned.target is not None:
                        assert execution.element == find_element(info["elements"], planned.target)
                        assert element_at(info["elements"], execution.point) == execution.element
                    obs, _, terminated, truncated, info = env.step(execution.step)
                    if terminated or truncated:
                        break
                assert info["success"], (task, seed, info.get("reason"))
    finally:
        env.close()
