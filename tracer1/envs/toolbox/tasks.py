"""Tool-use tasks over generated images, each with its gold tool-call trajectory and GTA-style answer.

    task = make_task(seed=7)                    # deterministic per (seed, family, split)
    task.instruction                            # "How much do the items on the receipt in img0 cost ..."
    task.steps                                  # [call(tool="ocr", image="img0"), call(tool="calculator", ...),
                                                #  answer(text="6.95")]
    task.results                                # what each gold call returns: ["CORNER SHOP\\n...", "6.95"]
    task.gt_answer                              # {"whitelist": [["6.95"]], "blacklist": None}

Every question needs a chain of 2-4 tool calls (`FAMILIES` lists them with their chains). Images are named
"img0", "img1" (tool arguments name them); `Task.screenshot()` shows them side by side under those names.
The expected results are computed from what was drawn, independently of the tools; the tests run the tools on
every gold call and check they return exactly these results and that the answers pass GTA's matcher.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

from PIL import Image

from tracer1.envs.toolbox.calculator import format_number
from tracer1.envs.toolbox.images import money, montage, price_tag, receipt, shape_scene, sign
from tracer1.envs.toolbox.vision import COLOURS, SHAPES
from tracer1.plan import Step

NUMBER_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
                "sixteen seventeen eighteen nineteen twenty").split()
RECEIPT_ITEMS = ("Coffee", "Bagel", "Juice", "Muffin", "Tea", "Salad", "Soup", "Cookie", "Water", "Sandwich",
                 "Apples", "Bananas", "Milk", "Bread", "Cheese", "Pasta", "Rice", "Eggs", "Yogurt", "Honey",
                 "Butter", "Lemons", "Tomatoes", "Onions")
SHOPS = ("CORNER SHOP", "DAILY MART", "CITY CAFE", "SUNNY DELI", "FRESH FOODS", "MAIN ST DINER", "GREEN GROCER")
FOOTERS = (None, "THANK YOU!", "See you soon")
TAG_ITEMS = ("NOTEBOOK", "PENCIL CASE", "TEA MUG", "SCISSORS", "STAPLER", "LAMP", "BACKPACK", "UMBRELLA",
             "HEADPHONES", "WATER BOTTLE", "PLANT POT", "DESK CLOCK", "TOY CAR", "PUZZLE", "CANDLE", "SOCKS")
STICKERS = ("STICKER", "BADGE", "MAGNET", "TOKEN", "STAMP")


@dataclass
class Task:
    family: str
    seed: int
    split: str
    instruction: str
    images: dict[str, Image.Image]
    steps: list[Step]            # the gold trajectory: tool calls, then the answer
    results: list[str]           # what each gold call returns, in order
    answer: str                  # the gold answer's canonical text
    gt_answer: dict              # GTA form: {"whitelist": [[aliases...], ...], "blacklist": None}
    facts: dict = field(default_factory=dict)   # what was drawn (prices, counts, ...), for tests and meta
    _screenshot: tuple | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return f"{self.split}-{self.family}-{self.seed}"

    @property
    def calls(self) -> list[Step]:
        return self.steps[:-1]

    def screenshot(self) -> tuple[Image.Image, dict[str, tuple[int, int, int, int]]]:
        """The images side by side under their names (the observation), and each image's pixel box."""
        if self._screenshot is None:
            self._screenshot = montage(self.images)
        return self._screenshot


def call(tool: str, **args) -> Step:
    return Step("call", tool=tool, args=tuple(args.items()))


# --- answers in GTA's whitelist form --------------------------------------------------------------------------

def int_answer(n: int) -> tuple[str, dict]:
    aliases = [str(n), f"{n}.0"]
    if n >= 1000:
        aliases.append(f"{n:,}")
    if 0 <= n < len(NUMBER_WORDS):
        aliases.append(NUMBER_WORDS[n])
    return str(n), {"whitelist": [aliases], "blacklist": None}


def money_answer(cents: int) -> tuple[str, dict]:
    """Amounts are never whole here (the generators avoid it): "8.20" and "8.2" both match, "8" would also
    match "8.50" under GTA's whole-word rule."""
    text = money(cents)
    aliases = [text]
    if cents % 10 == 0:
        aliases.append(text[:-1])
    return text, {"whitelist": [aliases], "blacklist": None}


def _calc(value) -> str:
    return format_number(Fraction(value))


