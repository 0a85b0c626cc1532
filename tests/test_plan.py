"""The plan language: the documented examples, what the parser reports on flawed text, and step equality."""

from tracer1.plan import (
    Step, as_step, format_plan, format_step, parse_plan, parse_step, problem_kind, same_step, step_problems,
)

DESIGN_EXAMPLE = """<think> ... </think>
<plan>
1. click(target="the Wi-Fi row in Settings")
2. type(target="the search box", text="weather in Paris")
3. scroll(direction="down")
4. answer(text="42")
</plan>"""


def test_the_design_example_reads_as_documented():
    parsed = parse_plan(DESIGN_EXAMPLE)
    assert parsed.problems == []
    assert parsed.ok
    assert parsed.think == " ... "
    assert parsed.steps == (
        Step("click", target="the Wi-Fi row in Settings"),
        Step("type", target="the search box", text="weather in Paris"),
        Step("scroll", direction="down"),
        Step("answer", text="42"),
    )
    # the formatter writes exactly the canonical text back
    assert format_plan(parsed.steps, think=parsed.think) == DESIGN_EXAMPLE


def test_every_action_of_the_vocabulary():
    text = """<plan>
1. click(target="OK", point=(512, 88))
2. long_press(point=(10, 990))
3. type(text="hello")
4. scroll(target="the list", direction="up")
5. press(key="back")
6. open_app(app="Contacts")
7. wait()
8. finish(status="infeasible")
9. answer(text="Paris")
10. call(tool="calculator", expression="3*7", precise=true, digits=2, scale=0.5)
</plan>"""
    parsed = parse_plan(text)
    assert parsed.problems == []
    assert [s.action for s in parsed.steps] == [
        "click", "long_press", "type", "scroll", "press", "open_app", "wait", "finish", "answer", "call"]
    assert parsed.steps[0].point == (512, 88)
    assert parsed.steps[9].args == (("expression", "3*7"), ("precise", True), ("digits", 2), ("scale", 0.5))
    assert format_plan(parsed.steps) == text


def test_format_step_escapes_quotes_backslashes_and_newlines_on_one_line():
    step = Step("type", text='say "hi"\\n\nbye')
    assert format_step(step) == r'type(text="say \"hi\"\\n\nbye")'
    assert parse_step(format_step(step))[0] == step


def test_tolerated_spellings_are_read_and_reported():
    parsed = parse_plan("<plan>\n1) Click(target='OK', point=[100, 200])\n- press(key=\"ENTER\")\n</plan>")
    assert parsed.steps == (Step("click", target="OK", point=(100, 200)), Step("press", key="enter"))
    assert parsed.problems == ["step 2: steps should be numbered 1., 2., ... in order"]


def test_a_plan_without_tags_is_read_with_a_problem():
    parsed = parse_plan('Sure! Here is my plan:\n1. click(target="Settings")\n2. finish()\nHope it helps.')
    assert parsed.steps == (Step("click", target="Settings"), Step("finish"))
    assert parsed.problems == ["no <plan> block; read numbered steps from the text"]
    assert not parsed.ok


def test_bad_steps_are_dropped_and_each_is_named():
    parsed = parse_plan("""<plan>
1. clik(target="OK")
2. click()
3. scroll(direction="sideways")
4. click(target="Send", colour="blue")
5. type(text="unterminated)
6. click(target="Back", point=(1200, -5))
open the menu
</plan>""")
    assert parsed.steps == (Step("click", target="Send"), Step("click", target="Back", point=(1000, 0)))
    joined = "\n".join(parsed.problems)
    for expected in ("step 1: unknown action 'clik'", "step 2: click needs target= or point=",
                     "step 3: direction 'sideways' is not one of", "step 4: click takes no argument colour=",
                     "step 5: cannot read the arguments", "step 6: point (1200, -5) is outside 0..1000",
                     "not a step: 'open the menu'"):
        assert expected in joined


def test_unclosed_blocks_and_trailing_text_are_problems_not_errors():
    parsed = parse_plan('<think>hmm <plan>\n1. wait() and then')
    assert parsed.steps == (Step("wait"),)
    assert "<think> is not closed" in parsed.problems
    assert "<plan> is not closed" in parsed.problems
    assert "step 1: text after the step: 'and then'" in parsed.problems


