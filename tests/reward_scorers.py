"""Scorers for the RewardWorker tests, importable by its spawned child: plans named HANG, BOOM and DIE hang,
raise and kill the process; any other plan scores its length."""

from __future__ import annotations

import os
import time


def misbehaving(item, cfg, horizon, stage):
    if item.plan == "HANG":
        time.sleep(600)
    if item.plan == "BOOM":
        raise ZeroDivisionError("division by zero")
    if item.plan == "DIE":
        os._exit(3)
    return float(len(item.plan))


def failing_or_real(item, cfg, horizon, stage):
    """The real scorer, except that plans named BOOM raise and plans named HANG hang."""
    from tracer1.rewards.worker import score_item

    if item.plan == "BOOM":
        raise RuntimeError("a scorer bug")
    if item.plan == "HANG":
        time.sleep(600)
    return score_item(item, cfg, horizon, stage)
