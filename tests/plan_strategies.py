"""Hypothesis strategies for valid plan-language steps, shared by the plan and reward tests."""

from hypothesis import strategies as st

from tracer1.plan import DIRECTIONS, FINISH_STATUSES, Step

any_text = st.text(max_size=30)  # quotes, backslashes, newlines and tag-like text included
nonblank = st.text(min_size=1, max_size=30).filter(str.strip)
points = st.tuples(st.integers(0, 1000), st.integers(0, 1000))
keys = st.from_regex(r"[a-z0-9_]{1,8}(\+[a-z0-9_]{1,8})?", fullmatch=True)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
arg_values = st.one_of(any_text, st.integers(-10**9, 10**9), st.booleans(),
                       st.floats(allow_nan=False, allow_infinity=False))


@st.composite
def located(draw, action):
    target, point = draw(st.one_of(
        st.tuples(nonblank, st.none()), st.tuples(st.none(), points), st.tuples(nonblank, points)))
    return Step(action, target=target, point=point)


@st.composite
def tool_calls(draw):
    arg_names = draw(st.lists(names.filter(lambda n: n != "tool"), max_size=3, unique=True))
    return Step("call", tool=draw(names), args=tuple((n, draw(arg_values)) for n in arg_names))


steps = st.one_of(
    located("click"),
    located("long_press"),
    st.builds(lambda t, p, text: Step("type", target=t, point=p, text=text), st.none() | nonblank,
              st.none() | points, any_text),
    st.builds(lambda t, d: Step("scroll", target=t, direction=d), st.none() | nonblank, st.sampled_from(DIRECTIONS)),
    st.builds(lambda k: Step("press", key=k), keys),
    st.builds(lambda a: Step("open_app", app=a), nonblank),
    st.just(Step("wait")),
    st.builds(lambda s: Step("finish", status=s), st.none() | st.sampled_from(FINISH_STATUSES)),
    st.builds(lambda t: Step("answer", text=t), any_text),
    tool_calls(),
)
plans = st.lists(steps, min_size=1, max_size=10).map(tuple)


# --- bad model output (issue 17): what once made the parser raise or slow down ---------------------------

extreme_numbers = st.one_of(
    st.from_regex(r"-?[0-9]{1,3}(\.[0-9]{1,3})?[eE][+-]?[0-9]{3,5}", fullmatch=True),  # 1e309, -5.5E-400
    st.integers(90, 6000).map(lambda n: "9" * n),                                      # past MAX_DIGITS, 4300
    st.integers(90, 6000).map(lambda n: "0." + "1" * n),
    st.sampled_from(["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "INF", "1e309", "-1e309", "1e999",
                     "0x10", "1_000", "+5", ".5", "5.", "1e", "--1"]),
    st.floats().map(repr),                                                            # includes nan, inf
    st.integers().map(str),
)
_actions = st.sampled_from(["click", "long_press", "type", "scroll", "press", "call", "wait", "answer", "x"])
_fields = st.sampled_from(["point", "target", "text", "direction", "key", "tool", "n", "box"])


@st.composite
def bad_lines(draw):
    """One step-like line with extreme numbers (as a point, an [x, y] pair, an argument or the step number),
    nan/inf spellings, many arguments, or long runs of quotes, backslashes, parentheses and digits."""
    number = draw(st.one_of(st.integers(1, 3).map(str), extreme_numbers))
    n = draw(extreme_numbers)
    kind = draw(st.integers(0, 5))
    if kind == 0:
        body = f"point=({n}, {draw(extreme_numbers)})"
    elif kind == 1:
        body = f'tool="t", {draw(_fields)}=[{n}, {draw(extreme_numbers)}]'
    elif kind == 2:
        body = f"{draw(_fields)}={n}"
    elif kind == 3:  # many arguments, some repeated
        names = draw(st.lists(st.sampled_from(["a", "b", "c"]) | st.integers(0, 10**4).map("a{}".format),
                              min_size=50, max_size=400))
        body = 'tool="t", ' + ", ".join(f"{name}={i}" for i, name in enumerate(names))
    elif kind == 4:  # long runs of one troublesome character
        body = draw(st.sampled_from(['text="', "text='", "text=", "point=("])) + \
            draw(st.sampled_from(['"', "\\", "(", "9", "'", "\\\"", "e"])) * draw(st.integers(100, 20_000))
    else:
        body = draw(st.text(max_size=40))
    return f"{number}. {draw(_actions)}({body}{draw(st.sampled_from([')', '', ')) ', '</plan>']))}"


bad_outputs = st.builds(
    lambda lines, block, closed: ("<plan>\n" if block else "") + "\n".join(lines) + ("\n</plan>" if closed else ""),
    st.lists(bad_lines(), min_size=1, max_size=5), st.booleans(), st.booleans())
