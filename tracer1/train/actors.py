"""Ray plumbing of the RL loop, kept out of the loop file: connecting to (or starting) Ray, making actors from the
plain worker classes, placing them where the plan says, and calling a pool of actors on shards of a batch with
retries.

Placement: `place_actors` computes the plan of `tracer1.placement` against this Ray cluster (what `--plan` prints
there) and makes it real, in its order: the learner ranks' placement group first (`cluster.placement_strategy`),
then one STRICT_PACK group per node and role, each bundle pinned to its planned node by the `ray.io/node-id`
label; `Placement.options(role, i)` is actor i's scheduling strategy. With `cluster.colocate` rollout engine i
shares learner rank i's bundle (and GPU), and `engines_asleep` frees the engines' GPU memory for the update.

Failure handling: rollout, executor and reward actors are restarted by Ray (`cluster.max_restarts`); a call whose
actor died, or that ran past its deadline (executor calls: `executor.deadline_s` per item; the actor is then
killed), is retried here (`cluster.max_task_retries` times), not by Ray, so that a restarted rollout worker —
which comes back with the weights it was created with — is first given the current weights (`before_retry`).
Errors raised by the work itself are not retried: they surface with the actor and the items named.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import ray
from ray.exceptions import ActorUnavailableError, RayActorError
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

from tracer1.metrics import configure_logging

PLACEMENT_TIMEOUT_S = 600.0
RESTART_WAIT_S = 300.0


def connect_ray(config) -> bool:
    """Attach to `cluster.address` / RAY_ADDRESS, else start a local Ray with logical CPUs for every actor of
    either stage (a laptop has fewer cores than actors; they take turns). True when this call started Ray."""
    if ray.is_initialized():
        return False
    address = config.cluster.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
        return False
    # address="local": a bare ray.init() would join a Ray someone else started on this machine (`ray start`, another
    # job), sized for them, and the run would fail asking it for CPUs
    ray.init(address="local", num_cpus=max(1, math.ceil(actor_cpus(config))), include_dashboard=False,
             log_to_driver=True)
    return True


def actor_cpus(config) -> float:
    """CPUs the stage's actors ask for: rollout workers and learner ranks, with reward and executor actors in
    stages 1–2 and environment actors (which hold the executor) in stage 3."""
    c = config.cluster
    common = config.rollout.num_workers * c.rollout.cpus + config.learner.num_ranks * c.learner.cpus
    if config.stage == 3:
        return common + config.stage3.env_actors * c.env.cpus
    return common + config.reward.num_actors * c.reward.cpus + config.executor.num_actors * c.executor.cpus


@contextmanager
def ray_session(config):
    """Ray for one stage: yields a list to register actors (and placement groups) in; on the way out (finished or
    failed) they are killed — a next stage in this process needs their resources — and a Ray this stage started is
    shut down."""
    started = connect_ray(config)
    owned: list = []
    try:
        yield owned
    finally:
        release(owned)
        if started:
            ray.shutdown()


def release(owned: list) -> None:
    """Kill the actors and remove the placement groups in `owned` (their resources are free again)."""
    for thing in owned:
        if isinstance(thing, PlacementGroup):
            remove_placement_group(thing)
        else:
            ray.kill(thing, no_restart=True)


class TorchThreads:
    """Mixed into every actor class: sets the actor's torch threads (`cluster.<role>.threads`; None keeps Ray's
    OMP_NUM_THREADS, the actor's CPUs) before the actor's own constructor runs."""

    torch_threads: int | None = None

    def __init__(self, *args, **kwargs):
        if self.torch_threads is not None:
            import torch  # noqa: PLC0415 — only actors that asked for threads

            torch.set_num_threads(self.torch_threads)
        super().__init__(*args, **kwargs)


class LogLevel:
    """Mixed into every actor class: applies `logging.level` in the actor's process before its constructor runs."""

    log_level: str | None = None

    def __init__(self, *args, **kwargs):
        if self.log_level is not None:
            configure_logging(self.log_level)
        super().__init__(*args, **kwargs)


class Timed:
    """Mixed into every actor class: `timed(method, ...)` runs a method and also returns the seconds it took inside
    the actor, so the loop can tell work from orchestration (queueing, transfers, serialisation)."""

    def timed(self, method: str, *args, **kwargs):
        started = time.perf_counter()
        out = getattr(self, method)(*args, **kwargs)
        return time.perf_counter() - started, out


