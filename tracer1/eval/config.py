"""Settings of a plan-act evaluation (`python -m tracer1.eval`), and which episodes it plays.

The planner-side sections are the run config's own (`horizon`, `seed`, `model`, `executor`, `env`, `rollout`,
`cluster`, `logging`), so a training run's YAML (`--config configs/smoke.yaml`) and its saved `config.yaml` are read
as they are; the training-only sections of such a file (`data`, `sft`, `algorithm`, ...) are skipped. Settings merge
in this order, later ones winning:

    defaults < the checkpoint's run config.yaml (when it has one) < --config FILE < key.sub=value

so an evaluation builds its prompts with the horizon, history length and prompt budget the planner was trained with
unless told otherwise. Shorthands: `env=miniwob` is `env.name=miniwob`; `tasks=click-button` / `tasks=[a,b]` /
`tasks=a,b` is `env.tasks=[...]`.

The step budget is `env.max_steps` (decisions per episode, unreadable plans included), the reactive baseline is
`horizon=1`, `compare=reactive` runs both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from tracer1.config import (
    ClusterConfig, ConfigError, EnvConfig, ExecutorConfig, LoggingConfig, ModelConfig, RolloutConfig, Section,
)
from tracer1.envs.episode import EpisodeSpec
from tracer1.overrides import merge_into, parse_override, read_yaml_file, validation_problems

# Small named sets of MiniWoB++ tasks. Every one has a scripted solver that `checkpoint=oracle` measured at 100%
# through the plan-act loop.
MINIWOB_SUITES: dict[str, tuple[str, ...]] = {
    "smoke": ("click-test", "click-button"),
    "click": ("click-test", "click-test-2", "click-button", "click-link", "click-dialog", "click-option",
              "click-tab", "click-checkboxes", "click-collapsible", "click-widget"),
    "forms": ("focus-text", "focus-text-2", "enter-text", "enter-text-2", "enter-text-dynamic", "enter-password",
              "login-user", "login-user-popup"),
    "multistep": ("click-button-sequence", "click-tab-2", "choose-list", "use-autocomplete", "search-engine",
                  "multi-layouts", "multi-orderings"),
}
ORACLE = "oracle"          # `checkpoint=oracle`: the env's own expert plans (a ceiling for the loop)
PLAN_ACT_ENVS = ("builtin", "miniwob")
# Keys of a training run's config that mean nothing to an evaluation: skipped when a run's YAML is read.
RUN_ONLY = ("stage", "run_name", "data", "reward", "algorithm", "sft", "learner", "checkpoint")


class EvalConfig(Section):
    """One plan-act evaluation. Field order is the order of `--print-config`."""

    checkpoint: str = Field(
        ..., min_length=1, description="planner: a run directory (its final policy), a step checkpoint, an HF "
                                       "directory, or 'oracle' (the env's expert; a ceiling)")
    name: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="output directory under logging.out_dir; "
                                                                   "null = eval-<env>-<time>")
    episodes: int = Field(20, ge=1, description="episodes per evaluation; tasks take turns (episode i plays task "
                                                "i mod the number of tasks)")
    suite: str | None = Field(
        None, description=f"named MiniWoB++ task set instead of env.tasks: {', '.join(MINIWOB_SUITES)}")
    compare: Literal["none", "reactive"] = Field(
        "none", description="reactive = also run horizon=1 on the same episodes and print both side by side")
    keep_screenshots: int = Field(
        3, ge=0, description="episodes (the first ones) whose steps keep their PNG screenshots")
    concurrent: int | None = Field(
        None, ge=1, description="episodes each worker plays in lockstep, planned in one batch (each its own "
                                "env; MiniWoB: a browser each); null = 8 built-in, 1 MiniWoB")
    time_limit_ms: int | None = Field(
        120_000, ge=1000, description="MiniWoB's per-episode time limit (its own is 10 s, too short for a "
                                      "planner that thinks); null = the task's own")
    html_report: bool = Field(True, description="also write report.html (tracer1.report) in each output directory")
    use_ray: bool = Field(
        True, description="play episodes on rollout.num_workers Ray actors; false = in this process")
    horizon: int = Field(10, ge=1, le=64, description="T: steps each plan forecasts (1 = reactive); only the "
                                                      "first runs")
    seed: int = Field(0, ge=0, description="seed of the episodes' tasks and of sampling")
    model: ModelConfig = Field(default_factory=ModelConfig, description="how the planner is loaded and prompted")
    executor: ExecutorConfig = Field(
        default_factory=ExecutorConfig, description="the frozen tool agent that executes each plan's first step")
    env: EnvConfig = Field(default_factory=EnvConfig, description="the live environment, its tasks and the step "
                                                                  "budget (max_steps)")
    rollout: RolloutConfig = Field(
        default_factory=RolloutConfig, description="generation: eval_temperature, max_new_tokens, history_len, "
                                                   "num_workers (eval actors)")
    cluster: ClusterConfig = Field(default_factory=ClusterConfig, description="Ray: address, actor resources "
                                                                              "(cluster.rollout), restarts")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="where outputs go (out_dir)")

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("env"), str):
            data["env"] = {"name": data["env"]}
        if "tasks" in data:
            tasks = data.pop("tasks")
            if isinstance(tasks, str):
                tasks = [t.strip() for t in tasks.split(",") if t.strip()]
            data["env"] = {**(data.get("env") or {}), "tasks": tasks}
        return data

    @model_validator(mode="after")
    def _checks(self) -> EvalConfig:
        if self.env.name not in PLAN_ACT_ENVS:
            raise ValueError(f"env.name={self.env.name!r}: plan-act evaluation runs in {', '.join(PLAN_ACT_ENVS)}")
        if self.suite is not None and self.env.name != "miniwob":
            raise ValueError(f"suite={self.suite!r}: suites are MiniWoB++ task sets; set env=miniwob")
        if self.suite is not None and self.suite not in MINIWOB_SUITES:
            raise ValueError(f"suite={self.suite!r}: unknown; suites: {', '.join(MINIWOB_SUITES)}")
        if self.suite is not None and self.env.tasks:
            raise ValueError("give either suite or env.tasks, not both")
        if self.env.name == "miniwob" and self.suite is None and not self.env.tasks:
            raise ValueError("env=miniwob needs tasks: tasks=click-button, tasks=[a,b] or suite="
                             f"{'|'.join(MINIWOB_SUITES)}")
        if self.executor.kind == "vlm":
            raise ValueError("executor.kind=vlm needs a grounding engine, which the plan-act evaluation does not "
                             "start; use a11y or oracle")
        if self.compare == "reactive" and self.horizon == 1:
            raise ValueError("compare=reactive compares horizon T against horizon 1; horizon is already 1")
        return self

    @property
    def tasks(self) -> list[str]:
        """The tasks episodes take turns on ([] = the built-in world draws a family per episode)."""
        return list(MINIWOB_SUITES[self.suite]) if self.suite else list(self.env.tasks)

    @property
    def lockstep(self) -> int:
        return self.concurrent or (1 if self.env.name == "miniwob" else 8)


def episode_specs(config: EvalConfig) -> list[EpisodeSpec]:
    """The evaluation's episodes. Seeds are hashed from (seed, env, index), so they differ from the training
    data's episodes (`tracer1.data.synthetic.episode_seed` hashes another prefix) and are the same for the
    anticipatory and the reactive run."""
    tasks = config.tasks
    if config.env.name == "miniwob":
        from tracer1.envs.miniwob import miniwob_tasks  # noqa: PLC0415 — needs the miniwob package

        known = set(miniwob_tasks())
        unknown = [t for t in tasks if t not in known]
        if unknown:
            raise ConfigError([f"env.tasks: unknown MiniWoB++ task(s) {', '.join(unknown)} (see "
                               "tracer1.envs.miniwob.miniwob_tasks())"])
    elif tasks:
        from tracer1.envs.builtin import FAMILIES  # noqa: PLC0415

        unknown = [t for t in tasks if t not in FAMILIES]
        if unknown:
            raise ConfigError([f"env.tasks: unknown built-in task famil(ies) {', '.join(unknown)}; known: "
                               f"{', '.join(FAMILIES)}"])
    specs = []
    for i in range(config.episodes):
        task = tasks[i % len(tasks)] if tasks else None
        digest = hashlib.sha256(f"tracer1-plan-act:{config.env.name}:{config.seed}:{i}".encode()).digest()
        seed = int.from_bytes(digest[:4], "big") >> 1  # MiniWoB seeds must fit a signed 32-bit int
        specs.append(EpisodeSpec(f"{config.env.name}-{task or 'any'}-{i:03d}", config.env.name, task, seed,
                                 i < config.keep_screenshots))
    return specs


# --- assembling ---------------------------------------------------------------------------------------------

def run_config_of(checkpoint: str) -> Path | None:
    """The training run's saved config.yaml behind a checkpoint path (a run dir, checkpoints/final, a step
    checkpoint or its policy/), if there is one."""
    if checkpoint == ORACLE:
        return None
    path = Path(checkpoint)
    for candidate in (path, *list(path.parents)[:3]):
        if (candidate / "config.yaml").is_file():
            return candidate / "config.yaml"
    return None


def _shared(data: dict) -> dict:
    """A run config's mapping without the sections only training reads (a run's `checkpoint:` is a section, an
    evaluation's a path). Other keys stay, so a typo is still reported as an unknown key."""
    return {k: v for k, v in data.items()
            if not (k in RUN_ONLY and (k != "checkpoint" or isinstance(v, dict)))}


