"""Reading and writing plan text.

    <think> free reasoning </think>
    <plan>
    1. click(target="the Wi-Fi row in Settings")
    2. type(target="the search box", text="weather in Paris")
    3. scroll(direction="down")
    </plan>

`parse_plan` never raises: it returns the steps it could read and a list of problems (the first `MAX_PROBLEMS`,
then one entry counting the rest), and the rewards decide what a flawed plan is worth. Whatever goes wrong
inside one line, even a bug here, becomes a problem of that line. Numbers that are not finite (`1e309`) or
longer than `MAX_DIGITS` characters are problems, so every value in a `Step` is finite and every point is on
the grid. Time and memory grow linearly with the text. `format_plan` writes the canonical text, and
`parse_plan(format_plan(s)).steps == s` for every valid sequence of steps. Strings are double-quoted with `\\`,
`\"` and `\n` escaped, so a step is always one line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from tracer1.plan.steps import (
    ACTIONS, GRID, ArgValue, Point, Step, field_problems, short_cache, step_problems,
)

MAX_STEPS = 256  # bounds the work on runaway outputs; far above any useful horizon
_MAX_QUOTE = 60  # characters of a bad line quoted back in a problem
MAX_PROBLEMS = 50  # problems kept per plan (and per line); one last entry counts the rest
MAX_ARGS = 64  # arguments read per step; a longer call is junk, refused without reading the rest
MAX_DIGITS = 100  # a longer number is junk, and int() refuses past 4,300 digits

# "3. click(" / "3) click(" / "- click(" / "click(" at the start of a line
_STEP_HEAD = re.compile(r"\s*(?:(\d++)\s*[.):]|[-*])?\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_NUMBER = r"-?\d++(?:\.\d++)?+(?:[eE][+-]?\d++)?+"  # possessive: a long digit run is never re-scanned
_ARG = re.compile(
    r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?:"
    # unrolled and possessive: an unclosed string fails at its end without backtracking through it
    r'"([^"\\]*+(?:\\.[^"\\]*+)*+)"'                             # 2: "double-quoted"
    r"|'([^'\\]*+(?:\\.[^'\\]*+)*+)'"                            # 3: 'single-quoted'
    rf"|[(\[]\s*({_NUMBER})\s*,\s*({_NUMBER})\s*[)\]]"           # 4,5: (x, y) or [x, y]
    rf"|({_NUMBER})"                                             # 6: number
    r"|(true|false|True|False)"                                  # 7: boolean
    r")\s*"
)
_CLOSE = re.compile(r"\s*\)")
_ESCAPE = re.compile(r"\\(.)")
_UNESCAPES = (("\\\"", "\""), ("\\'", "'"), ("\\n", "\n"), ("\\t", "\t"), ("\\r", "\r"))  # any other \X is X


@dataclass
class ParsedPlan:
    """What `parse_plan` could read: the steps in order, the reasoning, and every problem it met."""

    steps: tuple[Step, ...] = ()
    problems: list[str] = field(default_factory=list)
    think: str | None = None

    @property
    def ok(self) -> bool:
        """True when the text was a well-formed plan with at least one step."""
        return bool(self.steps) and not self.problems


# --- writing ----------------------------------------------------------------------------------------------

def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _format_value(value: ArgValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return quote(value)


def format_step(step: Step) -> str:
    """The canonical call text of one step, e.g. `type(target="the search box", text="Paris")`."""
    parts = []
    for name in ACTIONS[step.action].fields if step.action in ACTIONS else ():
        if name == "args":
            parts.extend(f"{key}={_format_value(value)}" for key, value in step.args)
            continue
        value = getattr(step, name)
        if value is None:
            continue
        parts.append(f"point=({value[0]}, {value[1]})" if name == "point" else f"{name}={quote(value)}")
    return f"{step.action}({', '.join(parts)})"


def format_plan(steps, think: str | None = None) -> str:
    """The canonical plan text: an optional think block, then the numbered steps inside <plan> tags."""
    lines = [f"<think>{think}</think>"] if think is not None else []
    lines.append("<plan>")
    lines.extend(f"{i}. {format_step(step)}" for i, step in enumerate(steps, 1))
    lines.append("</plan>")
    return "\n".join(lines)


# --- reading ----------------------------------------------------------------------------------------------

def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _MAX_QUOTE else text[:_MAX_QUOTE] + "..."


def _unescape(body: str) -> str:
    if "\\" not in body:
        return body
    # Split at escaped backslashes (paired left to right, as the string was read), so each backslash left in a
    # piece escapes the next character; then no callback per escape (long strings of escapes stay fast).
    pieces = body.split("\\\\")
    for i, piece in enumerate(pieces):
        if "\\" in piece:
            for escaped, char in _UNESCAPES:
                piece = piece.replace(escaped, char)
            pieces[i] = _ESCAPE.sub(r"\1", piece) if "\\" in piece else piece
    return "\\".join(pieces)


class _Problems(list):
    """A problem list that keeps the first `MAX_PROBLEMS` and counts the rest, so junk cannot fill memory."""

    dropped = 0

    @property
    def full(self) -> bool:
        return len(self) >= MAX_PROBLEMS

    def append(self, problem: str) -> None:
        if len(self) < MAX_PROBLEMS:
            super().append(problem)
        else:
            self.dropped += 1

    def extend(self, problems) -> None:
        for problem in problems:
            self.append(problem)

    def final(self) -> list[str]:
        return list(self) + ([f"... and {self.dropped} more problems"] if self.dropped else [])


def _read_number(text: str, problems: list[str]) -> int | float | None:
    """The number `text` (as `_NUMBER` matched it), or None with a problem when it is too long or not finite."""
    if len(text) > MAX_DIGITS:
        problems.append(f"number {_clip(text)} is longer than {MAX_DIGITS} characters; ignored it")
        return None
    value = float(text) if ("." in text or "e" in text or "E" in text) else int(text)
    if not math.isfinite(value):
        problems.append(f"{text} is not a finite number; ignored it")
        return None
    return value


def _read_point(xs: str, ys: str, problems: list[str]) -> Point | None:
    if xs.isdigit() and ys.isdigit() and len(xs) <= 4 and len(ys) <= 4:  # the usual case: "(512, 88)"
        x, y = int(xs), int(ys)
        if x <= GRID and y <= GRID:
            return (x, y)
    if len(xs) > MAX_DIGITS or len(ys) > MAX_DIGITS:
        problems.append(f"point ({_clip(xs)}, {_clip(ys)}) has a number longer than {MAX_DIGITS} characters; "
                        "ignored it")
        return None
    x, y = float(xs), float(ys)
    if not (math.isfinite(x) and math.isfinite(y)):
        problems.append(f"point ({xs}, {ys}) is not a finite number; ignored it")
        return None
    if "." in xs + ys and 0 <= x <= 1 and 0 <= y <= 1 and (x, y) != (0.0, 0.0):
        problems.append(f"point ({xs}, {ys}) looks like 0..1 units; points are on a 0..{GRID} grid")
    if not (0 <= x <= GRID and 0 <= y <= GRID):
        problems.append(f"point ({xs}, {ys}) is outside 0..{GRID}; clamped")
    return (min(GRID, max(0, round(x))), min(GRID, max(0, round(y))))


class _Line(NamedTuple):
    """What one line that starts like a step holds. Problems carry no position: callers prefix it."""

    number: str | None           # the step number as written ("3" in "3. click(...)"), None if unnumbered
    known: bool                  # the action name is in the vocabulary
    step: Step | None            # None when the call cannot be read
    rest: str                    # text after the closing parenthesis
    problems: tuple[str, ...]    # the first MAX_PROBLEMS
    dropped: int = 0             # problems beyond those


def parse_step(line: str, where: str = "step") -> tuple[Step | None, str, list[str]]:
    """Read one call such as `click(target="OK")` at the start of `line`.

    Returns the step (None when it cannot be read), the rest of the line after the closing parenthesis,
    and the problems met, each prefixed with `where`. Never raises.
    """
    read = _read_any(line)
    if read is None:
        return None, line, [f"{where}: not a step: {_clip(line)!r}"]
    more = [f"... and {read.dropped} more problems"] if read.dropped else []
    return read.step, read.rest, [f"{where}: {p}" for p in read.problems] + more


def as_step(value: object, problems: list[str], *, where: str = "step", strict: bool = True) -> Step | None:
    """`value` — a `Step` or one step's text — as a valid `Step`, else None; what is wrong goes to `problems`.

    Text after the step is reported and ignored. A step read with problems (an argument ignored, a point
    clamped) is refused when `strict` — an environment must not act on a guess — and kept with its problems
    otherwise (an executor grounds what it can and says what it dropped). Never raises."""
    if isinstance(value, str):
        step, rest, found = parse_step(value.strip(), where=where)
        problems.extend(found)
        if step is None:
            return None
        if rest.strip():
            problems.append(f"{where}: ignored text after the step: {_clip(rest.strip())!r}")
        return None if strict and found else step
    if not isinstance(value, Step):
        problems.append(f"{where}: a step is a Step or its text, not {type(value).__name__}")
        return None
    found = step_problems(value)
    problems.extend(f"{where}: {p}" for p in found)
    return None if found else value


def _read_any(line: str) -> _Line | None:
    """`_read_line`, where an exception inside becomes the line's problem."""
    try:
        return _read_line(line)
    except Exception as exc:  # noqa: BLE001 — a bug here must cost one line, never the whole parse
        return _Line(None, True, None, "", (f"could not read this line ({type(exc).__name__}: {_clip(str(exc))})",))