def make_actor(cls, resources, config, *, restartable: bool = True, **options):
    """`cls` as a Ray actor class with the role's resources; restartable roles come back after a crash."""
    timed = type(cls.__name__, (Timed, LogLevel, TorchThreads, cls),
                 {"__module__": cls.__module__, "__doc__": cls.__doc__, "torch_threads": resources.threads,
                  "log_level": config.logging.level})
    return ray.remote(**{"num_cpus": resources.cpus, "num_gpus": resources.gpus,
                         "max_restarts": config.cluster.max_restarts if restartable else 0, "max_task_retries": 0,
                         **options})(timed)


NODE_LABEL = "ray.io/node-id"  # the label Ray gives every node: a bundle that selects it lands on that node


def _bundle(cpus: float, gpus: float) -> dict:
    return {"CPU": cpus, **({"GPU": gpus} if gpus else {})}


class Placement:
    """The plan's placement groups, made in the plan's order; `options(role, i)` schedules actor i of a role
    (learner, rollout, executor, reward, env) into its bundle."""

    def __init__(self, config, plan, owned: list):
        self.plan, c = plan, config.cluster
        by_role: dict[str, list] = {}
        for p in plan.placed:
            by_role.setdefault(p.demand.role, []).append(p)
        self.where: dict[tuple[str, int], dict] = {}
        groups = []
        ranks = sorted(by_role.get("learner", []), key=lambda p: p.demand.index)
        engines = {p.demand.index: p for p in by_role.get("rollout", []) if p.colocated}
        if ranks:  # first, as the plan places it
            bundles = [_bundle(c.learner.cpus + (c.rollout.cpus if p.demand.index in engines else 0), c.learner.gpus)
                       for p in ranks]
            group = self._group(bundles, [p.node for p in ranks], c.placement_strategy, owned)
            groups.append(group)
            for r, p in enumerate(ranks):
                shares = p.demand.index in engines and c.learner.gpus > 0  # the engine takes its part of the GPU
                self.where[("learner", r)] = {"scheduling_strategy": self._in(group, r),
                                              **({"num_gpus": c.learner.gpus - c.rollout.gpus} if shares else {})}
            for r in engines:
                self.where[("rollout", r)] = {"scheduling_strategy": self._in(group, r)}
        rest: dict[tuple[int, str], list] = {}  # (node, role) -> its actors, in the plan's order
        for p in plan.placed:
            if p.demand.role != "learner" and not p.colocated:
                rest.setdefault((p.node, p.demand.role), []).append(p)
        for (node, role), placed in rest.items():
            bundles = [_bundle(p.demand.cpus, p.demand.gpus) for p in placed]
            if not any(v for b in bundles for v in b.values()):  # Ray refuses empty bundles: pin to the node
                for p in placed:
                    self.where[(role, p.demand.index)] = {"scheduling_strategy": NodeAffinitySchedulingStrategy(
                        plan.nodes[node].node_id, soft=False)}
                continue
            group = self._group(bundles, [node] * len(placed), "STRICT_PACK", owned)
            groups.append(group)
            for i, p in enumerate(placed):
                self.where[(role, p.demand.index)] = {"scheduling_strategy": self._in(group, i)}
        ready, pending = ray.wait([g.ready() for g in groups], num_returns=len(groups),
                                  timeout=PLACEMENT_TIMEOUT_S) if groups else ([], [])
        if pending:
            raise RuntimeError(f"{len(pending)} of {len(groups)} placement groups were not ready within "
                               f"{PLACEMENT_TIMEOUT_S:g} s (other jobs on the cluster?); the plan:\n{plan.render()}")

    def _group(self, bundles: list[dict], nodes: list[int], strategy: str, owned: list) -> PlacementGroup:
        group = placement_group(bundles, strategy=strategy, bundle_label_selector=[
            {NODE_LABEL: self.plan.nodes[n].node_id} for n in nodes])
        owned.append(group)
        return group

    @staticmethod
    def _in(group: PlacementGroup, index: int) -> PlacementGroupSchedulingStrategy:
        return PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=index)

    def options(self, role: str, index: int) -> dict:
        """Ray actor options that put actor `index` of `role` where the plan does."""
        return self.where[(role, index)]


