"""The placement plan (tracer1.placement, `python -m tracer1.run ... --plan`): where each actor of a GPU config
lands, per node and GPU, the memory peaks behind it (their terms: tests/test_memory.py), and the refusals of configs
that cannot fit — against a stated cluster (cluster.nodes) and against a live local Ray cluster."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import ray

from tracer1.config import load_config
from tracer1.overrides import ConfigError
from tracer1.placement import Node, plan_for, plan_placement, stated_nodes
from tracer1.run import main

ROOT = Path(__file__).resolve().parent.parent
GPU_CONFIGS = sorted((ROOT / "configs").glob("gpu_*.yaml"))


def plan(name: str, *overrides: str):
    config = load_config(overrides, [ROOT / "configs" / name])
    return plan_for(config)


def layout(p) -> dict[tuple[int, int], list[str]]:
    """(node index, GPU) -> labels of the actors on it."""
    out: dict[tuple[int, int], list[str]] = {}
    for placed in p.placed:
        for gpu in placed.devices:
            out.setdefault((placed.node, gpu), []).append(placed.demand.label)
    return out


def test_there_are_gpu_configs_for_one_and_four_nodes_and_both_planners():
    names = [p.name for p in GPU_CONFIGS]
    assert names == ["gpu_qwen25vl7b_1x8.yaml", "gpu_qwen3vl8b_1x8.yaml", "gpu_qwen3vl8b_4x8.yaml"]


@pytest.mark.parametrize("path", GPU_CONFIGS, ids=lambda p: p.stem)
@pytest.mark.parametrize("stage", [1, 2])
def test_every_gpu_config_fits_the_cluster_it_states(path, stage):
    p = plan(path.name, f"stage={stage}")
    assert p.fits, p.render()
    config = load_config([f"stage={stage}"], [path])
    assert config.model.dtype == "bfloat16" and config.learner.zero_stage == 3 and config.horizon == 10
    assert sum(1 for x in p.placed if x.demand.role == "learner") == config.learner.num_ranks
    assert sum(1 for x in p.placed if x.demand.role == "executor") == (config.executor.num_actors if stage == 2 else 0)


def test_one_node_plan_for_qwen3_stage2_gpu_by_gpu():
    p = plan("gpu_qwen3vl8b_1x8.yaml", "stage=2")
    assert layout(p) == {(0, 0): ["learner rank 0"], (0, 1): ["learner rank 1"], (0, 2): ["learner rank 2"],
                         (0, 3): ["learner rank 3"], (0, 4): ["rollout 0"], (0, 5): ["rollout 1"],
                         (0, 6): ["executor 0"], (0, 7): ["executor 1"]}
    rewards = [x for x in p.placed if x.demand.role == "reward"]
    assert len(rewards) == 4 and all(x.devices == () for x in rewards)
    # The learner's peak is the sum of its memory plan's terms (tracer1.memory); an engine's, its weights and one
    # max-length sequence of KV cache.
    learner = next(x.demand for x in p.placed if x.demand.role == "learner")
    assert learner.memory_gb == pytest.approx(sum(t.gb for t in learner.memory_plan.terms))
    assert 40 < learner.memory_gb < 72
    text = p.render()
    assert "GPU 4            rollout 0, 18.9 GB [vllm]" in text and "FITS" in text


def test_four_node_plan_puts_learners_on_two_nodes_and_tp2_engines_on_whole_gpu_pairs():
    p = plan("gpu_qwen3vl8b_4x8.yaml", "stage=2")
    assert [n.name for n in p.nodes] == ["head", "node 0", "node 1", "node 2", "node 3"]
    by_role = {}
    for x in p.placed:
        by_role.setdefault(x.demand.role, set()).add(x.node)
    assert by_role == {"learner": {1, 2}, "rollout": {3, 4}, "executor": {4}, "reward": {0}}
    engines = [x for x in p.placed if x.demand.role == "rollout"]
    assert [(x.node, x.devices) for x in engines] == [(3, (0, 1)), (3, (2, 3)), (3, (4, 5)), (3, (6, 7)),
                                                       (4, (0, 1)), (4, (2, 3))]
    assert any("must be storage every node mounts" in n for n in p.notes)
    assert any(n.startswith("weight sync: NCCL broadcast in 1024 MB buckets where") for n in p.notes)


def test_the_sft_stage_has_nothing_to_place():
    p = plan("gpu_qwen3vl8b_1x8.yaml", "stage=sft")
    assert p.fits and p.placed == [] and "stage sft runs in the driver process" in p.notes[0]


def test_a_config_too_big_for_its_node_is_refused_naming_what_is_missing():
    p = plan("gpu_qwen3vl8b_1x8.yaml", "learner.num_ranks=8")
    assert not p.fits
    assert p.problems[0].startswith("rollout 0 needs 8 CPU and 1 GPU on one node; left after the actors before it: "
                                    "node 0 0 GPU, 128 CPU")
    assert "asks for 10 GPUs" in p.problems[-1] and "the cluster has 8 GPUs" in p.problems[-1]


def test_memory_bounds_refuse_zero2_on_two_ranks_and_a_tp_mismatch():
    # ZeRO-2, 2 ranks: DeepSpeed's estimate 2 B × 8.77e9 + 18 B × 8.77e9 / 2 = 96.4 GB alone, > 72 GB.
    p = plan("gpu_qwen3vl8b_1x8.yaml", "learner.num_ranks=2", "learner.zero_stage=2", "learner.grad_accum_steps=8")
    assert any(m.startswith("a learner rank needs 1") and "model states 96.4" in m for m in p.problems), p.problems
    p = plan("gpu_qwen3vl8b_1x8.yaml", "rollout.tensor_parallel_size=2")
    assert any("cluster.rollout.gpus is 1 but rollout.tensor_parallel_size is 2" in m for m in p.problems)


def test_a_step_too_small_for_the_ranks_is_refused():
    p = plan("gpu_qwen3vl8b_1x8.yaml", "rollout.prompts_per_step=4")  # 32 plans < 32 micro-batches × 4 ranks
    assert any("a step's 32 plans" in m and "cannot fill learner.grad_accum_steps 32" in m for m in p.problems)


def test_strategies_pack_spread_and_strict_pack():
    spread = plan("gpu_qwen3vl8b_4x8.yaml", "cluster.placement_strategy=SPREAD")
    ranks = sorted((x for x in spread.placed if x.demand.role == "learner"), key=lambda x: x.demand.index)
    assert [x.node for x in ranks[:5]] == [1, 2, 3, 4, 1]  # one rank per GPU node in turn (the head has no GPU)
    strict = plan("gpu_qwen3vl8b_4x8.yaml", "cluster.placement_strategy=STRICT_PACK")
    assert not strict.fits and "must share one node (cluster.placement_strategy STRICT_PACK)" in strict.problems[0]


def test_fractional_gpus_share_one_device_and_whole_ones_do_not():
    config = load_config(["rollout.num_workers=2", "cluster.rollout.gpus=0.5", "cluster.learner.gpus=1",
                          "reward.num_actors=1"])
    p = plan_placement(config, [Node("n", 8, 2, 80)], "two GPUs")
    assert layout(p) == {(0, 0): ["learner rank 0"], (0, 1): ["rollout 0", "rollout 1"]}


def test_stated_nodes_put_a_cpu_head_first():
    config = load_config(["cluster.nodes={count: 2, cpus: 16, gpus: 4, head_cpus: 8}"])
    assert [(n.name, n.cpus, n.gpus, n.head) for n in stated_nodes(config)] == [
        ("head", 8, 0, True), ("node 0", 16, 4, False), ("node 1", 16, 4, False)]


def test_the_command_prints_the_plan_and_exits_2_when_it_does_not_fit(capsys):
    config = str(ROOT / "configs" / "gpu_qwen3vl8b_1x8.yaml")
    assert main(["--config", config, "--plan", "stage=2"]) == 0
    out = capsys.readouterr().out
    assert "node 0 (head): 192 CPU, 8 GPU × 80 GB" in out and "executor 1" in out and "FITS" in out
    assert main(["--config", config, "--plan", "cluster.nodes.gpus=4"]) == 2
    captured = capsys.readouterr()
    assert "DOES NOT FIT" in captured.out and "does not fit cluster.nodes (1 × 192 CPU, 4 GPU" in captured.err


def test_a_live_ray_cluster_is_what_the_plan_checks_when_one_is_named(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    try:
        stage1 = load_config(["cluster.address=auto", "cluster.nodes.count=9"])  # the live cluster wins
        p = plan_for(stage1)
        assert p.fits and "ray.cluster_resources(): 0 GPUs, 3 CPUs" in p.source
        assert len(p.nodes) == 1 and p.nodes[0].cpus == 3
        p = plan_for(load_config(["cluster.address=auto", "stage=2"]))  # + an executor: 4 CPUs on 3
        assert not p.fits  # the executor, created before the reward actor, took the last CPU
        assert p.problems[0].startswith("reward 0 needs 1 CPU and 0 GPU on one node; left after the actors "
                                        "before it: ")
    finally:
        ray.shutdown()


def test_a_jobs_api_address_is_explained_instead_of_dialled(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")  # what `ray job submit` users often export
    p = plan("gpu_qwen3vl8b_1x8.yaml")
    assert not p.fits and "is the Jobs API's address; run the plan as a job" in p.problems[0]


def test_stage_3_places_environment_actors_instead_of_reward_actors():
    p = plan("gpu_qwen3vl8b_1x8.yaml", "stage=3", "executor.kind=a11y", "stage3.env_actors=3",
             "stage3.envs_per_actor=32")
    roles = [x.demand.role for x in p.placed]
    assert roles.count("env") == 3 and "reward" not in roles and "executor" not in roles
    assert all(x.devices == () for x in p.placed if x.demand.role == "env")  # CPU-only: envs and the a11y executor
    assert "env 0-2 (1 CPU each)" in p.render() and p.fits


COLOCATED = ("cluster.colocate=true", "cluster.rollout.gpus=0.5", "rollout.num_workers=4", "rollout.weight_sync=file",
             "rollout.gpu_memory_utilization=0.3")


def test_colocated_engines_sit_on_their_ranks_gpus_and_count_once():
    p = plan("gpu_qwen3vl8b_1x8.yaml", "stage=1", *COLOCATED)
    assert p.fits, p.render()
    assert layout(p) == {(0, g): [f"learner rank {g}", f"rollout {g}"] for g in range(4)}
    assert all(x.colocated for x in p.placed if x.demand.role == "rollout")
    text = p.render()
    assert "placed actors take 4 GPUs" in text  # not 4 + 4 × 0.5: a shared GPU counts once
    assert re.search(r"rollout 0 \(0\.5 GPU\), [\d.]+ GB \[vllm\] \[colocated with learner rank 0: asleep during the "
                     r"update\]", text), text
    assert "GPU 4            (idle)" in text
    assert any(n.startswith("4 GPU(s) idle in stage 1, among them the 2 of stage 2's executors") for n in p.notes)
    assert any("weight sync: the learner's state dict" in n for n in p.notes)
    # stage 2: the executors take two of the GPUs the colocated engines left free
    p = plan("gpu_qwen3vl8b_1x8.yaml", "stage=2", *COLOCATED)
    assert p.fits and layout(p)[(0, 4)] == ["executor 0"] and (0, 6) not in layout(p)


def test_colocation_is_refused_where_it_cannot_work():
    # the rank keeps its model states and reference while its engine runs (its activations, logits and sync gather
    # only while the engine sleeps): 0.85 × 80 = 68 GB more does not fit one 80 GB GPU
    p = plan("gpu_qwen3vl8b_1x8.yaml", *COLOCATED, "rollout.gpu_memory_utilization=0.85")
    rank = next(x.demand for x in p.placed if x.demand.role == "learner")
    kept = sum(t.gb for t in rank.memory_plan.terms if t.name in ("model states", "KL reference"))
    assert 0 < kept < rank.memory_gb
    assert any(m.startswith(f"cluster.colocate: a learner rank keeps {kept:.1f} GB on its GPU while its engine "
                            "runs, and the engine takes 68.0 GB") and f"at most {(80 - kept) / 80:.2f}" in m
               for m in p.problems), p.problems
    p = plan("gpu_qwen3vl8b_1x8.yaml", *COLOCATED, "rollout.num_workers=5", "cluster.rollout.gpus=1")
    problems = "\n".join(p.problems)
    assert "rollout.num_workers (5) must be at most learner.num_ranks (4)" in problems
    with pytest.raises(ConfigError, match="cluster.colocate=true puts the rollout engines on the learner's GPUs"):
        plan("gpu_qwen3vl8b_1x8.yaml", *COLOCATED, "rollout.weight_sync=nccl")
    assert "cluster.rollout.gpus (1) is a colocated engine's share" in problems
    p = plan("gpu_qwen25vl7b_1x8.yaml", "cluster.colocate=true", "rollout.weight_sync=file")
    assert any("needs rollout.tensor_parallel_size 1 (it is 2)" in m for m in p.problems)


def test_without_colocation_stage_1_says_the_executor_gpus_stand_idle():
    p = plan("gpu_qwen3vl8b_1x8.yaml", "stage=1")
    assert p.fits and (0, 6) not in layout(p) and (0, 7) not in layout(p)
    assert any(n.startswith("2 GPU(s) idle in stage 1, among them the 2 of stage 2's executors") for n in p.notes)
    assert not any("idle in stage" in n for n in plan("gpu_qwen3vl8b_1x8.yaml", "stage=2").notes)


def test_the_plan_names_the_file_weight_sync_where_gpus_are_shared():
    config = load_config(["rollout.engine=vllm", "cluster.learner.gpus=0.5", "cluster.rollout.gpus=0.5"],
                         [ROOT / "configs" / "smoke.yaml"])
    notes = plan_placement(config, [Node("box", 16, 1, 80.0, head=True)], "one GPU").notes
    assert any(n.startswith("weight sync: safetensors file") and "cluster.learner.gpus=0.5" in n for n in notes)
