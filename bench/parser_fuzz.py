"""Bad model output through the parser and both rewards: exceptions (there must be none), the slowest input, and
memory per input byte.

`N_STRINGS` strings are generated with a fixed seed from the kinds of output that once made the parser raise or
slow down: numbers that overflow (`1e309`) or run past Python's int-to-string digit limit, as a point, an
[x, y] pair, an argument or the step number; `nan`/`inf` spellings; calls with many (and repeated) arguments;
long runs of quotes, backslashes, parentheses and digits; random fragments of the plan language; valid plans
with a piece cut out and junk put in. Each goes through `parse_plan`, `score_plan` (stage 1, against a fixed
reference) and `grounded_reward` (stage 2, its first step as the executed step, against a fixed label); any
exception is counted with its input. Then one input of each pathological kind at 250 KB, 500 KB and 1 MB is
parsed: the best of three times, and the peak memory `tracemalloc` traces while parsing it, per input byte.

Prints the numbers and writes bench/results/parser_fuzz.json. Run with `make bench` (or `python
bench/parser_fuzz.py [N_STRINGS]`).
"""

from __future__ import annotations

import os
import random
import sys
import time
import tracemalloc
import traceback

from common import RESULTS, run_facts, save_results

from tracer1.config import RewardConfig
from tracer1.plan import DIRECTIONS, Step, format_plan, parse_plan
from tracer1.plan.grammar import _read_line
from tracer1.rewards import GroundingLabel, grounded_reward, score_plan

N_STRINGS = 100_000
SIZES = (250_000, 500_000, 1_000_000)
CFG = RewardConfig()
REFERENCE = (Step("click", target="OK", point=(500, 500)), Step("type", text="hi"), Step("finish", status="success"))
LABEL = GroundingLabel(action="click", box=(400, 400, 600, 600))

SPELLINGS = ["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "INF", "1e309", "-1e309", "1e999", "1E-999",
             "0x10", "1_000", "+5", ".5", "5.", "1e", "--1", "1.5e308", "-0.0"]
FRAGMENTS = ["<plan>", "</plan>", "<think>", "</think>", "1. ", "2) ", "- ", "click(", "type(", "call(tool=",
             "target=", "text=", "point=", "(12, 34)", "[1,2]", "(-1e9, 0.5)", '"', "'", "\\", "\\\"", ")", "(",
             ",", "=", "\n", " ", "true", "9" * 30, "é", "\x00", "\u2028", "\r\n", "wait()", "finish()", "1e309"]
ACTIONS = ["click", "long_press", "type", "scroll", "press", "call", "wait", "answer", "finish", "x"]
FIELDS = ["point", "target", "text", "direction", "key", "tool", "n", "box"]


def number(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.3:
        return rng.choice(SPELLINGS)
    if roll < 0.5:
        return f"{rng.choice(['', '-'])}{rng.randint(1, 999)}e{rng.choice(['', '+', '-'])}{rng.randint(300, 99999)}"
    if roll < 0.65:
        return "9" * rng.choice([rng.randint(90, 200), rng.randint(4000, 6000)])  # past MAX_DIGITS; past 4,300
    if roll < 0.75:
        return "0." + "1" * rng.randint(90, 5000)
    if roll < 0.9:
        return repr(rng.uniform(-1e6, 1e6))
    return str(rng.randint(-10**6, 10**6))


def bad_line(rng: random.Random) -> str:
    head = f"{number(rng) if rng.random() < 0.3 else rng.randint(1, 4)}. {rng.choice(ACTIONS)}("
    kind = rng.randrange(6)
    if kind == 0:
        body = f"point=({number(rng)}, {number(rng)})"
    elif kind == 1:
        body = f'tool="t", {rng.choice(FIELDS)}=[{number(rng)}, {number(rng)}]'
    elif kind == 2:
        body = f"{rng.choice(FIELDS)}={number(rng)}"
    elif kind == 3:  # many arguments, some repeated
        body = 'tool="t", ' + ", ".join(f"{rng.choice(['a', 'b', f'a{i}'])}={i}" for i in range(rng.randint(50, 400)))
    elif kind == 4:  # a long run of one troublesome character
        body = rng.choice(['text="', "text='", "text=", "point=("]) + \
            rng.choice(['"', "\\", "(", "9", "'", "\\\"", "e"]) * rng.randint(100, 20_000)
    else:
        body = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 10)))
    return head + body + rng.choice([")", "", ")) ", "</plan>"])


