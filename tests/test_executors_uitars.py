"""Reading UI-TARS-style grounding answers: hand-written answers in the forms the model family writes (and breaks),
each with the point and fields it must give on tracer1's grid. The parser must never raise."""

import pytest
from hypothesis import given, settings, strategies as st

from tracer1.executors.uitars import parse_grounding_answer
from tracer1.plan import from_pixels, smart_resize

SIZE = (360, 640)                              # the built-in phone's screenshot: width, height
RESIZED_H, RESIZED_W = smart_resize(640, 360)  # (644, 364): what UI-TARS-1.5 sees and answers in


def px(x, y):
    """Where a smart-resized pixel lands on the grid of the original screenshot."""
    return from_pixels(x, y, RESIZED_W, RESIZED_H)


def test_the_resized_size_is_what_qwen_computes():
    assert (RESIZED_W, RESIZED_H) == (364, 644)


# (answer, expected point, expected fields (a subset)); every one of these must parse without problems
CLEAN = [
    ("Thought: The Save button is at the bottom right.\nAction: click(start_box='(198,612)')",
     px(198, 612), {"action": "click", "thought": "The Save button is at the bottom right."}),
    ("Action: click(start_box='<|box_start|>(100,200)<|box_end|>')", px(100, 200), {"action": "click"}),
    ("click(start_box='(100,200)')", px(100, 200), {"action": "click", "model_action": "click"}),
    ("Action: click(point='<point>100 200</point>')", px(100, 200), {"action": "click"}),
    ("Action: click(start_box='[80,180,120,220]')", px(100, 200), {"action": "click"}),
    ("Action: left_double(start_box='(10,20)')", px(10, 20), {"action": "click", "model_action": "left_double"}),
    ("Action: right_single(start_box='(10,20)')", px(10, 20), {"action": "click"}),
    ('Action: long_press(start_box="(300,400)", time=\'\')', px(300, 400), {"action": "long_press"}),
    ("Action: click(start_box=(50, 60))", px(50, 60), {"action": "click"}),          # unquoted tuple
    ("Action: click(x=50, y=60)", px(50, 60), {"action": "click"}),
    ("Action: click('(50,60)')", px(50, 60), {"action": "click"}),                  # positional box
    ("Action: type(content='hello world')", None, {"action": "type", "text": "hello world"}),
    ("Action: type(content='it's here\\n')", None, {"action": "type", "text": "it's here\n"}),
    ("Action: type(content='say \\'hi\\'')", None, {"action": "type", "text": "say 'hi'"}),
    ("Action: scroll(start_box='(180,320)', direction='down')", px(180, 320),
     {"action": "scroll", "direction": "down"}),
    ("Action: scroll(point='<point>10 10</point>', direction='UP')", px(10, 10), {"direction": "up"}),
    ("Action: hotkey(key='ctrl c')", None, {"action": "press", "key": "ctrl+c"}),
    ("Action: hotkey(key='arrowdown')", None, {"action": "press", "key": "down"}),
    ("Action: press(key='Enter')", None, {"action": "press", "key": "enter"}),
    ("Action: press_home()", None, {"action": "press", "key": "home"}),
    ("Action: press_back()", None, {"action": "press", "key": "back"}),
    ("Action: open_app(app_name='Contacts')", None, {"action": "open_app", "app": "Contacts"}),
    ("Action: wait()", None, {"action": "wait"}),
    ("Action: finished(content='The total is 6.95')", None, {"action": "answer", "text": "The total is 6.95"}),
    ("Action: finished()", None, {"action": "finish", "status": "success"}),
    ("Action: call_user()", None, {"action": "finish", "status": "infeasible"}),
    ("Reflection: I clicked the wrong row.\nAction_Summary: open Bluetooth.\nAction: click(start_box='(5,6)')",
     px(5, 6), {"action": "click"}),
    ("```\nThought: ok\nAction: click(start_box='(7,8)')\n```", px(7, 8), {"action": "click", "thought": "ok"}),
    ("Action: click(start_box='(7,8)')[EOS]", px(7, 8), {"action": "click"}),
    ("(100,200)", px(100, 200), {"action": None}),                                  # point-only grounding answers
    ("100, 200", px(100, 200), {"action": None}),
    ("<point>100 200</point>", px(100, 200), {}),
    ("[80, 180, 120, 220]", px(100, 200), {}),
    ("<bbox>80 180 120 220</bbox>", px(100, 200), {}),
    ("The button is at (100,200).", px(100, 200), {}),
    ("Action: click(start_box='(0,0)')", (0, 0), {}),
    ("Action: click(start_box='(364,644)')", (1000, 1000), {}),                     # the far edge is in range
    ("Action: click(start_box='(182.5,322.0)')", px(182.5, 322), {}),
]


@pytest.mark.parametrize("answer, point, fields", CLEAN)
def test_clean_answers(answer, point, fields):
    got = parse_grounding_answer(answer, SIZE)
    assert got.problems == [], got
    assert got.point == point
    assert {k: got.fields.get(k) for k in fields} == fields


