"""The placement plan a run config implies: which node and which GPUs each actor gets, and whether it fits (the
nodes it is made for: `tracer1.cluster_nodes`).

    python -m tracer1.run --config configs/gpu_qwen3vl8b_4x8.yaml --plan           # stated cluster.nodes
    RAY_ADDRESS=http://head:8265 python -m tracer1.run --config ... --plan         # the live Ray cluster

The actors are the RL loop's (`tracer1.train.rl`): `learner.num_ranks` learner ranks in one placement group
(`cluster.placement_strategy`), `rollout.num_workers` rollout engines (a vLLM engine with tensor parallelism
holds `rollout.tensor_parallel_size` GPUs of one node: its TP workers are processes of that actor),
`executor.num_actors` executors (stage 2 only), `reward.num_actors` CPU-only reward actors (stages 1-2) and
`stage3.env_actors` CPU-only environment actors (stage 3). The driver is
not a Ray actor: it runs where `ray job submit` starts it (the head node) and holds no model: the held-out
evaluation runs on the rollout engines.

The plan is not only a forecast: the loops make it real (`tracer1.train.actors.place_actors`). They compute the
same plan against the live cluster (`ray_nodes`) and create the learner ranks' placement group first, then one
STRICT_PACK group per node and role, every bundle pinned to the node the plan chose (the `ray.io/node-id` label),
so each actor lands where `--plan` against that cluster says. The simulation places roles in that order: the
learner group first (PACK fills as few nodes as possible, SPREAD deals bundles round-robin, STRICT_PACK needs one
node), then each actor on the first node with room (an actor's resources always come from one node; a fractional
GPU shares one device; CPU-only actors prefer nodes without GPUs). Ray picks the GPU indices inside a node; the
plan's indices show which GPUs are shared or idle.

`cluster.colocate`: rollout engine i lives in learner rank i's bundle and takes `cluster.rollout.gpus` (a
fraction) of the rank's GPU; the loop puts the engines to sleep for the learner update (vLLM sleep mode), so the
rank has the GPU's memory then and the engine has `rollout.gpu_memory_utilization` of it while the rank's states
stay resident. Colocated engines take no GPU of their own. In stages 1 and 3 no executor actor runs: the plan
says how many of the GPUs sized for stage 2's executors stand idle (they are not lent to extra rollout engines:
the number of rollout workers decides which worker streams which Parquet shard and each worker's sampling
stream, so it stays `rollout.num_workers`, the same for a fresh and a resumed run; raise it for a stage-1 run to
use them).

Memory check (`tracer1.memory`): a learner rank's peak — DeepSpeed's model-state estimate, the KL reference,
activations, the completion logits, the weight-sync bucket — within 90% of its GPU memory; a vLLM engine's
weights / tensor_parallel_size and one max-length sequence of KV cache within `gpu_memory_utilization`. The
plan prints each term; a config over a limit cannot run and is refused.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tracer1 import memory
from tracer1.cluster_nodes import Node, local_nodes, ray_nodes, stated_nodes


@dataclass(frozen=True)
class Demand:
    role: str            # learner, rollout, executor, reward, env
    index: int
    cpus: float
    gpus: float
    memory_gb: float | None = None   # the GPU memory it needs at its peak (None = not estimated)
    detail: str = ""
    memory_plan: memory.MemoryPlan | None = field(default=None, compare=False)  # its terms

    @property
    def label(self) -> str:
        return f"{self.role} {'rank ' if self.role == 'learner' else ''}{self.index}"


@dataclass
class Placed:
    demand: Demand
    node: int
    devices: tuple[int, ...]
    colocated: bool = False  # cluster.colocate: a rollout engine inside its learner rank's bundle, on its GPU


@dataclass
class Plan:
    nodes: list[Node]
    source: str
    stage: object
    placed: list[Placed] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not self.problems

    def render(self) -> str:
        lines = [f"placement plan for stage {self.stage}, against {self.source}"]
        need_gpus = sum(p.demand.gpus for p in self.placed if not p.colocated)  # a shared GPU counts once
        lines.append(f"  cluster: {len(self.nodes)} node(s), {sum(n.gpus for n in self.nodes)} GPUs, "
                     f"{sum(n.cpus for n in self.nodes):g} CPUs; placed actors take {need_gpus:g} GPUs, "
                     f"{sum(p.demand.cpus for p in self.placed):g} CPUs")
        for i, node in enumerate(self.nodes):
            here = [p for p in self.placed if p.node == i]
            lines.append(f"  {node.describe()}  (left: {sum(node.free_gpu):g} GPU, {node.free_cpus:g} CPU)")
            if node.head:
                lines.append("    driver           tracer1.run (under ray job submit: on the head); no model: the "
                             "rollout engines evaluate")
            for gpu in range(node.gpus):
                users = [p for p in here if gpu in p.devices]
                text = ", ".join(_gpu_user(p) for p in users) if users else "(idle)"
                lines.append(f"    GPU {gpu:<3}          {text}")
            cpu_only = [p for p in here if not p.devices]
            for role in dict.fromkeys(p.demand.role for p in cpu_only):
                group = [p.demand for p in cpu_only if p.demand.role == role]
                lines.append(f"    CPU only         {role} {_ranges([d.index for d in group])} "
                             f"({group[0].cpus:g} CPU each)")
        lines += memory.render_section([p.demand for p in self.placed])
        lines += [f"  note: {n}" for n in self.notes]
        if self.fits:
            lines.append("  FITS: every actor has a place")
        else:
            lines.append("  DOES NOT FIT:")
            lines += [f"    - {p}" for p in self.problems]
        return "\n".join(lines)


def _gpu_user(p: Placed) -> str:
    d = p.demand
    share = f" ({d.gpus:g} GPU)" if d.gpus < 1 else (f" (TP {int(d.gpus)}, GPUs {_ranges(p.devices)})"
                                                     if d.gpus > 1 else "")
    peak = f", {d.memory_gb:.1f} GB{' per GPU' if d.gpus > 1 else ''}" if d.memory_gb is not None else ""
    shared = f" [colocated with learner rank {d.index}: asleep during the update]" if p.colocated else ""
    return f"{d.label}{share}{peak}{f' [{d.detail}]' if d.detail else ''}{shared}"


def _ranges(values: Sequence[int]) -> str:
    """0,1,2,5 -> '0-2, 5'."""
    values, out, start = sorted(values), [], None
    for i, v in enumerate(values):
        start = v if start is None else start
        if i + 1 == len(values) or values[i + 1] != v + 1:
            out.append(f"{start}" if start == v else f"{start}-{v}")
            start = None
    return ", ".join(out)


# --- what the config asks for ----------------------------------------------------------------------------------

def demands(config) -> tuple[list[Demand], list[str]]:
    """The actors of `config.stage`, in the order the loop creates them, and the problems that no cluster can
    fix (tensor parallelism that does not match the GPUs asked for, memory over the bounds, batches too small
    for the ranks)."""
    c, problems = config.cluster, []
    planner = memory.model_shape(config.model.path) if config.model.kind == "hf" else None

    ranks = config.learner.num_ranks
    learner_mem = memory.learner_memory(config, planner, c.nodes.gpus) if planner and c.learner.gpus > 0 else None
    out = [_with_memory(Demand("learner", r, c.learner.cpus, c.learner.gpus, None,
                               f"ZeRO-{config.learner.zero_stage}"), learner_mem) for r in range(ranks)]

    r = config.rollout
    _engine_check("rollout", r.engine, r.tensor_parallel_size, c.rollout.gpus, problems)
    rollout_mem = memory.engine_memory(
        "rollout engine", "rollout", config, planner, engine=r.engine, tp=r.tensor_parallel_size, gpus=c.rollout.gpus,
        utilization=r.gpu_memory_utilization,
        max_model_len=r.max_model_len or config.model.max_prompt_tokens + r.max_new_tokens) \
        if planner and c.rollout.gpus > 0 else None
    out += [_with_memory(Demand("rollout", i, c.rollout.cpus, c.rollout.gpus, None, r.engine), rollout_mem)
            for i in range(r.num_workers)]

    executor_mem = None
    if config.stage == 2:
        e = config.executor
        _engine_check("executor", e.engine, e.tensor_parallel_size, c.executor.gpus, problems)
        shape = memory.model_shape(e.model_path) if e.kind == "vlm" else None
        executor_mem = memory.engine_memory(
            "executor engine", "executor", config, shape, engine=e.engine, tp=e.tensor_parallel_size,
            gpus=c.executor.gpus, utilization=e.gpu_memory_utilization,
            max_model_len=config.model.max_prompt_tokens + e.max_new_tokens) if shape and c.executor.gpus > 0 else None
        what = f"{e.kind}: {Path(e.model_path).name}" if e.kind == "vlm" and e.model_path else e.kind
        out += [_with_memory(Demand("executor", i, c.executor.cpus, c.executor.gpus, None, what), executor_mem)
                for i in range(e.num_actors)]
    problems += [m.problem() for m in (learner_mem, rollout_mem, executor_mem) if m is not None and not m.fits]
    if config.stage == 3:  # environment actors (envs and the executor); returns are computed by the driver
        out += [Demand("env", i, c.env.cpus, c.env.gpus, None, f"{config.stage3.envs_per_actor} {config.env.name} envs")
                for i in range(config.stage3.env_actors)]
    else:
        out += [Demand("reward", i, c.reward.cpus, c.reward.gpus) for i in range(config.reward.num_actors)]

    for role, res in (("learner", c.learner), ("rollout", c.rollout), ("executor", c.executor),
                      ("reward", c.reward), ("env", c.env)):
        if res.gpus > 1 and res.gpus != int(res.gpus):
            problems.append(f"cluster.{role}.gpus = {res.gpus:g}: Ray gives an actor a fraction of one GPU or a "
                            "whole number of GPUs, not both")

    plans = config.rollout.prompts_per_step * config.rollout.group_size
    per_step = config.learner.grad_accum_steps * ranks
    if plans < per_step:
        problems.append(f"a step's {plans} plans (rollout.prompts_per_step {config.rollout.prompts_per_step} × "
                        f"group_size {config.rollout.group_size}) cannot fill learner.grad_accum_steps "
                        f"{config.learner.grad_accum_steps} micro-batches on each of {ranks} ranks: every rank "
                        "must take its share of each step")
    return out, problems


def _with_memory(demand: Demand, plan: memory.MemoryPlan | None) -> Demand:
    return demand if plan is None else replace(demand, memory_gb=plan.total_gb, memory_plan=plan)


def _engine_check(role: str, engine: str, tp: int, gpus: float, problems: list[str]) -> None:
    """GPUs of a vLLM engine must match its tensor parallelism (its TP workers use the GPUs Ray gives the actor)."""
    section = "rollout" if role == "rollout" else "executor"
    if engine == "vllm" and gpus > 0 and tp != max(gpus, 1):  # a fraction of one GPU is TP 1
        problems.append(f"cluster.{role}.gpus is {gpus:g} but {section}.tensor_parallel_size is {tp}: a vLLM engine's "
                        f"{tp} tensor-parallel workers run on the GPUs Ray gives its actor, so ask for {tp}")
    if engine == "vllm" and gpus == 0 and tp > 1:
        problems.append(f"{section}.tensor_parallel_size is {tp} but cluster.{role}.gpus is 0: tensor parallelism "
                        "needs GPUs")


# --- the cluster ------------------------------------------------------------------------------------------------

# --- placing ----------------------------------------------------------------------------------------------------

def plan_placement(config, nodes: list[Node], source: str) -> Plan:
    """Place the actors of `config` on `nodes` (fresh `Node`s: their free resources are used up here)."""
    plan = Plan(nodes, source, config.stage)
    if config.stage == "sft":  # the warm start trains in the driver process (tracer1.train.sft): no actors
        plan.notes.append("stage sft runs in the driver process, without Ray actors: nothing to place; plan "
                          "stage=1 or stage=2")
        return plan
    wanted, plan.problems = demands(config)
    if not nodes:
        plan.problems.append("no nodes: state the cluster in cluster.nodes (count, cpus, gpus) or connect to Ray "
                             "(cluster.address / RAY_ADDRESS)")
        return plan
    plan.problems += colocation_problems(config)
    learners = [d for d in wanted if d.role == "learner"]
    engines = [d for d in wanted if d.role == "rollout"] if config.cluster.colocate else []
    # a colocated engine's CPUs are part of its rank's bundle, which must fit on one node with them
    bundles = [replace(d, cpus=d.cpus + (engines[d.index].cpus if d.index < len(engines) else 0)) for d in learners]
    _place_group(plan, bundles, config.cluster.placement_strategy)
    ranks = {p.demand.index: p for p in plan.placed if p.demand.role == "learner"}
    for p in ranks.values():
        p.demand = learners[p.demand.index]
    for d in engines:  # on its rank's node and GPU, taking nothing more there
        if d.index in ranks:
            plan.placed.append(Placed(d, ranks[d.index].node, ranks[d.index].devices, colocated=True))
            _check_shared_gpu(plan, config, ranks[d.index].demand, d)
    for d in wanted:
        if d.role == "learner" or d in engines:
            continue
        order = range(len(nodes))
        if d.gpus == 0:  # Ray keeps CPU-only work off GPU nodes while other nodes have room
            order = sorted(order, key=lambda i: nodes[i].gpus > 0)
        for i in order:
            if nodes[i].can_take(d.cpus, d.gpus):
                plan.placed.append(Placed(d, i, nodes[i].take(d.cpus, d.gpus)))
                break
        else:
            plan.problems.append(f"{d.label} needs {d.cpus:g} CPU and {d.gpus:g} GPU on one node; left after the "
                                 f"actors before it: {_free(nodes)}")
    _add_totals_problem(plan, [d for d in wanted if d not in engines])  # colocated engines add no GPU
    _add_notes(plan, config)
    return plan


def colocation_problems(config) -> list[str]:
    """What `cluster.colocate` needs: at most one engine per learner rank, each on one GPU (Ray gives an actor a
    fraction of one GPU, not of several, so no tensor parallelism) and a share of the rank's GPU. (A forced NCCL
    weight sync is refused when the config is read: `tracer1.engines.weight_sync.nccl_blocker`.)"""
    c, r, ranks = config.cluster, config.rollout, config.learner.num_ranks
    if not c.colocate:
        return []
    out = []
    if r.num_workers > ranks:
        out.append(f"cluster.colocate puts rollout engine i in learner rank i's bundle, so rollout.num_workers "
                   f"({r.num_workers}) must be at most learner.num_ranks ({ranks})")
    if r.tensor_parallel_size > 1:
        out.append(f"cluster.colocate needs rollout.tensor_parallel_size 1 (it is {r.tensor_parallel_size}): an "
                   "engine shares one GPU with its rank, and Ray gives an actor a fraction of one GPU only")
    if c.learner.gpus > 1:
        out.append(f"cluster.colocate needs cluster.learner.gpus at most 1 (it is {c.learner.gpus:g}): each rank "
                   "shares its one GPU with its engine")
    if (c.rollout.gpus > 0) if c.learner.gpus == 0 else not 0 < c.rollout.gpus < c.learner.gpus:
        out.append(f"cluster.colocate: cluster.rollout.gpus ({c.rollout.gpus:g}) is a colocated engine's share of "
                   f"its rank's GPU, so it must lie strictly between 0 and cluster.learner.gpus "
                   f"({c.learner.gpus:g}), e.g. 0.5 (0 when the learner has no GPU)")
    return out


def _check_shared_gpu(plan: Plan, config, learner: Demand, engine: Demand) -> None:
    """A colocated engine runs while its rank's states stay on the GPU (the engine sleeps during the update, not
    the rank during the rollout): both must fit one device at once. Counted once per shared GPU, not twice."""
    gpu_gb, r = config.cluster.nodes.gpu_memory_gb, config.rollout
    if learner.memory_gb is None or config.cluster.learner.gpus == 0 or engine.index > 0:
        return  # every pair is alike: one message
    awake = r.gpu_memory_utilization * gpu_gb if r.engine == "vllm" else engine.memory_gb or 0.0
    kept = learner.memory_plan.resident_gb if learner.memory_plan is not None else learner.memory_gb
    if kept + awake > config.cluster.learner.gpus * gpu_gb:
        plan.problems.append(f"cluster.colocate: a learner rank keeps {kept:.1f} GB on its GPU while "
                             f"its engine runs, and the engine takes {awake:.1f} GB (rollout.gpu_memory_utilization "
                             f"{r.gpu_memory_utilization:g} of {gpu_gb:g} GB): lower gpu_memory_utilization to at "
                             f"most {max(0.0, (gpu_gb - kept) / gpu_gb):.2f} or shrink the rank's "
                             "share (more learner.num_ranks, learner.offload_optimizer)")


def _place_group(plan: Plan, bundles: list[Demand], strategy: str) -> None:
    nodes = plan.nodes
    if not bundles:
        return
    first = bundles[0]
    if strategy == "STRICT_PACK":
        for i, node in enumerate(nodes):
            if _how_many(node, first) >= len(bundles):
                plan.placed += [Placed(d, i, node.take(d.cpus, d.gpus)) for d in bundles]
                return
        plan.problems.append(f"the {len(bundles)} learner ranks ({first.cpus:g} CPU, {first.gpus:g} GPU each) must "
                             f"share one node (cluster.placement_strategy STRICT_PACK) and no node has room: "
                             f"{_free(nodes)}")
        return
    left = list(bundles)
    if strategy == "PACK":  # as few nodes as possible: the roomiest first
        for i in sorted(range(len(nodes)), key=lambda i: -_how_many(nodes[i], first)):
            while left and nodes[i].can_take(first.cpus, first.gpus):
                d = left.pop(0)
                plan.placed.append(Placed(d, i, nodes[i].take(d.cpus, d.gpus)))
    else:  # SPREAD: one bundle per node in turn
        while left and any(n.can_take(first.cpus, first.gpus) for n in nodes):
            for i, node in enumerate(nodes):
                if left and node.can_take(first.cpus, first.gpus):
                    d = left.pop(0)
                    plan.placed.append(Placed(d, i, node.take(d.cpus, d.gpus)))
    if left:  # Ray places a placement group whole or not at all
        plan.placed = [p for p in plan.placed if p.demand.role != "learner"]
        for n in nodes:
            n.__post_init__()
        plan.problems.append(f"the {len(bundles)} learner ranks ({first.cpus:g} CPU, {first.gpus:g} GPU each) do not "
                             f"fit: the cluster has room for {len(bundles) - len(left)} ({_free(nodes)})")


def _how_many(node: Node, d: Demand) -> int:
    by_cpu = int((node.free_cpus + 1e-9) // d.cpus) if d.cpus else 10**6
    if d.gpus == 0:
        return by_cpu
    by_gpu = int(sum(int((f + 1e-9) // d.gpus) for f in node.free_gpu)) if d.gpus < 1 else \
        sum(1 for f in node.free_gpu if f >= 1 - 1e-9) // int(d.gpus)
    return min(by_cpu, by_gpu)


def _free(nodes: list[Node]) -> str:
    return "; ".join(f"{n.name} {sum(n.free_gpu):g} GPU, {n.free_cpus:g} CPU" for n in nodes)


def _add_totals_problem(plan: Plan, wanted: list[Demand]) -> None:
    if plan.fits:
        return
    per_role = {}
    for d in wanted:
        gpus, cpus, count = per_role.get(d.role, (0.0, 0.0, 0))
        per_role[d.role] = (gpus + d.gpus, cpus + d.cpus, count + 1)
    asked = ", ".join(f"{role} {n} × ({g / n:g} GPU, {c / n:g} CPU)" for role, (g, c, n) in per_role.items())
    plan.problems.append(f"in all the config asks for {sum(d.gpus for d in wanted):g} GPUs and "
                         f"{sum(d.cpus for d in wanted):g} CPUs ({asked}); the cluster has "
                         f"{sum(n.gpus for n in plan.nodes)} GPUs and {sum(n.cpus for n in plan.nodes):g} CPUs")


def _add_notes(plan: Plan, config) -> None:
    r, ranks = config.rollout, config.learner.num_ranks
    plans = r.prompts_per_step * r.group_size
    micro = config.learner.grad_accum_steps * ranks
    plan.notes.append(f"batch: {r.prompts_per_step} prompts × G={r.group_size} = {plans} plans a step → {ranks} "
                      f"learner rank(s) × {config.learner.grad_accum_steps} micro-batches of ~{plans / micro:.3g} "
                      f"(learner.micro_batch_size {config.learner.micro_batch_size})")
    if r.num_workers > r.prompts_per_step:
        plan.notes.append(f"{r.num_workers - r.prompts_per_step} of {r.num_workers} rollout workers idle: "
                          f"rollout.prompts_per_step is {r.prompts_per_step}")
    learner_nodes = {p.node for p in plan.placed if p.demand.role == "learner"}
    if len({p.node for p in plan.placed} | learner_nodes) > 1:
        plan.notes.append(f"several nodes: logging.out_dir ({config.logging.out_dir}) must be storage every node "
                          "mounts (learner ranks write checkpoint parts there; resume reads them back)")
    if config.cluster.colocate:
        plan.notes.append("colocated: each rollout engine shares its learner rank's GPU and sleeps during the "
                          "update; weight sync: the learner's state dict through update_weights (NCCL cannot run "
                          "two ranks on one GPU)")
    elif r.engine == "vllm" and config.cluster.learner.gpus > 0 and config.cluster.rollout.gpus > 0:
        from tracer1.engines.weight_sync import nccl_blocker  # noqa: PLC0415

        bucket = f"{r.weight_sync_bucket_mb} MB buckets"
        blocked = nccl_blocker(config, gpus=True)
        plan.notes.append("weight sync: safetensors file through update_weights" if r.weight_sync == "file" else
                          f"weight sync: safetensors file through update_weights ({blocked})" if blocked else
                          {"auto": f"weight sync: NCCL broadcast in {bucket} where the cluster's vLLM is a supported "
                                   "version (tracer1.engines.weight_sync), else the safetensors file path",
                           "nccl": f"weight sync: NCCL broadcast in {bucket}; the cluster's vLLM must be a supported "
                                   "version (tracer1.engines.weight_sync)"}[r.weight_sync])
    idle = sum(sum(n.free_gpu) for n in plan.nodes)
    lent = config.executor.num_actors * config.cluster.executor.gpus
    if config.stage in (1, 3) and lent and idle:
        plan.notes.append(f"{idle:g} GPU(s) idle in stage {config.stage}, among them the {lent:g} of stage 2's "
                          f"executors (executor.num_actors {config.executor.num_actors}): not lent to extra rollout "
                          "engines, since the number of rollout workers fixes which worker streams which shard and "
                          "each worker's sampling stream; to use them, raise rollout.num_workers for this stage")
    if config.stage != 2 and config.executor.kind == "vlm":
        plan.notes.append("stage 2 adds executor.num_actors executors (cluster.executor each); plan it with stage=2")


def plan_for(config) -> Plan:
    """The plan against the live Ray cluster when one is named (cluster.address / RAY_ADDRESS), else against
    `cluster.nodes` when stated, else against this machine."""
    address = config.cluster.address or os.environ.get("RAY_ADDRESS")
    if address and address.startswith(("http://", "https://")):  # the Jobs API's address, which ray.init refuses
        plan = Plan([], f"the Ray cluster at {address}", config.stage)
        plan.problems.append(f"{address} is the Jobs API's address; run the plan as a job, where Ray names the "
                             "cluster itself: ray job submit --runtime-env cluster/runtime_env.yaml -- python -m "
                             "tracer1.run --config FILE --plan (or unset RAY_ADDRESS to plan against cluster.nodes)")
        return plan
    if address:
        import ray  # noqa: PLC0415

        started = not ray.is_initialized()
        if started:
            ray.init(address=address, log_to_driver=False)
        try:
            total = ray.cluster_resources()
            source = (f"the Ray cluster at {address} (ray.cluster_resources(): {total.get('GPU', 0):g} GPUs, "
                      f"{total.get('CPU', 0):g} CPUs)")
            return plan_placement(config, ray_nodes(config), source)
        finally:
            if started:
                ray.shutdown()
    if config.cluster.nodes.count:
        n = config.cluster.nodes
        head = f" + a {n.head_cpus:g}-CPU head" if n.head_cpus else ""
        return plan_placement(config, stated_nodes(config), f"cluster.nodes ({n.count} × {n.cpus:g} CPU, {n.gpus} "
                                                            f"GPU of {n.gpu_memory_gb:g} GB{head})")
    return plan_placement(config, local_nodes(config), "this machine (no cluster.address, RAY_ADDRESS or "
                                                       "cluster.nodes)")
