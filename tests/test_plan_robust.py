"""Bad model output: the inputs that once made the parser raise (overflowing numbers, over-long digit runs),
`nan`/`inf` spellings, and the bounds on the problems kept. Each reads as a problem, never an exception, and
never as a non-finite or off-grid value in a Step."""

from __future__ import annotations

import math

import pytest

from tracer1.plan import Step, as_step, parse_plan, parse_step, problem_kind, step_problems
from tracer1.plan.grammar import MAX_PROBLEMS

LONG = "9" * 5000  # past Python's int-to-string digit limit (4300)

BAD_LINES = [
    "click(point=(1e309, 5))",
    "click(point=(5, -1e309))",
    "click(point=[1e400, 1e400])",
    'call(tool="ocr", box=[1e309, 2])',
    'call(tool="ocr", box=(2, 1e309))',
    f'call(tool="ocr", n={LONG})',
    f'call(tool="ocr", n={LONG}.5)',
    f'call(tool="ocr", n=1e{LONG})',
    'call(tool="ocr", n=1e999)',
    'call(tool="ocr", n=-1e999)',
    f"click(point=({LONG}, 5))",
    f"click(point=(5.{LONG}, 5))",
    "click(point=(nan, 5))",
    "click(point=(inf, inf))",
    'call(tool="ocr", n=nan)',
    'call(tool="ocr", n=inf)',
    f'type(text={LONG})',
]


def finite(value) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def assert_valid(step):
    assert step is None or step_problems(step) == []
    if step is not None:
        assert all(finite(v) for _, v in step.args)
        assert step.point is None or all(type(v) is int and 0 <= v <= 1000 for v in step.point)


@pytest.mark.parametrize("line", BAD_LINES)
def test_overflowing_and_overlong_numbers_are_problems_not_exceptions(line):
    parsed = parse_plan(f"<plan>\n1. {line}\n</plan>")
    assert not parsed.ok and parsed.problems
    for step in parsed.steps:
        assert_valid(step)
    step, _, problems = parse_step(line)
    assert_valid(step)
    assert problems  # whatever was read, something was wrong with it
    found: list[str] = []
    assert as_step(line, found) is None and found
    assert_valid(as_step(line, [], strict=False))


def test_an_overflowing_point_names_the_number():
    parsed = parse_plan("<plan>\n1. click(point=(1e309, 5))\n</plan>")
    assert parsed.steps == ()
    assert any("not a finite number" in p for p in parsed.problems)


@pytest.mark.parametrize("number", [LONG, "1" + "0" * 5000])
def test_an_overlong_step_number_is_a_numbering_problem(number):
    parsed = parse_plan(f"<plan>\n{number}. wait()\n</plan>")
    assert parsed.steps == (Step("wait"),)
    assert parsed.problems == ["step 1: steps should be numbered 1., 2., ... in order"]


def test_leading_zeros_still_number_a_step():
    assert parse_plan("<plan>\n01. wait()\n002. wait()\n</plan>").problems == []
    assert parse_plan("<plan>\n" + "0" * 5000 + "1. wait()\n</plan>").problems == []


def test_an_exception_inside_one_line_becomes_that_lines_problem(monkeypatch):
    from tracer1.plan import grammar

    def broken(xs, ys, problems):
        raise RuntimeError("a bug in reading points")

    monkeypatch.setattr(grammar, "_read_point", broken)
    grammar._read_line.cache_clear()
    parsed = parse_plan('<plan>\n1. click(point=(7, 8))\n2. press(key="enter")\n</plan>')
    grammar._read_line.cache_clear()
    assert parsed.steps == (Step("press", key="enter"),)
    assert any(p.startswith("step 1: ") and "RuntimeError" in p for p in parsed.problems)
    step, _, problems = parse_step("click(point=(7, 8))")
    assert step is None and any("RuntimeError" in p for p in problems)
    grammar._read_line.cache_clear()


def test_the_problems_kept_are_capped_with_a_count_of_the_rest():
    n = 10 * MAX_PROBLEMS
    parsed = parse_plan("<plan>\n" + "junk\n" * n + "1. wait()\n</plan>")
    assert len(parsed.problems) == MAX_PROBLEMS + 1
    assert parsed.problems[0] == "step 1: not a step: 'junk'"
    assert parsed.problems[-1] == f"... and {n - MAX_PROBLEMS} more problems"
    assert parsed.steps == (Step("wait"),) and not parsed.ok
    assert problem_kind(parsed.problems[-1]) == "... and N more problems"


