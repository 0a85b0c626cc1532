"""Plan-act evaluation (`python -m tracer1.eval`): the model-predictive loop in the live envs, its statistics, its
settings and its outputs.

The loop is shown right by the envs' own experts: planning with the built-in world's oracle (every horizon) and
MiniWoB++'s scripted solvers, the frozen a11y executor and the live env solve every episode. Scripted planners
show the step budget and loop detection; the tiny planner (untrained: it mostly fails, which is fine here) shows
that model prompts are the training prompts and the command line end to end, on Ray and in MiniWoB++."""

from __future__ import annotations

import importlib.util
import json

import pytest
from tiny_planners import one_thread  # noqa: F401  (fixture)

from tracer1.config import ConfigError
from tracer1.data.synthetic import episode_samples
from tracer1.envs.builtin import BuiltinEnv
from tracer1.eval.__main__ import main, play
from tracer1.eval.config import EpisodeSpec, EvalConfig, episode_specs, load_eval_config
from tracer1.eval.plan_act import (
    Decision, ModelPlanner, OraclePlanner, PlanActLoop, rates, summarize, wilson_interval,
)
from tracer1.models.tiny import build_tiny_planner
from tracer1.models.prompt import prompts_for_run

# --- statistics -------------------------------------------------------------------------------------------------


def test_wilson_interval_on_known_counts():
    # 8/10, z = 1.96: centre (0.8 + 1.9207/10) / 1.38415 = 0.71674, half-width 1.41601 · sqrt(0.016 + 0.0096037)
    # = 0.22658 -> [0.4902, 0.9433] (the values statsmodels' proportion_confint(8, 10, method="wilson") gives)
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    # 0/10 and 10/10 are not the empty interval p ± 0: the Wilson interval still spans 0.2775 on the open side
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson_interval(10, 10) == (pytest.approx(0.7225, abs=1e-4), 1.0)
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError, match="successes=11"):
        wilson_interval(11, 10)


def result(task: str, success: bool, steps: int, looped: bool = False) -> dict:
    return {"env": "builtin", "task": task, "success": success, "steps": steps, "looped": looped}


def test_rates_per_task_steps_per_success_and_loop_share():
    results = [result("toggle", True, 3), result("toggle", False, 20, looped=True), result("toggle", True, 5),
               result("go_home", False, 20)]
    summary = summarize(results)
    overall = summary["overall"]
    assert overall["successes"] == 2 and overall["success_rate"] == 0.5
    assert overall["steps_per_success"] == 4.0            # (3 + 5) / 2: failures do not count
    assert overall["loop_share"] == 0.25 and overall["mean_steps"] == 12.0
    assert overall["ci95"] == pytest.approx(list(wilson_interval(2, 4)))
    toggle, home = summary["by_task"]["builtin/toggle"], summary["by_task"]["builtin/go_home"]
    assert toggle["episodes"] == 3 and toggle["success_rate"] == pytest.approx(2 / 3)
    assert home["steps_per_success"] is None and home["ci95"] == pytest.approx([0.0, 0.7935], abs=1e-4)
    assert rates([])["success_rate"] is None


# --- the loop with the envs' experts and scripted planners ------------------------------------------------------

@pytest.mark.parametrize("horizon", [10, 1])
def test_oracle_planner_solves_the_builtin_world_through_the_loop(horizon):
    """Forecast, execute only the first step with the a11y executor, observe, replan: the oracle's plans,
    grounded on the accessibility tree, solve every episode, each step bringing the goal closer."""
    config = EvalConfig(checkpoint="oracle", episodes=10, concurrent=4, horizon=horizon, keep_screenshots=2)
    results = PlanActLoop(config, OraclePlanner()).run(episode_specs(config))
    assert len(results) == 10 and len({r["episode"] for r in results}) == 10
    assert all(r["success"] and r["end"] == "success" and not r["looped"] for r in results), \
        [(r["task"], r["end"]) for r in results if not r["success"]]
    for r in results:
        assert r["steps"] == len(r["trajectory"]) <= config.env.max_steps
        for row in r["trajectory"]:
            assert row["executed"] is not None and row["correct"] is True
            if row["point"] is not None:                       # finish, answer, press... act nowhere
                (x, y), (x0, y0, x1, y1) = row["point"], row["target_box"]
                assert 0 <= x0 <= x <= x1 <= 360 and 0 <= y0 <= y <= y1 <= 640
        assert any(row["point"] is not None for row in r["trajectory"])
        kept = r["episode"].endswith(("000", "001"))
        assert all((row["screenshot"] is not None) == kept for row in r["trajectory"])
        assert r["trajectory"][0]["screenshot"] is None or r["trajectory"][0]["screenshot"].startswith(b"\x89PNG")


