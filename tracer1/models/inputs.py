"""Prompts (and completions) as model inputs: the one tokenisation shared by the engines and the learner.

    batch = encode_for_training(bundle, prompts, completion_ids)    # SFT: tokenize_target(...); GRPO: sampled ids
    logp = completion_logprobs(bundle.model, batch)                  # (B, L), zero outside the completion

`encode_prompts` turns `Prompt`s into token ids with the image placeholders expanded (one processor call per
prompt, so an image's patches stay with its prompt); `collate` pads any id sequences built on them into one
batch with the vision tensors. The HF engine generates from `collate(..., padding_side="left")` of exactly these
ids, and `encode_for_training` appends completion ids to the very same ids, so training never re-tokenises a
prompt or a sampled completion (a re-tokenised completion can differ from the sampled one, and GRPO's ratios
would then compare different sequences).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from tracer1.engines.base import Prompt

if TYPE_CHECKING:
    from tracer1.models.loading import PlannerBundle


@dataclass(frozen=True)
class EncodedPrompt:
    """One prompt as model input: ids with image placeholders expanded, and its images' patches (vision)."""

    input_ids: tuple[int, ...]
    pixel_values: torch.Tensor | None = None    # (patches, C·T·P·P) for this prompt's images, in order
    image_grid_thw: torch.Tensor | None = None  # (images, 3)


def encode_prompt(bundle: PlannerBundle, prompt: Prompt) -> EncodedPrompt:
    # add_special_tokens=False: the chat template already wrote every special token the model expects.
    if not bundle.is_vision:
        if prompt.images:
            raise ValueError(f"the text-only model at {bundle.path} got a prompt with {len(prompt.images)} "
                             "image(s); build text-only prompts with tracer1.models.prompt.build_prompt")
        return EncodedPrompt(tuple(bundle.tokenizer(prompt.text, add_special_tokens=False)["input_ids"]))
    out = bundle.processor(text=[prompt.text], images=list(prompt.images) or None, add_special_tokens=False,
                           return_tensors="pt")
    ids = tuple(out["input_ids"][0].tolist())
    if not prompt.images:
        return EncodedPrompt(ids)
    return EncodedPrompt(ids, out["pixel_values"], out["image_grid_thw"])


def encode_prompts(bundle: PlannerBundle, prompts: Sequence[Prompt | EncodedPrompt]) -> list[EncodedPrompt]:
    """`encode_prompt` for each prompt; a prompt repeated (the same object, as in a GRPO group) is encoded once,
    and an already encoded one passes through (SFT encodes its prompts once, not every epoch)."""
    done: dict[int, EncodedPrompt] = {}  # by identity: a Prompt holding PIL images cannot be hashed
    for prompt in prompts:
        if id(prompt) not in done:
            done[id(prompt)] = prompt if isinstance(prompt, EncodedPrompt) else encode_prompt(bundle, prompt)
    return [done[id(prompt)] for prompt in prompts]


