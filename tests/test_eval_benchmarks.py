"""Offline benchmark metrics (tracer1.eval.benchmarks): hand-checked steps and aggregates per benchmark, bad input,
and one run through the AndroidControl converter and the command line on a hand-written raw episode.

Points are on the 0..1000 grid, so a grid distance d along one axis is a normalised distance of d / 1000.
"""

import base64
import io
import json

import pytest
from PIL import Image

from tracer1.data.convert import convert
from tracer1.data.schema import Sample
from tracer1.eval.benchmarks import (
    BenchmarkError, Prediction, androidcontrol_step, mind2web_step, odyssey_step, read_predictions,
    score_benchmark,
)
from tracer1.eval.benchmarks.__main__ import main
from tracer1.plan import Step, step_problems
from tracer1.rewards import GroundingLabel

BOX = (100, 100, 200, 200)
CENTRE = (150, 150)


def make_sample(sample_id, label, source="androidcontrol", meta=None, text="x"):
    """A sample whose reference step is the label's action (the metrics read only the label and meta)."""
    episode = sample_id.split("/")[1]
    fields = {k: getattr(label, k) for k in ("point", "direction", "key", "app", "status", "tool")
              if getattr(label, k) is not None}
    if label.action in ("type", "answer"):
        fields["text"] = label.text if label.text is not None else text
    return Sample(sample_id=sample_id, episode_id=episode, step_index=int(sample_id.split("/")[2]),
                  source=source, instruction="do it", history=[], future=[Step(label.action, **fields)],
                  label=label, meta=meta or {})


def plan(*steps):
    return "<plan>\n" + "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1)) + "\n</plan>"


# --- AndroidControl -------------------------------------------------------------------------------------------

CLICK = GroundingLabel("click", box=BOX, point=CENTRE)


@pytest.mark.parametrize("step, expected", [
    (Step("click", point=(190, 190)), (True, True, True)),     # inside the box
    (Step("click", point=(300, 150)), (True, False, False)),   # outside; dx = 150 → 0.15 >= 0.14
    (Step("click", point=(150, 289)), (True, True, True)),     # outside; dy = 139 → 0.139 < 0.14
    (Step("click", point=(150, 290)), (True, False, False)),   # dy = 140 → 0.14, and AndroidControl needs < 0.14
    (Step("click", target="OK"), (True, False, False)),        # not grounded: no point to score
    (Step("long_press", point=CENTRE), (False, False, False)),  # right place, wrong type
    (None, (False, False, False)),                             # nothing readable
])
def test_androidcontrol_click(step, expected):
    assert androidcontrol_step(step, CLICK) == expected


@pytest.mark.parametrize("step, label, expected", [
    # token sets {paris, weather} vs {weather, in, paris}: F1 = 2·2 / (2 + 3) = 0.8 >= 0.5
    (Step("type", text="Paris weather"), GroundingLabel("type", text="weather in Paris"), (True, None, True)),
    (Step("type", text="London"), GroundingLabel("type", text="weather in Paris"), (True, None, False)),  # F1 0
    (Step("scroll", direction="up"), GroundingLabel("scroll", direction="down"), (True, None, False)),
    # {maps} vs {google, maps}: F1 = 2·1 / (1 + 2) = 0.67 >= 0.5
    (Step("open_app", app="Maps"), GroundingLabel("open_app", app="Google Maps"), (True, None, True)),
    # navigate_home is not navigate_back: different action types
    (Step("press", key="home"), GroundingLabel("press", key="back"), (False, None, False)),
    (Step("wait"), GroundingLabel("wait"), (True, None, True)),
])
def test_androidcontrol_arguments(step, label, expected):
    assert androidcontrol_step(step, label) == expected