def valid_step(rng: random.Random) -> Step:
    roll = rng.random()
    if roll < 0.4:
        return Step("click", target=rng.choice(["OK", "the Wi-Fi row", "Save"]),
                    point=(rng.randint(0, 1000), rng.randint(0, 1000)) if rng.random() < 0.5 else None)
    if roll < 0.6:
        return Step("type", text=rng.choice(["hi", "weather in Paris", 'a "quoted" \\ text']))
    if roll < 0.8:
        return Step("scroll", direction=rng.choice(DIRECTIONS))
    return Step("call", tool="ocr", args=(("n", rng.randint(-5, 5)), ("x", rng.random())))


def random_output(rng: random.Random) -> tuple[str, str]:
    """(kind, text): one generated model output."""
    kind = rng.choice(["bad lines", "fragments", "corrupted plan", "random text"])
    if kind == "bad lines":
        text = "\n".join(bad_line(rng) for _ in range(rng.randint(1, 5)))
        text = ("<plan>\n" if rng.random() < 0.7 else "") + text + ("\n</plan>" if rng.random() < 0.6 else "")
    elif kind == "fragments":
        text = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 60)))
    elif kind == "corrupted plan":
        text = format_plan([valid_step(rng) for _ in range(rng.randint(1, 8))], think="first the menu")
        cut = rng.randint(0, len(text))
        text = text[:cut] + rng.choice(FRAGMENTS + [bad_line(rng)]) + text[cut + rng.randint(0, 5):]
    else:
        chars = [rng.choice([rng.randint(32, 126), rng.randint(0, 0x2FFF)]) for _ in range(rng.randint(0, 200))]
        text = "".join(map(chr, chars))
    return kind, text


def run_one(text: str) -> float:
    """Parse and score `text` with both rewards; the seconds the parse took."""
    start = time.perf_counter()
    parsed = parse_plan(text)
    parse_s = time.perf_counter() - start
    score_plan(text, REFERENCE, CFG, 5)
    grounded_reward(text, parsed.steps[0] if parsed.steps else None, LABEL, CFG)
    return parse_s


def fuzz(n: int, seed: int = 0) -> dict:
    """Run `n` generated strings through the parser and both rewards: the exceptions met (with their inputs)
    and the slowest input (parse alone, and all three), timed again afterwards to tell a slow input from a pause
    of the machine."""
    rng = random.Random(seed)
    exceptions: list[dict] = []
    slowest = {"seconds": 0.0, "text": ""}
    slowest_parse = {"seconds": 0.0, "text": ""}
    total_bytes = 0
    for _ in range(n):
        kind, text = random_output(rng)
        total_bytes += len(text)
        start = time.perf_counter()
        parse_s = 0.0
        try:
            parse_s = run_one(text)
        except Exception as exc:  # noqa: BLE001 — what this bench counts
            exceptions.append({"kind": kind, "input": text[:200], "error": f"{type(exc).__name__}: {exc}",
                               "at": traceback.format_exc(limit=-1).strip().splitlines()[-3:]})
        seconds = time.perf_counter() - start
        if seconds > slowest["seconds"]:
            slowest = {"seconds": seconds, "kind": kind, "chars": len(text), "text": text}
        if parse_s > slowest_parse["seconds"]:
            slowest_parse = {"seconds": parse_s, "kind": kind, "chars": len(text), "text": text}
    for record, fn in ((slowest, run_one), (slowest_parse, parse_plan)):
        record["seconds_again"] = best_time(fn, record.pop("text")) if "kind" in record else 0.0
    return {"strings": n, "chars": total_bytes, "exceptions": len(exceptions), "first_exceptions": exceptions[:10],
            "slowest": slowest, "slowest_parse": slowest_parse}