@short_cache(1 << 14)  # the G samples of a GRPO group repeat most lines; results are immutable
def _read_line(line: str) -> _Line | None:
    head = _STEP_HEAD.match(line)
    if head is None:
        return None
    problems = _Problems()
    step, rest = _read_call(line, head, problems)
    return _Line(head.group(1), head.group(2).lower() in ACTIONS, step, rest, tuple(problems), problems.dropped)


def _read_call(line: str, head: re.Match, problems: list[str]) -> tuple[Step | None, str]:
    action = head.group(2).lower()
    spec = ACTIONS.get(action)
    if spec is None:
        problems.append(f"unknown action {_clip(head.group(2))!r}; known: {', '.join(ACTIONS)}")
        return None, ""
    values: dict = {}
    args: list[tuple[str, ArgValue]] = []
    arg_names: set[str] = set()  # a set, not a scan of `args`: a line with many arguments stays linear
    pos = head.end()
    close = _CLOSE.match(line, pos)
    read = 0
    while close is None:
        read += 1
        if read > MAX_ARGS:
            problems.append(f"more than {MAX_ARGS} arguments; cannot read the step")
            return None, ""
        m = _ARG.match(line, pos)
        if m is None:
            problems.append(f"cannot read the arguments at {_clip(line[pos:])!r}")
            return None, ""
        name, kind = m.group(1), m.lastindex  # the alternative that matched, see _ARG
        if kind <= 3:
            value = _unescape(m.group(kind))
        elif kind == 5:
            value = _read_point(m.group(4), m.group(5), problems)
        elif kind == 6:
            value = _read_number(m.group(6), problems)
        else:
            value = m.group(7) in ("true", "True")
        if value is None:  # a number that cannot be a value; the problem is listed
            pass
        elif name in values or name in arg_names:
            problems.append(f"argument {_clip(name)}= given twice; kept the first")
        elif name in spec.fields and name != "args":
            values[name] = value
        elif action == "call":
            args.append((name, value))
            arg_names.add(name)
        else:
            problems.append(f"{action} takes no argument {_clip(name)}=; ignored it")
        pos = m.end()
        if line.startswith(",", pos):
            close = _CLOSE.match(line, pos + 1)  # a trailing comma before ')' is tolerated
            pos += 1
        elif line.startswith(")", pos):
            break
        else:
            problems.append(f"expected ',' or ')' at {_clip(line[pos:])!r}")
            return None, ""
    pos = close.end() if close is not None else pos + 1
    for name, value in list(values.items()):
        if name == "point":
            if not isinstance(value, tuple):
                problems.append("point= should be (x, y); ignored it")
                del values[name]
        elif not isinstance(value, str):
            problems.append(f"{name}= should be a quoted string; read {value!r} as text")
            if isinstance(value, tuple):
                del values[name]
            else:
                values[name] = _format_value(value)
        elif name in _LOWERCASE:
            values[name] = value.strip().lower()
    invalid = field_problems(action, values, tuple(args))
    if invalid:
        problems.extend(invalid)
        return None, line[pos:]
    return Step(action, args=tuple(args), **values), line[pos:]