def test_androidcontrol_aggregate():
    samples = [make_sample("androidcontrol/e1/0", CLICK), make_sample("androidcontrol/e1/1", CLICK),
               make_sample("androidcontrol/e1/2", GroundingLabel("type", text="hello world")),
               make_sample("androidcontrol/e1/3", GroundingLabel("scroll", direction="down")),
               make_sample("androidcontrol/e1/4", GroundingLabel("open_app", app="Clock"))]
    predictions = [
        # the plan's click has no point; the executed step has one, inside the box: type, grounding, success
        {"sample_id": "androidcontrol/e1/0", "plan": plan('click(target="OK")'),
         "executed": 'click(target="OK", point=(120, 180))'},
        {"sample_id": "androidcontrol/e1/1", "plan": "I don't know"},           # unreadable: all wrong
        {"sample_id": "androidcontrol/e1/2", "plan": plan('type(text="Hello world")')},  # type, success
        {"sample_id": "androidcontrol/e1/3", "step": 'scroll(direction="up")'},  # type only
        # e1/4 has no prediction: wrong
    ]
    result = score_benchmark("androidcontrol", predictions, samples)
    # type: e1/0, e1/2, e1/3 → 3/5; grounding: e1/0 of the two clicks → 1/2; success: e1/0, e1/2 → 2/5
    assert result.metrics == pytest.approx({"type_acc": 0.6, "grounding_acc": 0.5, "step_success": 0.4})
    assert result.support == {"type_acc": 5, "grounding_acc": 2, "step_success": 5}
    assert (result.counts["samples"], result.counts["predictions"], result.counts["missing"],
            result.counts["malformed"]) == (5, 4, 1, 1)
    assert "androidcontrol/e1/1: no step could be read" in result.problems
    assert "androidcontrol/e1/4: no prediction" in result.problems
    # only the predicted samples: type 3/4, grounding 1/2, success 2/4
    only = score_benchmark("androidcontrol", predictions, samples, only_predicted=True)
    assert only.metrics == pytest.approx({"type_acc": 0.75, "grounding_acc": 0.5, "step_success": 0.5})


# --- GUI-Odyssey ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("step, label, right", [
    (Step("click", point=(150, 290)), CLICK, True),       # 0.14 exactly: GUI-Odyssey accepts <= 0.14
    (Step("click", point=(150, 291)), CLICK, False),      # 0.141
    (Step("click", point=(100, 100)), GroundingLabel("click", box=BOX, point=(900, 900)), True),  # box corner
    (Step("type", text="hello"), GroundingLabel("type", text="hello world"), True),        # contained
    # edit distance 2 over max length 11: 1 - 2/11 = 0.82 >= 0.5
    (Step("type", text="hxllo wxrld"), GroundingLabel("type", text="hello world"), True),
    (Step("type", text="AB"), GroundingLabel("type", text="ab"), False),  # case kept: 1 - 2/2 = 0
    (Step("type", text=""), GroundingLabel("type", text="hello"), True),  # the evaluator's "" in text
    (Step("scroll", direction="down"), GroundingLabel("scroll", direction="down"), True),
    (Step("press", key="home"), GroundingLabel("press", key="recents"), False),  # KEY_HOME vs KEY_APPSELECT
    (Step("finish"), GroundingLabel("finish", status="success"), True),          # COMPLETE
    (Step("finish", status="infeasible"), GroundingLabel("finish", status="success"), False),  # INCOMPLETE
])
def test_odyssey_step(step, label, right):
    assert odyssey_step(step, label) is right


def test_odyssey_ams_and_sr():
    labels = {"gui-odyssey/a/0": CLICK, "gui-odyssey/a/1": GroundingLabel("finish", status="success"),
              "gui-odyssey/b/0": CLICK, "gui-odyssey/b/1": GroundingLabel("scroll", direction="up"),
              "gui-odyssey/b/2": GroundingLabel("finish", status="success")}
    samples = [make_sample(sid, label, source="gui-odyssey") for sid, label in labels.items()]
    steps = {"gui-odyssey/a/0": "click(point=(150, 150))", "gui-odyssey/a/1": "finish()",
             "gui-odyssey/b/0": "click(point=(150, 150))", "gui-odyssey/b/1": 'scroll(direction="down")',
             "gui-odyssey/b/2": "finish()"}
    result = score_benchmark("gui-odyssey", [{"sample_id": k, "step": v} for k, v in steps.items()], samples)
    # steps right: all but b/1 → AMS 4/5; episodes: a all right, b not → SR 1/2
    assert result.metrics == pytest.approx({"ams": 0.8, "sr": 0.5})
    assert result.support == {"ams": 5, "sr": 2}


# --- Multimodal-Mind2Web --------------------------------------------------------------------------------------

M2W_BOX = (100, 100, 300, 200)