def test_a_box_is_reported_and_its_centre_is_the_point():
    got = parse_grounding_answer("Action: click(start_box='[80,180,120,220]')", SIZE)
    assert got.fields["box"] == (*px(80, 180), *px(120, 220)) and got.point == px(100, 200)


def test_drag_has_no_plan_action_but_both_points_are_read():
    got = parse_grounding_answer("Action: drag(start_box='(10,20)', end_box='(30,40)')", SIZE)
    assert got.point == px(10, 20) and got.fields["end_point"] == px(30, 40) and got.fields["action"] is None
    assert "no plan-language equivalent" in got.problems[0]


# (answer, expected point, a fragment of the expected problem)
FLAWED = [
    ("Action: click(start_box='(5000,200)')", (1000, px(0, 200)[1]), "outside"),
    ("Action: click(start_box='(-20,200)')", (0, px(0, 200)[1]), "outside"),
    ("Action: click(start_box='(100,200)')\n\nAction: click(start_box='(5,5)')", px(100, 200), "2 actions"),
    ("Action: click(start_box='(100,200)')\n\ntype(content='x')", px(100, 200), "2 actions"),
    ("(100,200) or maybe (10,20)", px(100, 200), "2 coordinate groups"),
    ("Action: click(start_box='(100,", None, "not closed"),
    ("Action: click(start_box='(100)')", None, "not a point"),
    ("Action: click(start_box='(1,2,3)')", None, "not a point"),
    ("Action: click()", None, "gives no point"),
    ("Action: teleport(start_box='(1,2)')", px(1, 2), "unknown action"),
    ("Action: scroll(direction='diagonal')", None, "direction"),
    ("Action: open_app(app_name='')", None, "names no app"),
    ("Action: hotkey(key='')", None, "names no key"),
    ("Thought: I should click Save but I will not say where.", None, "no 'Action:'"),
    ("I cannot find it.", None, "no action and no coordinates"),
    ("", None, "no action and no coordinates"),
    ("Action: click(start_box='(0.5,0.25)')", px(0.5, 0.25), "0..1 fractions"),
]


@pytest.mark.parametrize("answer, point, problem", FLAWED)
def test_flawed_answers_are_read_as_far_as_possible(answer, point, problem):
    got = parse_grounding_answer(answer, SIZE)
    assert got.point == point, got
    assert any(problem in p for p in got.problems), got.problems


def test_non_text_and_missing_sizes_are_problems():
    assert parse_grounding_answer(None, SIZE).problems == ["answer is NoneType, not text"]
    got = parse_grounding_answer("Action: click(start_box='(1,2)')", None)
    assert got.point is None and "screenshot size" in got.problems[0]
    got = parse_grounding_answer("(1,2)", SIZE, point_format="pixels")
    assert got.point is None and "point_format" in got.problems[0]


def test_zero_to_thousand_answers_are_already_on_the_grid():
    got = parse_grounding_answer("Action: click(start_box='(512,88)')", None, point_format="0-1000")
    assert got.point == (512, 88) and got.problems == []
    got = parse_grounding_answer("Action: click(start_box='[500,80,524,96]')", None, point_format="0-1000")
    assert got.point == (512, 88)
    got = parse_grounding_answer("Action: click(start_box='(1200,88)')", None, point_format="0-1000")
    assert got.point == (1000, 88) and "outside the 1000x1000 0..1000 grid" in got.problems[0]


def test_large_screens_are_mapped_through_the_downscaled_size():
    # 3840x2160 exceeds max_pixels: Qwen shrinks it, and the answer's pixels are of the shrunk image
    height, width = smart_resize(2160, 3840)
    assert width < 3840
    got = parse_grounding_answer(f"Action: click(start_box='({width // 2},{height // 2})')", (3840, 2160))
    assert got.point == (500, 500)
    smaller = parse_grounding_answer("(140,140)", (360, 640), max_pixels=280 * 280, min_pixels=28 * 28)
    h, w = smart_resize(640, 360, max_pixels=280 * 280, min_pixels=28 * 28)
    assert smaller.point == from_pixels(140, 140, w, h)


PIECES = list("click(start_box='<|>)[],0123456789 .-\"\n\\") + ["Action: ", "Thought: ", "<point>", "type(content="]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40).map("".join))
def test_never_raises_on_any_text(text):
    got = parse_grounding_answer(text, SIZE)
    assert got.point is None or all(0 <= v <= 1000 for v in got.point)


def test_runaway_answers_are_cut_and_read_in_linear_time():
    # 100,000 characters of one word once took minutes (every letter started a call-name scan)
    got = parse_grounding_answer("Thought: " + "x" * 100_000, SIZE)
    assert got.point is None and "read the first 16000" in got.problems[0]
    got = parse_grounding_answer("Action: click(start_box='(100,200)') " * 5000, SIZE)
    assert got.point == px(100, 200)
