"""Rewards and matchers (one module for both; evaluation reuses the matchers).

* `match` — the public benchmarks' matching rules (boxes, the 0.14 radius, token F1, GAIA/GTA answers).
* `trajectory` — stage 1: a forecast plan against the reference future (`trajectory_reward`).
* `grounded` — stage 2: the executed first step against the grounding labels (`grounded_reward`).
* `live` — stage 2 online: the live env's feedback on the executed first step (`live_reward`, `LiveFeedback`).
"""

from tracer1.rewards.grounded import GroundingLabel, execution_correct, grounded_reward
from tracer1.rewards.live import LiveFeedback, live_reward
from tracer1.rewards.trajectory import (
    TrajectoryScore, repeat_flags, score_plan, step_similarity, trajectory_reward,
)

__all__ = ["GroundingLabel", "LiveFeedback", "TrajectoryScore", "execution_correct", "grounded_reward",
           "live_reward", "repeat_flags", "score_plan", "step_similarity", "trajectory_reward"]
