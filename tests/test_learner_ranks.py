"""Two real learner ranks (Ray actors, DeepSpeed ZeRO-3 over gloo) on the tiny text planner: a weight sync
materialises the full weights on rank 0 only — gathered a bucket at a time, every rank taking part — and the KL
reference is partitioned across the ranks like the policy. (One-rank behaviour: tests/test_learner.py and
tests/test_learner_reference.py.)

The tests share one pair of ranks and run in file order: the first reads the starting weights, the last trains."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import ray
import torch
from safetensors.torch import load_file
from tiny_planners import one_thread  # noqa: F401  (fixture)

from tracer1.config import RunConfig
from tracer1.engines.weight_sync import weight_buckets
from tracer1.learner.worker import LearnerWorker
from tracer1.models.loading import load_planner
from tracer1.models.tiny import build_tiny_planner
from tracer1.train.actors import learner_ranks, release
from tracer1.train.sync import start_weight_sync

from test_learner_worker import micro_batches

CONFIG = RunConfig.model_validate({
    "algorithm": {"kl_coef": 0.1, "lr": 1e-2},
    "rollout": {"weight_sync_bucket_mb": 1},  # the tiny planner is ~6 MB: several buckets, each a collective
    "learner": {"num_ranks": 2, "zero_stage": 3, "grad_accum_steps": 1, "backend": "gloo"}})


@pytest.fixture(scope="module")
def tiny_text(tmp_path_factory):
    return build_tiny_planner(tmp_path_factory.mktemp("tiny") / "text", kind="text", seed=0)


@pytest.fixture(scope="module")
def start(tiny_text):
    return load_planner(tiny_text)


@pytest.fixture(scope="module")
def ranks(tiny_text):
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)  # not a neighbour's cluster
    owned: list = []
    try:
        yield learner_ranks(LearnerWorker, CONFIG, str(tiny_text), CONFIG, owned=owned)
    finally:
        release(owned)
        ray.shutdown()


def returned_bytes(state: dict) -> int:
    """Bytes of the distinct tensors in a returned state dict (a tied weight's second name is no second copy)."""
    return sum({id(t): t.nbytes for t in state.values()}.values())


def model_bytes(model) -> int:
    return returned_bytes(model.state_dict())


def test_only_rank_0_materialises_the_weights_of_a_sync(ranks, start):
    assert len(weight_buckets(start.model, CONFIG.rollout.weight_sync_bucket_mb * 2**20)) > 3
    answers = ray.get([r.state_dict.remote() for r in ranks])  # both take part in every bucket's gather
    assert [returned_bytes(a) for a in answers] == [model_bytes(start.model), 0]
    expected = start.model.state_dict()
    assert list(answers[0]) == list(expected)
    assert all(torch.equal(answers[0][k], expected[k]) for k in expected)


def test_each_rank_holds_half_of_the_reference(ranks):
    def shard(worker) -> tuple[int, int, str, bool]:
        params = list(worker.reference.module.parameters())
        return (sum(p.ds_tensor.numel() for p in params), sum(p.ds_numel for p in params),
                type(worker.reference.optimizer).__name__, all(p.numel() == 0 for p in params))

    (held0, total, kind, empty), (held1, total1, _, _) = ray.get([r.__ray_call__.remote(shard) for r in ranks])
    assert total == total1 and kind == "DeepSpeedZeRoOffload" and empty
    padding = 2 * total // 1000  # ZeRO pads each parameter's partition to the world size: a few elements each
    assert abs(held0 - total / 2) <= padding and abs(held1 - total / 2) <= padding


def test_the_file_sync_keeps_rank_0s_weights_after_a_step_and_save_writes_them(ranks, start, tmp_path):
    batches = micro_batches(SimpleNamespace(bundle=start))
    metrics = ray.get([r.step.remote(batches) for r in ranks])  # the reference's forward gathers across ranks
    assert all(m["kl"] == pytest.approx(0.0, abs=1e-6) for m in metrics)  # reference = starting policy

    sync = start_weight_sync("file", CONFIG, ranks, rollouts=[], version=0)
    assert sync.asked == ranks  # ZeRO-3: every rank takes part
    sync.push(step=1)
    pushed = ray.get(sync.state)
    assert sync.version == 1 and returned_bytes(pushed) == model_bytes(start.model)
    moved = start.model.state_dict()
    assert any(not torch.equal(pushed[k], moved[k]) for k in moved)  # the step's weights, not the start's

    written = ray.get([r.save.remote(str(tmp_path / "policy")) for r in ranks])  # rank 0 writes, both gather
    on_disk = load_file(str(tmp_path / "policy" / "model.safetensors"))
    assert written[0] == str(tmp_path / "policy")
    assert set(on_disk) == set(pushed) and all(torch.equal(on_disk[k], pushed[k]) for k in pushed)


def test_without_zero3_only_rank_0_is_asked_for_the_weights():
    def asked(zero_stage: int) -> list:
        config = RunConfig.model_validate({"learner": {"zero_stage": zero_stage}})
        return start_weight_sync("file", config, ["rank 0", "rank 1"], rollouts=[], version=0).asked

    assert asked(2) == ["rank 0"] and asked(0) == ["rank 0"]
    assert asked(3) == ["rank 0", "rank 1"]
