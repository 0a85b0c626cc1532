"""The run configuration: defaults, files, overrides, and what a user sees when a setting is wrong."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from tracer1.config import ConfigError, RewardConfig, RunConfig, dump_config, load_config
from tracer1.overrides import iter_fields

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(overrides=(), files=()) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(list(overrides), list(files))
    return str(caught.value)


# --- defaults and the shipped files -------------------------------------------------------------------------

def test_defaults_are_the_embedded_run():
    config = RunConfig()
    assert config.stage == 1 and config.horizon == 10 and config.run_name is None
    assert config.model.path is None and config.model.kind == "tiny-vl" and config.model.dtype == "float32"
    assert config.env.name == "builtin" and config.rollout.engine == "hf" and config.rollout.group_size == 8
    assert config.cluster.learner.gpus == 0 and config.cluster.address is None
    assert (config.algorithm.clip_low, config.algorithm.clip_high) == (0.2, 0.28)
    assert load_config([], []) == config


def test_reward_defaults_are_the_documented_constants():
    reward = RewardConfig()
    assert (reward.gamma, reward.lambda_align, reward.lambda_rep) == (0.9, 1.0, 0.5)
    assert (reward.sim.type, reward.sim.location, reward.sim.value) == (1.0, 1.0, 1.0)
    assert reward.normalize and reward.format_penalty == 0.5 and reward.unparseable == -1.0
    assert (reward.point_radius, reward.box_margin, reward.text_match) == (0.14, 0.0, "f1")
    assert (reward.text_threshold, reward.repeat_radius, reward.deadline_s) == (0.5, 20, 30.0)
    assert (reward.failure_value, reward.num_actors) == (-1.0, 1)


def test_every_field_has_a_one_line_description():
    docs = list(iter_fields(RunConfig))
    assert len(docs) > 100
    for doc in docs:
        assert doc.description and "\n" not in doc.description, doc.path


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_file_validates(path):
    assert isinstance(load_config([], [path]), RunConfig)


def test_the_shipped_files_are_the_ones_documented():
    assert {p.name for p in CONFIGS.glob("*.yaml")} >= {"default.yaml", "reactive.yaml", "stage2.yaml"}


def test_default_yaml_is_exactly_the_printed_defaults():
    # If this fails after changing a field: python -m tracer1.run --print-config > configs/default.yaml
    assert (CONFIGS / "default.yaml").read_text(encoding="utf-8") == dump_config(RunConfig())
    assert load_config([], [CONFIGS / "default.yaml"]) == RunConfig()


def test_reactive_baseline_differs_from_the_default_only_in_horizon_and_name():
    reactive = load_config([], [CONFIGS / "reactive.yaml"])
    assert reactive.horizon == 1
    assert reactive.model_copy(update={"horizon": 10, "run_name": None}) == RunConfig()


def test_stage2_config_starts_from_a_stage1_run_and_grounds_online():
    config = load_config([], [CONFIGS / "stage2.yaml"])
    assert config.stage == 2 and config.env.grounding == "online" and config.env.name == "builtin"
    assert config.checkpoint.init_from.startswith("runs/")


# --- precedence ------------------------------------------------------------------------------------------

def test_precedence_is_defaults_then_files_in_order_then_overrides(tmp_path):
    first = write(tmp_path, "first.yaml", "horizon: 5\nreward:\n  gamma: 0.5\n  lambda_rep: 0.2\n")
    second = write(tmp_path, "second.yaml", "reward:\n  gamma: 0.6\n")
    config = load_config(["reward.gamma=0.7"], [first, second])
    assert config.reward.gamma == 0.7          # the override beats both files
    assert config.reward.lambda_rep == 0.2     # the second file did not erase the first file's sibling
    assert config.horizon == 5                 # from the first file
    assert config.reward.lambda_align == 1.0   # default


def test_config_override_loads_a_file_after_the_given_files(tmp_path):
    given = write(tmp_path, "given.yaml", "horizon: 5\n")
    extra = write(tmp_path, "extra.yaml", "horizon: 6\nseed: 3\n")
    config = load_config([f"config={extra}", "seed=4"], [given])
    assert (config.horizon, config.seed) == (6, 4)


def test_nested_overrides_merge_into_a_section_rather_than_replace_it(tmp_path):
    weights = write(tmp_path, "weights.yaml", "reward:\n  sim:\n    type: 2.0\n")
    config = load_config(["reward.sim.value=0"], [weights])
    assert (config.reward.sim.type, config.reward.sim.location, config.reward.sim.value) == (2.0, 1.0, 0.0)


def test_override_values_are_read_as_yaml(tmp_path):
    assert load_config(["stage=1"], []).stage == 1 and type(load_config(["stage=1"], []).stage) is int
    assert load_config(["stage=sft"], []).stage == "sft"
    assert load_config(["env.tasks=[a,b]"], []).env.tasks == ["a", "b"]
    assert load_config(["algorithm.lr=3e-6"], []).algorithm.lr == 3e-6
    assert load_config(["reward.normalize=false"], []).reward.normalize is False
    with_init = write(tmp_path, "init.yaml", "checkpoint:\n  init_from: runs/stage1\n")
    assert load_config(["checkpoint.init_from=null"], [with_init]).checkpoint.init_from is None
    assert load_config(["run_name=2024"], []).run_name == "2024"  # a number where text is expected is text


def test_assignment_is_validated_too():
    config = RunConfig()
    with pytest.raises(ValidationError):
        config.reward.gamma = 2.0


# --- errors -------------------------------------------------------------------------------------------------

def test_a_bad_number_names_the_field_the_value_the_reason_and_the_meaning():
    message = problems_of(["reward.gamma=two"])
    assert message.startswith("invalid config:")
    assert "reward.gamma = 'two': Input should be a valid number" in message
    assert "(discount per future step: weight γ^(t-1) on step t; 0 < value ≤ 1)" in message


def test_a_bad_choice_lists_the_allowed_values():
    assert "stage = 7: Input should be 'sft', 1, 2 or 3" in problems_of(["stage=7"])
    assert "'hf' or 'vllm'" in problems_of(["rollout.engine=sglang"])


def test_a_value_out_of_range_says_the_bound():
    message = problems_of(["reward.gamma=0"])
    assert "reward.gamma = 0: Input should be greater than 0" in message


def test_an_unknown_key_suggests_the_closest_real_one(tmp_path):
    assert "reward.gama = 0.5: unknown key (did you mean reward.gamma?)" in problems_of(["reward.gama=0.5"])
    assert "did you mean reward.lambda_rep?" in problems_of(["reward.lambda-rep=1"])
    typo_in_file = write(tmp_path, "typo.yaml", "rollout:\n  group_sise: 4\n")
    assert "rollout.group_sise = 4 (in " in problems_of(files=[typo_in_file])
    assert "did you mean rollout.group_size?" in problems_of(files=[typo_in_file])


def test_cluster_colocate_is_a_yes_or_no_setting():
    # the loops place engines in their ranks' bundles and put them to sleep for the update (tests/test_placement.py,
    # tests/test_train_rl_colocate.py)
    assert load_config(["cluster.colocate=true"]).cluster.colocate is True
    assert "\n  cluster.colocate = " in problems_of(["cluster.colocate=sometimes"])


def test_several_errors_are_reported_together():
    with pytest.raises(ConfigError) as caught:
        load_config(["reward.gamma=two", "stage=7", "learner.zero_stage=5", "nonsense"], [])
    assert len(caught.value.problems) == 1  # a malformed override stops before validation...
    with pytest.raises(ConfigError) as caught:
        load_config(["reward.gamma=two", "stage=7", "learner.zero_stage=5"], [])
    assert len(caught.value.problems) == 3  # ...otherwise every bad field is listed at once
    for path in ("reward.gamma", "stage", "learner.zero_stage"):
        assert f"\n  {path} = " in str(caught.value)


def test_a_bad_value_from_a_file_names_the_file(tmp_path):
    bad = write(tmp_path, "bad.yaml", "reward:\n  gamma: two\n")
    assert f"reward.gamma = 'two' (in {bad})" in problems_of(files=[bad])


def test_cross_field_rules_explain_themselves():
    assert "needs zero_stage 1, 2 or 3" in problems_of(["learner.offload_optimizer=true", "learner.zero_stage=0"])
    assert "reward.sim: type, location and value are all 0" in problems_of(
        ["reward.sim.type=0", "reward.sim.location=0", "reward.sim.value=0"])
    assert "set cluster.learner.gpus > 0" in problems_of(["learner.backend=nccl"])
    assert load_config(["learner.backend=nccl", "cluster.learner.gpus=1"], []).learner.backend == "nccl"
    assert "needs executor.model_path" in problems_of(["executor.kind=vlm"])


def test_rollouts_ahead_are_refused_where_they_cannot_run():
    assert "cannot generate ahead" in problems_of(["algorithm.max_staleness=1", "cluster.colocate=true"])
    # the engines' log-probs are at temperature 1: reading them at another one would weight by the wrong policy
    assert "rollout.temperature=0.7" in problems_of(["algorithm.max_staleness=1", "rollout.temperature=0.7"])
    assert "rollout.temperature=0.7" in problems_of(["algorithm.old_logprobs=rollout", "rollout.temperature=0.7"])
    assert load_config(["algorithm.max_staleness=1", "algorithm.tis_cap=0", "rollout.temperature=0.7"],
                       []).algorithm.max_staleness == 1


def test_malformed_overrides_are_named():
    assert "'horizon': an override must look like key.sub=value" in problems_of(["horizon"])
    assert "is not a dotted key" in problems_of(["reward..gamma=1"])


def test_bad_yaml_names_the_file_and_line(tmp_path):
    bad = write(tmp_path, "broken.yaml", "stage: 1\nhorizon: 10\nreward:\n  gamma: 0.9: 1\n")
    message = problems_of(files=[bad])
    assert f"config file {bad}, line 4" in message and "not valid YAML" in message


def test_a_yaml_top_level_must_be_a_mapping(tmp_path):
    listed = write(tmp_path, "list.yaml", "- stage: 1\n")
    assert "the top level must be a mapping" in problems_of(files=[listed])
    assert load_config([], [write(tmp_path, "empty.yaml", "")]) == RunConfig()  # empty = nothing to change


def test_a_missing_file_is_named(tmp_path):
    assert f"config file {tmp_path / 'nope.yaml'}: cannot read it" in problems_of(files=[tmp_path / "nope.yaml"])


# --- printing -------------------------------------------------------------------------------------------

def test_printed_config_loads_back_equal(tmp_path):
    config = load_config([
        "stage=sft", "horizon=3", "run_name=2024", "env.tasks=[inbox, 'a: b', '#x', 'yes']",
        "checkpoint.resume=runs/x/ckpt-10", "logging.wandb_project=my project", "algorithm.lr=3e-7",
        "reward.sim.value=0", "cluster.learner.gpus=0.5",
    ], [])
    config.model.path = "line1\nline2"  # a line break inside a value must survive too
    printed = write(tmp_path, "printed.yaml", dump_config(config))
    assert load_config([], [printed]) == config
    assert config != RunConfig()
