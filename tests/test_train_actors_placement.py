"""Placement Ray really does: on a simulated Ray cluster of the shape each shipped GPU config states (several nodes
with declared GPUs, `ray.cluster_utils.Cluster`), the loops' `place_actors` puts every actor on the node, with the
GPU count, that `--plan` against that live cluster (`plan_for` → `ray_nodes`) says; the learner ranks of the 4×8
config stay on their two nodes. With `cluster.colocate` an engine shares its rank's GPU. On one local CPU node
(the `make run` path) the same placement groups hold every actor of the default run.

The actors are stand-ins (they only report where they run: no model, no CUDA), made through the loops' own
`make_actor`, `learner_ranks` and `Placement.options`. Declared GPUs are bookkeeping for Ray; nothing here needs
one."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
from ray.cluster_utils import Cluster

from tracer1.config import load_config
from tracer1.placement import plan_for, stated_nodes
from tracer1.train.actors import actor_cpus, connect_ray, learner_ranks, make_actor, place_actors, ray_session

ROOT = Path(__file__).resolve().parent.parent
GPU_CONFIGS = sorted((ROOT / "configs").glob("gpu_*.yaml"))
# a raylet may prestart a Python worker per declared CPU (--num_prestart_python_workers): 192 a node is too many here
NO_PRESTART = {"prestart_worker_first_driver": False, "enable_worker_prestart": False}


def stand_in() -> type:
    """Any worker class's stand-in: takes whatever the real one takes, and says where Ray put it. Made in a
    function so that Ray ships the class itself (the simulated nodes cannot import this test module)."""

    class StandIn:
        def __init__(self, *args, **kwargs):
            pass

        def where(self) -> tuple[str, tuple, float]:
            """(node id, GPU ids Ray gave it, the GPU share it holds)."""
            held = ray.get_runtime_context().get_assigned_resources()  # in a group: GPU_group_<bundle>_<group id>
            gpus = sum(v for k, v in held.items() if k == "GPU" or k.startswith("GPU_group_") and k.count("_") == 3)
            return ray.get_runtime_context().get_node_id(), tuple(ray.get_gpu_ids()), gpus

    return StandIn


@pytest.fixture(scope="module")
def simulated():
    """`simulated(config)`: a Ray cluster of the nodes `config` states (its head first), reused while the shape
    stays the same; the driver is connected to it."""
    current: dict = {}

    def start(config) -> str:
        shape = [(n.cpus, n.gpus) for n in stated_nodes(config)]
        if current.get("shape") != shape:
            stop()
            (head_cpus, head_gpus), *others = shape
            cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": head_cpus, "num_gpus": head_gpus,
                                                                    "_system_config": NO_PRESTART})
            for cpus, gpus in others:
                cluster.add_node(num_cpus=cpus, num_gpus=gpus)
            cluster.wait_for_nodes()
            ray.init(address=cluster.address, log_to_driver=False)
            current.update(shape=shape, cluster=cluster)
        return current["cluster"].address

    def stop():
        if current:
            ray.shutdown()
            current.pop("cluster").shutdown()
            current.clear()

    yield start
    stop()


def landed(config) -> dict[tuple[str, int], tuple[str, tuple, float]]:
    """Every actor of `config.stage` made the loops' way; (role, index) → where it runs."""
    standin = stand_in()
    with ray_session(config) as owned:
        placement = place_actors(config, owned)
        actors = {("learner", r): a for r, a in enumerate(learner_ranks(standin, config, owned=owned,
                                                                        placement=placement))}
        counts = {"rollout": config.rollout.num_workers, "reward": config.reward.num_actors,
                  "executor": config.executor.num_actors, "env": config.stage3.env_actors}
        roles = ["rollout", "env"] if config.stage == 3 else ["rollout", "reward"] + (["executor"] * (config.stage == 2))
        for role in roles:
            for i in range(counts[role]):
                actors[(role, i)] = make_actor(standin, getattr(config.cluster, role), config,
                                               **placement.options(role, i)).remote()
        owned += list(actors.values())
        where = ray.get([a.where.remote() for a in actors.values()])
        return dict(zip(actors, where))