@pytest.mark.parametrize("step, label, op, expected", [
    (Step("click", point=(200, 150)), GroundingLabel("click", box=M2W_BOX), "CLICK", (True, 1.0, True)),
    # "TYPE new york" vs "TYPE New York": the same tokens once lowercased
    (Step("type", point=(200, 150), text="new york"), GroundingLabel("type", box=M2W_BOX, text="New York"), "TYPE",
     (True, 1.0, True)),
    # {type, york} vs {type, new, york}: 2·2 / (2 + 3) = 0.8 → the step fails though the element is right
    (Step("type", point=(200, 150), text="york"), GroundingLabel("type", box=M2W_BOX, text="New York"), "TYPE",
     (True, 0.8, False)),
    # a type step on a SELECT sample is the SELECT: "SELECT Economy" vs "SELECT Economy"
    (Step("type", point=(200, 150), text="Economy"), GroundingLabel("type", box=M2W_BOX, text="Economy"), "SELECT",
     (True, 1.0, True)),
    # {click} vs {type, new, york}: no common token → F1 0
    (Step("click", point=(200, 150)), GroundingLabel("type", box=M2W_BOX, text="New York"), "TYPE",
     (True, 0.0, False)),
    (Step("click", point=(350, 150)), GroundingLabel("click", box=M2W_BOX), "CLICK", (False, 1.0, False)),
    # no box (no positive candidate on the screenshot): the element can never be right
    (Step("click", point=(200, 150)), GroundingLabel("click", point=(200, 150)), "CLICK", (False, 1.0, False)),
])
def test_mind2web_step(step, label, op, expected):
    element, f1, success = mind2web_step(step, label, op)
    assert (element, success) == (expected[0], expected[2])
    assert f1 == pytest.approx(expected[1])


def test_mind2web_macro_over_tasks():
    click, typed = GroundingLabel("click", box=M2W_BOX), GroundingLabel("type", box=M2W_BOX, text="New York")
    inside, outside = "(200, 150)", "(350, 150)"
    rows = [  # sample, label, meta op, predicted step
        ("mind2web/A/0", click, "CLICK", f"click(point={inside})"),                  # e 1, f1 1,   step 1
        ("mind2web/A/1", typed, "TYPE", f'type(point={inside}, text="york")'),      # e 1, f1 0.8, step 0
        ("mind2web/A/2", click, "HOVER", f"click(point={inside})"),                 # HOVER is CLICK: 1, 1, 1
        ("mind2web/B/0", click, "CLICK", f"click(point={outside})"),                # e 0, f1 1,   step 0
        ("mind2web/C/0", typed, "TYPE", f'type(point={inside}, text="New York")'),  # e 1, f1 1,   step 1
    ]
    samples = [make_sample(sid, label, source="mind2web", meta={"op": op}) for sid, label, op, _ in rows]
    result = score_benchmark("mind2web", [{"sample_id": sid, "step": s} for sid, _, _, s in rows], samples)
    # per task: A element 3/3 = 1, op F1 (1 + 0.8 + 1)/3 = 0.9333, step 2/3; B 0, 1, 0; C 1, 1, 1
    assert result.per_task["A"] == pytest.approx({"element_acc": 1.0, "op_f1": 2.8 / 3, "step_sr": 2 / 3,
                                                  "steps": 3})
    assert result.metrics == pytest.approx({
        "element_acc": (1 + 0 + 1) / 3, "op_f1": (2.8 / 3 + 1 + 1) / 3, "step_sr": (2 / 3 + 0 + 1) / 3,
        "task_sr": 1 / 3,                      # only C has every step right
        "micro_element_acc": 4 / 5, "micro_op_f1": (1 + 0.8 + 1 + 1 + 1) / 5, "micro_step_sr": 3 / 5})
    assert result.support["element_acc"] == 3 and result.support["micro_element_acc"] == 5
    assert result.counts["tasks"] == 3


# --- GTA and GAIA ---------------------------------------------------------------------------------------------

