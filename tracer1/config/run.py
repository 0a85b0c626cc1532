"""The whole run (`RunConfig`: the sections of `tracer1.config.training` plus the cluster, logging and
checkpoints) and how a run's config is assembled and printed (`load_config`, `dump_config`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from tracer1.config.training import (
    AlgorithmConfig, DataConfig, EnvConfig, ExecutorConfig, LearnerConfig, ModelConfig, RewardConfig, RolloutConfig,
    Section, SFTConfig, Stage3Config,
)
from tracer1.overrides import (
    ConfigError, FieldDoc, is_section, merge_into, parse_override, read_yaml_file, validation_problems, yaml_scalar,
)

Stage = Literal["sft", 1, 2, 3]


class Resources(Section):
    cpus: float = Field(1.0, ge=0, description="CPUs per actor")
    gpus: float = Field(0.0, ge=0, description="GPUs per actor (fractions share a GPU)")
    threads: int | None = Field(
        None, ge=1, description="torch threads in each actor; null = its CPUs (Ray's OMP_NUM_THREADS). Roles that "
                                "take turns in the loop can use more threads than the CPUs they reserve")


class NodeGroup(Section):
    count: int = Field(0, ge=0, description="identical GPU/worker nodes; 0 = no cluster stated")
    cpus: float = Field(0.0, ge=0, description="CPUs Ray sees on each node")
    gpus: int = Field(0, ge=0, description="GPUs on each node")
    gpu_memory_gb: float = Field(
        80.0, gt=0, description="memory of each GPU in GB, for the plan's memory check (also used against a live "
                                "Ray cluster, which does not report it)")
    head_cpus: float = Field(
        0.0, ge=0, description="CPUs of a separate CPU-only head node (runs the driver; 0 = the driver shares the "
                               "first node)")


class ClusterConfig(Section):
    address: str | None = Field(
        None, description="Ray cluster address; null = $RAY_ADDRESS if set, else a local Ray")
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK"] = Field(
        "PACK", description="Ray placement-group strategy of the learner ranks' group (the other actors go in "
                            "per-node groups where the plan, `--plan`, puts them)")
    colocate: bool = Field(
        False, description="rollout engine i shares learner rank i's GPU (cluster.rollout.gpus: its fraction) and "
                           "sleeps during the learner update; needs tensor_parallel_size 1 and the file weight sync")
    max_restarts: int = Field(3, ge=-1, description="times Ray restarts a dead actor (-1 = forever)")
    max_task_retries: int = Field(
        3, ge=-1, description="times a work item is retried after its actor died (-1 = forever)")
    # The rollout workers and the learner take turns (rollout, then update, then sync), so on a small machine each
    # can use two cores while the other waits (measured in docs/RESULTS.md).
    rollout: Resources = Field(default_factory=lambda: Resources(threads=2),
                               description="resources of each rollout worker")
    executor: Resources = Field(default_factory=Resources, description="resources of each executor actor")
    reward: Resources = Field(default_factory=Resources, description="resources of each reward actor")
    env: Resources = Field(default_factory=Resources, description="resources of each stage-3 environment actor")
    learner: Resources = Field(default_factory=lambda: Resources(threads=2),
                               description="resources of each learner rank")
    nodes: NodeGroup = Field(
        default_factory=NodeGroup, description="the nodes `--plan` checks against without a Ray cluster address")


class LoggingConfig(Section):
    out_dir: str = Field("runs", min_length=1, description="runs are written to <out_dir>/<run_name>")
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="level of tracer1's Python log messages on the console (driver and actors); progress "
                            "lines are printed regardless")
    log_every: int = Field(1, ge=1, description="log step metrics every this many steps, and at the last step")
    jsonl_metrics: bool = Field(True, description="append metrics to metrics.jsonl in the run directory")
    tensorboard: bool = Field(True, description="write TensorBoard event files in the run directory")
    wandb_project: str | None = Field(None, description="Weights & Biases project; null = off")
    mlflow_tracking_uri: str | None = Field(None, description="MLflow tracking URI; null = off")
    log_samples: int = Field(
        2, ge=0, description="RL: sampled plans, with their rewards, written to the log (TensorBoard text, "
                             "metrics.jsonl) at each logged step; SFT: held-out greedy plans after training")


class CheckpointConfig(Section):
    every_steps: int = Field(10, ge=0, description="checkpoint every this many steps (0 = only at the end)")
    keep_last: int = Field(2, ge=1, description="complete checkpoints kept; older ones are deleted")
    resume: Literal["auto", "never"] | Annotated[str, Field(min_length=1)] = Field(
        "auto", description="auto = newest complete checkpoint of this run if any; never = start fresh; or a "
                            "checkpoint path")
    init_from: str | None = Field(
        None, description="weights to start from (checkpoint dir, or run dir = its newest); stage 2 starts "
                          "from stage 1's")
    async_write: bool = Field(
        False, description="learner ranks write step checkpoints to local_dir, then copy them to the run directory "
                           "in the background while training goes on (one in flight; complete once all copies are)")
    local_dir: str = Field(
        "/tmp/tracer1-checkpoints", pattern=r"^/",
        description="async_write: absolute node-local directory (fast disk, room for one checkpoint's parts of "
                    "the node's ranks) where each rank writes first")


class RunConfig(Section):
    """The whole run. Field order is the order of the printed config (configs/default.yaml)."""

    stage: Stage = Field(
        1, description="'sft' = warm-start on oracle demos, 1 = trajectory alignment, 2 = grounded fine-tuning, 3 = "
                    "plan-act episodes in live envs")
    horizon: int = Field(
        10, ge=1, le=64, description="T: future steps the planner forecasts and the stage-1 reward scores (1 ="
                                     " reactive)")
    seed: int = Field(0, ge=0, description="seed for data, sampling and initialisation")
    run_name: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="run directory name under logging.out_dir; "
                                                                   "null = derived at start, e.g. "
                                                                   "stage1-20261124-224501")
    model: ModelConfig = Field(default_factory=ModelConfig, description="the planner being trained")
    executor: ExecutorConfig = Field(
        default_factory=ExecutorConfig, description="the frozen tool agent that executes a plan's first step")
    data: DataConfig = Field(default_factory=DataConfig, description="planning samples")
    env: EnvConfig = Field(default_factory=EnvConfig, description="live environments")
    rollout: RolloutConfig = Field(default_factory=RolloutConfig, description="sampling plans")
    reward: RewardConfig = Field(default_factory=RewardConfig, description="stage-1 and stage-2 rewards")
    algorithm: AlgorithmConfig = Field(
        default_factory=AlgorithmConfig, description="GRPO: optimiser, clipped policy loss, KL, advantages, "
                                                     "schedule")
    sft: SFTConfig = Field(default_factory=SFTConfig, description="the supervised warm start (stage 'sft')")
    stage3: Stage3Config = Field(
        default_factory=Stage3Config, description="stage 3: GRPO over whole plan-act episodes in live envs")
    learner: LearnerConfig = Field(default_factory=LearnerConfig, description="the DeepSpeed learner")
    cluster: ClusterConfig = Field(default_factory=ClusterConfig, description="Ray placement of the actors")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="metrics and logs")
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig, description="saving and resuming")

    @field_validator("stage", mode="before")
    @classmethod
    def _stage_digits(cls, value: Any) -> Any:
        # `stage: "1"` (quoted YAML, env-var templating) means stage 1; a bool must not pass as 1.
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        if isinstance(value, bool):
            raise ValueError("stage must be 'sft', 1, 2 or 3, not a boolean")
        return value

    @model_validator(mode="after")
    def _sft_batch_fits_micro_batches(self) -> RunConfig:
        if self.sft.batch_size % self.learner.micro_batch_size:
            raise ValueError(f"sft.batch_size ({self.sft.batch_size}) must be a multiple of "
                             f"learner.micro_batch_size ({self.learner.micro_batch_size})")
        return self

    @model_validator(mode="after")
    def _stage3_plays_live_envs(self) -> RunConfig:
        if self.stage == 3 and self.env.name not in ("builtin", "miniwob"):
            raise ValueError(f"stage 3 plays episodes in a live env: env.name must be builtin or miniwob, not "
                             f"{self.env.name!r}")
        if self.stage == 3 and self.executor.kind not in ("a11y", "oracle"):
            raise ValueError(f"stage 3 grounds steps inside its environment actors: executor.kind must be a11y or "
                             f"oracle, not {self.executor.kind!r} (a VLM executor there is not supported yet)")
        return self

    @model_validator(mode="after")
    def _nccl_weight_sync_where_it_can_work(self) -> RunConfig:
        # the rules that need no vLLM install (vLLM engines, learner and rollouts on whole GPUs each): before
        # anything starts; the installed vLLM's version is checked at start (tracer1.train.sync)
        from tracer1.engines.weight_sync import nccl_blocker, nccl_refusal, on_gpus  # noqa: PLC0415

        blocker = self.rollout.weight_sync == "nccl" and nccl_blocker(self, gpus=on_gpus(self))
        if blocker:
            raise ValueError(nccl_refusal(blocker))
        return self

    @model_validator(mode="after")
    def _off_policy_where_it_can_run(self) -> RunConfig:
        alg = self.algorithm
        if alg.max_staleness and self.cluster.colocate:
            raise ValueError(f"algorithm.max_staleness={alg.max_staleness} with cluster.colocate: colocated engines "
                             "sleep while the learner updates, so they cannot generate ahead; choose one")
        reads = ("algorithm.old_logprobs=rollout" if alg.old_logprobs == "rollout" else
                 f"algorithm.max_staleness={alg.max_staleness} with tis_cap={alg.tis_cap:g}"
                 if alg.max_staleness and alg.tis_cap > 0 else None)
        if reads and self.rollout.temperature != 1.0:
            raise ValueError(f"{reads} reads the rollout engine's log-probs, which are the raw model's "
                             f"(temperature 1), not those of the sampling policy at rollout.temperature="
                             f"{self.rollout.temperature:g}: use rollout.temperature=1, or old_logprobs=learner "
                             "and tis_cap=0")
        return self

    @model_validator(mode="after")
    def _nccl_needs_gpus(self) -> RunConfig:
        if self.learner.backend == "nccl" and self.cluster.learner.gpus == 0:
            raise ValueError("learner.backend='nccl' needs GPUs: set cluster.learner.gpus > 0, or "
                             "backend gloo/auto")
        return self


# --- assembling a config ------------------------------------------------------------------------------------

def load_config(argv_overrides: Sequence[str] = (), config_files: Sequence[Path | str] = ()) -> RunConfig:
    """Defaults < each of `config_files` in order < `config=FILE` overrides in order < `key.sub=value` overrides.

    Raises ConfigError naming every bad file, override and field at once."""
    data: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    problems: list[str] = []
    files = [Path(f) for f in config_files]
    assignments = []
    for text in argv_overrides:
        if text.startswith("config="):  # a file path, taken verbatim rather than read as YAML
            files.append(Path(text.removeprefix("config=")))
            continue
        try:
            assignments.append(parse_override(text))
        except ConfigError as exc:
            problems += exc.problems
    for path in files:
        try:
            merge_into(data, read_yaml_file(path), str(path), origins)
        except ConfigError as exc:
            problems += exc.problems
    for keys, value in assignments:
        for key in reversed(keys):
            value = {key: value}
        merge_into(data, value, "override", origins)
    if problems:
        raise ConfigError(problems)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, RunConfig, origins)) from None


def dump_config(config: RunConfig) -> str:
    """The config as YAML with each field's description as a comment. Loading it back (`--config`) gives an
    equal config; configs/default.yaml is this for `RunConfig()`."""
    lines = ["# tracer1 run configuration (python -m tracer1.run --print-config); reuse it with --config FILE.",
             "# `python -m tracer1.run --help` explains every field."]
    _emit(config, 0, lines)
    return "\n".join(lines) + "\n"


def _emit(section: BaseModel, depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    for name, info in type(section).model_fields.items():
        value = getattr(section, name)
        doc = FieldDoc(name, info, info.annotation if is_section(info.annotation) else None)
        if depth == 0 and doc.section:
            lines.append("")
        lines.append(f"{pad}# {doc.summary}")
        if doc.section:
            lines.append(f"{pad}{name}:")
            _emit(value, depth + 1, lines)
        else:
            lines.append(f"{pad}{name}: {yaml_scalar(value)}")