def check_against_plan(config) -> tuple[dict, object]:
    plan = plan_for(config)  # what `python -m tracer1.run --plan` prints against this cluster
    assert plan.fits, plan.render()
    where = landed(config)
    assert sorted(where) == sorted((p.demand.role, p.demand.index) for p in plan.placed)
    engines = {p.demand.index for p in plan.placed if p.colocated}
    for p in plan.placed:
        node, gpu_ids, share = where[(p.demand.role, p.demand.index)]
        assert node == plan.nodes[p.node].node_id, f"{p.demand.label} is not on {plan.nodes[p.node].name}"
        assert len(gpu_ids) == len(p.devices), f"{p.demand.label}: GPUs {gpu_ids}, the plan says {p.devices}"
        shared = p.demand.role == "learner" and p.demand.index in engines  # its engine holds part of the GPU
        assert share == pytest.approx(p.demand.gpus - (config.cluster.rollout.gpus if shared else 0))
    return where, plan


def test_the_local_cpu_run_places_every_actor_on_its_one_node(monkeypatch):
    """`make run`'s path: no address, so the loop starts a local Ray with logical CPUs for its actors, and the
    placement groups (one node, no GPU) hold them all. First in this file: a simulated cluster still running
    would be the one `ray.init` joins."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    config = load_config(["stage=2", "rollout.num_workers=2"])
    if ray.is_initialized():
        ray.shutdown()
    assert connect_ray(config)  # sized by actor_cpus, as the loop does
    try:
        assert ray.cluster_resources()["CPU"] == pytest.approx(-(-actor_cpus(config) // 1))
        where = landed(config)
        assert len(where) == 1 + 2 + 1 + 1 and len({node for node, _, _ in where.values()}) == 1
        assert all(gpus == () for _, gpus, _ in where.values())
    finally:
        ray.shutdown()


CASES = [(path, stage) for path in GPU_CONFIGS for stage in (1, 2)]  # stage 3 needs an a11y/oracle executor


@pytest.mark.slow
@pytest.mark.parametrize(("path", "stage"), CASES, ids=[f"{p.stem}-stage{s}" for p, s in CASES])
def test_every_actor_of_each_gpu_config_lands_where_the_plan_says(simulated, path, stage):
    config = load_config([f"stage={stage}"], [path])
    config = load_config([f"stage={stage}", f"cluster.address={simulated(config)}"], [path])
    where, plan = check_against_plan(config)
    if path.name == "gpu_qwen3vl8b_4x8.yaml":  # ZeRO-3 all-gathers stay inside two nodes
        learner_nodes = {where[k][0] for k in where if k[0] == "learner"}
        engine_nodes = {where[k][0] for k in where if k[0] in ("rollout", "executor")}
        assert len(learner_nodes) == 2 and not learner_nodes & engine_nodes
        assert {where[k][0] for k in where if k[0] == "reward"} == {plan.nodes[0].node_id}  # the CPU-only head


@pytest.mark.slow
def test_colocated_engines_share_their_ranks_gpu_on_the_cluster(simulated):
    path = ROOT / "configs" / "gpu_qwen3vl8b_1x8.yaml"
    overrides = ["stage=1", "cluster.colocate=true", "cluster.rollout.gpus=0.5", "rollout.num_workers=4",
                 "rollout.weight_sync=file", "rollout.gpu_memory_utilization=0.3"]
    config = load_config([*overrides, f"cluster.address={simulated(load_config(overrides, [path]))}"], [path])
    where, plan = check_against_plan(config)
    for i in range(4):
        rank, engine = where[("learner", i)], where[("rollout", i)]
        assert rank[0] == engine[0] and rank[1] == engine[1] and len(rank[1]) == 1  # the same node and GPU
        assert rank[2] == pytest.approx(0.5) and engine[2] == pytest.approx(0.5)
    assert len({where[("learner", i)][1] for i in range(4)}) == 4  # one GPU a rank


@pytest.mark.slow
def test_stage_3_env_actors_land_where_the_plan_says(simulated):
    path = ROOT / "configs" / "gpu_qwen3vl8b_4x8.yaml"
    overrides = ["stage=3", "executor.kind=a11y", "stage3.env_actors=4"]
    config = load_config([*overrides, f"cluster.address={simulated(load_config(overrides, [path]))}"], [path])
    where, _ = check_against_plan(config)
    assert sum(k[0] == "env" for k in where) == 4 and not any(k[0] == "reward" for k in where)
