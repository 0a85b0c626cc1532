"""The Ray nodes a placement plan is made for (`tracer1.placement`): stated in the config (`cluster.nodes`), the live
Ray cluster's, this machine's, or those the files in cluster/ bring up (a Ray launcher config, a KubeRay
RayCluster). A `Node` also keeps the plan's bookkeeping of what is still free on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass
class Node:
    name: str
    cpus: float
    gpus: int
    gpu_memory_gb: float | None = None
    head: bool = False
    node_id: str | None = None  # Ray's id of a live node (what the loop pins placement-group bundles to)
    free_cpus: float = field(init=False)
    free_gpu: list[float] = field(init=False)  # per device: the unused fraction (Ray splits a GPU by fractions)

    def __post_init__(self) -> None:
        self.free_cpus, self.free_gpu = float(self.cpus), [1.0] * int(self.gpus)

    def can_take(self, cpus: float, gpus: float) -> bool:
        return self._devices(gpus) is not None and self.free_cpus + 1e-9 >= cpus

    def _devices(self, gpus: float) -> list[int] | None:
        if gpus == 0:
            return []
        if gpus >= 1:  # whole devices, all free
            whole = [i for i, f in enumerate(self.free_gpu) if f >= 1 - 1e-9]
            return whole[:int(gpus)] if len(whole) >= gpus else None
        fits = [(f, i) for i, f in enumerate(self.free_gpu) if f + 1e-9 >= gpus]
        return [min(fits)[1]] if fits else None  # best fit: the fullest device that still has room

    def take(self, cpus: float, gpus: float) -> tuple[int, ...]:
        devices = self._devices(gpus)
        assert devices is not None and self.free_cpus + 1e-9 >= cpus
        for i in devices:
            self.free_gpu[i] -= min(gpus, 1.0)
        self.free_cpus -= cpus
        return tuple(devices)

    def describe(self) -> str:
        gpus = f"{self.gpus} GPU" + (f" × {self.gpu_memory_gb:g} GB" if self.gpus and self.gpu_memory_gb else "")
        return f"{self.name}{' (head)' if self.head and self.name != 'head' else ''}: {self.cpus:g} CPU, {gpus}"


def stated_nodes(config) -> list[Node]:
    """`cluster.nodes` as nodes: an optional CPU-only head, then `count` identical nodes."""
    spec = config.cluster.nodes
    head = [Node("head", spec.head_cpus, 0, None, head=True)] if spec.head_cpus else []
    workers = [Node(f"node {i}", spec.cpus, spec.gpus, spec.gpu_memory_gb, head=not head and i == 0)
               for i in range(spec.count)]
    return head + workers


def ray_nodes(config) -> list[Node]:
    """The alive nodes of the Ray cluster this process is connected to (`ray.nodes()`); Ray does not report GPU
    memory, so `cluster.nodes.gpu_memory_gb` is assumed for every GPU."""
    import ray  # noqa: PLC0415 — only when planning against a live cluster

    def order(n: dict) -> tuple:  # the head first, then a fixed order, so --plan and the loop see the same list
        return "node:__internal_head__" not in n.get("Resources", {}), n.get("NodeManagerAddress", ""), n["NodeID"]

    nodes = []
    for info in sorted((n for n in ray.nodes() if n.get("Alive")), key=order):
        res = info.get("Resources", {})
        gpus = int(res.get("GPU", 0))
        nodes.append(Node(f"{info.get('NodeManagerAddress', '?')} {info['NodeID'][:8]}", res.get("CPU", 0.0), gpus,
                          config.cluster.nodes.gpu_memory_gb if gpus else None,
                          head="node:__internal_head__" in res, node_id=info["NodeID"]))
    return nodes


def local_nodes(config) -> list[Node]:
    """This machine as the local Ray a run starts here would see it (`tracer1.train.actors.connect_ray`: as many
    logical CPUs as the actors ask for; the NVIDIA devices present)."""
    from tracer1.train.actors import actor_cpus  # noqa: PLC0415 — imports Ray; only for a local plan

    gpus = len([d for d in os.listdir("/dev") if d.startswith("nvidia") and d[6:].isdigit()]) \
        if os.path.isdir("/dev") else 0
    cpus = max(1, -(-actor_cpus(config) // 1))
    return [Node("this machine", cpus, gpus, config.cluster.nodes.gpu_memory_gb if gpus else None, head=True)]


# --- nodes from the files in cluster/ ------------------------------------------------------------------------------

def _quantity(value) -> float:
    """A Kubernetes CPU quantity ("32", "500m", 4) as CPUs."""
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def nodes_from_launcher(launcher: dict, gpu_memory_gb: float = 80.0, *, workers: str = "max") -> list[Node]:
    """The nodes a Ray cluster launcher config (cluster/aws-gpu.yaml, parsed) brings up: the head, then each
    worker type's `max_workers` (or `min_workers`) nodes, with the resources each node type declares."""
    types, head = launcher["available_node_types"], launcher["head_node_type"]
    nodes = []
    for name, spec in sorted(types.items(), key=lambda item: item[0] != head):
        res = spec.get("resources", {})
        count = 1 if name == head else int(spec.get(f"{workers}_workers", 0))
        for i in range(count):
            gpus = int(res.get("GPU", 0))
            nodes.append(Node(name if name == head else f"{name} {i}", float(res.get("CPU", 0)), gpus,
                              gpu_memory_gb if gpus else None, head=name == head))
    return nodes


def nodes_from_raycluster(spec: dict, gpu_memory_gb: float = 80.0) -> list[Node]:
    """The pods of a KubeRay RayCluster spec (or a RayJob's rayClusterSpec) as Ray nodes: CPUs and GPUs from each
    group's first container's limits (what KubeRay passes to `ray start`), `replicas` pods per worker group."""
    def node(name: str, template: dict, head: bool) -> Node:
        limits = template["spec"]["containers"][0]["resources"]["limits"]
        gpus = int(limits.get("nvidia.com/gpu", 0))
        return Node(name, _quantity(limits.get("cpu", 0)), gpus, gpu_memory_gb if gpus else None, head=head)

    nodes = [node("head", spec["headGroupSpec"]["template"], True)]
    for group in spec.get("workerGroupSpecs", []):
        nodes += [node(f"{group['groupName']} {i}", group["template"], False) for i in range(int(group["replicas"]))]
    return nodes