# --- generated bad output: nothing raises, every Step is valid, rewards stay finite ------------------------

from hypothesis import given, settings  # noqa: E402

from plan_strategies import bad_lines, bad_outputs  # noqa: E402
from tracer1.config import RewardConfig  # noqa: E402
from tracer1.rewards import GroundingLabel, grounded_reward, score_plan  # noqa: E402

CFG = RewardConfig()
REFERENCE = (Step("click", target="OK", point=(500, 500)), Step("type", text="hi"), Step("finish", status="success"))
LABEL = GroundingLabel(action="click", box=(400, 400, 600, 600))


@settings(max_examples=400, deadline=None)
@given(bad_outputs)
def test_bad_outputs_parse_and_score_without_raising(text):
    parsed = parse_plan(text)
    assert len(parsed.problems) <= MAX_PROBLEMS + 1 and (parsed.steps or parsed.problems)
    for step in parsed.steps:
        assert_valid(step)
    reward = score_plan(text, REFERENCE, CFG, 5).reward
    assert math.isfinite(reward)
    executed = parsed.steps[0] if parsed.steps else None
    assert math.isfinite(grounded_reward(text, executed, LABEL, CFG))


@settings(max_examples=300, deadline=None)
@given(bad_lines())
def test_bad_lines_read_as_steps_without_raising(line):
    step, _, problems = parse_step(line)
    assert_valid(step)
    assert all(isinstance(p, str) for p in problems)
    for strict in (True, False):
        assert_valid(as_step(line, [], strict=strict))


def test_one_line_keeps_at_most_max_problems_too():
    line = 'call(tool="t", ' + ", ".join(["a=1"] * 60) + ")"  # 59 repeats, each a problem
    parsed = parse_plan(f"<plan>\n1. {line}\n</plan>")
    assert len(parsed.problems) == MAX_PROBLEMS + 1
    assert parsed.problems[-1] == f"... and {59 - MAX_PROBLEMS} more problems"  # counted once, at the plan's end
    assert parsed.steps == (Step("call", tool="t", args=(("a", 1),)),)
    step, _, problems = parse_step(line)
    assert step == parsed.steps[0] and len(problems) == MAX_PROBLEMS + 1
    assert problems[-1] == f"... and {59 - MAX_PROBLEMS} more problems"


def test_huge_steps_are_scored_without_entering_the_caches():
    """The parser's, the repetition test's and the text matcher's caches keep short strings only, so scoring
    megabytes of model output does not leave megabytes behind in them."""
    from tracer1.config import RewardConfig
    from tracer1.plan.grammar import _read_line
    from tracer1.plan.steps import CACHED_TEXT, step_signature
    from tracer1.rewards import grounded_reward, score_plan
    from tracer1.rewards.grounded import GroundingLabel
    from tracer1.rewards.match import _token_set

    huge = "word " * (CACHED_TEXT // 2)
    plan = f'<plan>\n1. type(target="{huge}", text="{huge}")\n2. type(target="{huge}", text="{huge}")\n</plan>'
    caches = (_read_line, step_signature, _token_set)
    before = [c.cache_info().currsize for c in caches]
    reference = (Step("type", target=huge, text=huge + "x"),)
    score_plan(plan, reference, RewardConfig(), 10)
    grounded_reward(plan, parse_plan(plan).steps[0], GroundingLabel(action="type", text=huge), RewardConfig())
    assert [c.cache_info().currsize for c in caches] == before


def test_the_junk_line_count_sees_every_kind_of_whitespace_as_the_parser_does():
    """Past MAX_PROBLEMS junk lines are only counted, fast, by deleting `HORIZONTAL_SPACE`: it must be all of
    Python's whitespace but the newline, or a line of, say, em spaces would count as a problem."""
    import re

    from tracer1.plan.grammar import HORIZONTAL_SPACE, _count_lines

    everything = {chr(c) for c in range(0x110000) if chr(c).isspace() or re.match(r"\s", chr(c))}
    assert set(HORIZONTAL_SPACE) == everything - {"\n"}
    lines = ["a", "", " ", "\u2003", "\xa0b\u3000", "\t\r", "x y", "\x1c"]  # 3 with something to read
    text = "\n".join(lines * 1000)
    assert _count_lines(text, 0, len(text), chunk=97) == 3 * 1000 == len(re.findall(r"^[^\S\n]*\S", text, re.M))
