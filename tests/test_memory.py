"""The GPU memory plan (tracer1.memory, printed by `--plan`): its model-state term is DeepSpeed's own estimator's,
the other terms are worked by hand here, the logits' float32 copies are measured, every shipped GPU config fits
with its headroom, and a config that does not fit is refused naming the terms and the fields to change."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs
from tiny_planners import one_thread, tiny_dirs  # noqa: F401  (fixtures)

from tracer1 import memory
from tracer1.config import load_config
from tracer1.memory import GB, KNOWN_MODELS, learner_memory, model_shape
from tracer1.placement import plan_for
from tracer1.run import main

ROOT = Path(__file__).resolve().parent.parent
GPU_CONFIGS = sorted((ROOT / "configs").glob("gpu_*.yaml"))
QWEN3 = KNOWN_MODELS["qwen3-vl-8b-instruct"]


def config_of(name: str, *overrides: str):
    return load_config(list(overrides), [ROOT / "configs" / name])


def plans(config) -> dict[str, memory.MemoryPlan]:
    return {p.demand.role: p.demand.memory_plan for p in plan_for(config).placed if p.demand.memory_plan}


def term(plan: memory.MemoryPlan, name: str) -> float:
    """The term's bytes."""
    return next(t.bytes for t in plan.terms if t.name == name)


