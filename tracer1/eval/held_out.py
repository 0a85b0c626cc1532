"""The held-out evaluation every training stage reports before and after (and every `eval_every` steps): a seeded
spread of held-out samples, their prompts, and `evaluate_planning` with the run's settings, its report kept beside
the weights it measured so the next stage does not measure them again.

    evals = held_out(load_split(config, "eval"), config.sft.eval_samples, config.seed)
    prompts = prompts_for_run(bundle, evals, config)          # tracer1.models.prompt
    report = evaluate_held_out(engine, prompts, evals, config, policy=policy_dir)

`engine` is any `RolloutEngine`: the SFT warm start's own (its learner runs in the driver), or in stages 1–2 the
rollout workers holding the synced weights (`tracer1.eval.rollout_pool.RolloutPool`; stage 3 plays its held-out
episodes on them too).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from tracer1.atomic import save_json_atomic
from tracer1.engines.base import Completion, Prompt, Sampling
from tracer1.eval.planning import PlanningReport, evaluate_planning, grounding_check


# Prompts generated together in one engine call: the unit whose completions do not depend on the worker count.
# Small enough that a 32-prompt chunk of `evaluate_planning` keeps 8 workers busy, big enough to batch n × 4 rows.
PIECE_PROMPTS = 4


def piece_seed(seed: int | None, piece: int) -> int | None:
    """Piece `piece`'s sampling seed (None: unseeded); pieces do not share random draws."""
    return None if seed is None else seed * 1_000_003 + piece


def pieces(prompts: Sequence[Prompt], sampling: Sampling) -> list[tuple[list[Prompt], Sampling]]:
    """A generate call cut into pieces of `PIECE_PROMPTS` prompts, each with its own seed."""
    return [(list(prompts[i:i + PIECE_PROMPTS]), replace(sampling, seed=piece_seed(sampling.seed, k)))
            for k, i in enumerate(range(0, len(prompts), PIECE_PROMPTS))]


class InPieces:
    """A local engine (the SFT warm start's, in the driver) generating in pieces as the rollout workers'
    `RolloutPool` does: a held-out evaluation then means the same whoever made it, so the SFT's kept evaluation is
    stage 1's "before", sampled plans included."""

    generates_in_pieces = True

    def __init__(self, engine):
        self.engine = engine

    def generate(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]:
        return [group for piece, s in pieces(prompts, sampling) for group in self.engine.generate(piece, s)]


def held_out(samples: list, count: int, seed: int) -> list:
    """A seeded spread of held-out samples (consecutive samples share an episode; a random pick covers more)."""
    return sorted(random.Random(seed).sample(samples, min(count, len(samples))), key=lambda s: s.sample_id)


def evaluation_file(config, policy: Path) -> Path:
    """Where the held-out evaluation of the weights in `policy` under this config's evaluation settings is kept.
    The evaluation is deterministic (seeded sampling), so the weights a stage ends with and the next stage starts
    from are evaluated once: stage 1's "before" is the SFT's "after", stage 2's "before" is stage 1's "after"."""
    settings = config.model_dump(mode="json", include={"seed", "horizon", "data", "env", "executor", "reward"})
    settings.update(eval_samples=config.sft.eval_samples, eval_plans=config.sft.eval_plans,
                    temperature=config.rollout.temperature, max_new_tokens=config.rollout.max_new_tokens,
                    history_len=config.rollout.history_len, max_prompt_tokens=config.model.max_prompt_tokens,
                    max_image_pixels=config.model.max_image_pixels, procedure=f"pieces of {PIECE_PROMPTS}")
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return Path(policy) / f"heldout-eval-{key}.json"


def evaluate_held_out(engine, prompts, samples, config, policy: Path | None = None) -> PlanningReport:
    """The held-out evaluation; with `policy` (the directory holding the engine's current weights), reused from
    that directory when these weights were already evaluated with these settings."""
    if policy is not None and evaluation_file(config, policy).is_file():
        return PlanningReport(**json.loads(evaluation_file(config, policy).read_text()))
    # Grounded accuracy needs a frozen executor; a VLM one would need its own engine, so it is left to stage 2.
    grounded = None
    if config.executor.kind != "vlm":
        from tracer1.executors import make_executor  # noqa: PLC0415 — executors load env code

        grounded = grounding_check(make_executor(config.executor, env_config=config.env), config.reward)
    if not getattr(engine, "generates_in_pieces", False):  # a local engine; the rollout workers' pool already does
        engine = InPieces(engine)
    return evaluate_planning(engine, prompts, samples, reward_cfg=config.reward, horizon=config.horizon,
                             n=config.sft.eval_plans, temperature=config.rollout.temperature,
                             max_new_tokens=config.rollout.max_new_tokens, seed=config.seed, grounded=grounded)


def keep_evaluation(config, policy: Path, report: PlanningReport) -> None:
    """Store `report` beside the weights it measured (see `evaluation_file`)."""
    save_json_atomic(evaluation_file(config, policy), report.to_dict())