def test_gta_tool_and_answer_accuracy():
    whitelist = {"whitelist": [["42", "forty-two"]], "blacklist": [["43"]]}
    samples = [make_sample("gta/q1/0", GroundingLabel("call", tool="OCR"), source="gta"),
               make_sample("gta/q1/1", GroundingLabel("call", tool="Calculator"), source="gta"),
               make_sample("gta/q1/2", GroundingLabel("answer", answers=whitelist), source="gta"),
               make_sample("gta/q2/0", GroundingLabel("answer", answers=None), source="gta"),  # image answer
               make_sample("gta/q3/0", GroundingLabel("answer", answers={"whitelist": [["blue"], ["square"]]}),
                           source="toolbox"),
               make_sample("gta/q4/0", GroundingLabel("answer", answers=whitelist), source="gta")]
    predictions = [
        {"sample_id": "gta/q1/0", "step": 'call(tool="OCR", image="a.png")'},          # right tool
        {"sample_id": "gta/q1/1", "step": 'call(tool="calculator", expression="6*7")'},  # names are exact: wrong
        {"sample_id": "gta/q1/2", "step": 'answer(text="The total is 42.")'},          # "42" as a whole word
        {"sample_id": "gta/q2/0", "step": 'answer(text="see the image")'},              # not scored
        {"sample_id": "gta/q3/0", "step": 'answer(text="a blue circle")'},              # no alias of [square]
        # the executed answer said 42 but also the blacklisted 43: wrong
        {"sample_id": "gta/q4/0", "step": 'answer(text="42")', "result": "42, or maybe 43"},
    ]
    result = score_benchmark("gta", predictions, samples)
    # ToolAcc: q1/0 of the two calls → 1/2; AnsAcc: q1/2 of q1/2, q3, q4 → 1/3
    assert result.metrics == pytest.approx({"tool_acc": 0.5, "ans_acc": 1 / 3})
    assert result.support == {"tool_acc": 2, "ans_acc": 3}
    assert result.counts["unscored"] == 1


def test_gaia_answer_accuracy():
    def answer(sid, reference):
        return make_sample(sid, GroundingLabel("answer", text=reference), source="builtin")

    samples = [answer("g/1/0", "1000"), answer("g/2/0", "St. Louis"), answer("g/3/0", "a, b"),
               answer("g/4/0", "3"), make_sample("g/5/0", GroundingLabel("call", tool="ocr"), source="builtin")]
    predictions = [{"sample_id": "g/1/0", "step": 'answer(text="$1,000")'},    # numbers: 1000 = 1000
                   {"sample_id": "g/2/0", "step": 'answer(text="st louis")'},  # "stlouis" = "stlouis"
                   {"sample_id": "g/3/0", "step": 'answer(text="a; b; c")'},   # 3 items vs 2
                   {"sample_id": "g/4/0", "step": 'call(tool="calculator")'},  # no answer yet
                   {"sample_id": "g/5/0", "step": 'call(tool="ocr")'}]         # not an answer step: unscored
    result = score_benchmark("gaia", predictions, samples)
    assert result.metrics == {"answer_acc": 0.5}                                 # 2/4
    assert result.counts["unscored"] == 1


# --- bad input ------------------------------------------------------------------------------------------------

def test_malformed_predictions_count_as_wrong():
    samples = [make_sample(f"androidcontrol/e/{i}", CLICK) for i in range(3)]
    predictions = [Prediction("androidcontrol/e/0", plan=42),                      # not text
                   Prediction("androidcontrol/e/1", executed="click(point=(1, 2)"),  # no closing parenthesis
                   Prediction("androidcontrol/e/2")]                                 # nothing given
    result = score_benchmark("androidcontrol", predictions, samples)
    assert result.metrics == {"type_acc": 0.0, "grounding_acc": 0.0, "step_success": 0.0}
    assert result.counts["malformed"] == 3
    assert "androidcontrol/e/0: output is int, not text" in result.problems
    assert any(p.startswith("androidcontrol/e/1: executed:") for p in result.problems)
    assert "androidcontrol/e/2: no plan, step or executed step given" in result.problems


def test_bad_prediction_rows_are_named(tmp_path):
    samples = [make_sample("androidcontrol/e/0", CLICK)]
    preds = tmp_path / "preds.jsonl"
    preds.write_text('{"sample_id": "androidcontrol/e/0", "step": "click(point=(1, 2))"}\n'
                     '{"sample_id": "androidcontrol/zzz/9", "step": "wait()"}\n')
    with pytest.raises(BenchmarkError, match=r"preds.jsonl: line 2: sample_id 'androidcontrol/zzz/9' is not in"):
        score_benchmark("androidcontrol", read_predictions(preds), samples)
    preds.write_text('{"sample_id": "androidcontrol/e/0"}\n\n{"sample_id": "androidcontrol/e/0"}\n')
    with pytest.raises(BenchmarkError, match=r"line 3: a second prediction .* \(first: .*line 1\)"):
        score_benchmark("androidcontrol", read_predictions(preds), samples)
    preds.write_text('{"sample_id": "androidcontrol/e/0"}\n{"plan": "x"\n')
    with pytest.raises(BenchmarkError, match=r"preds.jsonl: line 2: not valid JSON"):
        read_predictions(preds)
    preds.write_text('{"plan": "x"}\n')
    with pytest.raises(BenchmarkError, match=r"preds.jsonl: line 1: missing sample_id"):
        read_predictions(preds)
    with pytest.raises(BenchmarkError, match=r"predictions\[0\]: sample_id 'nope'"):
        score_benchmark("androidcontrol", [{"sample_id": "nope"}], samples)
    with pytest.raises(BenchmarkError, match="'androidcontrol' sample; the mind2web benchmark scores mind2web"):
        score_benchmark("mind2web", [], samples)
    with pytest.raises(BenchmarkError, match="unknown benchmark 'miniwob'"):
        score_benchmark("miniwob", [], samples)


