"""The loop's weight sync: after each learner update, every rollout worker gets the new weights.

    mode = select_weight_sync(config)                         # before the actors: NCCL shapes engines and learners
    learners = learner_ranks(with_weight_sender(LearnerWorker, mode), ...)
    sync = start_weight_sync(mode, config, learners, rollouts, version=first - 1)
    out = sync.push(step)                                     # after each learner step that changed the weights

`rollout.weight_sync` picks the path (`tracer1.engines.weight_sync.choose_sync`): `file` hands every rollout worker
the learner's state dict (`update_weights`; any engine, CPU or GPU); `nccl` — vLLM engines and learner ranks on
whole GPUs of their own, a supported vLLM — has learner rank 0 broadcast ZeRO-3 gathered buckets to every vLLM
worker through vLLM's weight-transfer engine. `auto` takes NCCL where it can and says why when it cannot. The
NCCL path runs only on GPUs and has not run in CI.

Only learner rank 0 materialises the full weights, on either path. On the file path `Learner.state_dict` gathers
ZeRO-3 shards a bucket (`rollout.weight_sync_bucket_mb`) at a time on every rank — each gather is a collective —
and only rank 0 copies them to CPU and returns them; the other ranks return {}, and without ZeRO-3 they are not
asked at all. So one model copy, rank 0's, enters Ray's object store per sync.
"""

from __future__ import annotations

import ray

from tracer1.engines.weight_sync import NcclLearnerSide, choose_sync, engine_ranks, installed_vllm, on_gpus
from tracer1.train.actors import Answers, call_actors

_INSTALLED = object()  # select_weight_sync's default: ask importlib for the installed vLLM


def select_weight_sync(config, *, vllm_version: str | None | object = _INSTALLED) -> str:
    """"nccl" or "file" for this run, printed with the rule that decided it (the field and value, or the vLLM
    found); `rollout.weight_sync=nccl` where NCCL cannot work raises with the reason (a config that rules it out
    is refused when read; the vLLM version is checked here). The driver's vLLM stands for the rollout workers'
    (one image on the cluster)."""
    version = installed_vllm() if vllm_version is _INSTALLED else vllm_version
    mode, why = choose_sync(config, gpus=on_gpus(config), vllm_version=version)
    print(f"  weight sync: {mode} ({why})", flush=True)
    return mode


def with_weight_sender(learner_cls: type, mode: str) -> type:
    """The learner actor class: with the NCCL sender's methods when `mode` is nccl."""
    if mode != "nccl":
        return learner_cls
    return type(learner_cls.__name__, (NcclLearnerSide, learner_cls), {"__module__": learner_cls.__module__})


class FileSync:
    """The learner's state dict (rank 0's answer) to every rollout worker's `update_weights`. `collective`
    (ZeRO-3): every rank must take part in each gather, so all are asked and all their calls awaited, though only
    rank 0 returns weights; otherwise rank 0 alone is asked. The last weights sent are kept for a rollout worker
    that restarts (`resync`)."""

    def __init__(self, learners: list, rollouts: list, *, version: int, retries: int, collective: bool):
        self.learners, self.rollouts, self.retries = learners, rollouts, retries
        self.asked = learners if collective else learners[:1]  # the ranks a state dict needs
        self.version, self.state = version, None  # the weights the rollout workers hold; their ObjectRef

    def _weights(self):
        """Rank 0's state dict as an ObjectRef, once the other ranks' part of the gathers is done (their calls
        must finish before the next collective, and their errors must not pass unseen; they return {})."""
        refs = [r.state_dict.remote() for r in self.asked]
        ray.get(refs[1:])
        return refs[0]

    def push(self, step: int) -> Answers:
        self.state, self.version = self._weights(), step
        return call_actors([(w, (self.state,)) for w in self.rollouts], "update_weights", retries=self.retries,
                           version=step)

    def resync(self, worker) -> None:
        """A restarted rollout worker holds the starting weights again: give it the last ones sent."""
        if self.state is not None:
            ray.get(worker.update_weights.remote(self.state, version=self.version))


class NcclSync(FileSync):
    """Learner rank 0 broadcasts bucket after bucket; every rollout engine's workers receive them (GPUs only)."""

    def __init__(self, learners: list, rollouts: list, *, version: int, bucket_mb: int, tensor_parallel_size: int,
                 collective: bool):
        super().__init__(learners, rollouts, version=version, retries=0,  # a lost rank breaks the group anyway
                         collective=collective)
        address, port = ray.get(learners[0].weight_group_address.remote())
        world, offsets = engine_ranks(len(rollouts), tensor_parallel_size)
        ray.get([learners[0].join_weight_group.remote(address, port, world),  # they meet in the rendezvous
                 *[w.join_weight_group.remote(address, port, first, world) for w, first in zip(rollouts, offsets)]])
        self.bucket_bytes = bucket_mb * 2**20
        self.buckets = ray.get(learners[0].weight_plan.remote(self.bucket_bytes))

    def push(self, step: int) -> Answers:
        sending = [r.send_weights.remote(self.bucket_bytes) for r in self.learners]
        out = call_actors([(w, (self.buckets, step)) for w in self.rollouts], "receive_weights", retries=0)
        ray.get(sending)
        self.version = step
        return out

    def resync(self, worker) -> None:
        raise RuntimeError("a rollout worker restarted while rollout.weight_sync=nccl: it cannot rejoin the "
                           "learner's NCCL group. Resume the run from its last checkpoint, or use "
                           "rollout.weight_sync=file")


def start_weight_sync(mode: str, config, learners: list, rollouts: list, *, version: int) -> FileSync:
    collective = config.learner.zero_stage == 3  # the learner's state dict is gathered by every rank
    if mode == "nccl":
        r = config.rollout
        return NcclSync(learners, rollouts, version=version, bucket_mb=r.weight_sync_bucket_mb,
                        tensor_parallel_size=r.tensor_parallel_size, collective=collective)
    return FileSync(learners, rollouts, version=version, retries=config.cluster.max_task_retries,
                    collective=collective)
