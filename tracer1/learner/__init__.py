"""The DeepSpeed learner (plain class; the Ray actor wraps it) and the token-level losses it trains with."""

from tracer1.learner.learner import Learner, deepspeed_config, lr_lambda
from tracer1.learner.losses import masked_mean, sft_loss

__all__ = ["Learner", "deepspeed_config", "lr_lambda", "masked_mean", "sft_loss"]
