"""The toolbox's tools and their registry.

    TOOLS["calculator"]("3.50 + 2.25")                      # "5.75"
    call_tool("ocr", {"image": "img0"}, images)             # ToolResult(ok=True, text="CORNER SHOP\\n...")

Each tool is a plain function of its arguments returning the result as text; `TOOLS` maps each name to a
`Tool` (callable, with a one-line `doc` and its parameters). `call_tool` is what an executor uses: it resolves
image names against the task's images, checks the arguments and turns every failure into a `ToolResult` with
`ok=False` instead of an exception.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tracer1.envs.toolbox.calculator import CalculatorError, calculate
from tracer1.envs.toolbox.ocr import ocr as _ocr
from tracer1.envs.toolbox.sandbox import Sandbox, SandboxLimits
from tracer1.envs.toolbox.vision import COLOURS, SHAPES, detect_shapes

MAX_RESULT_CHARS = 2000     # a tool's text result is cut here (python's stdout, a long OCR)


class ToolError(ValueError):
    """A call the tool cannot carry out (bad arguments, unknown object); the message says why."""


def ocr(image) -> str:
    """Read all text in an image, one line per line of text."""
    return _ocr(image)


_GENERIC = {"shape", "shapes", "object", "objects", "thing", "things", "item", "items", "figure", "figures"}
_COLOUR_ALIASES = {"violet": "purple", "grey": None}


def _singular(word: str) -> str:
    return word[:-1] if word.endswith("s") and word[:-1] in SHAPES else word


def parse_object(phrase: str) -> tuple[str | None, str | None]:
    """("red", "circle") from "red circles"; (None, "square") from "squares"; ("blue", None) from "blue
    shapes". Raises ToolError for words that are neither a known colour nor a shape."""
    colour = shape = None
    for word in re.findall(r"[a-z]+", phrase.lower()):
        word = _COLOUR_ALIASES.get(word, word) or word
        if word in COLOURS:
            if colour not in (None, word):
                raise ToolError(f"{phrase!r} names two colours")
            colour = word
        elif _singular(word) in SHAPES:
            if shape not in (None, _singular(word)):
                raise ToolError(f"{phrase!r} names two shapes")
            shape = _singular(word)
        elif word in _GENERIC or word in ("the", "all", "of", "and", "coloured", "colored", "in", "image"):
            continue
        else:
            raise ToolError(f"cannot count {word!r}: name a colour ({', '.join(COLOURS)}) and/or a shape "
                            f"({', '.join(SHAPES)})")
    if colour is None and shape is None:
        raise ToolError("say what to count: a colour and/or a shape, e.g. 'red circles'")
    return colour, shape


def count(image, object: str | None = None, shape: str | None = None, colour: str | None = None,
          color: str | None = None) -> str:
    """Count the shapes of a colour and/or kind (circle, square, triangle) in an image."""
    phrase = " ".join(p for p in (colour or color, shape, object) if p)
    want_colour, want_shape = parse_object(phrase)
    n = sum(1 for s in detect_shapes(image)
            if (want_colour is None or s.colour == want_colour) and (want_shape is None or s.shape == want_shape))
    return str(n)


def calculator(expression: str) -> str:
    """Evaluate arithmetic exactly: + - * / // % ** ( ), round abs min max sqrt floor ceil."""
    try:
        return calculate(expression)
    except CalculatorError as exc:
        raise ToolError(str(exc)) from None


_sandbox: Sandbox | None = None


def python(code: str, timeout_s: float = 10.0, memory_mb: int = 512) -> str:
    """Run Python code in a sandbox and return what it prints."""
    global _sandbox
    if _sandbox is None:
        _sandbox = Sandbox()
    result = _sandbox.run(code, SandboxLimits(timeout_s=timeout_s, memory_mb=memory_mb))
    if not result.ok:
        raise ToolError(result.error or "the code failed")
    return result.stdout.strip()


@dataclass(frozen=True)
class Tool:
    """A tool of the registry: call it like its function; `doc` is its one-line description."""

    name: str
    fn: Callable[..., str]
    doc: str
    params: tuple[str, ...]
    required: tuple[str, ...]
    images: tuple[str, ...] = ()     # parameters that take an image (by name, in a task)
    example: str = ""                # a call in the plan language

    def __call__(self, *args, **kwargs) -> str:
        return self.fn(*args, **kwargs)


def _tool(fn, name: str, params: tuple[str, ...], example: str, images: tuple[str, ...] = ()) -> Tool:
    signature = inspect.signature(fn)
    required = tuple(p for p in params if signature.parameters[p].default is inspect.Parameter.empty)
    return Tool(name, fn, (fn.__doc__ or "").strip().splitlines()[0], params, required, images, example)


TOOLS: dict[str, Tool] = {
    "ocr": _tool(ocr, "ocr", ("image",), 'call(tool="ocr", image="img0")', images=("image",)),
    "calculator": _tool(calculator, "calculator", ("expression",),
                        'call(tool="calculator", expression="(3.50 + 2.25) * 2")'),
    "count": _tool(count, "count", ("image", "object", "shape", "colour", "color"),
                   'call(tool="count", image="img0", object="red circles")', images=("image",)),
    "python": _tool(python, "python", ("code",), 'call(tool="python", code="print(sum(range(10)))")'),
}


def tool_descriptions() -> str:
    """One line per tool, `name: doc  e.g. call(...)`, for prompts."""
    return "\n".join(f"{t.name}: {t.doc} e.g. {t.example}" for t in TOOLS.values())


@dataclass(frozen=True)
class ToolResult:
    ok: bool
    text: str                       # the result (on failure: "error: <why>")
    error: str | None = None


def call_tool(name: str, args: Mapping[str, Any] | tuple, images: Mapping[str, Any] | None = None,
              *, python_timeout_s: float = 10.0, python_memory_mb: int = 512) -> ToolResult:
    """Call tool `name` with keyword `args` (a dict or a `Step.args` tuple). Image arguments name one of
    `images`. Never raises: a bad call or a failing tool gives `ok=False` and the reason."""
    args = dict(args)
    tool = TOOLS.get(name) if isinstance(name, str) else None
    if tool is None:
        return _failed(f"unknown tool {name!r}; tools: {', '.join(TOOLS)}")
    unknown = [k for k in args if k not in tool.params]
    if unknown:
        return _failed(f"{name} takes no argument {', '.join(unknown)}; it takes {', '.join(tool.params)}")
    missing = [k for k in tool.required if k not in args]
    if missing:
        return _failed(f"{name} needs {', '.join(k + '=' for k in missing)}")
    images = images or {}
    for key in tool.images:
        if key not in args:
            continue
        value = args[key]
        if not isinstance(value, str) or value not in images:
            return _failed(f"no image named {value!r}; this task has {', '.join(images) or 'no images'}")
        args[key] = images[value]
    for key, value in args.items():
        if key not in tool.images and not isinstance(value, str):
            args[key] = str(value)
    if name == "python":
        args.update(timeout_s=python_timeout_s, memory_mb=python_memory_mb)
    try:
        text = tool.fn(**args)
    except ToolError as exc:
        return _failed(str(exc))
    except Exception as exc:  # a tool bug must not take the caller down
        return _failed(f"{name} failed: {type(exc).__name__}: {exc}")
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + " ...[truncated]"
    return ToolResult(True, text)


def _failed(why: str) -> ToolResult:
    return ToolResult(False, f"error: {why}", why)
