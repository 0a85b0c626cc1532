"""Learner → engine weight sync (tracer1.engines.weight_sync), the parts a CPU can run: bucket plans and their
names, the stream the sender hands vLLM's packed broadcast and the payloads vLLM's workers receive by, ZeRO-3
shards gathered a bucket at a time from a real DeepSpeed learner (gloo, one rank), and the choice between the NCCL
and file paths (vLLM version, GPUs, shared GPUs). The NCCL broadcast itself needs GPUs and is not run here; vLLM's
own parsing of the payloads is tests/vllm_engine/test_engine_args.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from pydantic import ValidationError

from tracer1.config import LearnerConfig, RunConfig
from tracer1.engines.weight_sync import (
    SUPPORTED_VLLM, check_vllm_version, choose_sync, engine_ranks, gathered_buckets, hf_name, plan_buckets,
    sent_tensors, shared_gpu, transfer_init_info, transfer_update_info, weight_buckets,
)
from tracer1.learner import Learner


def tiny_qwen2(seed: int) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(Qwen2Config(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64))


def test_buckets_follow_the_order_and_stay_under_the_size():
    # a: 3 float32 = 12 B; b: 5 bfloat16 = 10 B → 22 B; c: 4 float32 = 16 B would make 38 > 32, so it opens bucket 2
    buckets = plan_buckets([("a", (3,), torch.float32), ("b", (5,), torch.bfloat16), ("c", (2, 2), "float32")], 32)
    assert [b.name for b in buckets] == ["bucket-0001-of-0002", "bucket-0002-of-0002"]
    assert [(s.name, s.nbytes, s.dtype) for s in buckets[0].tensors] == [("a", 12, "float32"), ("b", 10, "bfloat16")]
    assert buckets[0].nbytes == 22
    assert [(s.name, s.shape) for s in buckets[1].tensors] == [("c", (2, 2))]


def test_a_tensor_larger_than_a_bucket_travels_alone_and_plans_are_stable():
    specs = [("small", (2,), torch.float32), ("huge", (100,), torch.float32), ("tail", (1,), torch.float32)]
    buckets = plan_buckets(specs, 64)
    assert [[s.name for s in b.tensors] for b in buckets] == [["small"], ["huge"], ["tail"]]
    assert buckets[1].nbytes == 400
    assert plan_buckets(specs, 64) == buckets  # the learner and every engine compute the same plan


def test_a_plan_refuses_a_repeated_name_and_a_nonpositive_size():
    with pytest.raises(ValueError, match="'w' appears twice"):
        plan_buckets([("w", (1,), torch.float32), ("w", (1,), torch.float32)], 64)
    with pytest.raises(ValueError, match="bucket_bytes must be positive"):
        plan_buckets([], 0)


def test_the_sent_stream_follows_the_plan_that_vllms_update_info_declares():
    """The workers cut vLLM's packed stream by the update info (names, dtypes, shapes in order), so the sender's
    stream must be exactly that sequence; a tensor that disagrees with the plan is refused by name."""
    tensors = {"w": torch.randn(3, 5), "b": torch.randn(7).to(torch.bfloat16), "i": torch.arange(6).reshape(2, 3)}
    plan = plan_buckets([(n, tuple(t.shape), t.dtype) for n, t in tensors.items()], 64)
    assert len(plan) == 2
    assert transfer_update_info(plan) == {"names": ["w", "b", "i"], "dtype_names": ["float32", "bfloat16", "int64"],
                                          "shapes": [[3, 5], [7], [2, 3]]}
    sent = list(sent_tensors((b, tensors) for b in plan))
    assert [n for n, _ in sent] == ["w", "b", "i"] and all(t is tensors[n] for n, t in sent)  # no copies
    with pytest.raises(ValueError, match="w is \\(5, 3\\) float32, the plan says \\(3, 5\\) float32"):
        list(sent_tensors((b, {**tensors, "w": tensors["w"].T.contiguous()}) for b in plan))
    assert transfer_init_info("10.0.0.1", 2900, 3, 5, 1 << 20) == {
        "master_address": "10.0.0.1", "master_port": 2900, "rank_offset": 3, "world_size": 5, "packed": True,
        "packed_buffer_size_bytes": 1 << 20, "packed_num_buffers": 2}


def test_hf_names_lose_the_wrappers_of_deepspeed_compile_and_fsdp_only():
    assert hf_name("module.model.layers.0.mlp.up_proj.weight") == "model.layers.0.mlp.up_proj.weight"
    assert hf_name("module._orig_mod.lm_head.weight") == "lm_head.weight"
    assert hf_name("_fsdp_wrapped_module.model.norm.weight") == "model.norm.weight"
    assert hf_name("model.visual.module.proj") == "model.visual.module.proj"  # a real "module" inside stays


@pytest.fixture(scope="module")
def zero3_learner():
    cfg = LearnerConfig(zero_stage=3, micro_batch_size=4, grad_accum_steps=1, backend="gloo")
    return Learner(tiny_qwen2(seed=0), cfg, lr=1e-3, total_steps=10)


def test_zero3_shards_are_gathered_one_bucket_at_a_time(zero3_learner):
    module = zero3_learner.model
    full = zero3_learner.state_dict()  # the existing path: everything gathered at once
    bucket_bytes = 8 * 1024
    plan = weight_buckets(module, bucket_bytes)
    assert len(plan) > 3 and all(b.nbytes <= bucket_bytes or len(b.tensors) == 1 for b in plan)
    params = dict(module.named_parameters())
    seen = {}
    for bucket, tensors in gathered_buckets(module, bucket_bytes, zero3=True):
        names = {s.name for s in bucket.tensors}
        assert set(tensors) == names
        outside = [n for n in params if n not in names]
        assert all(params[n].numel() == 0 for n in outside)  # the rest of the model stays partitioned meanwhile
        seen.update({n: t.clone() for n, t in tensors.items()})
    assert list(seen) == list(full)
    assert all(torch.equal(seen[n], full[n]) for n in full)


def config(**rollout) -> RunConfig:
    return RunConfig.model_validate({"rollout": rollout})


def test_auto_takes_nccl_only_with_vllm_on_gpus_and_a_supported_version():
    supported = f"{SUPPORTED_VLLM[0]}.0"
    assert choose_sync(config(engine="vllm"), gpus=True, vllm_version=supported)[0] == "nccl"
    path, why = choose_sync(config(engine="vllm"), gpus=True, vllm_version="0.31.2")
    assert path == "file" and "found 0.31.2" in why
    assert choose_sync(config(engine="vllm"), gpus=False, vllm_version=supported) == (
        "file", "auto: the learner ranks and rollout engines are not all on GPUs (cluster.learner.gpus=0, "
                "cluster.rollout.gpus=0)")
    assert choose_sync(config(engine="hf"), gpus=True, vllm_version=supported) == (
        "file", "auto: rollout.engine is 'hf'; the NCCL path serves vLLM engines")
    assert choose_sync(config(engine="vllm", weight_sync="file"), gpus=True, vllm_version=supported) == (
        "file", "rollout.weight_sync=file")


def test_nccl_asked_for_where_it_cannot_work_is_refused_with_the_way_out():
    with pytest.raises(RuntimeError, match="rollout.weight_sync=nccl cannot be used: .*found 0.10.1.*"
                                           "rollout.weight_sync=file"):
        choose_sync(gpu_config(weight_sync="nccl"), gpus=True, vllm_version="0.10.1")
    with pytest.raises(RuntimeError, match="found no vLLM"):
        check_vllm_version(None)
    check_vllm_version(f"{SUPPORTED_VLLM[-1]}.3+cpu")  # local builds' suffixes are fine


def test_engine_ranks_put_the_learner_first_and_each_engines_tp_workers_together():
    assert engine_ranks(3, 2) == (7, [1, 3, 5])
    assert engine_ranks(1, 1) == (2, [1])


def test_the_gpu_extra_pins_the_vllm_series_the_nccl_path_supports():
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    (spec,) = [s for s in project["optional-dependencies"]["gpu"] if s.startswith("vllm")]
    low, high = SUPPORTED_VLLM[0], SUPPORTED_VLLM[-1]
    major, minor = high.split(".")
    assert spec.replace(" ", "") == f"vllm>={low},<{major}.{int(minor) + 1}"


# --- shared GPUs: NCCL cannot hold two ranks of one group on one device ------------------------------------------

def gpu_config(cluster: dict | None = None, **rollout) -> RunConfig:
    """A vLLM run with its learner ranks and rollout engines on GPUs (as configs/gpu_*.yaml place them)."""
    sections = {"learner": {"gpus": 1}, "rollout": {"gpus": 1}}
    for role, value in (cluster or {}).items():
        sections[role] = {**sections.get(role, {}), **value} if isinstance(value, dict) else value
    return RunConfig.model_validate({"rollout": {"engine": "vllm", **rollout}, "cluster": sections})


@pytest.mark.parametrize("cluster, reason", [
    ({"learner": {"gpus": 0.5}}, "cluster.learner.gpus=0.5 is not a whole number of GPUs"),
    ({"rollout": {"gpus": 0.25}}, "cluster.rollout.gpus=0.25 is not a whole number of GPUs"),
    ({"rollout": {"gpus": 1.5}}, "cluster.rollout.gpus=1.5 is not a whole number of GPUs"),
])
def test_auto_takes_the_file_path_where_a_learner_rank_and_a_rollout_worker_share_a_gpu(cluster, reason):
    mode, why = choose_sync(gpu_config(cluster), gpus=True, vllm_version=f"{SUPPORTED_VLLM[0]}.0")
    assert mode == "file" and why.startswith(f"auto: {reason}")
    assert why.endswith("NCCL cannot run two ranks of one group on one GPU")


def test_forced_nccl_on_shared_gpus_is_refused_when_the_config_is_read():
    with pytest.raises(ValidationError, match=r"rollout.weight_sync=nccl cannot be used: cluster.learner.gpus=0.5 "
                                              r"is not a whole number of GPUs.*Use rollout.weight_sync=file"):
        gpu_config({"learner": {"gpus": 0.5}}, weight_sync="nccl")
    with pytest.raises(ValidationError, match=r"cannot be used: the learner ranks and rollout engines are not all "
                                              r"on GPUs \(cluster.learner.gpus=0, cluster.rollout.gpus=0\)"):
        config(engine="vllm", weight_sync="nccl")
    with pytest.raises(ValidationError, match=r"cannot be used: rollout.engine is 'hf'"):
        gpu_config(engine="hf", weight_sync="nccl")
    assert gpu_config(weight_sync="nccl").rollout.weight_sync == "nccl"  # whole GPUs each: NCCL may work


def test_colocation_counts_as_sharing_a_gpu():
    """`cluster.colocate` (vLLM asleep on the learner's GPUs) is another helper's field: the rule reads it where the
    config has it. Here a stand-in cluster section carries it."""
    whole = gpu_config().cluster
    colocated = SimpleNamespace(learner=whole.learner, rollout=whole.rollout, colocate=True)
    assert shared_gpu(colocated) == "cluster.colocate=true puts the rollout engines on the learner's GPUs"
    assert shared_gpu(gpu_config().cluster) is None


# --- the loop's choice (tracer1.train.sync) ----------------------------------------------------------------------

def test_the_loop_falls_back_to_the_file_path_and_says_why(capsys):
    from tracer1.train.sync import FileSync, select_weight_sync, start_weight_sync, with_weight_sender

    assert select_weight_sync(config(engine="vllm"), vllm_version=f"{SUPPORTED_VLLM[0]}.1") == "file"  # no GPUs
    assert capsys.readouterr().out == ("  weight sync: file (auto: the learner ranks and rollout engines are not "
                                       "all on GPUs (cluster.learner.gpus=0, cluster.rollout.gpus=0))\n")
    assert select_weight_sync(gpu_config(), vllm_version="0.31.2") == "file"  # GPUs, but another vLLM
    assert "weight sync: file (auto: rollout.weight_sync=nccl supports vLLM 0.32.x; found 0.31.2" in \
        capsys.readouterr().out
    assert select_weight_sync(gpu_config(), vllm_version=None) == "file"  # GPUs, no vLLM on the driver
    assert "found no vLLM" in capsys.readouterr().out
    assert select_weight_sync(gpu_config({"rollout": {"gpus": 0.5}}), vllm_version=f"{SUPPORTED_VLLM[0]}.1") == "file"
    assert "weight sync: file (auto: cluster.rollout.gpus=0.5 is not a whole number of GPUs" in capsys.readouterr().out
    assert select_weight_sync(gpu_config(), vllm_version=f"{SUPPORTED_VLLM[0]}.1") == "nccl"  # where it can work
    assert capsys.readouterr().out == (f"  weight sync: nccl (vLLM {SUPPORTED_VLLM[0]}.1, learner and rollout "
                                       "engines on whole GPUs: learner rank 0 broadcasts 1024 MB buckets)\n")

    class Learner:  # stands for LearnerWorker: the file path leaves the learner class as it is
        pass

    assert with_weight_sender(Learner, "file") is Learner
    nccl_learner = with_weight_sender(Learner, "nccl")
    assert issubclass(nccl_learner, Learner) and hasattr(nccl_learner, "send_weights")
    sync = start_weight_sync("file", RunConfig(), learners=[], rollouts=[], version=4)
    assert type(sync) is FileSync and sync.version == 4 and sync.state is None


def test_the_loop_refuses_nccl_demanded_with_a_vllm_it_does_not_support():
    from tracer1.train.sync import select_weight_sync

    with pytest.raises(RuntimeError, match=r"cannot be used: rollout.weight_sync=nccl supports vLLM 0.32.x; found "
                                           r"no vLLM.*Use rollout.weight_sync=file"):
        select_weight_sync(gpu_config(weight_sync="nccl"), vllm_version=None)


class RecordingSender:
    """FAKE of NcclWeightSender (NCCL needs GPUs): takes the stream the sender packs (`sent_tensors`), on CPU."""

    def __init__(self):
        self.sent: list[tuple] = []

    def send(self, buckets, bucket_bytes):
        self.sent += [(name, t.clone()) for name, t in sent_tensors(buckets)]
        return len(self.sent)


def test_the_learner_side_sends_every_tensor_of_its_plan_from_rank_0_only(zero3_learner):
    from tracer1.train.sync import with_weight_sender

    class Rank:  # stands for LearnerWorker: what the mixed-in methods read
        def __init__(self, rank):
            self.learner, self.rank = zero3_learner, rank

    rank0, rank1 = with_weight_sender(Rank, "nccl")(0), with_weight_sender(Rank, "nccl")(1)
    rank0._weight_sender, rank1._weight_sender = RecordingSender(), RecordingSender()
    plan = rank0.weight_plan(8 * 1024)
    full = zero3_learner.state_dict()
    assert rank0.send_weights(8 * 1024) == len(full)
    received = dict(rank0._weight_sender.sent)
    assert list(received) == transfer_update_info(plan)["names"] == list(full)  # what the workers expect, in order
    assert all(torch.equal(received[n], full[n]) for n in full)
    assert rank1.send_weights(8 * 1024) == 0 and rank1._weight_sender.sent == []  # it only took part in gathers
