"""The held-out evaluation on the rollout workers: `RolloutPool` presents the RL loop's rollout actors as the engine
`evaluate_planning` takes (`generate(prompts, sampling)` → completions), so stages 1–2 evaluate the weights the
rollout workers hold — after each weight sync, the learner's latest — on the devices they run on, and the driver
holds no model (only the tokenizer / processor that builds the prompts).

    pool = RolloutPool(rollouts, retries=..., resync=sync.resync, version=lambda: sync.version)
    report = evaluate_held_out(pool, prompts, evals, config, policy=policy)      # tracer1.eval.held_out

Data walks driver → actors → driver: the driver builds the prompts, cuts each generate call into pieces of
`PIECE_PROMPTS` prompts (`tracer1.eval.held_out.pieces`), shares the pieces evenly among the workers (`RolloutWorker.generate_pieces`, one engine
call per piece) and puts the completions back in prompt order. A call whose actor died is retried on the restarted
actor after it is given the current weights (`tracer1.train.actors.call_actors`, `resync`); a worker that answers
with weights other than the synced ones (one Ray restarted while it was idle) is resynced and asked again, and
refused the second time, so a report never mixes weights.

Determinism: piece k of a call samples with its own seed (`tracer1.eval.held_out.piece_seed`), so a piece's completions depend on its
prompts, its seed and the weights only — not on how many workers there are or which one served it. With the
transformers engine (seeded sampling on an RNG forked per call; greedy decoding) the report is the same with 1
or N workers (tests/test_eval_rollout_pool.py). vLLM cannot promise it: its per-request seeds make a request's
random draws its own, but vLLM 0.32 does not guarantee the same logits for the same request in another batch or
schedule (only with `VLLM_BATCH_INVARIANT=1` or single-process scheduling, and then on the same hardware and
version); a piece is one `generate` call on an idle engine, which in practice repeats, but no more is promised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tracer1.engines.base import Completion, Prompt, Sampling
from tracer1.eval.held_out import PIECE_PROMPTS, pieces
from tracer1.train.actors import call_actors
from tracer1.train.batch import split_evenly

class RolloutPool:
    """The rollout actors as one `RolloutEngine` for evaluation (see the module docstring). `resync(worker)` gives
    a worker the current weights (the loop's `sync.resync`); `version()` is the weights version they should hold
    (`sync.version`)."""

    generates_in_pieces = True

    def __init__(self, workers: Sequence, *, retries: int, resync: Callable[[object], None],
                 version: Callable[[], int]):
        if not workers:
            raise ValueError("RolloutPool needs at least one rollout worker")
        self.workers, self.retries, self.resync, self.version = list(workers), retries, resync, version

    def generate(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]:
        cut = pieces(prompts, sampling)
        shares = [s for s in split_evenly(len(cut), len(self.workers)) if s.stop > s.start]
        calls = [(w, (cut[s],)) for w, s in zip(self.workers, shares)]
        what = [f"evaluation prompts {s.start * PIECE_PROMPTS}..{min(s.stop * PIECE_PROMPTS, len(prompts)) - 1}"
                for s in shares]
        answers = self._ask(calls, what)
        expected = self.version()
        stale = [i for i, (v, _) in enumerate(answers) if v != expected]
        if stale:  # restarted while idle: it came back with the weights it was created with
            for i in stale:
                self.resync(calls[i][0])
            again = self._ask([calls[i] for i in stale], [what[i] for i in stale])
            for i, answer in zip(stale, again):
                if answer[0] != expected:
                    raise RuntimeError(f"{what[i]}: rollout worker {calls[i][0]._actor_id.hex()[:12]} holds weights "
                                       f"version {answer[0]} after a resync, the synced version is {expected}")
                answers[i] = answer
        return [group for _, per_piece in answers for piece in per_piece for group in piece]

    def _ask(self, calls: list, what: list[str]) -> list:
        return call_actors(calls, "generate_pieces", retries=self.retries, what=what,
                           before_retry=self.resync).results
