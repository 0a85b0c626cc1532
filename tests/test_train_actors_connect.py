"""Which Ray a run uses (tracer1.train.actors.connect_ray): cluster.address or $RAY_ADDRESS when given, else a
local Ray of its own, sized for the stage's actors."""

import math

import ray
from ray.cluster_utils import Cluster

from tracer1.config import RunConfig
from tracer1.train.actors import actor_cpus, connect_ray


def test_without_an_address_a_run_starts_its_own_ray_and_never_joins_a_neighbours(monkeypatch):
    # A Ray started on this machine (`ray start`, another job, a test's cluster) leaves its address where a bare
    # ray.init() looks first: cluster.address null must still mean "a local Ray of our own", sized for our actors.
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    neighbour = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        config = RunConfig()
        assert connect_ray(config) is True
        try:
            assert ray.get_runtime_context().gcs_address != neighbour.address
            assert ray.cluster_resources()["CPU"] == max(1, math.ceil(actor_cpus(config)))
        finally:
            ray.shutdown()
    finally:
        neighbour.shutdown()
