"""Comparing an engine's prompt ids with the learner's: where they differ, said so that the cause can be read.

    problem = compare_prompt_ids(learner_ids, engine_ids, tokenizer)    # None when equal, else a report

The learner trains on the ids `tracer1.models.inputs` encodes; an engine that tokenises the prompt itself (vLLM:
text + images through its own processor) must arrive at the same ids, or the log-probs it reports and the tokens the
learner scores are of different sequences. For a vision-language prompt the likely cause is image-token expansion
(a different image size or processor bound makes a different number of `<|image_pad|>` tokens), so the report
gives the first differing position, both lengths, a window of ids (and decoded tokens, with a tokenizer) on each
side, and how many placeholder tokens of each kind each side holds. `RolloutWorker.rollout` refuses a batch with
this report; the GPU smoke script calls it on a vLLM-served image prompt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Qwen-VL's image/video placeholder and frame tokens (what an image or video expands into).
PLACEHOLDER_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")


def placeholder_ids(tokenizer: Any) -> dict[str, int]:
    """{token: id} of the placeholder tokens the tokenizer has."""
    if tokenizer is None:
        return {}
    vocab = tokenizer.get_vocab()
    return {t: int(vocab[t]) for t in PLACEHOLDER_TOKENS if t in vocab}


def first_difference(expected: Sequence[int], got: Sequence[int]) -> int | None:
    """The first position where the two differ (the shorter length when one is a prefix of the other), None when
    they are equal."""
    for i, (a, b) in enumerate(zip(expected, got)):
        if a != b:
            return i
    return None if len(expected) == len(got) else min(len(expected), len(got))


def _window(ids: Sequence[int], at: int, width: int, tokenizer: Any) -> str:
    lo, hi = max(0, at - width), min(len(ids), at + width + 1)
    part = [int(i) for i in ids[lo:hi]]
    text = f"[{lo}:{hi}] {part}"
    if tokenizer is not None:
        text += f" = {tokenizer.convert_ids_to_tokens(part)}"
    return text


def compare_prompt_ids(expected: Sequence[int], got: Sequence[int], tokenizer: Any = None, *,
                       image_token_ids: dict[str, int] | None = None, window: int = 6) -> str | None:
    """None when `got` (the engine's prompt ids) equals `expected` (the learner's); else one report naming the first
    differing position, the lengths, `window` ids either side of it on each side (decoded with `tokenizer` when
    given) and the count of each placeholder token on each side. `image_token_ids` ({token: id}) defaults to the
    tokenizer's Qwen-VL placeholders."""
    at = first_difference(expected, got)
    if at is None:
        return None
    lines = [f"prompt ids differ at position {at}: learner {len(expected)} tokens, engine {len(got)} tokens",
             f"  learner {_window(expected, at, window, tokenizer)}",
             f"  engine  {_window(got, at, window, tokenizer)}"]
    marks = placeholder_ids(tokenizer) if image_token_ids is None else image_token_ids
    if marks:
        counts = [f"{name}: learner {sum(1 for i in expected if i == tid)}, engine {sum(1 for i in got if i == tid)}"
                  for name, tid in marks.items()]
        lines.append("  placeholders: " + "; ".join(counts))
        pad = marks.get("<|image_pad|>")
        if pad is not None and sum(i == pad for i in expected) != sum(i == pad for i in got):
            lines.append("  the image expanded to a different number of tokens: the engine's image processor sized "
                         "the screenshot differently (compare its size bounds with model.max_image_pixels)")
    return "\n".join(lines)
