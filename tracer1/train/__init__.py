"""Trainers, one per stage: (resolved config, run directory) → exit code."""
