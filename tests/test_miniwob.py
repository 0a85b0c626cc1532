"""MiniWoB++ in a headless Chromium: the plan-language env, its scripted solvers, browser crashes, and samples.

One browser serves the whole module (a module-scoped env); tasks switch inside it."""

import io
import os
import signal
import time

import numpy as np
import pytest
from dom_nodes import dom_node

from tracer1.envs.miniwob import (
    SOLVERS, TEXT_ID_BASE, MiniWoBEnv, dom_view, episode_samples, main, miniwob_available, run_solver_episode,
    step_label,
)
from tracer1.plan import GRID, Step, format_step

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module", autouse=True)
def miniwob_must_run():
    """CI installs miniwob and Chromium, so a missing piece is a broken install: fail every test with the
    reason rather than skip (a skip would hide it)."""
    why = miniwob_available()
    if why is not None:
        pytest.fail(f"MiniWoB++ cannot run: {why}. Install with `make system-deps` and `make install`.",
                    pytrace=False)


@pytest.fixture(scope="module")
def env():
    env = MiniWoBEnv(max_steps=20)
    yield env
    env.close()


def _run(env, task, seed, steps):
    obs, info = env.reset(seed=seed, options={"task": task})
    out = None
    for step in steps:
        out = env.step(step)
    return obs, info, out


# --- without a browser --------------------------------------------------------------------------------------

def test_keys_map_to_miniwob_syntax():
    from tracer1.envs.miniwob.actions import miniwob_key

    assert miniwob_key("enter") == "<Enter>"
    assert miniwob_key("ctrl+a") == "C-a"
    assert miniwob_key("shift+tab") == "S-<Tab>"
    assert miniwob_key("down") == "<ArrowDown>"
    assert miniwob_key("x") == "x" and miniwob_key("ctrl+shift+z") == "C-S-z"
    assert miniwob_key("back") is None and miniwob_key("recents") is None


def test_dom_becomes_elements_on_the_grid():
    from miniwob.dom import DOMElement

    node = dom_node

    close = node(5, "BUTTON", 94, 80, 20, 20, children=[node(6, "SPAN", 96, 82, 16, 16, text=""),
                                                        node(-1, "t", -4908, 84, 26, 11, text="Close")])
    root = DOMElement(node(1, "BODY", 0, 0, 780, 210, children=[node(2, "DIV", 0, 0, 160, 210, children=[
        node(3, "INPUT_checkbox", 6, 55, 20, 13, text="", value=True),
        node(-2, "t", 29, 59, 19, 11, text="USa"),
        node(4, "INPUT_text", 8, 100, 80, 20, text="", value="hi", focused=True),
        close,
        node(7, "DIV", 2, 150, 3, 3, text=""),               # a tiny empty leaf: left out
    ])]))
    view = dom_view(root, 160, 210)
    by_id = {e.id: e for e in view.elements}
    assert set(by_id) == {3, TEXT_ID_BASE + 2, 4, 5, 6}  # no body, no wrapper div, no off-screen text
    assert by_id[3].role == "checkbox" and by_id[3].checked is True
    assert by_id[4].role == "textbox" and by_id[4].value == "hi" and by_id[4].focused
    assert by_id[5].role == "button" and by_id[5].text == "Close"  # named by its (hidden) text
    assert by_id[TEXT_ID_BASE + 2].text == "USa"
    assert by_id[3].box == (38, 262, 162, 324)  # (6, 55, 26, 68) pixels of 160x210 on the 0..1000 grid


# --- the live env -------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(SOLVERS))
def test_scripted_solver_succeeds(env, task):
    for seed in SEEDS:
        episode = run_solver_episode(env, task, seed)
        steps = [format_step(s) for s in episode.steps]
        assert episode.success, f"{task} seed {seed}: raw reward {episode.raw_reward} after {steps}"
        for step in episode.steps:
            assert step.point is None and (step.target is None or step.target.strip())


