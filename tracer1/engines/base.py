"""The rollout-engine contract: every engine (transformers, vLLM) takes the same prompts and returns the same
completions, so rollout workers, executors and benchmarks never care which one runs.

A `Prompt` is chat-template-rendered text plus its images, built by `tracer1.models.prompt` (planner prompts)
or an executor (grounding prompts); engines never build prompts themselves, so the prompt a model is trained on
and the prompt it samples from cannot drift apart."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Prompt:
    """What an engine consumes: the rendered chat text (generation prompt included) and the images whose
    placeholders it contains, in order. Images are PIL images already resized for the model."""

    text: str
    images: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Sampling:
    """How to sample. temperature 0 means greedy (then n > 1 gives n identical completions)."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int | None = None
    stop: tuple[str, ...] = ("</plan>",)  # the plan's closing tag ends a completion; the stop text is kept

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"Sampling.n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"Sampling.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"Sampling.top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"Sampling.max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclass
class Completion:
    """One sampled continuation of one prompt."""

    prompt_index: int               # which prompt of the batch it continues
    text: str                       # decoded completion, special tokens removed
    token_ids: list[int]            # generated token ids (no prompt, no padding)
    logprobs: list[float]           # log p(token) under the raw model (temperature 1), one per token id; the
                                    # learner does not read them (it recomputes its old/ref log-probs at the
                                    # rollout temperature, `tracer1.learner.worker`)
    finish_reason: str = "length"   # "stop" (EOS or a stop string) or "length"
    prompt_token_ids: list[int] = field(default_factory=list)


def completion_text(tokenizer: Any, token_ids: Sequence[int], stops: Sequence[str]) -> str:
    """A completion's text, the same for every engine: its tokens decoded without special tokens, cut just after
    the first stop string (the token that completes a stop string may carry text past it)."""
    text = tokenizer.decode(list(token_ids), skip_special_tokens=True)
    ends = [text.find(s) + len(s) for s in stops if s and s in text]
    return text[:min(ends)] if ends else text


@runtime_checkable
class RolloutEngine(Protocol):
    """generate → completions; update_weights pushes learner weights; sleep/wake free memory between phases."""

    def generate(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]:
        """For each prompt, `sampling.n` completions (outer list follows `prompts`)."""

    def update_weights(self, state: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
        """Load a HF-named state dict (name → tensor) in place."""

    def sleep(self) -> None:
        """Release what memory can be released (no-op where unsupported)."""

    def wake(self) -> None:
        """Undo `sleep`."""
