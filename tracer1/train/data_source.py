"""Where each RL step's planning samples come from, and what a checkpoint keeps so a resumed run continues with the
same next batch.

    data = training_data(config, state)                        # state: the resumed checkpoint's ({} if fresh)
    rollouts = [make_actor(RolloutWorker, ...).remote(..., **data.worker_options(i)) for i in range(n)]
    samples, out = data.rollout(rollouts, step, retries=..., before_retry=...)   # out.results: one Group per sample
    write_checkpoint(..., {**data.state(step), ...})

* `DriverSplit` (`data.train_shards` null): the driver loads the training split and draws `rollout.prompts_per_step`
  indices a step from seeded permutations, or in order with `data.shuffle` false (`tracer1.train.assets.batches`,
  as the SFT warm start does); the rollout workers get even shares of the batch. The cursor is the step: a resumed
  run skips that many batches.
* `WorkerShards` (`data.train_shards` set): the driver only lists the shards (names and footers). Rollout worker i
  of n holds a `WorkerShardReader` over its contiguous range of them and draws its own share of each batch
  (`prompts_per_step` split as evenly as possible, the first workers taking one more), in shard and row order,
  epoch after epoch, returning the samples with their groups. Each worker's cursor (samples it has drawn) goes
  into the checkpoint; a step asks each worker for the samples at its cursor, so a restarted actor or a resumed
  run draws exactly what an uninterrupted one would. `data.max_samples` and `data.shuffle` apply to the driver's
  split only: shards are read in order (shuffle them when writing).
"""

from __future__ import annotations

from tracer1.data.shards import list_shards, shard_range
from tracer1.rollout import WorkerShard
from tracer1.train.actors import Answers, call_actors, call_pool
from tracer1.train.assets import batches, load_split
from tracer1.train.batch import split_evenly


def rollout_seed(config, step: int) -> int:
    """The step's sampling seed (the same for every worker: their samples differ)."""
    return config.seed * 1_000_003 + step


class DriverSplit:
    """The training split loaded by the driver, whose batches the rollout workers share (`data.train_shards` null)."""

    def __init__(self, config, state: dict):
        self.config = config
        self.train = load_split(config, "train", config.data.max_samples)
        self.draw = batches(config.rollout.prompts_per_step, len(self.train), config.seed, config.data.shuffle)
        # the data cursor: batches are drawn in a fixed, seeded order (a checkpoint with batches in flight has
        # drawn theirs too: `tracer1.train.ahead`)
        for _ in range(state.get("data_cursor", state.get("step", 0))):
            next(self.draw)

    def describe(self) -> str:
        return f"{len(self.train)} training samples"

    def worker_options(self, worker: int) -> dict:
        return {}

    def rollout(self, rollouts: list, step: int, *, retries: int, before_retry=None) -> tuple[list, Answers]:
        samples = [self.train[i] for i in next(self.draw)]
        return samples, call_pool(rollouts, "rollout", samples, retries=retries, before_retry=before_retry,
                                  label=lambda s: s.sample_id, seed=rollout_seed(self.config, step))

    def state(self, step: int) -> dict:
        return {"data_cursor": step}


class WorkerShards:
    """`data.train_shards`, each rollout worker drawing from its own shard range at the cursor kept here."""

    def __init__(self, config, state: dict):
        self.config, self.uri = config, config.data.train_shards
        workers = config.rollout.num_workers
        self.shards = tuple(list_shards(self.uri))
        for worker in range(workers):  # more workers than shards: refused here, not in n actor constructors
            shard_range(len(self.shards), worker, workers)
        self.counts = worker_counts(config.rollout.prompts_per_step, workers)
        if state and "shard_cursors" not in state:
            raise ValueError("data.train_shards is set but the checkpoint being resumed has no shard cursors (it "
                             "was written without shards): start afresh (checkpoint.resume=never) or unset "
                             "data.train_shards")
        self.cursors = list(state["shard_cursors"]) if state else [0] * workers  # samples each worker has drawn
        if len(self.cursors) != workers:
            raise ValueError(f"the checkpoint being resumed holds shard cursors of {len(self.cursors)} rollout "
                             f"workers, rollout.num_workers is {workers}: the workers' shard ranges would change; "
                             f"resume with rollout.num_workers={len(self.cursors)}")

    def describe(self) -> str:
        return (f"{sum(s.rows for s in self.shards)} training samples in {len(self.shards)} shards at {self.uri} "
                f"(streamed by {len(self.cursors)} rollout workers)")

    def worker_options(self, worker: int) -> dict:
        return {"shard": WorkerShard(worker, len(self.cursors), self.shards, skip=self.cursors[worker])}

    def rollout(self, rollouts: list, step: int, *, retries: int, before_retry=None) -> tuple[list, Answers]:
        drawing = [(i, w) for i, w in enumerate(rollouts) if self.counts[i]]
        out = call_actors([(w, (self.cursors[i], self.counts[i])) for i, w in drawing], "rollout_own",
                          retries=retries, before_retry=before_retry, seed=rollout_seed(self.config, step),
                          what=[f"{self.counts[i]} samples of worker {i}'s shards" for i, _ in drawing])
        for i, _ in drawing:
            self.cursors[i] += self.counts[i]
        samples = [s for own, _ in out.results for s in own]
        return samples, Answers([g for _, groups in out.results for g in groups], out.busy_s, out.retried)

    def state(self, step: int) -> dict:
        return {"data_cursor": step, "shard_cursors": list(self.cursors)}


def worker_counts(prompts: int, workers: int) -> list[int]:
    """Samples each rollout worker draws a step: `prompts` split as evenly as possible, the first take more."""
    return [share.stop - share.start for share in split_evenly(prompts, workers)]


def training_data(config, state: dict) -> DriverSplit | WorkerShards:
    """The run's source of training samples (`data.train_shards` or the driver's split); `state`: the resumed
    checkpoint's ({} for a fresh run)."""
    if config.data.train_shards:
        return WorkerShards(config, state)
    return DriverSplit(config, state)