def test_observation_follows_the_contract(env):
    obs, info = env.reset(seed=4, options={"task": "login-user"})
    assert set(obs) == {"instruction", "screenshot", "a11y"}
    assert obs["instruction"].startswith("Enter the username")
    assert obs["screenshot"].shape == (210, 160, 3) and obs["screenshot"].dtype == np.uint8
    assert obs["screenshot"].std() > 0  # a rendered page, not a blank
    assert info["task"] == "login-user" and info["success"] is False and info["problems"] == []
    roles = [e.role for e in info["elements"]]
    assert roles.count("textbox") == 2 and "button" in roles
    for e in info["elements"]:
        assert 0 <= e.box[0] <= e.box[2] <= GRID and 0 <= e.box[1] <= e.box[3] <= GRID
        assert f"[{e.id}] {e.role} " in obs["a11y"]
    assert dict(info["fields"])["username"] in obs["instruction"]


def test_same_seed_same_task(env):
    first, _ = env.reset(seed=11, options={"task": "click-button"})
    again, _ = env.reset(seed=11, options={"task": "click-button"})
    assert first["instruction"] == again["instruction"] and first["a11y"] == again["a11y"]


def test_point_clicks_and_target_clicks_both_work(env):
    env.reset(seed=7, options={"task": "click-button"})
    wanted = env.oracle_action().target
    button = next(e for e in env.elements if e.text == wanted and e.role == "button")
    _, reward, terminated, _, info = env.step(Step("click", point=button.center))
    assert terminated and reward == 1.0 and info["success"] and info["acted_on"] == button

    env.reset(seed=7, options={"task": "click-button"})
    _, reward, terminated, _, info = env.step(f'click(target="{wanted}")')  # step text works too
    assert terminated and reward == 1.0 and info["success"]

    env.reset(seed=7, options={"task": "click-button"})
    _, reward, terminated, _, info = env.step(Step("click", target=f"#{button.id}"))
    assert terminated and reward == 1.0


def test_unknown_target_is_a_reported_no_op(env):
    obs, _ = env.reset(seed=7, options={"task": "click-button"})
    after, reward, terminated, truncated, info = env.step(Step("click", target="no such button"))
    assert not terminated and not truncated and reward == 0.0
    assert any("no such button" in p for p in info["problems"])
    assert after["a11y"] == obs["a11y"] and env.history == []
    _, _, _, _, info = env.step("click(target=")  # unreadable step text
    assert info["problems"] and not info["done"]
    _, _, _, _, info = env.step(Step("open_app", app="Mail"))
    assert info["problems"]
    _, reward, terminated, _, _ = env.step(env.oracle_action())  # the episode still works
    assert terminated and reward == 1.0


def test_typing_keys_and_finish(env):
    env.reset(seed=3, options={"task": "enter-text"})
    text = env.oracle_action().text
    box = next(e for e in env.elements if e.role == "textbox")
    _, _, _, _, info = env.step(Step("click", point=box.center))
    assert next(e for e in info["elements"] if e.role == "textbox").focused
    _, _, _, _, info = env.step(Step("type", text=text))  # into the focused field
    assert next(e for e in info["elements"] if e.role == "textbox").value == text
    env.step(Step("press", key="ctrl+a"))
    _, _, _, _, info = env.step(Step("press", key="backspace"))
    assert next(e for e in info["elements"] if e.role == "textbox").value == ""
    _, _, _, _, info = env.step(Step("scroll", direction="down"))
    assert info["problems"] == []
    _, reward, terminated, _, info = env.step(Step("finish", status="success"))
    assert terminated and reward == 0.0 and not info["success"]  # finishing is not succeeding
    _, _, terminated, _, info = env.step(Step("click", point=(500, 500)))
    assert terminated and "over" in info["problems"][0]


def test_reset_drops_the_keyboard_focus(env):
    # MiniWoB's own reset keeps the focus of the page before; a fresh episode must look like a fresh browser's
    env.reset(seed=3, options={"task": "enter-text"})
    box = next(e for e in env.elements if e.role == "textbox")
    _, _, _, _, info = env.step(Step("click", point=box.center))
    assert next(e for e in info["elements"] if e.role == "textbox").focused
    obs, info = env.reset(seed=3, options={"task": "enter-text"})
    assert not any(e.focused for e in info["elements"]) and "focused=true" not in obs["a11y"]


def test_max_steps_truncates():
    # its own short-lived env: a second browser, which also shows two envs do not disturb each other
    with_limit = MiniWoBEnv(max_steps=2)
    try:
        with_limit.reset(seed=0, options={"task": "click-button"})
        _, _, terminated, truncated, _ = with_limit.step(Step("wait"))
        assert not terminated and not truncated
        _, _, terminated, truncated, _ = with_limit.step(Step("wait"))
        assert truncated and not terminated
        pids = with_limit.browser_pids()
        assert pids
    finally:
        with_limit.close()
    time.sleep(0.5)
    assert not [p for p in pids if _alive(p)]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()
    except OSError:
        return False


