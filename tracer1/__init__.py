"""tracer1: train anticipatory planners for multimodal agents with two-stage RL (TraceR1) on Ray."""

import os

# Before torch loads its OpenMP runtime (it reads this once, at load): idle OpenMP threads sleep instead of
# spinning. A run is several processes (driver, rollout, learner, executor and reward actors) sharing the cores,
# and spinning threads then take the cores from the process with work: measured 45× slower (96 s against 2.1 s)
# for a small MLP's forward/backward with 2 threads on a 2-core machine running one other torch process. A user's
# own setting wins; Ray workers import tracer1 before torch when they build an actor, so they get it too.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