def collate(bundle: PlannerBundle, sequences: Sequence[Sequence[int]], encoded: Sequence[EncodedPrompt],
            padding_side: str = "right") -> dict[str, torch.Tensor]:
    """Pad `sequences` (each starts with the ids of the matching `encoded` prompt) into model inputs:
    input_ids, attention_mask, and for vision models pixel_values, image_grid_thw and mm_token_type_ids."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), bundle.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        span = slice(width - len(seq), width) if padding_side == "left" else slice(0, len(seq))
        ids[row, span] = torch.tensor(list(seq), dtype=torch.long)
        mask[row, span] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if bundle.is_vision:
        with_images = [e for e in encoded if e.pixel_values is not None]
        if with_images:
            batch["pixel_values"] = torch.cat([e.pixel_values for e in with_images])
            batch["image_grid_thw"] = torch.cat([e.image_grid_thw for e in with_images])
        if bundle.mm_token_types:
            # transformers >= 5 places Qwen-VL's 3-D rope positions by these types (0 text, 1 image, 2 video);
            # without them it silently falls back to text positions for the image tokens.
            types = torch.zeros_like(ids)
            if bundle.image_token_id is not None:
                types[ids == bundle.image_token_id] = 1
            if bundle.video_token_id is not None:
                types[ids == bundle.video_token_id] = 2
            batch["mm_token_type_ids"] = types
    return batch


def tokenize_target(bundle: PlannerBundle, text: str, *, end_turn: bool = True) -> list[int]:
    """The ids of a completion text (an SFT target, `tracer1.models.prompt.plan_target`), followed by the
    end-of-turn token id (<|im_end|> for Qwen) so the model learns to stop. Special-token strings inside the
    text (a typed "<|im_end|>") stay plain text."""
    ids = bundle.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    return list(ids) + ([bundle.end_of_turn_id] if end_turn else [])


def encode_for_training(bundle: PlannerBundle, prompts: Sequence[Prompt | EncodedPrompt],
                        completion_token_ids: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
    """Prompt + completion sequences, right-padded, as model inputs plus `completion_mask` (B, L): 1 on the
    completion's tokens only. The log-prob of token j comes from the logits at j - 1 (`completion_logprobs`).

    SFT passes `tokenize_target(bundle, plan_target(...))`; GRPO passes the engine's sampled `token_ids`
    unchanged (one entry per completion: repeat the prompt object for each of its G samples). Prompts may be
    given already encoded (`encode_prompts`)."""
    if len(prompts) != len(completion_token_ids):
        raise ValueError(f"{len(prompts)} prompts but {len(completion_token_ids)} completions; give one "
                         "prompt per completion (repeat a prompt for each of its samples)")
    if not prompts:
        raise ValueError("encode_for_training needs at least one prompt")
    encoded = encode_prompts(bundle, prompts)
    sequences = [list(e.input_ids) + [int(t) for t in c] for e, c in zip(encoded, completion_token_ids)]
    batch = collate(bundle, sequences, encoded, padding_side="right")
    completion = torch.zeros_like(batch["attention_mask"])
    for row, (e, c) in enumerate(zip(encoded, completion_token_ids)):
        completion[row, len(e.input_ids):len(e.input_ids) + len(c)] = 1
    batch["completion_mask"] = completion
    return batch


# Entries of a training batch that are ours (masks, advantages, log-probs, the loss denominator of
# `tracer1.learner.grpo`), not forward() arguments.
NON_MODEL_KEYS = frozenset({"completion_mask", "advantages", "old_logprobs", "ref_logprobs", "behaviour_logprobs",
                            "loss_denominator"})


def model_inputs(batch: dict[str, Any], device: Any = None) -> dict[str, Any]:
    """The entries of an `encode_for_training` batch that the model's forward takes (on `device`)."""
    return {k: (v.to(device) if device is not None and isinstance(v, torch.Tensor) else v)
            for k, v in batch.items() if k not in NON_MODEL_KEYS}


def sequence_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, chunk_tokens: int = 0) -> torch.Tensor:
    """log p(input_ids[:, j] | input_ids[:, <j]) at every position j, in float32, 0 at j = 0 (no context).
    Shape (B, L), aligned with `input_ids` and `completion_mask`.

    gather − logsumexp rather than log_softmax: the (B, L, V) log-softmax of a 150k vocabulary would be the
    largest tensor of a training step; this never materialises it. Even so, autograd keeps a float32 copy of the
    logits for the backward and the backward makes three more (measured in tests/test_memory.py); with
    `chunk_tokens` > 0 both directions run `chunk_tokens` positions at a time (`_ChunkedLogprobs`), with the same
    values and gradients, and only the logits themselves and their gradient are ever whole."""
    if chunk_tokens > 0:
        picked = _ChunkedLogprobs.apply(logits, input_ids, chunk_tokens)
    else:
        logits = logits[:, :-1].float()
        picked = logits.gather(-1, input_ids[:, 1:, None]).squeeze(-1) - logits.logsumexp(-1)
    return torch.cat([picked.new_zeros(input_ids.shape[0], 1), picked], dim=1)