def test_one_browser_serves_every_task(env):
    env.reset(seed=0, options={"task": "click-test"})
    pid = env.chromium_pid()
    restarts = env.restarts
    env.reset(seed=0, options={"task": "enter-text"})
    env.reset(seed=0, options={"task": "click-tab"})
    assert env.chromium_pid() == pid and env.restarts == restarts


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["chromium", "chromedriver"])
def test_killed_browser_recovers_and_episode_succeeds(env, victim):
    obs, info = env.reset(seed=5, options={"task": "login-user"})
    restarts = env.restarts
    first = env.oracle_action()
    env.step(first)  # the username is typed
    pid = env.chromium_pid() if victim == "chromium" else env._state.service.process.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.3)
    obs, reward, terminated, _, info = env.step(env.oracle_action())  # the password, after restart + replay
    assert env.restarts == restarts + 1 and info["restarts"] == restarts + 1
    assert env.chromium_pid() not in (None, pid)
    values = [e.value for e in info["elements"] if e.role == "textbox"]
    assert values[0] == first.text and values[1]  # the replayed username, then the pending password
    while not terminated:
        obs, reward, terminated, _, info = env.step(env.oracle_action())
    assert reward == 1.0 and info["success"]
    assert not _alive(pid)


# --- samples ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_sample_cli_writes_readable_parquet(tmp_path, capsys):
    from PIL import Image

    from tracer1.data.schema import read_samples

    code = main(["--tasks", "click-button,login-user", "--episodes", "2", "--out", str(tmp_path),
                 "--seed", "3", "--horizon", "2"])
    assert code == 0
    assert "login-user: 6 samples from 2 episodes" in capsys.readouterr().out
    samples = read_samples(tmp_path)
    assert len(samples) == 2 * 1 + 2 * 3
    for s in samples:
        assert s.source == "miniwob" and s.width == 160 and s.height == 210
        assert Image.open(io.BytesIO(s.screenshot)).size == (160, 210)
        assert 1 <= len(s.future) <= 2 and s.label.action == s.future[0].action
        assert s.a11y and s.meta["task"] in ("click-button", "login-user")
        if s.label.box is not None:
            x1, y1, x2, y2 = s.label.box
            assert x1 <= s.label.point[0] <= x2 and y1 <= s.label.point[1] <= y2
            assert f"({x1}, {y1}, {x2}, {y2})" in s.a11y
    login = sorted((s for s in samples if s.meta["task"] == "login-user" and s.meta["seed"] == 3),
                   key=lambda s: s.step_index)
    assert [len(s.history) for s in login] == [0, 1, 2]
    assert login[0].future == login[1].history + login[1].future[:1]
    assert login[0].label.action == "type" and login[0].label.text == login[0].future[0].text
    assert login[2].future[0].action == "click" and login[2].label.box is not None


def test_episode_samples_label_each_step(env):
    episode = run_solver_episode(env, "enter-password", 2)
    assert episode.success and len(episode.steps) == 3
    samples = episode_samples(episode, horizon=10, split="eval")
    assert [s.future for s in samples] == [episode.steps, episode.steps[1:], episode.steps[2:]]
    assert all(s.split == "eval" and s.problems() == [] for s in samples)
    label = step_label(episode.steps[0], episode.elements[0])
    assert label.box is not None and label.text == episode.steps[0].text


def test_time_limit_and_unknown_tasks(env):
    with pytest.raises(ValueError, match="unknown MiniWoB task"):
        env.reset(seed=0, options={"task": "no-such-task"})
    env.time_limit_ms = 600
    try:
        env.reset(seed=0, options={"task": "click-button"})
        time.sleep(0.9)
        _, reward, terminated, _, info = env.step(Step("wait"))
        assert terminated and reward == 0.0 and not info["success"] and info["reason"] == "timed out"
    finally:
        env.time_limit_ms = None
    env.reset(seed=0, options={"task": "click-button"})
    time.sleep(0.9)  # the task's own 10 s limit is back
    _, reward, terminated, _, _ = env.step(env.oracle_action())
    assert terminated and reward == 1.0