# --- through the converter and the command line ---------------------------------------------------------------

def _png_base64(width=54, height=120) -> str:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 30, 30)).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def test_command_line_on_a_raw_androidcontrol_episode(tmp_path, capsys):
    # a 1080 x 2400 screen: the click at (540, 1200) px is (500, 500) on the grid; no accessibility tree, so
    # the label has no box and grounding is the 0.14 radius
    episode = {"episode_id": "ep1", "goal": "Set an alarm", "screenshots": [_png_base64()] * 3,
               "screenshot_widths": [1080] * 3, "screenshot_heights": [2400] * 3,
               "actions": [json.dumps({"action_type": "open_app", "app_name": "Clock"}),
                           json.dumps({"action_type": "click", "x": 540, "y": 1200})],
               "step_instructions": ["Open the Clock app", "Tap the alarm tab"]}
    raw = tmp_path / "raw.jsonl"
    raw.write_text(json.dumps(episode) + "\n")
    preds = tmp_path / "preds.jsonl"
    preds.write_text(
        json.dumps({"sample_id": "androidcontrol/ep1/0", "plan": plan('open_app(app="Clock")', "wait()")}) + "\n"
        # dy = 200 → 0.2 >= 0.14: the right type, the wrong place
        + json.dumps({"sample_id": "androidcontrol/ep1/1", "plan": plan('click(target="alarm tab")'),
                      "executed": 'click(target="alarm tab", point=(500, 700))'}) + "\n")
    # type 2/2, grounding 0/1, success 1/2 — the same from the raw file and from its converted Parquet
    expected = {"type_acc": 1.0, "grounding_acc": 0.0, "step_success": 0.5}
    assert main(["--benchmark", "androidcontrol", "--predictions", str(preds), "--data", str(raw)]) == 0
    written = json.loads((tmp_path / "preds.androidcontrol.json").read_text())
    assert written["metrics"] == expected and written["counts"]["samples"] == 2
    table = capsys.readouterr().out
    assert "grounding_acc" in table and "50.00%" in table and "preds.androidcontrol.json" in table

    convert("androidcontrol", raw, tmp_path / "converted", split="test")
    out = tmp_path / "result.json"
    assert main(["--benchmark", "androidcontrol", "--predictions", str(preds), "--data",
                 str(tmp_path / "converted"), "--split", "test", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["metrics"] == expected

    preds.write_text(json.dumps({"sample_id": "androidcontrol/ep2/0", "step": "wait()"}) + "\n")
    assert main(["--benchmark", "androidcontrol", "--predictions", str(preds), "--data", str(raw)]) == 1
    assert "preds.jsonl: line 1: sample_id 'androidcontrol/ep2/0' is not in the data" in capsys.readouterr().err


@pytest.mark.parametrize("field", ["plan", "step", "executed"])
def test_an_unreadable_prediction_is_a_problem_never_an_exception(field, monkeypatch):
    from tracer1.eval.benchmarks import common  # noqa: PLC0415

    for text in ("<plan>\n1. click(point=(1e309, 5))\n</plan>", "click(point=(1e309, 5))",
                 'call(tool="t", n=' + "9" * 5000 + ")"):
        step, problems = common.Prediction("s", **{field: text}).first_step()
        assert problems and (step is None or step_problems(step) == [])  # read with problems, or not at all
    # and whatever goes wrong while reading it (here: a bug) is listed too
    boom = lambda *args, **kwargs: (_ for _ in ()).throw(RuntimeError("a reader bug"))  # noqa: E731
    monkeypatch.setattr(common, "parse_plan", boom)
    monkeypatch.setattr(common, "as_step", boom)
    step, problems = common.Prediction("s", **{field: 'click(target="OK")'}).first_step()
    assert step is None and problems == ["could not read the prediction (RuntimeError: a reader bug)"]
