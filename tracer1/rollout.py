"""Rollouts: G plans per planning sample, from one engine. `RolloutWorker` is the plain class inside each
rollout actor of the training loop.

It builds each sample's prompt with `tracer1.models.prompt` (the one place prompts are built, so the learner,
re-encoding the same sample, sees the same tokens) and asks its engine for `group_size` completions per prompt.
A `Group` keeps the prompt's token ids beside the completions: the learner checks them against its own encoding
and refuses a batch whose prompts drifted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracer1.data.schema import Sample
from tracer1.engines import Completion, RolloutEngine, Sampling, make_engine
from tracer1.models.loading import PlannerBundle, load_planner
from tracer1.models.prompt import prompt_from_sample


@dataclass
class Group:
    """The G plans sampled for one planning sample."""

    sample_id: str
    prompt_token_ids: list[int]
    completions: list[Completion] = field(default_factory=list)
    weights_version: int = 0  # of the engine's weights that sampled them (the loop checks none is stale)

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.completions]


class RolloutWorker:
    """Holds a rollout engine and the planner's prompt side (tokenizer / processor).

    `config` is the run's `RunConfig` (model, rollout, horizon); `engine` may be given (tests, colocation),
    otherwise `rollout.engine` picks transformers or vLLM for the planner at `model_dir`."""

    def __init__(self, model_dir: str | Path, config, *, engine: RolloutEngine | None = None,
                 weights_version: int = 0):
        self.config = config
        self.engine = engine if engine is not None else make_engine(model_dir, config.model, config.rollout,
                                                                    seed=config.seed)
        held = getattr(self.engine, "bundle", None)  # the HF engine has loaded the planner already
        self.bundle: PlannerBundle = held if isinstance(held, PlannerBundle) else load_planner(
            model_dir, trust_remote_code=config.model.trust_remote_code, load_model=False)
        self.weights_version = weights_version  # of the weights at model_dir (a resumed run's step)

    def prompts(self, samples: Sequence[Sample]) -> list:
        cfg = self.config
        return [prompt_from_sample(self.bundle, s, horizon=cfg.horizon, history_len=cfg.rollout.history_len,
                                   max_prompt_tokens=cfg.model.max_prompt_tokens,
                                   max_image_pixels=cfg.model.max_image_pixels) for s in samples]

    def sampling(self, *, group_size: int | None = None, seed: int = 0, greedy: bool = False) -> Sampling:
        r = self.config.rollout
        if greedy:
            return Sampling(n=1, temperature=0.0, max_new_tokens=r.max_new_tokens, seed=seed)
        return Sampling(n=group_size or r.group_size, temperature=r.temperature, top_p=r.top_p,
                        max_new_tokens=r.max_new_tokens, seed=seed)

    def rollout(self, samples: Sequence[Sample], *, seed: int = 0, group_size: int | None = None,
                greedy: bool = False) -> list[Group]:
        """One `Group` per sample, in order: `group_size` sampled plans (greedy: one plan at temperature 0).
        `seed` makes the batch reproducible (the loop derives it from the step, so a resumed run samples the
        same plans)."""
        if not samples:
            return []
        outputs = self.engine.generate(self.prompts(samples), self.sampling(group_size=group_size, seed=seed,
                                                                            greedy=greedy))
        return [Group(s.sample_id, list(group[0].prompt_token_ids) if group else [], list(group),
                      self.weights_version) for s, group in zip(samples, outputs)]

    def update_weights(self, state: Mapping[str, Any], version: int | None = None) -> int:
        """Load the learner's weights into the engine; returns the new weights version."""
        self.engine.update_weights(state)
        self.weights_version = self.weights_version + 1 if version is None else version
        return self.weights_version

    def sleep(self) -> None:
        self.engine.sleep()

    def wake(self) -> None:
        self.engine.wake()