def load_eval_config(overrides: Sequence[str] = (), config_files: Sequence[Path | str] = ()) -> EvalConfig:
    """Defaults < the checkpoint's run config.yaml < `config_files` < `key.sub=value` overrides (see the module
    docstring). Raises ConfigError naming every bad file, override and field."""
    problems: list[str] = []
    layers: list[tuple[str, dict]] = []  # (origin, mapping), lowest first
    for path in config_files:
        try:
            layers.append((str(path), _shared(read_yaml_file(Path(path)))))
        except ConfigError as exc:
            problems += exc.problems
    for text in overrides:
        try:
            keys, value = parse_override(text)
        except ConfigError as exc:
            problems += exc.problems
            continue
        if keys == ["env"] and isinstance(value, str):  # shorthands, resolved here so they merge key by key
            keys = ["env", "name"]
        elif keys == ["tasks"]:
            keys = ["env", "tasks"]
            value = [t.strip() for t in value.split(",") if t.strip()] if isinstance(value, str) else value
        for key in reversed(keys):
            value = {key: value}
        layers.append(("override", value))
    checkpoint = next((d["checkpoint"] for _, d in reversed(layers) if isinstance(d.get("checkpoint"), str)), None)
    run_yaml = run_config_of(checkpoint) if checkpoint else None
    if run_yaml is not None:
        try:
            trained = _shared(read_yaml_file(run_yaml))
            trained.pop("logging", None)  # the run's loggers and out_dir are not where the evaluation goes
            trained.pop("seed", None)     # episodes are drawn from the evaluation's own seed
            layers.insert(0, (str(run_yaml), trained))
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    data: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    for origin, layer in layers:
        merge_into(data, layer, origin, origins)
    try:
        return EvalConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, EvalConfig, origins)) from None
