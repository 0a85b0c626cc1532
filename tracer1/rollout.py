"""Rollouts: G plans per planning sample, from one engine. `RolloutWorker` is the plain class inside each
rollout actor of the training loop.

It builds each sample's prompt with `tracer1.models.prompt` (the one place prompts are built), encodes it once
(`tracer1.models.inputs`) and asks its engine for `group_size` completions per prompt. A `Group` carries that
encoding beside the completions, so the learner trains on exactly the ids (and image patches) that were sampled
from and nobody encodes the prompt again; an engine that tokenises prompts itself (vLLM) must arrive at the same
ids, or the worker refuses the batch naming the sample.

With `data.train_shards` each worker also draws its own samples (`rollout_own`): worker i of n holds a
`WorkerShardReader` over its range of the Parquet shards and returns the samples with their groups, so the driver
never loads the training data (tracer1.train.data_source keeps the per-worker cursors). With
`rollout.weight_sync=nccl` its vLLM engine's workers join the learner's NCCL group (`join_weight_group`) and
receive the weights through vLLM's weight-transfer engine (`receive_weights`; tracer1.engines.weight_sync). With
`cluster.colocate` the loop puts its engine to sleep for the learner update (`sleep`, `wake`). The held-out
evaluation of stages 1–2 runs here too, on the weights the worker holds: the driver sends prompts
(`generate_pieces`, tracer1.eval.rollout_pool).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracer1.data.schema import Sample
from tracer1.data.shards import Shard, WorkerShardReader
from tracer1.engines import Completion, Prompt, RolloutEngine, Sampling, make_engine
from tracer1.engines.prompt_ids import compare_prompt_ids
from tracer1.models.inputs import EncodedPrompt, encode_prompts
from tracer1.models.loading import PlannerBundle, load_planner
from tracer1.models.prompt import prompts_for_run


@dataclass
class Group:
    """The G plans sampled for one planning sample."""

    sample_id: str
    prompt: EncodedPrompt                       # the prompt as model input, what the learner trains on
    completions: list[Completion] = field(default_factory=list)
    weights_version: int = 0  # of the engine's weights that sampled them (the loop checks none is stale)

    @property
    def prompt_token_ids(self) -> list[int]:
        return list(self.prompt.input_ids)

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.completions]


class RolloutWorker:
    """Holds a rollout engine and the planner's prompt side (tokenizer / processor).

    `config` is the run's `RunConfig` (model, rollout, horizon); `engine` may be given (tests, colocation),
    otherwise `rollout.engine` picks transformers or vLLM for the planner at `model_dir`."""

    def __init__(self, model_dir: str | Path, config, *, engine: RolloutEngine | None = None,
                 weights_version: int = 0, shard: WorkerShard | None = None, weight_sync: str = "file"):
        """`shard`: this worker's share of `data.train_shards` and where to start in it (None: the driver sends
        the samples). `weight_sync`: the loop's resolved `rollout.weight_sync` ("nccl" builds the vLLM engine with
        vLLM's NCCL weight-transfer engine in its workers)."""
        self.config = config
        if engine is None and weight_sync == "nccl":
            from tracer1.engines.weight_sync import nccl_rollout_engine  # noqa: PLC0415 — GPUs only

            engine = nccl_rollout_engine(model_dir, config)
        self.engine = engine if engine is not None else make_engine(model_dir, config.model, config.rollout,
                                                                    seed=config.seed)
        self.shard = shard
        self.reader = shard.reader(config.data.train_shards) if shard is not None else None
        held = getattr(self.engine, "bundle", None)  # the HF engine has loaded the planner already
        self.bundle: PlannerBundle = held if isinstance(held, PlannerBundle) else load_planner(
            model_dir, trust_remote_code=config.model.trust_remote_code, load_model=False)
        self.weights_version = weights_version  # of the weights at model_dir (a resumed run's step)

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
        prompts = prompts_for_run(self.bundle, samples, self.config)
        encoded = encode_prompts(self.bundle, prompts)
        sampling = self.sampling(group_size=group_size, seed=seed, greedy=greedy)
        takes_encoded = getattr(self.engine, "takes_encoded_prompts", False)  # else it tokenises the text itself
        outputs = self.engine.generate(encoded if takes_encoded else prompts, sampling)
        for sample, enc, group in zip(samples, encoded, outputs):
            ids = list(enc.input_ids)
            drifted = None if takes_encoded else next((c for c in group if list(c.prompt_token_ids) != ids), None)
            if drifted is not None:  # an engine that generated from `enc` itself cannot drift
                report = compare_prompt_ids(ids, drifted.prompt_token_ids, self.bundle.tokenizer)
                raise ValueError(f"sample {sample.sample_id}: the engine's prompt ids differ from the learner's; the "
                                 f"engine tokenises prompts differently from tracer1.models.inputs\n{report}")
        return [Group(s.sample_id, enc, list(group), self.weights_version)
                for s, enc, group in zip(samples, encoded, outputs)]

    def generate_pieces(self, pieces: Sequence[tuple[Sequence[Prompt], Sampling]]
                        ) -> tuple[int, list[list[list[Completion]]]]:
        """Evaluation (`tracer1.eval.rollout_pool`): each piece's prompts, built by the driver, generated in one
        engine call with the piece's sampling; -> (the weights version that generated them, each piece's
        completions per prompt)."""
        return self.weights_version, [self.engine.generate(list(prompts), sampling) for prompts, sampling in pieces]

    def draw(self, position: int, count: int) -> list[Sample]:
        """Samples `position` .. `position + count - 1` of this worker's shard range (epochs repeat it). The loop
        names the position, so a restarted actor (whose reader starts again at its first cursor) or a resumed run
        draws the same samples."""
        if self.reader is None:
            raise RuntimeError("this rollout worker has no shards (data.train_shards is null): the loop sends samples")
        if position < self.reader.position:  # behind the reader: open it again (streams are forward-only)
            self.reader = self.shard.reader(self.config.data.train_shards, skip=position)
        self.reader.take(position - self.reader.position)
        return self.reader.take(count)

    def rollout_own(self, position: int, count: int, *, seed: int = 0) -> tuple[list[Sample], list[Group]]:
        """(samples, their groups): `count` samples drawn from this worker's shards at `position`, rolled out."""
        samples = self.draw(position, count)
        return samples, self.rollout(samples, seed=seed)

    def update_weights(self, state: Mapping[str, Any], version: int | None = None) -> int:
        """Load the learner's weights into the engine; returns the new weights version."""
        self.engine.update_weights(state)
        self.weights_version = self.weights_version + 1 if version is None else version
        return self.weights_version

    def sleep(self) -> None:
        """`cluster.colocate`: release the engine's GPU memory while the learner updates on the same GPU (vLLM
        sleep mode; the transformers engine moves its weights to CPU; a no-op on CPU)."""
        self.engine.sleep()

    def wake(self) -> None:
        """Take the memory back (before the weight sync and the next rollout)."""
        self.engine.wake()

    def join_weight_group(self, address: str, port: int, rank_offset: int, world_size: int) -> None:
        """NCCL sync: every worker process of this vLLM engine joins the learner's weight group, at ranks
        rank_offset onwards (vLLM's weight-transfer engine; tracer1.engines.weight_sync)."""
        from tracer1.engines.weight_sync import join_on  # noqa: PLC0415

        join_on(self.engine, address, port, rank_offset, world_size,
                bucket_bytes=self.config.rollout.weight_sync_bucket_mb * 2**20)

    def receive_weights(self, buckets: list, version: int) -> int:
        """NCCL sync: receive the buckets learner rank 0 broadcasts into the engine; -> the new weights version."""
        from tracer1.engines.weight_sync import receive_on  # noqa: PLC0415

        receive_on(self.engine, buckets)
        self.weights_version = version
        return version


@dataclass(frozen=True)
class WorkerShard:
    """Rollout worker `worker` of `workers`' share of `data.train_shards`: `shards` is the driver's listing (so
    workers do not list again) and `skip` how many of its samples earlier steps took (a resumed run's cursor)."""

    worker: int
    workers: int
    shards: tuple[Shard, ...]
    skip: int = 0

    def reader(self, uri: str, *, skip: int | None = None) -> WorkerShardReader:
        return WorkerShardReader(uri, self.worker, self.workers, shards=list(self.shards),
                                 skip=self.skip if skip is None else skip)
