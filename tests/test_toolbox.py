"""The toolbox world: OCR, calculator and count on generated images, the tasks' gold trajectories (run for real),
the env's rewards and contract, and the samples it writes."""

import io
import json
import random
import string

import numpy as np
import pytest
from PIL import Image

from tracer1.config import RewardConfig
from tracer1.data.schema import read_samples, write_samples
from tracer1.envs.toolbox import TOOLS, ToolboxEnv, call_tool, generate_samples, make_task
from tracer1.envs.toolbox.calculator import CalculatorError, calculate
from tracer1.envs.toolbox.font import CELL_H, CHARSET, draw_text, glyphs, text_size
from tracer1.envs.toolbox.images import price_tag, receipt, shape_scene, sign
from tracer1.envs.toolbox.ocr import ocr
from tracer1.envs.toolbox.samples import main
from tracer1.envs.toolbox.tasks import FAMILIES, PUZZLES, int_answer, money_answer
from tracer1.envs.toolbox.tools import ToolError, count, parse_object
from tracer1.envs.toolbox.vision import COLOURS, SHAPES, components, detect_shapes
from tracer1.plan import Step, format_step, parse_step
from tracer1.rewards import GroundingLabel, execution_correct
from tracer1.rewards.match import gaia_answer_match, gta_answer_match

# --- the font and OCR -----------------------------------------------------------------------------------------


def test_glyphs_are_distinct_and_cover_printable_ascii():
    table = glyphs()
    assert set(table) == set(CHARSET) and len(CHARSET) == 95
    assert len({g.tobytes() for g in table.values()}) == 95
    assert not table[" "].any() and all(g[:, 7].sum() == 0 for g in table.values())   # a blank column