def _not_whole(cents: int) -> bool:
    return cents % 100 != 0


# --- the families ---------------------------------------------------------------------------------------------

def _receipt_items(rng: random.Random, k: int, total: int | None = None) -> list[tuple[str, int]]:
    names = rng.sample(RECEIPT_ITEMS, k)
    if total is None:
        return [(n, rng.randrange(95, 1500, 5)) for n in names]
    # k prices of at least 0.50 that add up to `total`, multiples of 5 cents where possible
    while True:
        cuts = sorted(rng.sample(range(50, total - 49), k - 1)) if k > 1 else []
        prices = [b - a for a, b in zip([0, *cuts], [*cuts, total])]
        if all(p >= 50 for p in prices):
            return list(zip(names, prices))


def _receipt_lines(shop: str, items, total=None, footer=None) -> str:
    lines = [shop] + [f"{n} {money(c)}" for n, c in items]
    if total is not None:
        lines.append(f"TOTAL {money(total)}")
    if footer:
        lines.append(footer)
    return "\n".join(lines)


def receipt_total(rng: random.Random):
    """ocr(img0) -> calculator(sum of the prices) -> answer."""
    while True:
        items = _receipt_items(rng, rng.randint(2, 4))
        total = sum(c for _, c in items)
        if _not_whole(total):
            break
    shop, footer = rng.choice(SHOPS), rng.choice(FOOTERS)
    image = receipt(rng, shop, items, footer=footer)
    expression = " + ".join(money(c) for _, c in items)
    question = rng.choice([
        "How much do the items on the receipt in img0 cost altogether?",
        "Add up the prices of the items on the receipt in img0. What is the total?",
        "What is the total of the receipt in img0 (it does not print one)?",
    ])
    answer, gt = money_answer(total)
    return dict(instruction=question, images={"img0": image},
                steps=[call("ocr", image="img0"), call("calculator", expression=expression)],
                results=[_receipt_lines(shop, items, footer=footer), _calc(Fraction(total, 100))],
                answer=answer, gt_answer=gt, facts={"items": items, "total": total})


def receipt_split(rng: random.Random):
    """ocr(img0) -> calculator(total / people) -> answer."""
    people = rng.randint(2, 5)
    while True:
        share = rng.randrange(210, 2400, 5)
        if _not_whole(share):
            break
    total = share * people
    items = _receipt_items(rng, rng.randint(2, 4), total)
    shop = rng.choice(SHOPS)
    image = receipt(rng, shop, items, total=total)
    question = rng.choice([
        f"{people} friends split the bill on the receipt in img0 equally. How much does each of them pay?",
        f"The receipt in img0 is shared equally by {people} people. What is each person's share?",
    ])
    answer, gt = money_answer(share)
    return dict(instruction=question, images={"img0": image},
                steps=[call("ocr", image="img0"), call("calculator", expression=f"{money(total)} / {people}")],
                results=[_receipt_lines(shop, items, total), _calc(Fraction(share, 100))],
                answer=answer, gt_answer=gt, facts={"items": items, "total": total, "people": people})