def place_actors(config, owned: list) -> Placement:
    """The plan against this Ray cluster (`python -m tracer1.run --plan` run there prints it), made real; a plan
    that does not fit stops the run before any actor starts, with the plan's reasons."""
    from tracer1.cluster_nodes import ray_nodes  # noqa: PLC0415 — only with a live cluster
    from tracer1.placement import plan_placement  # noqa: PLC0415 — placement imports this module

    plan = plan_placement(config, ray_nodes(config), "the Ray cluster this run is on")
    if not plan.fits:
        raise RuntimeError(f"the run's actors do not fit this Ray cluster:\n{plan.render()}")
    return Placement(config, plan, owned)


@contextmanager
def engines_asleep(rollouts: list, config):
    """`cluster.colocate`: the rollout engines release their GPU memory (vLLM sleep mode) while the learner updates
    on the same GPUs, and take it back after, before the weight sync. Without colocation: nothing."""
    if config.cluster.colocate:
        ray.get([w.sleep.remote() for w in rollouts])
    try:
        yield
    finally:
        if config.cluster.colocate:
            ray.get([w.wake.remote() for w in rollouts])


def wait_until_placed(actors: list, config) -> None:
    """Fail with the reason instead of waiting forever when the cluster cannot host the actors."""
    ready, pending = ray.wait([a.__ray_ready__.remote() for a in actors], num_returns=len(actors),
                              timeout=PLACEMENT_TIMEOUT_S)
    if pending:
        asked, has = actor_cpus(config), ray.cluster_resources().get("CPU", 0)
        why = (f"they ask for {asked:g} CPUs (cluster.*.cpus) and the cluster has {has:g}; lower the per-actor "
               "resources or add nodes" if asked > has else
               f"the cluster has room ({asked:g} of {has:g} CPUs asked), so their worker processes did not start: "
               "an overloaded machine or a worker that died at start (see the Ray session's logs/ directory)")
        raise RuntimeError(f"{len(pending)} of {len(actors)} actors were not placed within {PLACEMENT_TIMEOUT_S:g} "
                           f"s: {why}")
    ray.get(ready)  # an actor whose constructor failed raises here, with its traceback


@ray.remote(num_cpus=0)
def _rendezvous() -> tuple[str, int]:
    from tracer1.learner.distributed import free_port  # noqa: PLC0415

    host = ray.util.get_node_ip_address()
    return host, free_port(host if host not in ("", "0.0.0.0") else "127.0.0.1")


def learner_ranks(cls, config, *args, owned: list, placement: Placement | None = None, **kwargs) -> list:
    """`learner.num_ranks` rank actors in the placement group `placement` made for them (without one: a group of
    their own, `cluster.placement_strategy`, wherever Ray puts it — for callers whose only actors are ranks),
    joined into one torch.distributed group whose rendezvous is on rank 0's node. Ranks are not restarted: a
    learner that died lost its optimizer state, and the run resumes from its last checkpoint instead."""
    world = config.learner.num_ranks
    res = config.cluster.learner
    if placement is not None:
        options = [placement.options("learner", r) for r in range(world)]
    else:
        bundle = _bundle(res.cpus, res.gpus)
        group = placement_group([bundle] * world, strategy=config.cluster.placement_strategy)
        owned.append(group)
        ready, _ = ray.wait([group.ready()], timeout=PLACEMENT_TIMEOUT_S)
        if not ready:
            raise RuntimeError(f"the {world} learner ranks ({bundle} each, {config.cluster.placement_strategy}) "
                               f"could not be placed within {PLACEMENT_TIMEOUT_S:g} s; cluster has "
                               f"{ray.cluster_resources()}")
        options = [{"scheduling_strategy": Placement._in(group, r)} for r in range(world)]
    addr, port = ray.get(_rendezvous.options(scheduling_strategy=options[0]["scheduling_strategy"]).remote())
    rank_cls = make_actor(cls, res, config, restartable=False)
    ranks = [rank_cls.options(**options[r]).remote(*args, **kwargs, rank=r, world_size=world, master_addr=addr,
                                                    master_port=port)
             for r in range(world)]
    owned.extend(ranks)
    if config.cluster.colocate:  # the ranks hold their GPU memory before colocated engines size theirs
        wait_until_placed(ranks, config)
    return ranks


@dataclass
class Answers:
    """What a round of actor calls gave back: one answer per call, the busiest actor's seconds of work (the part's
    critical path), and how many calls were retried after their actor died."""

    results: list
    busy_s: float
    retried: int