_LOWERCASE = ("direction", "key", "status")  # written in any case, canonical in lower case


def _split_think(text: str, problems: list[str]) -> tuple[str | None, int]:
    """The reasoning, and where to look for the plan. A <think> only counts when it comes before <plan>,
    so tag-like text inside a step's strings is never mistaken for a block."""
    t, p = text.find("<think>"), text.find("<plan>")
    if t < 0 or 0 <= p < t:
        return None, 0
    end = text.find("</think>", t)
    if end < 0:
        problems.append("<think> is not closed")
        return text[t + len("<think>"):], t + len("<think>")
    return text[t + len("<think>"):end], end + len("</think>")


def parse_plan(text) -> ParsedPlan:
    """Read a planner's output into steps plus the problems met. Never raises, whatever `text` is."""
    if not isinstance(text, str):
        return ParsedPlan(problems=[f"output is {type(text).__name__}, not text"])
    try:
        return _parse_plan(text)
    except Exception as exc:  # noqa: BLE001 — lines fail alone (see _read_any); this is the last guard
        return ParsedPlan(problems=[f"could not read the output ({type(exc).__name__}: {_clip(str(exc))})"])


# `_STEP_HEAD` at the start of a line of a multi-line text (no match spans a newline), and a plan's end
# (possessive: nothing is re-scanned, which keeps these searches fast)
_LINE_HEAD = r"^[^\S\n]*+(?:\d++[^\S\n]*+[.):]|[-*])?+[^\S\n]*+"
_ANY_HEAD = re.compile(_LINE_HEAD + r"[A-Za-z_][A-Za-z0-9_]*+[^\S\n]*+\(", re.M)
_KNOWN_HEAD = re.compile(_LINE_HEAD + rf"(?i:{'|'.join(ACTIONS)})[^\S\n]*+\(|^[^\S\n]*+</plan>", re.M)
_SPACE = re.compile(r"\s*+")
# Every character `\s` and str.isspace() call whitespace except "\n": deleted, a line with nothing else is empty
HORIZONTAL_SPACE = ("\t\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
                    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_DELETE_SPACE = str.maketrans("", "", HORIZONTAL_SPACE)


def _skip_junk(region: str, pos: int, in_block: bool, problems: _Problems) -> int:
    """Where the next line that `_parse_plan` must read starts (past the end: none), from line start `pos`.

    Out of a block only known steps and a closing tag matter; in one, with the problems full, any step-like
    line or `</plan>`, and the lines skipped are counted as dropped "not a step" problems. Searching with a
    regex (from the line of the first "(" or tag: every head ends in one) and counting with str methods, not a
    Python loop per line, keeps megabytes of one-character junk lines fast."""
    first = region.find("(", pos)
    if not in_block:
        tag = region.find("</plan>", pos, first if first >= 0 else len(region))
        first = tag if tag >= 0 else first
    head = None
    if first >= 0:
        line = max(pos, region.rfind("\n", pos, first) + 1)
        head = (_ANY_HEAD if in_block else _KNOWN_HEAD).search(region, line)
    target = head.start() if head is not None else len(region) + 1
    if in_block:
        close = region.find("</plan>", pos, target)
        if close >= 0:
            target = max(pos, region.rfind("\n", pos, close) + 1)
        problems.dropped += _count_lines(region, pos, target)
    return target


def _count_lines(text: str, pos: int, end: int, chunk: int = 1 << 16) -> int:
    """The non-blank lines in text[pos:end] (`pos` at a line start), a chunk of lines at a time so the lists
    stay small: with all but "\n" of the whitespace deleted, each non-blank line is one word of `split()`."""
    count = 0
    while pos < end:
        stop = text.find("\n", min(pos + chunk, end), end)
        stop = end if stop < 0 else stop + 1
        count += len(text[pos:stop].translate(_DELETE_SPACE).split())
        pos = stop
    return count


def _parse_plan(text: str) -> ParsedPlan:
    problems = _Problems()
    think, search_from = _split_think(text, problems)
    start = text.find("<plan>", search_from)
    in_block = start >= 0
    if in_block:
        region = text[start + len("<plan>"):]
    else:
        problems.append("no <plan> block; read numbered steps from the text")
        region = text[search_from:]
    steps: list[Step] = []
    closed = False
    number = 0  # step lines seen, readable or not
    pos, end = 0, len(region)
    while pos <= end:
        if not in_block or problems.full:  # what is left to do with junk lines is to count them: skip to a head
            pos = _skip_junk(region, pos, in_block, problems)
            if pos > end:
                break
        pos = _SPACE.match(region, pos).end()  # blank lines, even a million, in one step
        stop = region.find("\n", pos)
        stop = end if stop < 0 else stop
        line = region[pos:stop].strip()
        pos = stop + 1
        if not line:
            continue
        if line.startswith("</plan>"):
            closed = True
            break
        read = _read_any(line)
        if read is None or (not in_block and not read.known):
            if in_block:  # outside a block, prose around the steps is expected
                if problems.full:  # junk lines can be millions: count them without writing the message
                    problems.dropped += 1
                else:
                    before, _, _ = line.partition("</plan>")
                    problems.append(f"step {number + 1}: not a step: {_clip(before)!r}")
                if "</plan>" in line:
                    closed = True
                    break
            continue
        number += 1
        if number > MAX_STEPS:
            problems.append(f"more than {MAX_STEPS} steps; read the first {MAX_STEPS}")
            break
        where = f"step {number}"
        if read.number is None or read.number.lstrip("0") != str(number):  # no int(): it may have 5,000 digits
            problems.append(f"{where}: steps should be numbered 1., 2., ... in order")
        problems.extend(f"{where}: {p}" for p in read.problems)
        problems.dropped += read.dropped
        if read.step is not None:
            steps.append(read.step)
        rest = read.rest.strip()
        if rest.startswith("</plan>"):
            closed = True
            break
        if rest and read.step is not None:
            problems.append(f"{where}: text after the step: {_clip(rest)!r}")
    if in_block and not closed:
        problems.append("<plan> is not closed")
    if not steps:
        problems.append("no step could be read")
    return ParsedPlan(steps=tuple(steps), problems=problems.final(), think=think)


_STEP_PREFIX = re.compile(r"^step \d+: ")  # parse_plan's `where` prefix
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_PAIR = re.compile(r"\(-?\d+(?:\.\d+)?, -?\d+(?:\.\d+)?\)")
_MORE = re.compile(r"^\.\.\. and \d+ more problems$")  # the count `parse_plan` ends a capped list with


def problem_kind(problem: str) -> str:
    """A parse problem without its particulars (the step number, quoted text, a point), so problems can be
    counted by kind: "step 7: expected ',' or ')' at 'Save\")'" → "expected ',' or ')' at '…'"."""
    if _MORE.match(problem):
        return "... and N more problems"
    return _PAIR.sub("(x, y)", _QUOTED.sub("'…'", _STEP_PREFIX.sub("", problem)))
