"""RNG states (Python, NumPy, torch) survive a JSON round trip: what step checkpoints store for the driver and
for each learner rank."""

from __future__ import annotations

import json
import random

import numpy as np
import torch

from tracer1.seeding import rng_state, set_rng_state


def test_rng_states_round_trip_through_json():
    saved = json.loads(json.dumps(rng_state()))
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.random(), np.random.rand(), torch.rand(1)  # move on
    set_rng_state(saved)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected
