"""Safe arithmetic: an expression is parsed with `ast` and evaluated node by node (never `eval`).

Numbers are exact fractions, so money adds up to the cent: `3.50 + 2.25 + 1.20` is `6.95`, not
6.949999999999999. Allowed: numbers, `+ - * / // % **` (and `^` as power), parentheses, `pi`, `e`, and the
functions `round abs min max sqrt floor ceil`. Results are written as integers when whole, as exact decimals
when they have a finite decimal expansion of at most 12 places, otherwise with 12 significant digits.
"""

from __future__ import annotations

import ast
import math
import operator
from fractions import Fraction

MAX_LENGTH = 500          # characters of an expression
MAX_EXPONENT = 4096       # |exponent| of an exact power
MAX_BITS = 1 << 16        # size of an exact intermediate result

Number = Fraction | float


class CalculatorError(ValueError):
    """The expression is not arithmetic the calculator can do; the message says why."""


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(exponent, Fraction) and exponent.denominator == 1 and isinstance(base, Fraction):
        n = int(exponent)
        if abs(n) > MAX_EXPONENT:
            raise CalculatorError(f"exponent {n} is too large")
        if base == 0 and n < 0:
            raise CalculatorError("division by zero")
        bits = max(abs(base.numerator).bit_length(), base.denominator.bit_length())
        if bits * abs(n) > MAX_BITS:
            raise CalculatorError("the result is too large")
        return base ** n
    try:
        result = float(base) ** float(exponent)
    except (OverflowError, ZeroDivisionError) as exc:
        raise CalculatorError(str(exc)) from None
    if isinstance(result, complex):
        raise CalculatorError("the result is not a real number")
    return result


def _divide(a: Number, b: Number) -> Number:
    if b == 0:
        raise CalculatorError("division by zero")
    return a / b


def _floordiv(a: Number, b: Number) -> Number:
    if b == 0:
        raise CalculatorError("division by zero")
    return Fraction(math.floor(a / b)) if isinstance(a, Fraction) and isinstance(b, Fraction) else float(a // b)


def _mod(a: Number, b: Number) -> Number:
    if b == 0:
        raise CalculatorError("division by zero")
    return a % b


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: _divide,
           ast.FloorDiv: _floordiv, ast.Mod: _mod, ast.Pow: _power, ast.BitXor: _power}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _round(x: Number, digits: Number = Fraction(0)) -> Number:
    if not (isinstance(digits, Fraction) and digits.denominator == 1) or abs(digits) > 20:
        raise CalculatorError("round() takes a whole number of digits")
    if isinstance(x, float):
        return float(round(x, int(digits)))
    return Fraction(round(x, int(digits)))


def _sqrt(x: Number) -> Number:
    if x < 0:
        raise CalculatorError("square root of a negative number")
    if isinstance(x, Fraction):
        n, d = math.isqrt(x.numerator), math.isqrt(x.denominator)
        if n * n == x.numerator and d * d == x.denominator:
            return Fraction(n, d)
    return math.sqrt(x)


def _whole(f):
    return lambda x: Fraction(f(x)) if isinstance(x, Fraction) else float(f(x))


_FUNCTIONS = {
    "round": _round, "abs": abs, "sqrt": _sqrt, "floor": _whole(math.floor), "ceil": _whole(math.ceil),
    "min": lambda *xs: min(xs), "max": lambda *xs: max(xs),
}
_NAMES = {"pi": math.pi, "e": math.e}


def _eval(node: ast.AST) -> Number:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise CalculatorError(f"{node.value!r} is not a number")
        return Fraction(repr(node.value)) if isinstance(node.value, float) else Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _check(_BINARY[type(node.op)](_eval(node.left), _eval(node.right)))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS:
        if node.keywords:
            raise CalculatorError(f"{node.func.id}() takes no keyword arguments")
        args = [_eval(a) for a in node.args]
        if not args:
            raise CalculatorError(f"{node.func.id}() needs an argument")
        try:
            return _check(_FUNCTIONS[node.func.id](*args))
        except TypeError:
            raise CalculatorError(f"wrong number of arguments to {node.func.id}()") from None
    what = type(node).__name__
    if isinstance(node, ast.Name):
        what = f"the name {node.id!r}"
    elif isinstance(node, ast.Call):
        what = f"the function {node.func.id}()" if isinstance(node.func, ast.Name) else "that call"
    raise CalculatorError(f"{what} is not allowed in a calculation")


def _check(value: Number) -> Number:
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("the result is not a finite number")
    if isinstance(value, Fraction) and max(abs(value.numerator).bit_length(),
                                           value.denominator.bit_length()) > MAX_BITS:
        raise CalculatorError("the result is too large")
    return value


def evaluate(expression: str) -> Number:
    """The exact value of `expression` (a Fraction, or a float after sqrt/pi/fractional powers)."""
    if not isinstance(expression, str) or not expression.strip():
        raise CalculatorError("the expression is empty")
    if len(expression) > MAX_LENGTH:
        raise CalculatorError(f"the expression is longer than {MAX_LENGTH} characters")
    text = expression.replace("×", "*").replace("÷", "/").replace("−", "-")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError) as exc:
        raise CalculatorError(f"cannot read {expression!r} ({exc.msg if hasattr(exc, 'msg') else exc})") from None
    except (RecursionError, MemoryError):
        raise CalculatorError("the expression is nested too deeply") from None
    try:
        return _eval(tree)
    except RecursionError:
        raise CalculatorError("the expression is nested too deeply") from None
    except (OverflowError, ZeroDivisionError, ValueError) as exc:
        if isinstance(exc, CalculatorError):
            raise
        raise CalculatorError(str(exc)) from None


def format_number(value: Number) -> str:
    """`value` as the calculator writes it: "21", "6.95", "0.333333333333"."""
    if isinstance(value, Fraction):
        if value.denominator == 1:
            return str(value.numerator)
        d = value.denominator
        twos = fives = 0
        while d % 2 == 0:
            d //= 2
            twos += 1
        while d % 5 == 0:
            d //= 5
            fives += 1
        places = max(twos, fives)
        if d == 1 and places <= 12:
            sign = "-" if value < 0 else ""
            scaled = abs(value.numerator) * (10 ** places // value.denominator)
            whole, frac = divmod(scaled, 10 ** places)
            return f"{sign}{whole}.{str(frac).rjust(places, '0')}"
        value = float(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return format(value, ".12g")


def calculate(expression: str) -> str:
    """Evaluate `expression` and write the result (raises CalculatorError with the reason)."""
    return format_number(evaluate(expression))