class Scripted:
    """A planner that writes the same text at every decision."""

    def __init__(self, text: str):
        self.text, self.decisions = text, 0

    def plan(self, decisions, horizon):
        self.decisions += len(decisions)
        return [self.text] * len(decisions)

    def close(self):
        pass


@pytest.mark.parametrize("plan, counter, looped", [
    ("<plan>\n1. wait()\n</plan>", None, True),                          # acts, but nothing changes: a loop
    ("no plan here", "unreadable_plans", False),                         # nothing readable: no action to repeat
    ('<plan>\n1. click(target="Quantum flux")\n</plan>', "not_executed", True),  # nothing matches, tried again
])
def test_step_budget_and_loops_with_scripted_planners(plan, counter, looped):
    config = EvalConfig(checkpoint="oracle", episodes=3, env={"max_steps": 4})
    planner = Scripted(plan)
    results = PlanActLoop(config, planner).run(episode_specs(config))
    assert planner.decisions == 3 * 4                      # every decision counts against the budget
    for r in results:
        assert (r["steps"], r["success"], r["end"], r["looped"]) == (4, False, "budget", looped)
        assert r["loop_step"] == (1 if looped else None)   # the second try on the same screen
        if counter:
            assert r[counter] == 4 and all(row["executed"] is None for row in r["trajectory"])
        assert r["trajectory"][-1]["feedback"].endswith("step budget (4) used up")


# --- the model planner ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_vl(tmp_path_factory):
    return build_tiny_planner(tmp_path_factory.mktemp("tiny") / "vl", kind="vl", seed=0)


def test_model_prompts_are_the_training_prompts(tiny_vl):
    """A live decision is prompted exactly as the planning sample of the same state is in training."""
    config = EvalConfig(checkpoint=str(tiny_vl), horizon=5, rollout={"history_len": 2, "max_new_tokens": 16})
    planner = ModelPlanner(str(tiny_vl), config)
    env = BuiltinEnv()
    env.reset(seed=11, options={"task": "shop_checkout"})
    for _ in range(3):  # a state with a history
        env.step(env.oracle_action())
    sample = next(episode_samples(env, "e", horizon=5))
    shot = env.render()
    from tracer1.envs.episode import png

    decision = Decision("e", "builtin", sample.instruction, png(shot), shot.shape[1], shot.shape[0],
                        sample.a11y, env.history, env)
    live, trained = planner.prompts([decision], 5)[0], prompts_for_run(planner.bundle, [sample], config, horizon=5)[0]
    assert live.text == trained.text and "Steps taken (the last 2 of 3)" in live.text
    assert [im.tobytes() for im in live.images] == [im.tobytes() for im in trained.images]
    plans = planner.plan([decision, decision], horizon=5)
    assert len(plans) == 2 and all(isinstance(p, str) for p in plans)


# --- settings -------------------------------------------------------------------------------------------------

def test_settings_shorthands_suites_and_errors(tmp_path):
    config = load_eval_config(["checkpoint=oracle", "env=miniwob", "tasks=click-button,click-link"])
    assert config.env.name == "miniwob" and config.tasks == ["click-button", "click-link"] and config.lockstep == 1
    assert load_eval_config(["checkpoint=oracle", "env=miniwob", "suite=smoke"]).tasks == ["click-test",
                                                                                         "click-button"]
    for bad, says in [(["checkpoint=oracle", "env=miniwob"], "needs tasks"),
                      (["checkpoint=oracle", "env=toolbox"], "builtin, miniwob"),
                      (["checkpoint=oracle", "suite=click"], "set env=miniwob"),
                      (["checkpoint=oracle", "env=miniwob", "suite=nope"], "unknown; suites"),
                      (["checkpoint=oracle", "horizon=1", "compare=reactive"], "already 1"),
                      (["episodes=3"], "checkpoint"), (["checkpoint=oracle", "episode=3"], "did you mean episodes")]:
        with pytest.raises(ConfigError, match=says):
            load_eval_config(bad)
    with pytest.raises(ConfigError, match="unknown built-in task"):
        episode_specs(load_eval_config(["checkpoint=oracle", "tasks=[toggle,teleport]"]))
    # A trained run's config.yaml sets the prompt side (horizon, history); its training-only sections are skipped
    # and the command line still wins.
    run = tmp_path / "run"
    (run / "checkpoints" / "final").mkdir(parents=True)
    (run / "config.yaml").write_text("stage: 1\nhorizon: 3\nseed: 7\nrollout:\n  history_len: 2\n"
                                     "data:\n  generate_episodes: 5\ncheckpoint:\n  every_steps: 2\n")
    config = load_eval_config([f"checkpoint={run}/checkpoints/final", "rollout.max_new_tokens=9"])
    assert (config.horizon, config.rollout.history_len, config.rollout.max_new_tokens, config.seed) == (3, 2, 9, 0)
    assert load_eval_config([f"checkpoint={run}", "horizon=6"]).horizon == 6