def test_tag_text_inside_strings_does_not_open_or_close_blocks():
    steps = (Step("type", text="</plan> <think>"), Step("answer", text="<plan>"))
    assert parse_plan(format_plan(steps)).steps == steps
    thought = parse_plan("<think>I will write a <plan> now</think>\n<plan>\n1. wait()\n</plan>")
    assert thought.steps == (Step("wait"),) and thought.problems == []


def test_nothing_readable():
    for text in ("", "I don't know", "<plan></plan>", None, 42):
        parsed = parse_plan(text)
        assert parsed.steps == ()
        assert parsed.problems  # always says why


def test_wrongly_typed_arguments():
    parsed = parse_plan('<plan>\n1. type(text=42)\n2. click(point="(1, 2)")\n</plan>')
    assert parsed.steps == (Step("type", text="42"),)
    assert "step 1: text= should be a quoted string; read 42 as text" in parsed.problems


def test_points_in_unit_fractions_are_flagged():
    parsed = parse_plan('<plan>\n1. click(point=(0.5, 0.25))\n</plan>')
    assert parsed.steps == (Step("click", point=(0, 0)),)
    assert any("looks like 0..1 units" in p for p in parsed.problems)


def test_step_problems_name_what_is_wrong():
    assert step_problems(Step("click", target="OK")) == []
    assert step_problems(Step("jump")) == [
        "unknown action 'jump'; known: click, long_press, type, scroll, press, open_app, wait, finish, answer, call"]
    assert step_problems(Step("wait", text="x")) == ["wait takes no text"]
    assert step_problems(Step("type")) == ["type needs text="]
    assert step_problems(Step("click", point=(5, 1001))) == ["point (5, 1001) is not two integers in 0..1000"]
    assert step_problems(Step("call", tool="ocr", args=(("tool", "x"),))) == [
        "tool argument name 'tool' is not allowed"]


def test_same_step_ignores_wording_case_and_small_point_moves():
    a = Step("click", target="The  OK button.")
    assert same_step(a, Step("click", target="the ok button"))
    assert not same_step(a, Step("click", target="the cancel button"))
    assert not same_step(a, Step("long_press", target="the ok button"))
    p = Step("click", target="OK", point=(500, 500))
    # with points, the point says where: the wording of the target does not matter
    assert same_step(p, Step("click", target="okay", point=(510, 495)), point_tolerance=10)
    assert not same_step(p, Step("click", target="OK", point=(511, 500)), point_tolerance=10)
    assert not same_step(p, a)  # one pointed, one not
    assert same_step(Step("type", text="Paris"), Step("type", text="paris"))
    assert not same_step(Step("scroll", direction="up"), Step("scroll", direction="down"))


def test_as_step_reads_a_step_or_says_why_not():
    problems = []
    assert as_step('click(target="OK") then more', problems) == Step("click", target="OK")
    assert problems == ["step: ignored text after the step: 'then more'"]
    # a point off the grid is clamped with a problem: environments refuse the guess, executors keep it
    problems = []
    assert as_step("click(point=(1200, 5))", problems, where="action") is None and problems
    assert as_step("click(point=(1200, 5))", [], strict=False) == Step("click", point=(1000, 5))
    problems = []
    assert as_step(Step("type", target="box"), problems) is None and problems == ["step: type needs text="]
    assert as_step(42, problems) is None and problems[-1] == "step: a step is a Step or its text, not int"
    assert as_step("open the menu", problems) is None and "not a step" in problems[-1]


def test_problem_kinds_drop_the_step_number_quoted_text_and_points():
    # what an evaluation counts failing plans by (tracer1.eval.planning): one kind, whichever step or text
    text = ('<plan>\n1. click(target="OK")\n3. click(target="Save", point=(1200, 5))\n'
            '4. finish(status="done")\n5. wait() now\n</plan>')
    kinds = [problem_kind(p) for p in parse_plan(text).problems]
    assert kinds == ["steps should be numbered 1., 2., ... in order",
                     "point (x, y) is outside 0..1000; clamped",
                     "steps should be numbered 1., 2., ... in order",
                     "status '…' is not one of success, infeasible",
                     "steps should be numbered 1., 2., ... in order",
                     "text after the step: '…'"]
    assert problem_kind("<plan> is not closed") == "<plan> is not closed"  # plan-level problems are kept whole