PATHOLOGICAL = {
    "distinct arguments": lambda n: '<plan>\n1. call(tool="t", ' + ", ".join(f"a{i}={i}" for i in range(n // 12)) + ")",
    "repeated arguments": lambda n: '<plan>\n1. call(tool="t", ' + "a=1, " * (n // 5) + ")",
    "junk lines": lambda n: "<plan>\n" + "a\n" * (n // 2),
    "distinct junk lines": lambda n: "<plan>\n" + "".join(f"{i}\n" for i in range(n // 7)),
    "junk lines with parentheses": lambda n: "<plan>\n" + "= (\n" * (n // 4),
    "blank lines": lambda n: "<plan>\n" + " \n" * (n // 2),
    "prose lines": lambda n: "".join(f"x{i}\n" for i in range(n // 7)),
    "unclosed backslashes": lambda n: '<plan>\n1. type(text="' + "\\" * n,
    "quotes": lambda n: "<plan>\n1. type(text=" + '"' * n,
    "escaped text": lambda n: '<plan>\n1. type(text="' + 'a\\" ' * (n // 4) + '")\n</plan>',
    "digit run": lambda n: "<plan>\n" + "9" * n,
    "digit point": lambda n: "<plan>\n1. click(point=(" + "9" * n,
    "digit argument": lambda n: '<plan>\n1. call(tool="t", n=' + "9" * n + ")",
    "parentheses": lambda n: "<plan>\n1. click(" + "(" * n,
    "long name": lambda n: "<plan>\n1. " + "a" * n + "(",
    "many steps": lambda n: "<plan>\n" + "".join(f"{i}. wait()\n" for i in range(1, n // 12)),
    "think tags": lambda n: "<think>" * (n // 7),
}


def best_time(fn, text: str, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        _read_line.cache_clear()
        start = time.perf_counter()
        fn(text)
        best = min(best, time.perf_counter() - start)
    return best


def peak_bytes(text: str) -> int:
    _read_line.cache_clear()
    tracemalloc.start()
    try:
        parse_plan(text)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def scaling() -> dict:
    """Per pathological kind and size: parse seconds, the two rewards' seconds, peak traced bytes per input byte."""
    out = {}
    for name, make in PATHOLOGICAL.items():
        rows = []
        for size in SIZES:
            text = make(size)
            rows.append({"chars": len(text), "parse_s": best_time(parse_plan, text),
                         "rewards_s": best_time(run_one, text, repeats=1),
                         "peak_bytes_per_byte": peak_bytes(text) / len(text)})
        out[name] = rows
    return out


def main(n: int = N_STRINGS) -> dict:
    started, load = time.perf_counter(), os.getloadavg()[0]
    results = {"fuzz": fuzz(n), "scaling": scaling()}
    results.update(run_facts(started, load, packages=()))
    out = save_results(RESULTS / "parser_fuzz.json", results)
    f, s = results["fuzz"], results["scaling"]
    print(f"parser fuzz: {f['strings']:,} generated strings ({f['chars'] / 1e6:.1f} M chars) through parse_plan, "
          f"score_plan and grounded_reward: {f['exceptions']} exceptions")
    for name, key in (("all three", "slowest"), ("parse alone", "slowest_parse")):
        r = f[key]
        print(f"  slowest input, {name}: {r['seconds'] * 1e3:.1f} ms ({r['seconds_again'] * 1e3:.1f} ms timed again), "
              f"{r['chars']:,} chars ({r['kind']})")
    print(f"  {'pathological input':<28} {'parse 250K':>10} {'500K':>8} {'1M':>8} {'rewards 1M':>11} "
          f"{'mem B/B 1M':>11}")
    for name, rows in s.items():
        print(f"  {name:<28} " + " ".join(f"{r['parse_s'] * 1e3:>{w}.1f}" for r, w in zip(rows, (8, 8, 8)))
              + f" ms {rows[-1]['rewards_s'] * 1e3:>8.1f} ms {rows[-1]['peak_bytes_per_byte']:>10.2f}")
    worst = max((r["parse_s"], name) for name, rows in s.items() for r in rows)
    print(f"  slowest parse up to 1 MB: {worst[0] * 1e3:.1f} ms ({worst[1]}); most memory: "
          f"{max(r['peak_bytes_per_byte'] for rows in s.values() for r in rows):.2f} bytes per input byte")
    print(f"written to {out}")
    return results


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else N_STRINGS)
