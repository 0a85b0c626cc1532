"""Every setting of a tracer1 run, as pydantic models, and how a run's config is assembled:

    model defaults  <  YAML files (--config, in order)  <  key.sub=value overrides

The defaults are the *embedded* run: a tiny model on a laptop CPU in the built-in GUI world, no downloads.
A cluster run changes only values (see configs/). `python -m tracer1.run --help` lists every field.

The sections live in `tracer1.config.training` (the parts of a run) and `tracer1.config.run` (the whole run, the
cluster, logging, checkpoints, and loading and printing); everything is importable from here.
"""

from tracer1.config.run import (
    CheckpointConfig, ClusterConfig, LoggingConfig, NodeGroup, Resources, RunConfig, Stage, dump_config, load_config,
)
from tracer1.config.training import (
    BUILTIN_HELD_OUT, AlgorithmConfig, DataConfig, EnvConfig, ExecutorConfig, LearnerConfig, ModelConfig,
    RewardConfig, RolloutConfig, Section, SFTConfig, SimWeights, Stage3Config,
)
from tracer1.overrides import ConfigError

__all__ = [
    "BUILTIN_HELD_OUT", "AlgorithmConfig", "CheckpointConfig", "ClusterConfig", "ConfigError", "DataConfig",
    "EnvConfig", "ExecutorConfig", "LearnerConfig", "LoggingConfig", "ModelConfig", "NodeGroup", "Resources",
    "RewardConfig", "RolloutConfig", "RunConfig", "SFTConfig", "Section", "SimWeights", "Stage", "Stage3Config",
    "dump_config", "load_config",
]