class _ChunkedLogprobs(torch.autograd.Function):
    """(B, L, V) logits, (B, L) ids → (B, L − 1) log-probs of ids[:, 1:], `chunk` positions at a time.

    The same float32 operations as the unchunked path, row by row: forward gather − logsumexp; backward
    g·onehot − g·exp(x − lse), which is what autograd computes there (scatter of g plus logsumexp's backward),
    cast to the logits' dtype. Each row's reduction runs over the same V values either way: on CPU the results are
    equal, not just close (tests/test_models_inputs_chunked.py); a GPU's reduction kernel may order a row's sum by
    the tensor's shape, so there they agree to float32 rounding, as two micro-batch sizes do. Saved for the
    backward: the logits (alive anyway, the model returned them) and the (B, L − 1) log-sum-exps."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, input_ids: torch.Tensor, chunk: int) -> torch.Tensor:
        rows, width = input_ids.shape[0], input_ids.shape[1] - 1
        picked = logits.new_empty(rows, width, dtype=torch.float32)
        lse = torch.empty_like(picked)
        for b, span in _chunks(rows, width, chunk):
            x = logits[b, span].float()
            lse[b, span] = x.logsumexp(-1)
            picked[b, span] = x.gather(-1, input_ids[b, span.start + 1:span.stop + 1, None]).squeeze(-1)
        ctx.save_for_backward(logits, input_ids, lse)
        ctx.chunk = chunk
        return picked - lse

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        logits, input_ids, lse = ctx.saved_tensors
        out = torch.zeros_like(logits)  # the last position predicts nothing: its gradient stays 0
        for b, span in _chunks(input_ids.shape[0], input_ids.shape[1] - 1, ctx.chunk):
            g = grad[b, span, None]
            d = logits[b, span].float().sub_(lse[b, span, None]).exp_().mul_(-g)  # in place: one chunk in float32
            d.scatter_add_(-1, input_ids[b, span.start + 1:span.stop + 1, None], g)
            out[b, span] = d.to(logits.dtype)
        return out, None, None


def _chunks(rows: int, width: int, chunk: int):
    for b in range(rows):
        for start in range(0, width, chunk):
            yield b, slice(start, min(start + chunk, width))


# Entries of a training batch with one column per token, cut together by `completion_logits`.
TOKEN_KEYS = frozenset({"input_ids", "attention_mask", "completion_mask", "old_logprobs", "ref_logprobs",
                        "behaviour_logprobs"})


@functools.lru_cache(maxsize=None)
def _keeps_logits(model_type: type) -> bool:
    """Whether a model class's forward takes `logits_to_keep` (once per class: this runs every micro-batch)."""
    return "logits_to_keep" in inspect.signature(model_type.forward).parameters


def completion_logits(model: Any, batch: dict[str, Any], device: Any = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """The forward pass of a training batch, with logits only from the column before the batch's first
    completion token on → (logits (B, W, V), the batch's token columns cut to the same W). `sequence_logprobs`
    of the two is the full one's last W columns (its first column, a prompt token, reads 0).

    Why: prompts are ~90% of a planning sequence, and the (B, L, V) logits with their log-sum-exp and backward
    were a sixth of the tiny planner's training step. A model whose forward lacks `logits_to_keep` (remote code)
    gets the whole width."""
    if device is not None:  # moved once: the model's inputs and the loss's columns are the same tensors
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    mask = batch["completion_mask"]
    columns = mask.any(dim=0).nonzero()
    unwrapped = getattr(model, "module", model)  # a DeepSpeed engine wraps the model
    start = max(0, int(columns[0]) - 1) if len(columns) and _keeps_logits(type(unwrapped)) else 0
    inputs = model_inputs(batch)
    if start:
        inputs["logits_to_keep"] = torch.arange(start, mask.shape[1], device=mask.device)
    logits = model(**inputs, use_cache=False).logits
    return logits, {k: v[:, start:] if k in TOKEN_KEYS else v for k, v in batch.items()}


def token_logprobs(model: Any, batch: dict[str, Any], device: Any = None, temperature: float = 1.0) -> torch.Tensor:
    """`sequence_logprobs` of the batch under `model` at `temperature` (of softmax(logits / T), the policy that
    samples at T), (B, L), from `completion_logits`: 0 on the prompt columns before the first completion, which
    no loss reads."""
    logits, window = completion_logits(model, batch, device)
    if temperature != 1.0:
        logits = logits / temperature
    logp = sequence_logprobs(logits, window["input_ids"])
    return torch.cat([logp.new_zeros(logp.shape[0], batch["input_ids"].shape[1] - logp.shape[1]), logp], dim=1)


def completion_logprobs(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """log p(token) for every token of the batch under `model` at temperature 1 (log_softmax of the raw
    logits, as the HF engine reports), zero outside `completion_mask`. Shape (B, L); with gradients when the
    caller has them enabled."""
    device = next(model.parameters()).device
    return token_logprobs(model, batch, device) * batch["completion_mask"].to(device)