def receipt_median(rng: random.Random):
    """ocr(img0) -> python(statistics.median of the prices) -> answer."""
    items = _receipt_items(rng, rng.choice([3, 5]))
    while not _not_whole(sorted(c for _, c in items)[len(items) // 2]):
        items = _receipt_items(rng, len(items))
    median = sorted(c for _, c in items)[len(items) // 2]
    shop, footer = rng.choice(SHOPS), rng.choice(FOOTERS[:2])
    image = receipt(rng, shop, items, footer=footer)
    code = f"import statistics\nprint(statistics.median([{', '.join(money(c) for _, c in items)}]))"
    answer, gt = money_answer(median)
    return dict(instruction="What is the median price of the items on the receipt in img0?",
                images={"img0": image}, steps=[call("ocr", image="img0"), call("python", code=code)],
                results=[_receipt_lines(shop, items, footer=footer), repr(median / 100)],
                answer=answer, gt_answer=gt, facts={"items": items, "median": median})


def _two_tags(rng: random.Random, low: int = 99, high: int = 2500):
    items = rng.sample(TAG_ITEMS, 2)
    prices = [rng.randrange(low, high) for _ in items]
    images = {f"img{i}": price_tag(rng, item, p) for i, (item, p) in enumerate(zip(items, prices))}
    results = [f"{item}\n${money(p)}" for item, p in zip(items, prices)]
    return items, prices, images, results


def tags_total(rng: random.Random):
    """ocr(img0) -> ocr(img1) -> calculator(a + b) -> answer."""
    while True:
        items, prices, images, results = _two_tags(rng)
        if _not_whole(sum(prices)):
            break
    question = rng.choice([
        "What do the items on the price tags in img0 and img1 cost together?",
        "I buy the item in img0 and the item in img1. How much do I pay in total?",
    ])
    answer, gt = money_answer(sum(prices))
    return dict(instruction=question, images=images,
                steps=[call("ocr", image="img0"), call("ocr", image="img1"),
                       call("calculator", expression=f"{money(prices[0])} + {money(prices[1])}")],
                results=[*results, _calc(Fraction(sum(prices), 100))], answer=answer, gt_answer=gt,
                facts={"items": items, "prices": prices})


def tags_change(rng: random.Random):
    """ocr(img0) -> ocr(img1) -> calculator(note - (a + b)) -> answer."""
    note = rng.choice([20, 50, 100])
    while True:
        items, prices, images, results = _two_tags(rng, 99, note * 50)
        change = note * 100 - sum(prices)
        if change > 0 and _not_whole(change):
            break
    answer, gt = money_answer(change)
    return dict(instruction=f"I buy the items in img0 and img1 and pay with a ${note} note. "
                            f"How much change do I get?",
                images=images,
                steps=[call("ocr", image="img0"), call("ocr", image="img1"),
                       call("calculator", expression=f"{note} - ({money(prices[0])} + {money(prices[1])})")],
                results=[*results, _calc(Fraction(change, 100))], answer=answer, gt_answer=gt,
                facts={"items": items, "prices": prices, "note": note})


def _kinds(rng: random.Random, k: int) -> list[tuple[str, str]]:
    return rng.sample([(c, s) for c in COLOURS for s in SHAPES], k)


def _scene_with(rng: random.Random, wanted: dict[tuple[str, str], int], exclude: Callable | None = None,
                distractors: tuple[int, int] = (2, 6)):
    """A scene with `wanted` counts of (colour, shape), plus distractors that no question counts."""
    others = [(c, s) for c in COLOURS for s in SHAPES
              if (c, s) not in wanted and not (exclude and exclude(c, s))]
    objects = [kind for kind, n in wanted.items() for _ in range(n)]
    objects += [rng.choice(others) for _ in range(rng.randint(*distractors))]
    rng.shuffle(objects)
    image, _ = shape_scene(rng, objects)
    return image


def _plural(colour: str | None, shape: str | None) -> str:
    return " ".join(p for p in (colour, f"{shape}s" if shape else "shapes") if p)


def shapes_total(rng: random.Random):
    """count(img0, A) -> count(img0, B) -> calculator(a + b) -> answer."""
    (a, b), (na, nb) = _kinds(rng, 2), (rng.randint(1, 6), rng.randint(1, 6))
    image = _scene_with(rng, {a: na, b: nb})
    answer, gt = int_answer(na + nb)
    return dict(instruction=f"How many {_plural(*a)} and {_plural(*b)} are there in img0 altogether?",
                images={"img0": image},
                steps=[call("count", image="img0", object=_plural(*a)),
                       call("count", image="img0", object=_plural(*b)),
                       call("calculator", expression=f"{na} + {nb}")],
                results=[str(na), str(nb), str(na + nb)], answer=answer, gt_answer=gt,
                facts={"counts": {f"{a[0]} {a[1]}": na, f"{b[0]} {b[1]}": nb}})


def shapes_difference(rng: random.Random):
    """count(img0, A) -> count(img0, B) -> calculator(a - b) -> answer."""
    (a, b) = _kinds(rng, 2)
    nb = rng.randint(1, 5)
    na = rng.randint(nb + 1, 8)
    image = _scene_with(rng, {a: na, b: nb})
    answer, gt = int_answer(na - nb)
    return dict(instruction=f"How many more {_plural(*a)} than {_plural(*b)} are there in img0?",
                images={"img0": image},
                steps=[call("count", image="img0", object=_plural(*a)),
                       call("count", image="img0", object=_plural(*b)),
                       call("calculator", expression=f"{na} - {nb}")],
                results=[str(na), str(nb), str(na - nb)], answer=answer, gt_answer=gt,
                facts={"counts": {f"{a[0]} {a[1]}": na, f"{b[0]} {b[1]}": nb}})


def _priced(rng: random.Random, n: int, low: int = 25, high: int = 400) -> int:
    while True:
        price = rng.randrange(low, high, 5)
        if _not_whole(price * n):
            return price


def shapes_cost(rng: random.Random):
    """count(img0, shape) -> ocr(img1) -> calculator(n * price) -> answer."""
    shape = rng.choice(SHAPES)
    n = rng.randint(2, 8)
    colours = [rng.choice(list(COLOURS)) for _ in range(n)]
    wanted: dict = {}
    for c in colours:
        wanted[(c, shape)] = wanted.get((c, shape), 0) + 1
    image = _scene_with(rng, wanted, exclude=lambda c, s: s == shape)
    item, price = rng.choice(STICKERS), _priced(rng, n)
    answer, gt = money_answer(n * price)
    return dict(instruction=f"Each {shape} in img0 is a {item.lower()} sold at the price on the tag in img1. "
                            f"What do all the {shape}s cost?",
                images={"img0": image, "img1": price_tag(rng, item, price)},
                steps=[call("count", image="img0", object=f"{shape}s"), call("ocr", image="img1"),
                       call("calculator", expression=f"{n} * {money(price)}")],
                results=[str(n), f"{item}\n${money(price)}", _calc(Fraction(n * price, 100))],
                answer=answer, gt_answer=gt, facts={"count": n, "price": price})


def shapes_cost_two(rng: random.Random):
    """count(img0, A) -> count(img0, B) -> ocr(img1) -> calculator((a + b) * price) -> answer."""
    (a, b) = _kinds(rng, 2)
    na, nb = rng.randint(1, 5), rng.randint(1, 5)
    image = _scene_with(rng, {a: na, b: nb})
    item, price = rng.choice(STICKERS), _priced(rng, na + nb)
    answer, gt = money_answer((na + nb) * price)
    return dict(instruction=f"Every {a[0]} {a[1]} and every {b[0]} {b[1]} in img0 is a {item.lower()} priced as "
                            f"on the tag in img1. What do they cost in total?",
                images={"img0": image, "img1": price_tag(rng, item, price)},
                steps=[call("count", image="img0", object=_plural(*a)),
                       call("count", image="img0", object=_plural(*b)), call("ocr", image="img1"),
                       call("calculator", expression=f"({na} + {nb}) * {money(price)}")],
                results=[str(na), str(nb), f"{item}\n${money(price)}", _calc(Fraction((na + nb) * price, 100))],
                answer=answer, gt_answer=gt,
                facts={"counts": {f"{a[0]} {a[1]}": na, f"{b[0]} {b[1]}": nb}, "price": price})


def _primes_below(n: int) -> int:
    sieve = bytearray([1]) * max(n, 2)
    sieve[0:2] = b"\0\0"
    for i in range(2, math.isqrt(n - 1) + 1 if n > 2 else 2):
        if sieve[i]:
            sieve[i * i::i] = bytearray(len(sieve[i * i::i]))
    return sum(sieve[:n])


def _fibonacci(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


# number puzzle: (question about N, code computing it, the value, range of N)
PUZZLES = {
    "digit_sum": ("What is the sum of the digits of 2 to the power of the number on the sign in img0?",
                  "print(sum(int(d) for d in str(2 ** {n})))", lambda n: sum(int(d) for d in str(2 ** n)),
                  (20, 400)),
    "primes": ("How many prime numbers are smaller than the number on the sign in img0?",
               "n = {n}\nprint(sum(all(k % d for d in range(2, int(k ** 0.5) + 1)) for k in range(2, n)))",
               _primes_below, (20, 999)),
    "fibonacci": ("What is the Fibonacci number F(n) for n = the number on the sign in img0, with F(1) = F(2) = 1?",
                  "a, b = 0, 1\nfor _ in range({n}):\n    a, b = b, a + b\nprint(a)", _fibonacci, (10, 90)),
    "trailing_zeros": ("How many zeros does the factorial of the number on the sign in img0 end with?",
                       "import math\ns = str(math.factorial({n}))\nprint(len(s) - len(s.rstrip('0')))",
                       lambda n: len(str(math.factorial(n))) - len(str(math.factorial(n)).rstrip("0")), (10, 600)),
}
SIGN_WORDS = ("ROOM", "GATE", "PLATFORM", "BUS", "EXIT", "LOCKER", "DOOR")


def sign_python(rng: random.Random):
    """ocr(img0) -> python(a computation on the number) -> answer."""
    name = rng.choice(sorted(PUZZLES))
    question, code, value, (low, high) = PUZZLES[name]
    n = rng.randint(low, high)
    lines = [rng.choice(SIGN_WORDS), str(n)]
    result = value(n)
    answer, gt = int_answer(result)
    return dict(instruction=question, images={"img0": sign(rng, lines)},
                steps=[call("ocr", image="img0"), call("python", code=code.format(n=n))],
                results=["\n".join(lines), str(result)], answer=answer, gt_answer=gt,
                facts={"puzzle": name, "number": n})


def signs_travel(rng: random.Random):
    """ocr(img0) -> ocr(img1) -> calculator(distance / speed * 60) -> answer."""
    speed = rng.choice([30, 40, 50, 60, 80, 90, 100, 120])
    step = 60 // math.gcd(60, speed)          # minutes for which the distance is whole
    minutes = step * rng.randint(max(1, 10 // step), 150 // step)
    distance = minutes * speed // 60
    place = rng.choice(["CITY CENTRE", "AIRPORT", "HARBOUR", "OLD TOWN", "STATION", "LAKESIDE"])
    distance_sign, speed_sign = [place, f"{distance} KM"], ["SPEED LIMIT", str(speed)]
    answer, gt = int_answer(minutes)
    return dict(instruction="Driving at the speed limit shown in img1, how many minutes does it take to reach "
                            "the place on the sign in img0?",
                images={"img0": sign(rng, distance_sign), "img1": sign(rng, speed_sign)},
                steps=[call("ocr", image="img0"), call("ocr", image="img1"),
                       call("calculator", expression=f"{distance} / {speed} * 60")],
                results=["\n".join(distance_sign), "\n".join(speed_sign), str(minutes)], answer=answer,
                gt_answer=gt, facts={"distance_km": distance, "speed": speed})


def shapes_choose(rng: random.Random):
    """count(img0, shape) -> ocr(img1) -> python(math.comb(n, k)) -> answer."""
    shape = rng.choice(SHAPES)
    n = rng.randint(4, 9)
    k = rng.randint(2, n - 1)
    wanted: dict = {}
    for _ in range(n):
        kind = (rng.choice(list(COLOURS)), shape)
        wanted[kind] = wanted.get(kind, 0) + 1
    image = _scene_with(rng, wanted, exclude=lambda c, s: s == shape, distractors=(1, 4))
    lines = ["PICK", str(k)]
    answer, gt = int_answer(math.comb(n, k))
    return dict(instruction=f"In how many different ways can you choose as many {shape}s from img0 as the sign "
                            f"in img1 says?",
                images={"img0": image, "img1": sign(rng, lines)},
                steps=[call("count", image="img0", object=f"{shape}s"), call("ocr", image="img1"),
                       call("python", code=f"import math\nprint(math.comb({n}, {k}))")],
                results=[str(n), "\n".join(lines), str(math.comb(n, k))], answer=answer, gt_answer=gt,
                facts={"count": n, "pick": k})


FAMILIES: dict[str, Callable[[random.Random], dict]] = {
    f.__name__: f for f in (receipt_total, receipt_split, receipt_median, tags_total, tags_change, shapes_total,
                            shapes_difference, shapes_cost, shapes_cost_two, sign_python, signs_travel,
                            shapes_choose)
}


def make_task(seed: int, family: str | None = None, split: str = "train") -> Task:
    """The task for (`seed`, `family`, `split`); a random family (chosen by the seed) when `family` is None.
    The same arguments give the same task, image pixels included."""
    if family is None:
        family = random.Random(f"toolbox:{split}:{seed}").choice(sorted(FAMILIES))
    if family not in FAMILIES:
        raise KeyError(f"unknown toolbox task {family!r}; tasks: {', '.join(FAMILIES)}")
    rng = random.Random(f"toolbox:{split}:{family}:{seed}")
    parts = FAMILIES[family](rng)
    answer = parts["answer"]
    steps = [*parts.pop("steps"), Step("answer", text=answer)]
    return Task(family=family, seed=seed, split=split, steps=steps, **parts)