@pytest.mark.parametrize("path", GPU_CONFIGS, ids=lambda p: p.stem)
def test_plan_prints_a_model_state_term_equal_to_deepspeeds_estimator(path, capsys):
    config = load_config(["stage=2"], [path])
    shape = model_shape(config.model.path)
    ranks = config.learner.num_ranks
    per_node = min(ranks, config.cluster.nodes.gpus)
    _, want, _ = estimate_zero3_model_states_mem_needs(
        total_params=shape.params, largest_layer_params=shape.largest_layer, num_gpus_per_node=per_node,
        num_nodes=ranks // per_node, cpu_offload=False, cpu_offload_params=False)
    learner = plans(config)["learner"]
    assert term(learner, "model states") == want
    assert main(["--config", str(path), "--plan", "stage=2"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"\n +model states +{want / GB:.1f} GB  DeepSpeed estimate_zero3_model_states_mem_needs\(", out)
    for name in ("KL reference", "activations", "completion logits", "weight-sync gather", "KV cache, 1 seq"):
        assert f"      {name}" in out


@pytest.mark.parametrize("path", GPU_CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_gpu_config_fits_with_headroom(path):
    config = load_config(["stage=2"], [path])
    found = plans(config)
    assert set(found) == {"learner", "rollout", "executor"}
    learner = found["learner"]
    assert learner.limit_gb == pytest.approx(0.9 * 80) and learner.fits
    assert learner.total_gb <= 0.85 * 80  # more room than the 10% the check keeps
    for engine in (found["rollout"], found["executor"]):
        assert engine.fits and engine.limit_gb == pytest.approx(0.85 * 80)
    batch = config.learner.num_ranks * config.learner.grad_accum_steps * config.learner.micro_batch_size
    assert batch == config.rollout.prompts_per_step * config.rollout.group_size  # the batch the configs had


def test_a_large_micro_batch_is_refused_naming_terms_and_fields(capsys):
    path = str(ROOT / "configs" / "gpu_qwen3vl8b_1x8.yaml")
    assert main(["--config", path, "--plan", "learner.micro_batch_size=8", "learner.grad_accum_steps=8"]) == 2
    out = capsys.readouterr().out
    problem = next(line for line in out.splitlines() if "a learner rank needs" in line)
    assert "more than 72.0 GB (90% of 1 × 80 GB)" in problem
    for name in ("model states", "activations", "completion logits", "KL reference", "weight-sync gather"):
        assert name in problem
    assert "learner.micro_batch_size" in problem and "learner.gradient_checkpointing" in problem
    assert "OVER by" in out


def test_the_terms_worked_by_hand():
    config = config_of("gpu_qwen3vl8b_1x8.yaml", "learner.micro_batch_size=2", "algorithm.logprob_chunk_tokens=0",
                       "model.max_prompt_tokens=3072", "rollout.max_new_tokens=1023")
    learner = learner_memory(config, QWEN3, 8)
    tokens = 2 * (3072 + 1023)
    # Checkpointed: a bf16 hidden state per layer and token (36 × 2 × 4096) + one layer's activations per token:
    # 8 × 4096 (two float32 norm inputs) + 2 × (3 × 4096 + 2 × 8 × 128 + 4 × 12288) = 32768 + 126976 bytes.
    assert term(learner, "activations") == tokens * (36 * 2 * 4096 + 32768 + 126976)
    # Logits: 2 × 1024 completion positions × 151936 in bf16 (2 bytes) + 4 float32 copies (16 bytes).
    assert term(learner, "completion logits") == 2 * 1024 * 151936 * 18
    assert term(learner, "KL reference") == pytest.approx(2 * QWEN3.params / 4)  # sharded over 4 ranks
    # ZeRO-3 gathers the larger of a 1024 MB bucket and the largest weight (the bf16 embedding, 1187 MB); weight_sync
    # auto may take NCCL, whose rank 0 also packs two buckets for vLLM; file: the gather only
    embedding = 2 * 151936 * 4096
    assert embedding > 1024 * 2**20
    assert term(learner, "weight-sync gather") == embedding + 2 * 1024 * 2**20
    filed = config.model_copy(update={"rollout": config.rollout.model_copy(update={"weight_sync": "file"})})
    assert term(learner_memory(filed, QWEN3, 8), "weight-sync gather") == embedding
    chunked = learner_memory(config.model_copy(update={"algorithm": config.algorithm.model_copy(
        update={"logprob_chunk_tokens": 256})}), QWEN3, 8)
    # Chunked: the bf16 logits and their bf16 gradient whole, 3 float32 buffers of 256 positions.
    assert term(chunked, "completion logits") == 2 * 1024 * 151936 * 4 + 3 * 256 * 151936 * 4
    full = learner_memory(config.model_copy(update={"learner": config.learner.model_copy(
        update={"gradient_checkpointing": False})}), QWEN3, 8)
    assert term(full, "activations") == tokens * 36 * (32768 + 126976)


def test_the_micro_batch_is_the_one_the_loop_makes():
    # 256 plans a step over 4 ranks × 32 micro-batches: 2 sequences a pass, whatever micro_batch_size says below it.
    two = learner_memory(config_of("gpu_qwen3vl8b_1x8.yaml", "learner.micro_batch_size=1"), QWEN3)
    assert memory.micro_batch_sequences(config_of("gpu_qwen3vl8b_1x8.yaml", "learner.micro_batch_size=1")) == 2
    assert term(two, "activations") == term(learner_memory(config_of("gpu_qwen3vl8b_1x8.yaml"), QWEN3), "activations")
    one = config_of("gpu_qwen3vl8b_1x8.yaml", "learner.micro_batch_size=1", "learner.grad_accum_steps=64")
    assert memory.micro_batch_sequences(one) == 1
    assert term(learner_memory(one, QWEN3), "activations") == term(two, "activations") / 2
    assert memory.micro_batch_sequences(config_of("gpu_qwen3vl8b_1x8.yaml", "learner.grad_accum_steps=20")) == 4


def test_each_zero_stage_uses_deepspeeds_estimator_for_it():
    p, n = QWEN3.params, 4
    states = {s: memory.model_states_bytes(QWEN3, s, n, 8)[0] for s in (0, 1, 2, 3)}
    assert states[3] == estimate_zero3_model_states_mem_needs(p, QWEN3.largest_layer, 4, 1, cpu_offload=False,
                                                              cpu_offload_params=False)[1]
    assert states[2] == estimate_zero2_model_states_mem_needs(p, 4, 1, cpu_offload=False)[1]
    assert states[1] == states[2] + int(2 * p * (1 - 1 / n))  # ZeRO-1 keeps whole 16-bit gradients
    assert states[0] == 20 * p  # nothing partitioned: 2 + 18 bytes a parameter
    offloaded, how = memory.model_states_bytes(QWEN3, 3, n, 8, offload_optimizer=True)
    assert offloaded == estimate_zero3_model_states_mem_needs(p, QWEN3.largest_layer, 4, 1, cpu_offload=True,
                                                              cpu_offload_params=False)[1]
    assert offloaded < states[3] and "optimizer offloaded" in how


def test_the_reference_is_whole_without_zero3_and_absent_without_kl():
    config = config_of("gpu_qwen3vl8b_1x8.yaml", "learner.zero_stage=2")
    assert term(learner_memory(config, QWEN3), "KL reference") == pytest.approx(2 * QWEN3.params)
    filed = config.model_copy(update={"rollout": config.rollout.model_copy(update={"weight_sync": "file"})})
    assert "weight-sync gather" not in [t.name for t in learner_memory(filed, QWEN3).terms]  # no ZeRO-3 gather
    names = [t.name for t in learner_memory(config_of("gpu_qwen3vl8b_1x8.yaml", "algorithm.kl_coef=0"), QWEN3).terms]
    assert "KL reference" not in names


def test_a_vllm_engine_must_hold_one_max_length_sequence_of_kv_cache():
    assert QWEN3.kv_bytes_per_token(2) == 2 * 36 * 8 * 128 * 2
    assert QWEN3.kv_bytes_per_token(2, tp=2) == QWEN3.kv_bytes_per_token(2) // 2
    # 0.23 × 80 GB = 18.4 GB: the 17.5 GB of weights fit, a 9216-token sequence (1.36 GB) does not.
    p = plan_for(config_of("gpu_qwen3vl8b_1x8.yaml", "rollout.gpu_memory_utilization=0.23"))
    problem = next(m for m in p.problems if m.startswith("a rollout engine needs"))
    assert "weights 17.5 + KV cache, 1 seq 1.4 GB" in problem and "rollout.gpu_memory_utilization" in problem


def test_a_local_model_directory_gives_its_own_shape(tiny_dirs):
    from deepspeed.runtime.zero.stage3 import model_to_params
    from tracer1.models.loading import load_planner

    shape = model_shape(str(tiny_dirs["vl"]))
    model = load_planner(tiny_dirs["vl"]).model
    text = model.config.get_text_config()
    assert (shape.hidden, shape.layers, shape.vocab, shape.kv_heads) == (
        text.hidden_size, text.num_hidden_layers, text.vocab_size, text.num_key_value_heads)
    assert (shape.params, shape.largest_layer) == model_to_params(model)  # DeepSpeed's count on the live model
    config = load_config(["model.kind=hf", f"model.path={tiny_dirs['vl']}", "learner.zero_stage=3",
                          "cluster.learner.gpus=1", "cluster.rollout.gpus=1", "rollout.engine=vllm",
                          "cluster.nodes={count: 1, cpus: 16, gpus: 2, gpu_memory_gb: 24}"])
    found = plans(config)
    assert found["learner"].fits and found["rollout"].fits
    assert term(found["learner"], "model states") == estimate_zero3_model_states_mem_needs(
        shape.params, shape.largest_layer, 1, 1, cpu_offload=False, cpu_offload_params=False)[1]


def test_the_loss_holds_the_float32_copies_of_the_logits_the_plan_counts():
    """Measured, not assumed: the peak resident memory of the GRPO loss's forward and backward over logits of
    67 MB (in float32), beyond the logits themselves, in a fresh process (Linux: /proc/self/status VmHWM)."""
    script = textwrap.dedent("""
        import gc, sys, torch
        from tracer1.learner.grpo import grpo_loss
        B, W, V = 2, 257, 32768
        def rss(key):
            return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key))
        ids = torch.randint(0, V, (B, W)); mask = torch.ones(B, W, dtype=torch.bool); mask[:, 0] = False
        batch = {"input_ids": ids, "completion_mask": mask, "advantages": torch.tensor([1.0, -1.0]),
                 "ref_logprobs": torch.zeros(B, W)}
        for chunk, entropy in ((0, 0), (0, 0), (8, 0), (0, 0.01), (8, 0.01)):  # the first warms the allocator up
            logits = torch.randn(B, W, V, dtype=torch.bfloat16).requires_grad_()
            gc.collect(); open("/proc/self/clear_refs", "w").write("5"); base = rss("VmRSS")
            grpo_loss(logits, batch, kl_coef=0.001, entropy_coef=entropy, logprob_chunk_tokens=chunk)[0].backward()
            print((rss("VmHWM") - base) / (B * W * V * 4))
            del logits; gc.collect()
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}).stdout
    _, whole, chunked, whole_entropy, chunked_entropy = (float(x) for x in out.split())
    copies = memory.LOGIT_FLOAT32_COPIES
    assert copies["whole"] - 0.3 < whole < copies["whole"] + 0.3
    assert chunked < 0.75  # the logits' bf16 gradient (0.5) and a few positions' float32 rows
    assert copies["whole+entropy"] - 0.3 < whole_entropy < copies["whole+entropy"] + 0.3
    assert copies["chunked+entropy"] - 0.3 < chunked_entropy < copies["chunked+entropy"] + 0.3