def call_actors(calls: Sequence[tuple[object, tuple]], method: str, *, retries: int, what: Sequence[str] = (),
                before_retry: Callable[[object], None] | None = None,
                deadline_s: Sequence[float] | None = None, **kwargs) -> Answers:
    """`actor.method(*args, **kwargs)` for each (actor, args), all at once. A call whose actor died — or that ran
    past its `deadline_s[i]` seconds, whereupon its actor is killed for Ray to restart — is sent again to the same
    (restarted) actor after `before_retry(actor)`, up to `retries` times (-1 = forever); `what[i]` names call i's
    work in messages."""
    answers: list = [None] * len(calls)
    busy, retried = [0.0] * len(calls), 0
    pending = {i: a.timed.remote(method, *args, **kwargs) for i, (a, args) in enumerate(calls)}

    def due_at(i: int) -> float:  # when call i, sent now, is late
        return time.monotonic() + deadline_s[i] if deadline_s else math.inf

    due = {i: due_at(i) for i in pending}
    attempts = dict.fromkeys(pending, 0)
    while pending:
        late = min(pending, key=due.__getitem__)
        wait_s = due[late] - time.monotonic()
        done, _ = ray.wait(list(pending.values()), num_returns=1, timeout=max(0.0, wait_s) if wait_s < math.inf
                           else None)
        i = next(k for k, ref in pending.items() if ref == done[0]) if done else late
        worker, args = calls[i]
        name = f"{method} ({what[i] if i < len(what) else f'call {i}'}) on actor {worker._actor_id.hex()[:12]}"
        cause = None
        if done:
            try:
                busy[i], answers[i] = ray.get(pending.pop(i))
                continue
            except (RayActorError, ActorUnavailableError) as exc:
                brief, cause = "its actor died", exc
                why = f"{brief}: {exc}"
        else:  # past its deadline: a hung actor is killed like a crashed one, and Ray restarts it
            why = brief = f"it ran past its {deadline_s[i]:g} s deadline"
            del pending[i]
            ray.kill(worker, no_restart=False)
        if 0 <= retries <= attempts[i]:
            raise RuntimeError(f"{name} failed {attempts[i] + 1} times, {why}") from cause
        attempts[i] += 1
        retried += 1
        print(f"tracer1: {name}: {brief}; retrying it (attempt {attempts[i] + 1})", flush=True)
        try:
            wait_for_restart(worker)
        except RuntimeError as gone:
            raise RuntimeError(f"{name}: {gone}") from cause
        if before_retry is not None:
            before_retry(worker)
        pending[i] = worker.timed.remote(method, *args, **kwargs)
        due[i] = due_at(i)
    return Answers(answers, max(busy, default=0.0), retried)


def call_pool(workers: Sequence, method: str, items: list, *, retries: int, label: Callable[[object], str] = str,
              before_retry: Callable[[object], None] | None = None, item_deadline_s: float | None = None,
              **kwargs) -> Answers:
    """`method` on each worker with an even, in-order share of `items`; the answers concatenated in item order.
    With `item_deadline_s`, a call of n items that takes longer than n × item_deadline_s is retried on its
    restarted actor (`call_actors`)."""
    from tracer1.train.batch import split_evenly  # noqa: PLC0415 — torch; actor processes import this module

    shards = [items[s] for s in split_evenly(len(items), len(workers)) if s.stop > s.start]
    what = [f"{len(shard)} items from {label(shard[0])}" for shard in shards]
    deadlines = [len(shard) * item_deadline_s for shard in shards] if item_deadline_s else None
    out = call_actors([(w, (shard,)) for w, shard in zip(workers, shards)], method, retries=retries, what=what,
                      before_retry=before_retry, deadline_s=deadlines, **kwargs)
    return Answers([x for part in out.results for x in part], out.busy_s, out.retried)


def wait_for_restart(worker, timeout_s: float = RESTART_WAIT_S) -> None:
    """Block until a restarting actor answers again (Ray says "temporarily unavailable" while it re-runs the
    constructor); one that is dead for good (restarts used up, or a failing constructor) raises at once."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            ray.get(worker.__ray_ready__.remote(), timeout=timeout_s)
            return
        except ActorUnavailableError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"actor {worker._actor_id.hex()[:12]} did not come back within {timeout_s:g} s "
                                   "after it died") from exc
            time.sleep(0.5)
        except RayActorError as exc:
            raise RuntimeError(f"actor {worker._actor_id.hex()[:12]} did not come back after it died "
                               "(cluster.max_restarts used up, or its constructor fails)") from exc