def _random_text_image(rng: random.Random):
    width, height = 420, 240
    background = tuple(rng.randrange(256) for _ in range(3))
    canvas = np.zeros((height, width, 3), np.uint8)
    canvas[:] = background
    lines, y = [], 4
    alphabet = string.ascii_letters + string.digits + string.punctuation + "    "
    while True:
        scale = rng.choice([1, 2, 2, 3, 4])
        if y + CELL_H * scale + 4 > height:
            break
        n = rng.randint(2, max(2, min(22, (width - 8) // (8 * scale))))
        text = " ".join("".join(rng.choice(alphabet) for _ in range(n)).split())
        colour = tuple(rng.randrange(256) for _ in range(3))
        if not any(c.isalnum() for c in text) or colour == background:
            continue   # a lone comma cannot be told from an apostrophe: that needs a neighbour
        draw_text(canvas, rng.randrange(0, width - text_size(text, scale)[0] + 1), y, text, colour, scale)
        lines.append(text)
        y += CELL_H * scale + rng.randint(3, 8) * scale
    return canvas, "\n".join(lines)


def test_ocr_reads_random_text_exactly():
    rng = random.Random(1234)
    for _ in range(80):
        image, expected = _random_text_image(rng)
        assert ocr(image) == expected


@pytest.mark.parametrize("seed", range(10))
def test_ocr_reads_generated_receipts_tags_and_signs(seed):
    rng = random.Random(seed)
    items = [("Coffee", 350), ("Sandwich", 1445), ("Tea", 95)]
    assert ocr(receipt(rng, "CORNER SHOP", items, total=1890, footer="THANK YOU!")) == \
        "CORNER SHOP\nCoffee 3.50\nSandwich 14.45\nTea 0.95\nTOTAL 18.90\nTHANK YOU!"
    assert ocr(price_tag(rng, "WATER BOTTLE", 1240)) == "WATER BOTTLE\n$12.40"
    assert ocr(sign(rng, ["SPEED LIMIT", "120"])) == "SPEED LIMIT\n120"


def test_ocr_accepts_pil_images_arrays_and_png_bytes():
    image = sign(random.Random(0), ["ROOM", "214"])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    assert ocr(image) == ocr(np.asarray(image)) == ocr(buffer.getvalue()) == "ROOM\n214"


def test_ocr_finds_no_text_in_shape_scenes():
    rng = random.Random(5)
    for _ in range(10):
        image, _ = shape_scene(rng, [(rng.choice(list(COLOURS)), rng.choice(SHAPES)) for _ in range(12)])
        assert ocr(image) == ""


# --- components and count -------------------------------------------------------------------------------------

def test_components_are_8_connected():
    mask = np.zeros((6, 8), bool)
    mask[0, 0] = mask[1, 1] = True          # diagonal: one component
    mask[4, 2:5] = True                      # a separate bar
    mask[0, 6:8] = mask[1, 7] = True         # an L
    comps = components(mask)
    assert len(comps) == 3
    assert sorted(comps.area.tolist()) == [2, 3, 3]
    boxes = sorted(zip(comps.x0.tolist(), comps.y0.tolist(), comps.x1.tolist(), comps.y1.tolist()))
    assert boxes == [(0, 0, 2, 2), (2, 4, 5, 5), (6, 0, 8, 2)]


def test_count_matches_what_was_drawn():
    rng = random.Random(7)
    for _ in range(60):
        objects = [(rng.choice(list(COLOURS)), rng.choice(SHAPES)) for _ in range(rng.randint(1, 14))]
        image, placed = shape_scene(rng, objects)
        assert sorted((s.colour, s.shape) for s in detect_shapes(image)) == sorted((p.colour, p.shape) for p in placed)
        colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        wanted = sum(1 for p in placed if (p.colour, p.shape) == (colour, shape))
        assert count(image, f"{colour} {shape}s") == str(wanted)
        assert count(image, f"{shape}s") == str(sum(1 for p in placed if p.shape == shape))
        assert count(image, shape=shape, colour=colour) == count(image, f"{colour} {shape}")


def test_count_reads_object_phrases():
    assert parse_object("red circles") == ("red", "circle")
    assert parse_object("Triangles") == (None, "triangle")
    assert parse_object("all the blue shapes") == ("blue", None)
    for bad in ("unicorns", "red blue squares", "", "circles squares"):
        with pytest.raises(ToolError):
            parse_object(bad)


# --- calculator -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("expression, expected", [
    ("3.50 + 2.25 + 1.20", "6.95"), ("0.1 + 0.2", "0.3"), ("24.60 / 3", "8.2"), ("20 - (3.5 + 2.25)", "14.25"),
    ("2 * (3 + 4)", "14"), ("2 ** 10", "1024"), ("2 ^ 10", "1024"), ("7 // 2", "3"), ("-7 % 3", "2"),
    ("1 / 3", "0.333333333333"), ("sqrt(16)", "4"), ("round(2.675, 2)", "2.68"), ("max(1, 2.5, -3)", "2.5"),
    ("84 / 60 * 60", "84"), ("(4 + 3) * 0.75", "5.25"), ("floor(2.7) + ceil(2.1)", "5"), ("3 × 4 ÷ 2", "6"),
])
def test_calculator_is_exact(expression, expected):
    assert calculate(expression) == expected


@pytest.mark.parametrize("expression", [
    "__import__('os').system('true')", "open('/etc/passwd')", "x + 1", "'a' * 3", "(1).__class__", "1 / 0",
    "9 ** 9 ** 9", "[1, 2]", "lambda: 1", "1 if 2 else 3", "", "1 +", "(" * 300 + "1" + ")" * 300, "True + 1",
])
def test_calculator_refuses_anything_but_arithmetic(expression):
    with pytest.raises(CalculatorError):
        calculate(expression)


# --- the registry and call_tool -------------------------------------------------------------------------------

def test_registry_has_the_four_tools_with_one_line_docs():
    assert set(TOOLS) == {"ocr", "calculator", "count", "python"}
    for tool in TOOLS.values():
        assert tool.doc and "\n" not in tool.doc
        step, _, problems = parse_step(tool.example)
        assert step is not None and not problems and step.tool == tool.name
    assert TOOLS["calculator"]("6 * 7") == "42"


def test_call_tool_never_raises():
    images = {"img0": sign(random.Random(0), ["GATE", "37"])}
    assert call_tool("ocr", {"image": "img0"}, images).text == "GATE\n37"
    bad = [
        call_tool("teleport", {}, images),
        call_tool("ocr", {}, images),
        call_tool("ocr", {"image": "img7"}, images),
        call_tool("ocr", {"image": "img0", "lang": "en"}, images),
        call_tool("calculator", {"expression": "import os"}, images),
        call_tool("count", {"image": "img0", "object": "dragons"}, images),
        call_tool("python", {"code": "raise SystemExit(3)"}, images),
    ]
    for result in bad:
        assert not result.ok and result.error and result.text.startswith("error: ")
    assert "unknown tool 'teleport'" in bad[0].error and "img7" in bad[2].error


def test_python_tool_runs_in_the_sandbox():
    assert call_tool("python", {"code": "import math\nprint(math.comb(9, 4))"}).text == "126"
    blocked = call_tool("python", {"code": "print(open('/etc/hostname').read())"})
    assert not blocked.ok and blocked.error.startswith("blocked: file access")
    timed = call_tool("python", {"code": "while True: pass"}, python_timeout_s=1)
    assert not timed.ok and timed.error == "timed out after 1 s"


# --- tasks and their gold trajectories ------------------------------------------------------------------------

def test_tasks_are_deterministic_per_seed_and_split():
    a, b = make_task(11), make_task(11)
    assert a.family == b.family and a.instruction == b.instruction and a.steps == b.steps
    assert all(np.array_equal(np.asarray(a.images[k]), np.asarray(b.images[k])) for k in a.images)
    assert make_task(11, split="test").steps != a.steps or make_task(11, split="test").images != a.images
    with pytest.raises(KeyError):
        make_task(0, "no_such_family")


def test_every_family_is_reachable_and_has_a_2_to_4_call_chain():
    lengths = {}
    for family in FAMILIES:
        task = make_task(0, family)
        lengths[family] = len(task.calls)
        assert task.steps[-1] == Step("answer", text=task.answer)
        assert all(s.action == "call" and s.tool in TOOLS for s in task.calls)
        assert len(task.results) == len(task.calls)
        assert task.screenshot()[0].size == (640, 360)
    assert set(lengths.values()) == {2, 3, 4}
    assert {make_task(s).family for s in range(200)} == set(FAMILIES)


def test_gold_trajectories_reproduce_gold_answers_on_200_tasks():
    wrong_accepted = 0
    for seed in range(200):
        task = make_task(seed)
        assert 2 <= len(task.calls) <= 4
        for step, expected in zip(task.calls, task.results):
            result = call_tool(step.tool, step.args, task.images)
            assert result.ok and result.text == expected, (task.id, format_step(step), result.text)
        assert parse_step(format_step(task.steps[-1]))[0] == task.steps[-1]
        assert gta_answer_match(task.answer, task.gt_answer) is True
        assert gta_answer_match(f"The answer is {task.answer}.", task.gt_answer) is True
        assert gaia_answer_match(task.answer, task.answer)
        wrong = str(int(float(task.answer)) + 1) if "." not in task.answer else f"{float(task.answer) + 1:.2f}"
        wrong_accepted += gta_answer_match(wrong, task.gt_answer) is True
    assert wrong_accepted == 0


@pytest.mark.parametrize("puzzle", sorted(PUZZLES))
def test_every_number_puzzle_code_agrees_with_its_value(puzzle):
    _question, code, value, (low, high) = PUZZLES[puzzle]
    for n in (low, (low + high) // 2, high):
        result = call_tool("python", {"code": code.format(n=n)})
        assert result.ok and result.text == str(value(n)), (puzzle, n, result)


def test_answer_aliases():
    assert int_answer(12) == ("12", {"whitelist": [["12", "12.0", "twelve"]], "blacklist": None})
    assert int_answer(1234)[1]["whitelist"][0] == ["1234", "1234.0", "1,234"]
    assert money_answer(820) == ("8.20", {"whitelist": [["8.20", "8.2"]], "blacklist": None})
    assert money_answer(695)[1]["whitelist"] == [["6.95"]]
    assert gta_answer_match("each pays $8.2", money_answer(820)[1]) is True
    assert gta_answer_match("8.25", money_answer(820)[1]) is False


# --- the env --------------------------------------------------------------------------------------------------

def _play(env, steps):
    out = None
    for step in steps:
        out = env.step(step)
    return out


def test_env_oracle_solves_tasks_and_rewards_the_right_answer():
    env = ToolboxEnv()
    for seed in range(12):
        obs, info = env.reset(seed=seed)
        assert obs["a11y"] == "" and obs["tool_outputs"] == "" and obs["screenshot"].shape == (360, 640, 3)
        assert env.observation_space.contains(obs)
        assert [e.text for e in info["elements"]] == list(env.task.images) and info["problems"] == []
        n = 0
        while True:
            step = env.oracle_action()
            obs, reward, terminated, truncated, info = env.step(step)
            n += 1
            if step.action == "call":
                assert info["result"] == env.task.results[n - 1] and not info["problems"]
                assert obs["tool_outputs"].count("\n") == n - 1 and obs["tool_outputs"].startswith("[1] ")
            if terminated:
                break
        assert reward == 1.0 and info["success"] and n == len(env.task.steps)


def test_env_rejects_a_wrong_answer():
    env = ToolboxEnv()
    env.reset(seed=3, options={"task": "shapes_total"})
    _play(env, env.task.calls)
    gold = int(env.task.answer)
    _, reward, terminated, _, info = env.step(Step("answer", text=str(gold + 1)))
    assert terminated and reward == 0.0 and not info["success"]
    env.reset(seed=3, options={"task": "shapes_total"})
    _, reward, terminated, _, info = env.step(f'answer(text="There are {gold} of them.")')
    assert terminated and reward == 1.0 and info["success"]


def test_env_reports_bad_calls_in_problems():
    env = ToolboxEnv(max_steps=6)
    obs, _ = env.reset(seed=1, options={"task": "tags_total"})
    cases = [
        Step("call", tool="teleport", args=(("to", "mars"),)),
        Step("call", tool="ocr", args=(("image", "img9"),)),
        Step("call", tool="calculator", args=(("expression", "open('x')"),)),
        Step("click", target="OK"),
        "this is not a step",
    ]
    for action in cases:
        obs, reward, terminated, truncated, info = env.step(action)
        assert info["problems"] and reward == 0.0 and not terminated
    assert "error: unknown tool" in obs["tool_outputs"]
    obs, reward, terminated, truncated, info = env.step(env.oracle_action())
    assert truncated and not terminated          # the sixth step hits max_steps
    _, _, terminated, _, info = env.step(env.oracle_action())
    assert terminated and info["problems"] == ["the episode is over; call reset()"]


def test_env_oracle_follows_progress_and_config():
    from tracer1.config import EnvConfig

    env = ToolboxEnv(EnvConfig(name="toolbox", tasks=["signs_travel"], max_steps=9, sandbox_timeout_s=3))
    env.reset(seed=0)
    assert env.task.family == "signs_travel" and env.max_steps == 9 and env.sandbox_timeout_s == 3
    first, second = env.task.calls[:2]
    env.step(second)                             # done out of order
    assert env.oracle_action() == first
    env.step(first)
    assert env.oracle_action() == env.task.calls[2]


# --- samples --------------------------------------------------------------------------------------------------

def test_samples_round_trip_and_carry_labels(tmp_path):
    samples = list(generate_samples(episodes=12, seed=40, horizon=3, split="eval"))
    tasks = {s.episode_id for s in samples}
    assert len(tasks) == 12
    assert write_samples(tmp_path / "toolbox.parquet", samples) == len(samples)
    back = read_samples(tmp_path / "toolbox.parquet")
    assert len(back) == len(samples)
    cfg = RewardConfig()
    for before, after in zip(samples, back):
        assert after.source == "toolbox" and after.split == "eval"
        assert (after.sample_id, after.history, after.future, after.label, after.a11y, after.meta) == \
            (before.sample_id, before.history, before.future, before.label, before.a11y, before.meta)
        assert len(after.future) <= 3 and len(after.history) == after.step_index
        assert after.image().size == (after.width, after.height) == (640, 360)
        step = after.future[0]
        if step.action == "call":
            assert after.label == GroundingLabel("call", tool=step.tool, text=after.label.text)
            assert execution_correct(step, after.label, cfg, result=after.label.text)
        else:
            assert after.label.answers and gta_answer_match(step.text, after.label.answers)
            assert execution_correct(step, after.label, cfg)
            assert not execution_correct(Step("answer", text="no idea"), after.label, cfg)
        outputs = after.meta["tool_outputs"]
        assert len(outputs) == after.step_index
        assert (after.a11y or "").count("\n") == max(len(outputs) - 1, 0)
    json.dumps(back[0].meta)


def test_cli_writes_samples(tmp_path, capsys):
    assert main(["--episodes", "4", "--out", str(tmp_path), "--horizon", "2", "--tasks", "receipt_total"]) == 0
    samples = read_samples(tmp_path / "toolbox-train.parquet")
    assert len(samples) == 4 * 3 and {s.meta["task"] for s in samples} == {"receipt_total"}
    assert Image.open(io.BytesIO(samples[0].screenshot)).format == "PNG"
    with pytest.raises(SystemExit):
        main(["--episodes", "1", "--out", str(tmp_path), "--tasks", "nope"])
