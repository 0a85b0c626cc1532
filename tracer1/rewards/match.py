"""The public benchmarks' matching rules, as pure functions (standard library only).

Rewards and evaluation both call these, so a prediction is scored the same way in training as the benchmark's
own evaluator would score it (REFERENCE.md records the rules). Where public evaluators differ, the variant is
named in the function's docstring and selectable by a keyword where both are useful.

Conventions: tracer1 coordinates are on a 0..1000 grid of the screenshot (x right, y down); points are
``(x, y)``, boxes ``(x1, y1, x2, y2)`` with ``x1 <= x2`` and ``y1 <= y2``. The geometric helpers take any
units as long as ``width``/``height`` are given in the same units (e.g. pixels with the screen's size).

Text functions never raise on text: ``None`` reads as ``""`` and other non-strings as ``str(value)``.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from tracer1.plan.steps import short_cache

__all__ = [
    "point_in_box", "normalized_distance", "within_radius", "click_match",
    "normalize_text", "tokens", "token_f1", "edit_distance", "text_contain_or_edit", "text_match", "text_score",
    "gaia_normalize_number", "gaia_normalize_str", "gaia_answer_match", "gta_answer_match",
]

# AndroidControl / GUI-Odyssey click radius, as a fraction of the screen (normalised L2 distance).
CLICK_RADIUS = 0.14
# Token-set F1 threshold (AndroidControl text arguments, GUI-R1) and GUI-Odyssey's ANLS threshold.
TEXT_THRESHOLD = 0.5


def _text(s: Any) -> str:
    """A string view of any value: None → "", str unchanged, anything else str()."""
    if s.__class__ is str:
        return s
    if s is None:
        return ""
    try:
        return str(s)
    except Exception:  # a __str__ that raises: treat as no text
        return ""


# ---------------------------------------------------------------------------------------------------------------
# Geometry (AndroidControl, GUI-Odyssey, Multimodal-Mind2Web element accuracy, UI-R1 "click inside the box")
# ---------------------------------------------------------------------------------------------------------------

def point_in_box(point: Sequence[float] | None, box: Sequence[float] | None, margin: float = 0.0) -> bool:
    """Whether ``point`` lies in ``box`` grown by ``margin`` units on every side; edges count as inside.

    The "inside the target element's box" rule of AndroidControl, GUI-Odyssey (``x1 <= x <= x2``) and
    Mind2Web element accuracy. A missing point or box is never inside.
    """
    if point is None or box is None:
        return False
    x, y = point[0], point[1]
    x1, y1, x2, y2 = box[0], box[1], box[2], box[3]
    return x1 - margin <= x <= x2 + margin and y1 - margin <= y <= y2 + margin


def normalized_distance(p: Sequence[float], q: Sequence[float], width: float = 1000, height: float = 1000) -> float:
    """``sqrt((dx/W)^2 + (dy/H)^2)``: the distance as a fraction of the screen (AndroidControl, GUI-Odyssey).

    Each axis is divided by its own side, so on a non-square screen a pixel along the short side weighs more.
    """
    return math.hypot((p[0] - q[0]) / width, (p[1] - q[1]) / height)


def within_radius(p: Sequence[float] | None, q: Sequence[float] | None, radius: float = CLICK_RADIUS,
                  width: float = 1000, height: float = 1000, inclusive: bool = False) -> bool:
    """Whether ``p`` is within ``radius`` of ``q`` in normalised distance.

    ``inclusive=False`` is AndroidControl's ``< 0.14`` (OS-Atlas / UI-TARS convention, REFERENCE.md);
    ``inclusive=True`` is GUI-Odyssey's ``<= 0.14`` (``np.linalg.norm(pred - gt) <= CLICK_COORD_THRESHOLD``).
    A missing point is never within.
    """
    if p is None or q is None:
        return False
    d = math.hypot((p[0] - q[0]) / width, (p[1] - q[1]) / height)
    return d <= radius if inclusive else d < radius


def click_match(point: Sequence[float] | None, target_point: Sequence[float] | None = None,
                box: Sequence[float] | None = None, radius: float = CLICK_RADIUS, margin: float = 0.0,
                inclusive: bool = False, *, width: float = 1000, height: float = 1000,
                box_only: bool = False) -> bool:
    """The AndroidControl / GUI-Odyssey grounding rule for a click (or long press).

    Right when the point is inside the known ``box`` (grown by ``margin``, edges inside); otherwise right when it
    is within ``radius`` of ``target_point`` (``inclusive`` picks ``<=`` for GUI-Odyssey, ``<`` for
    AndroidControl). A hit in the box wins even far from the reference point.

    Variant: both public evaluators use box OR radius — GUI-Odyssey's ``click_matching`` returns True inside the
    SAM2 box and otherwise falls back to the distance; AitW/AndroidControl's ``_check_tap_actions_match`` is
    ``both_in_box OR within_threshold`` — so that is the default. ``box_only=True`` is the stricter rule of
    single-step GUI RL rewards (UI-R1: the click must land inside the box when a box is known; the radius
    is used only when no box is). False when the point is missing or neither a box nor a target point is given.
    """
    if point is None:
        return False
    if box is not None:
        if point_in_box(point, box, margin):
            return True
        if box_only:
            return False
    if target_point is not None:
        return within_radius(point, target_point, radius, width, height, inclusive)
    return False


# ---------------------------------------------------------------------------------------------------------------
# Text: token-set F1 (AndroidControl text arguments, Mind2Web operation F1, GUI-R1) and GUI-Odyssey's
# contain-or-edit-distance rule
# ---------------------------------------------------------------------------------------------------------------

# A token is a run of Unicode letters/digits (``\w`` minus ``_``); everything else separates tokens. A run of
# CJK characters, which has no separators, is one token.
_TOKEN_RE = re.compile(r"[^\W_]+")
_findall_tokens = _TOKEN_RE.findall


def normalize_text(s: Any) -> str:
    """Lowercase, split on anything that is not a Unicode letter or digit, rejoin with single spaces.

    ``"  Hello,  WORLD!"`` → ``"hello world"``. The canonical form behind ``tokens``/``token_f1``.
    """
    return " ".join(_findall_tokens(_text(s).lower()))


def tokens(s: Any) -> set[str]:
    """The set of lowercase alphanumeric tokens of ``s`` (Unicode-aware; punctuation and ``_`` separate)."""
    return set(_findall_tokens(_text(s).lower()))


@short_cache(1 << 16)  # rewards score the same targets and texts again and again across a GRPO group
def _token_set(s: str) -> frozenset[str]:
    return frozenset(_findall_tokens(s.lower()))


def token_f1(pred: Any, ref: Any) -> float:
    """Token-**set** F1 between two texts: ``2·|P∩R| / (|P| + |R|)`` over ``tokens()``.

    The AndroidControl text-argument rule (match when F1 >= 0.5, REFERENCE.md), also GUI-R1's and Mind2Web's
    operation F1. Both empty → 1.0; exactly one empty → 0.0. Variant: Mind2Web's ``calculate_f1`` splits on
    whitespace only and keeps case and punctuation; tracer1 lowercases and splits on non-alphanumerics, so
    "Paris," and "paris" are the same token here. ``2PR/(P+R)`` is written as ``2·tp/(|P|+|R|)``, which is
    the same number with one rounding (so 0.5 stays exactly 0.5).
    """
    p = _token_set(_text(pred))
    r = _token_set(_text(ref))
    if not p or not r:
        return 1.0 if not p and not r else 0.0
    return 2.0 * len(p & r) / (len(p) + len(r))


def edit_distance(a: Any, b: Any) -> int:
    """Levenshtein distance (insert, delete, substitute cost 1) between two strings, by characters.

    The same distance as GUI-Odyssey's ``levenshtein_distance``. After skipping the shared prefix and suffix it
    runs Myers/Hyyrö's bit-parallel form of the dynamic programme: one column of the DP matrix is a pair of
    ``len(shorter)``-bit integers, so memory is O(min(len(a), len(b))) and time O(len(a)·len(b)) at worst,
    in practice a few integer operations per character of the longer string.
    """
    a = _text(a)
    b = _text(b)
    if a == b:
        return 0
    # drop the common prefix and suffix: they never change the distance
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    j = 0
    while j < n - i and a[-1 - j] == b[-1 - j]:
        j += 1
    if i or j:
        a = a[i:len(a) - j]
        b = b[i:len(b) - j]
    if len(a) > len(b):
        a, b = b, a          # a, the shorter, is the bit pattern
    m = len(a)
    if m == 0:
        return len(b)
    # peq[c]: bit k set where a[k] == c
    peq: dict[str, int] = {}
    bit = 1
    for c in a:
        peq[c] = peq.get(c, 0) | bit
        bit <<= 1
    full = bit - 1           # m ones
    top = 1 << (m - 1)       # the bit of the last row, D[m][·]
    pv, mv, score = full, 0, m   # vertical deltas of column 0 are all +1; D[m][0] = m
    get = peq.get
    for c in b:
        eq = get(c, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & full)     # horizontal +1 deltas
        mh = pv & xh                      # horizontal -1 deltas
        if ph & top:
            score += 1
        elif mh & top:
            score -= 1
        ph = ((ph << 1) | 1) & full       # row 0 grows by one per column: D[0][j] = j
        mh = (mh << 1) & full
        pv = mh | (~(xv | ph) & full)
        mv = ph & xv
    return score


def text_contain_or_edit(pred: Any, ref: Any, threshold: float = TEXT_THRESHOLD, *, ignore_case: bool = False,
                         empty_is_substring: bool = False) -> bool:
    """GUI-Odyssey's typed-text rule (``text_matching``): right when either text contains the other, or when
    ``1 - edit_distance / max_len >= threshold``.

    Normalisation as GUI-Odyssey's evaluator: leading/trailing whitespace stripped, case kept
    (``ignore_case=True`` lowercases both first). Both empty → True.

    Variant: in GUI-Odyssey's code ``"" in text`` is true, so an empty prediction matches any reference (and an
    empty reference any prediction). tracer1 rewards must not pay for typing nothing, so by default exactly one
    empty side is wrong; ``empty_is_substring=True`` restores the evaluator's behaviour.
    """
    p = _text(pred).strip()
    r = _text(ref).strip()
    if ignore_case:
        p = p.lower()
        r = r.lower()
    if not p or not r:
        return (not p and not r) or empty_is_substring
    if r in p or p in r:
        return True
    lp, lr = len(p), len(r)
    longest = lp if lp > lr else lr
    # the distance is at least the length difference: skip the O(n·m) work when even that fails
    if 1.0 - abs(lp - lr) / longest < threshold:
        return False
    return 1.0 - edit_distance(p, r) / longest >= threshold


_TEXT_RULES = ("f1", "contain_or_edit")


def text_match(pred: Any, ref: Any, rule: str = "f1", threshold: float = TEXT_THRESHOLD) -> bool:
    """Whether a predicted text argument matches the reference under ``rule``.

    ``"f1"``: token-set F1 >= ``threshold`` (AndroidControl, GUI-R1). ``"contain_or_edit"``: GUI-Odyssey's
    containment / edit-distance rule (``text_contain_or_edit``). Any other rule is a ValueError.
    """
    if rule == "f1":
        return token_f1(pred, ref) >= threshold
    if rule == "contain_or_edit":
        return text_contain_or_edit(pred, ref, threshold)
    raise ValueError(f"unknown text rule {rule!r}; expected one of {_TEXT_RULES}")


def text_score(pred: Any, ref: Any, rule: str = "f1", threshold: float = TEXT_THRESHOLD) -> float:
    """A 0..1 text score for partial credit: the token-set F1 itself for ``"f1"`` (``threshold`` unused), 1.0/0.0
    by ``text_contain_or_edit`` for ``"contain_or_edit"``. Any other rule is a ValueError."""
    if rule == "f1":
        return token_f1(pred, ref)
    if rule == "contain_or_edit":
        return 1.0 if text_contain_or_edit(pred, ref, threshold) else 0.0
    raise ValueError(f"unknown text rule {rule!r}; expected one of {_TEXT_RULES}")


# ---------------------------------------------------------------------------------------------------------------
# GAIA: the official leaderboard's question_scorer (gaia-benchmark/leaderboard, scorer.py)
# ---------------------------------------------------------------------------------------------------------------

_GAIA_NUMBER_STRIP = str.maketrans("", "", "$%,")
_GAIA_PUNCT_STRIP = str.maketrans("", "", string.punctuation)   # ASCII punctuation only, as the scorer
_WHITESPACE_RE = re.compile(r"\s")
_GAIA_SPLIT_RE = re.compile(r"[,;]")


def _parse_float(s: str) -> float | None:
    try:
        return float(s)
    except (ValueError, TypeError, OverflowError):
        return None


def gaia_normalize_number(s: Any) -> float:
    """GAIA's ``normalize_number_str``: remove every ``$``, ``%`` and ``,`` and parse with ``float()`` (which
    allows surrounding whitespace, exponents, ``inf``/``nan``); ``float("inf")`` when it does not parse."""
    value = _parse_float(_text(s).translate(_GAIA_NUMBER_STRIP))
    return math.inf if value is None else value


def gaia_normalize_str(s: Any, remove_punct: bool = True) -> str:
    """GAIA's ``normalize_str``: remove all whitespace, lowercase, and (by default) remove ASCII punctuation
    (``string.punctuation``). ``" St. Louis "`` → ``"stlouis"``."""
    out = _WHITESPACE_RE.sub("", _text(s)).lower()
    return out.translate(_GAIA_PUNCT_STRIP) if remove_punct else out


def _gaia_number_equal(answer: str, reference_value: float) -> bool:
    value = _parse_float(answer.translate(_GAIA_NUMBER_STRIP))
    return value is not None and value == reference_value


def gaia_answer_match(answer: Any, reference: Any) -> bool:
    """GAIA's official ``question_scorer``, rule for rule:

    1. reference parses with ``float()`` → the answer, with ``$ % ,`` removed, must parse to the same number
       (``"$1,000"`` = ``"1000"``, ``"50%"`` = ``"50"``, ``"21.0"`` = ``"21"``);
    2. else a reference containing ``,`` or ``;`` → split both on ``[,;]``; the lists must have the same length
       and agree element by element (a numeric reference element as a number, any other as a string normalised
       without removing punctuation);
    3. else the normalised strings (no whitespace, lowercase, no punctuation) must be equal.

    Deviations, each only where the official scorer has no meaningful answer: ``None`` answer → False (the
    scorer would crash or compare "None"); an answer that does not parse as a number never equals a numeric
    reference (the scorer maps it to ``inf``, which would equal a reference of ``"inf"``). Never raises.
    """
    if answer is None or reference is None:
        return False
    answer = _text(answer)
    reference = _text(reference)
    ref_value = _parse_float(reference)
    if ref_value is not None:
        return _gaia_number_equal(answer, ref_value)
    if "," in reference or ";" in reference:
        ref_items = _GAIA_SPLIT_RE.split(reference)
        ans_items = _GAIA_SPLIT_RE.split(answer)
        if len(ref_items) != len(ans_items):
            return False
        for a, r in zip(ans_items, ref_items):
            r_value = _parse_float(r)
            if r_value is not None:
                if not _gaia_number_equal(a, r_value):
                    return False
            elif gaia_normalize_str(a, remove_punct=False) != gaia_normalize_str(r, remove_punct=False):
                return False
        return True
    return gaia_normalize_str(answer) == gaia_normalize_str(reference)


# ---------------------------------------------------------------------------------------------------------------
# GTA: AnsAcc of open-compass/GTA (GTABenchEvaluator.iscorrect)
# ---------------------------------------------------------------------------------------------------------------

def _aliases(group: Any) -> tuple[str, ...]:
    """One alias group as a tuple of strings: a bare string is a one-alias group; non-strings are str()-ed."""
    if group is None:
        return ()
    if isinstance(group, str):
        return (group,)
    if isinstance(group, Iterable):
        return tuple(_text(a) for a in group if a is not None)
    return (_text(group),)


@lru_cache(maxsize=8192)
def _alias_pattern(aliases: tuple[str, ...], gta_boundaries: bool) -> re.Pattern[str]:
    """One regex matching any alias as a whole word/phrase, case-insensitively (aliases escaped)."""
    body = "|".join(re.escape(a) for a in aliases)
    if gta_boundaries:
        return re.compile(r"\b(?:" + body + r")\b", re.IGNORECASE)
    return re.compile(r"(?<!\w)(?:" + body + r")(?!\w)", re.IGNORECASE)


def _any_alias_in(text: str, aliases: tuple[str, ...], gta_boundaries: bool) -> bool:
    return _alias_pattern(aliases, gta_boundaries).search(text) is not None


def gta_answer_match(answer: Any, gt_answer: Any, *, gta_boundaries: bool = True) -> bool | None:
    """GTA's answer accuracy for one final answer against the item's ``gt_answer``.

    * ``{"whitelist": [[aliases], ...], "blacklist": ...}`` → True when every whitelist group has an alias in the
      answer as a whole word/phrase and no blacklist alias is in it (case-insensitive; aliases are escaped, so
      spaces and punctuation in them are literal). The blacklist may be a list of groups, a flat list of
      aliases, or None/empty. This is ``GTABenchEvaluator.iscorrect``: ``\\b(?:a|b)\\b`` with ``re.IGNORECASE``.
    * a list of reference strings → True when any of them is in the answer as a whole word/phrase.
      Variant: GTA scores this form by sentence-embedding similarity (all-mpnet-base-v2 cosine, partial
      credit); tracer1 uses whole-phrase presence, which needs no model.
    * ``None`` (or an empty dict/list, which GTA also skips) → None: the item has no scorable answer.

    An empty or missing answer is wrong, as in GTA (only non-empty answers are scored). Word boundaries are GTA's
    ``\\b`` by default, so an alias that starts or ends with a non-word character (``"$5"``, ``"5%"``) needs a
    word character next to that end; ``gta_boundaries=False`` uses ``(?<!\\w)…(?!\\w)`` instead, which treats
    such aliases as whole phrases. Never raises on text.
    """
    if not gt_answer:
        return None
    text = _text(answer)
    if not text:
        return False
    if isinstance(gt_answer, dict):
        whitelist = gt_answer.get("whitelist") or []
        if isinstance(whitelist, str):
            whitelist = [whitelist]
        for group in whitelist:
            if not _any_alias_in(text, _aliases(group), gta_boundaries):
                return False
        blacklist = gt_answer.get("blacklist")
        if blacklist:
            if isinstance(blacklist, str):
                blacklist = [blacklist]
            banned = tuple(a for group in blacklist for a in _aliases(group))
            if _any_alias_in(text, banned, gta_boundaries):
                return False
        return True
    if isinstance(gt_answer, str):
        gt_answer = [gt_answer]
    if isinstance(gt_answer, Iterable):
        refs = tuple(_text(r) for r in gt_answer if r is not None and _text(r))
        return bool(refs) and _any_alias_in(text, refs, gta_boundaries)
    return None