def test_episode_seeds_are_fixed_and_tasks_take_turns():
    config = EvalConfig(checkpoint="oracle", episodes=5, env={"tasks": ["toggle", "go_home"]}, keep_screenshots=1)
    specs = episode_specs(config)
    assert [s.task for s in specs] == ["toggle", "go_home", "toggle", "go_home", "toggle"]
    assert [s.keep_screenshots for s in specs] == [True, False, False, False, False]
    assert specs == episode_specs(config.model_copy(update={"horizon": 1}))   # the same episodes for both runs
    assert all(isinstance(s, EpisodeSpec) and 0 <= s.seed < 2**31 for s in specs)
    assert episode_specs(config.model_copy(update={"seed": 1}))[0].seed != specs[0].seed


# --- the command line -----------------------------------------------------------------------------------------

@pytest.fixture
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def without_timing(results: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("seconds", "execute_s", "env_s")} for r in results]


@pytest.mark.slow
def test_ray_actors_play_the_episodes_as_one_process_does(local_ray):
    """Two actors, each with an even, in-order share of the episodes, give the in-process results (the oracle
    planner keeps the actors free of torch, so this costs Ray's start-up only)."""
    config = EvalConfig(checkpoint="oracle", episodes=5, horizon=3, rollout={"num_workers": 2},
                        env={"max_steps": 6}, keep_screenshots=1)
    specs = episode_specs(config)
    on_ray = play(config, None, specs, [3, 1])
    here = play(config.model_copy(update={"use_ray": False}), None, specs, [3, 1])
    assert [len(r) for r in on_ray] == [5, 5]
    assert [without_timing(r) for r in on_ray] == [without_timing(r) for r in here]


@pytest.mark.slow
def test_command_line_compares_reactive_and_anticipatory(tiny_vl, tmp_path, capsys):
    code = main([f"checkpoint={tiny_vl}", "episodes=3", "env.max_steps=2", "rollout.max_new_tokens=16",
                 "use_ray=false", "compare=reactive", "keep_screenshots=1", "horizon=4", "html_report=false",
                 f"logging.out_dir={tmp_path}", "name=cmp"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "anticipatory (T=4)" in printed and "reactive (T=1)" in printed and "overall" in printed
    comparison = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert {k: v["horizon"] for k, v in comparison.items()} == {"anticipatory": 4, "reactive": 1}
    for label, horizon in (("anticipatory", 4), ("reactive", 1)):
        out = tmp_path / "cmp" / label
        report = json.loads((out / "eval_report.json").read_text())
        assert report["settings"]["horizon"] == horizon and len(report["episodes"]) == 3
        overall = report["overall"]
        assert overall["ci95"] == pytest.approx(list(wilson_interval(overall["successes"], 3)))
        assert all(1 <= e["steps"] <= 2 for e in report["episodes"])
        lines = [json.loads(x) for x in (out / "trajectories.jsonl").read_text().splitlines()]
        assert [t["episode"] for t in lines] == [e["episode"] for e in report["episodes"]]
        shots = [s["screenshot"] for t in lines for s in t["steps"]]
        assert all((out / s).read_bytes().startswith(b"\x89PNG") for s in shots if s)
        assert sum(s is not None for s in shots) == len(lines[0]["steps"])    # the first episode's only
        assert set(lines[0]["steps"][0]) == {"screenshot", "plan", "executed", "point", "target_box", "correct",
                                             "feedback"}


@pytest.mark.slow
def test_command_line_in_miniwob(tiny_vl, tmp_path, capsys):
    from tracer1.envs.miniwob import miniwob_available

    why = miniwob_available()
    if why is not None:  # as tests/test_miniwob.py: CI installs it, so a missing piece is a broken install
        pytest.fail(f"MiniWoB++ cannot run: {why}. Install with `make system-deps` and `make install`.", pytrace=False)
    common = ["env=miniwob", "tasks=click-button", "use_ray=false", f"logging.out_dir={tmp_path}"]
    assert main(["checkpoint=oracle", "episodes=2", "name=oracle", *common]) == 0
    oracle = json.loads((tmp_path / "oracle" / "eval_report.json").read_text())
    assert oracle["by_task"]["miniwob/click-button"]["successes"] == 2       # the scripted solver, through the loop
    if importlib.util.find_spec("tracer1.report") is not None:              # the HTML report beside the results
        assert (tmp_path / "oracle" / "report.html").is_file()
    assert main([f"checkpoint={tiny_vl}", "episodes=1", "env.max_steps=2", "rollout.max_new_tokens=16",
                 "name=tiny", "html_report=false", *common]) == 0
    tiny = json.loads((tmp_path / "tiny" / "eval_report.json").read_text())
    assert tiny["overall"]["episodes"] == 1 and 1 <= tiny["episodes"][0]["steps"] <= 2
    assert "click-button" in capsys.readouterr().out
