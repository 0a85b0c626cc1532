"""Stage 3: GRPO over whole plan-act episodes in live environments, top to bottom.

    start planner (init_from: stage 2's checkpoint) → Ray actors (rollout workers, env actors, learner ranks)
    → held-out episodes (before)
    → per step: curriculum draws tasks → G episodes per task on the env pool (each decision: the planner samples a
      T-step plan, the frozen executor grounds step 1, the env executes it) → episode returns
      → [all-fail group: replay the task's stored success] → group-normalised advantages, given to every decision
      of the episode → learner update → weight sync → metrics → [held-out episodes every eval_every]
    → held-out episodes (after) → final checkpoint + report + summary

The paper's two stages are offline (a forecast scored against a recorded future; a first step against a recorded
label); this one trains on what a planner is for, finishing tasks. The return of an episode is its success, plus
optional shaping (`tracer1.train.curriculum.episode_return`); the group is G episodes of the same task and seed,
so A_e = (R_e − mean R) / (std R + eps) compares plays of one task, and every decision of episode e is trained
with A_e, weighted so each episode counts once (`tracer1.train.batch.episode_batches`). The learner, the GRPO
loss and the weight sync are stages 1–2's. Where the episodes run and what happens when an env actor dies is
`tracer1.train.episodes`; the env actors are `tracer1.envs.pool.EnvWorker`.

Measured on held-out episodes — unseen seeds of the trained families and families never trained on, played
greedily with the evaluation's step budget (`env.max_steps`) — the same episodes before and after, so the gain is a
paired difference with its 95% interval (`tracer1.eval.episodes`). A resumed run continues at the next step with
the curriculum's history; the replay buffer starts empty (its episodes hold encoded prompts, not checkpointed).

With `algorithm.max_staleness` = k ≥ 1 the episodes of the next k steps are played while the learner updates
(`tracer1.train.ahead`), each step's episodes wholly by the weights of k updates before: a weight push waits for
the episodes due from older weights to end, so no episode spans an update, and every decision of an episode is
k updates stale and weighted against the engine's log-probs like stages 1–2's plans. The curriculum draws a
step's tasks when its weights are pushed, from the successes of the steps those weights have seen, so the
draws do not depend on timing. A checkpoint does not keep the episodes in flight (like the replay buffer): a
resumed run plays its first k steps again from the checkpoint's weights.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import ray
from tqdm import tqdm

from tracer1.atomic import save_json_atomic
from tracer1.envs.pool import EnvWorker
from tracer1.eval.episodes import (
    cached_results, episode_report, held_out_episodes, paired_difference, save_trajectories, without_screenshots,
)
from tracer1.learner.worker import LearnerWorker
from tracer1.metrics import MetricsLogger
from tracer1.models.loading import load_planner, load_weights
from tracer1.report.text import planact_summary
from tracer1.rollout import RolloutWorker
from tracer1.seeding import rng_state, set_rng_state
from tracer1.train.ahead import Batch, RolloutsAhead
from tracer1.train.actors import (
    call_actors, engines_asleep, learner_ranks, make_actor, place_actors, ray_session, wait_until_placed,
)
from tracer1.train.batch import episode_batches
from tracer1.train.checkpoints import CheckpointWriter, policy_dir, stage_start
from tracer1.train.curriculum import Curriculum, ReplayBuffer, episode_return, group_specs, task_families
from tracer1.train.data_source import rollout_seed
from tracer1.train.episodes import EpisodeRunner
from tracer1.train.sync import select_weight_sync, start_weight_sync, with_weight_sender

MINIWOB_TIME_LIMIT_MS = 120_000  # MiniWoB's own 10 s is too short for a planner that thinks (as tracer1.eval)
EXAMPLE_EPISODES = 3             # held-out episodes whose screenshots are kept for report.html


def train_planact(config, run_dir: Path) -> int:
    started, finished = time.time(), run_dir / "stage3_report.json"
    if (start := stage_start(config, run_dir, finished)) is None:
        return 0
    planner, resume, state, policy = start.planner, start.resume, start.state, start.policy
    s3, alg, G = config.stage3, config.algorithm, config.rollout.group_size
    bundle = load_planner(policy, trust_remote_code=config.model.trust_remote_code, load_model=False)  # pads batches
    trained, held = task_families(config)
    evals = {"trained": held_out_episodes(config.env.name, trained, s3.eval_episodes, "trained",
                                          keep_screenshots=EXAMPLE_EPISODES)}
    if held:
        evals["held_out"] = held_out_episodes(config.env.name, held, s3.eval_episodes, "held-out")
    print(f"tracer1 stage 3: planner {planner}, {config.env.name} env, training on {len(trained)} families, "
          f"{' + '.join(f'{len(v)} {k}' for k, v in evals.items())} held-out episodes")

    with ray_session(config) as owned, MetricsLogger(run_dir, config.logging, config=config, prefix="stage3/") as log:
        cl, sync_mode = config.cluster, select_weight_sync(config)
        first = state.get("step", 0) + 1
        placement = place_actors(config, owned)  # where `--plan` puts each actor; groups in the plan's order
        at = placement.options
        learners = learner_ranks(with_weight_sender(LearnerWorker, sync_mode), config, str(policy), config,
                                 reference_dir=str(planner), owned=owned, placement=placement)
        rollouts = [make_actor(RolloutWorker, cl.rollout, config, **at("rollout", i)).remote(
                        str(policy), config, weights_version=first - 1, weight_sync=sync_mode)
                    for i in range(config.rollout.num_workers)]
        limit = MINIWOB_TIME_LIMIT_MS if config.env.name == "miniwob" else None
        envs = [make_actor(EnvWorker, cl.env, config, **at("env", i)).remote(
                    config.env, config.executor, config.reward, slots=s3.envs_per_actor, horizon=config.horizon,
                    align=s3.align_weight > 0, time_limit_ms=limit) for i in range(s3.env_actors)]
        owned += [*rollouts, *envs]
        wait_until_placed([*rollouts, *envs, *learners], config)
        if resume:
            ray.get([r.load_checkpoint.remote(str(resume), rng) for r, rng in zip(learners, state["learner_rng"])])
            set_rng_state(state["rng"])
            print(f"  resuming from {resume} at step {first}")
        per_rank = ray.get(learners[0].accumulation_steps.remote())
        sync = start_weight_sync(sync_mode, config, learners, rollouts, version=first - 1)
        runner = EpisodeRunner(envs, config, before_retry=sync.resync)
        playing = threading.Lock()  # one play at a time on the env pool: a training step's episodes or an evaluation
        checkpoints = CheckpointWriter(run_dir, config.checkpoint, copied=lambda wait: all(
            ray.get([r.checkpoint_copied.remote(wait) for r in learners])))  # async_write: in the background

        def evaluate(label: str, weights: Path | None = None, sets=tuple(evals)) -> dict[str, list[dict]]:
            """Greedy, with the evaluation's step budget; `weights`: the directory holding the rollout workers'
            weights, whose results are kept there (and read back when they are)."""
            out, budget = {}, config.env.max_steps

            def play(specs):
                with playing:  # not while the episodes of a training step run on the same envs
                    played, _ = runner.play(specs, rollouts, seed=config.seed, budget=budget, greedy=True)
                return [p.result for p in played if p is not None]

            for name in sets:
                specs = evals[name]
                out[name] = (cached_results(weights, specs, config, budget, lambda: play(specs)) if weights
                             else play(specs))
                tqdm.write(f"  {label}, {name}: {episode_report(out[name])['overall']['success_rate']:.1%} of "
                           f"{len(out[name])} episodes")
            return out

        def load(weights: Path) -> None:  # another policy's weights into every rollout worker
            state_ref = ray.put(load_weights(weights))
            ray.get([r.update_weights.remote(state_ref, version=first - 1) for r in rollouts])

        compared = state.get("compared", {})
        for other in s3.compare_with if not resume else ():  # per-stage plan-act success, on the same episodes
            where = policy_dir(other)
            load(where)
            compared[other] = without_screenshots(evaluate(other, weights=where, sets=("trained",))["trained"])
        if compared and not resume:
            load(policy)
        before = state["before"] if resume else evaluate("before", weights=policy)
        curve = state.get("curve", [])
        curriculum, replay = Curriculum(trained, config), ReplayBuffer(s3.replay_capacity)
        curriculum.load(state.get("curriculum", {}))
        drawn = {}  # step → its tasks and their curriculum weights, drawn before the producer may play them

        def draw(step: int) -> None:
            if step <= alg.total_steps:
                tasks = curriculum.draw(s3.tasks_per_step, step)
                drawn[step] = tasks, {f: curriculum.weight(f) for f, _ in tasks}

        def produce(step: int) -> Batch:  # the step's episodes, played by the weights the rollout workers hold
            tasks, weights = drawn.pop(step)
            groups_of_specs = group_specs(config.env.name, tasks, G, step)
            specs = [spec for group in groups_of_specs for spec in group]
            t = time.perf_counter()
            with playing:
                played, ep = runner.play(specs, rollouts, seed=rollout_seed(config, step),
                                         budget=s3.max_decisions or config.env.max_steps)
            return Batch(step, tasks, (weights, groups_of_specs, specs, played, ep), {}, time.perf_counter() - t)

        for step in range(first, first + alg.max_staleness + 1):  # the rest: as each step's weights are pushed
            draw(step)
        ahead = RolloutsAhead(produce, first=first, last=alg.total_steps, staleness=alg.max_staleness,
                              version=first - 1)
        bar = tqdm(range(first, alg.total_steps + 1), desc="stage 3", unit="step", initial=first - 1,
                   total=alg.total_steps)
        for step in bar:
            t0 = time.perf_counter()
            batch, waited = ahead.take(step)  # played ahead with max_staleness ≥ 1, else now
            tasks, (weights, groups_of_specs, specs, played, ep) = batch.samples, batch.answers
            by_id = {spec.episode: p for spec, p in zip(specs, played)}
            groups, incomplete, successes = [], 0, []
            for task, group_spec in zip(tasks, groups_of_specs):
                group = [by_id[spec.episode] for spec in group_spec]
                if any(p is None for p in group):  # a lost episode was dropped: never train on a shorter group
                    incomplete += 1
                    continue
                for p in group:
                    curriculum.record(task[0], p.success)
                    successes.append(p.success)
                    if p.success:
                        replay.add(task, p)
                groups.append((task, group))
            with_signal = sum(len({p.success for p in g}) > 1 for _, g in groups)
            replayed = sum(replay.rescue(task, g) for task, g in groups) if s3.replay else 0
            returns = [[episode_return(p.result, s3) for p in g] for _, g in groups]
            micro, stats = episode_batches(bundle, [g for _, g in groups], returns, alg,
                                           weighting=s3.episode_weighting, accumulation=per_rank * len(learners))
            t_play = time.perf_counter() - t0
            metrics, t0 = {}, time.perf_counter()
            if micro:
                with engines_asleep(rollouts, config):  # cluster.colocate: the update has the GPUs' memory
                    out = call_actors([(r, (micro[i * per_rank:(i + 1) * per_rank],))
                                       for i, r in enumerate(learners)], "step", retries=0)
                metrics = {k: sum(m[k] for m in out.results) / len(out.results) for k in out.results[0]}
            t_learn, t0 = time.perf_counter() - t0, time.perf_counter()
            draw(step + alg.max_staleness + 1)  # next played from this step's weights: its draw sees this step
            _, pushing_wait = ahead.weights_changed(step, lambda: sync.push(step) if micro else None)
            t_sync, waited = time.perf_counter() - t0, waited + pushing_wait
            success = sum(successes) / len(successes) if successes else 0.0
            curve.append({"step": step, "success": success})
            if step % config.logging.log_every == 0 or step == alg.total_steps:
                log.log({**metrics, "success_rate": success, "return_mean": stats.reward_mean,
                         "groups_with_signal": with_signal / max(len(groups), 1), "replays": replayed,
                         "kept_groups": stats.kept_groups, "groups_incomplete": incomplete,
                         "episodes_lost": ep.lost, "episodes_dropped": ep.dropped, "decisions": ep.decisions,
                         "decisions_per_episode": ep.decisions / max(ep.episodes, 1),
                         "env_utilisation": ep.env_utilisation, "retried_calls": ep.retried_calls,
                         "curriculum_weight_mean": sum(weights.values()) / len(weights),
                         "time/plan": ep.plan_s, "time/env": ep.env_s, "time/episodes": t_play,
                         "busy/execute": ep.execute_s, "busy/env_step": ep.step_s,
                         "time/learner": t_learn, "time/sync": t_sync, "time/step": t_play + t_learn + t_sync,
                         **ahead.step_metrics(step, batch, waited)}, step)
                for i, (_, g) in enumerate(groups[:config.logging.log_samples]):  # one episode of each group
                    r = g[0].result
                    log.log_text(f"episode{i}", f"{r['instruction']} → {r['end']}, {r['steps']} decisions"
                                 + "".join(f"\n{row['plan']}" for row in r["trajectory"][:3]), step)
            for why in ep.lost_reasons[:3]:  # named, not only counted
                tqdm.write(f"episode lost: {why}")
            bar.set_postfix(success=f"{success:.0%}", signal=f"{with_signal}/{len(groups)}", replays=replayed,
                            refresh=False)

            if alg.eval_every and step % alg.eval_every == 0 and step < alg.total_steps:
                now = evaluate(f"step {step}")
                log.log({f"eval/{k}_success": episode_report(v)["overall"]["success_rate"] for k, v in now.items()},
                        step)
            checkpoints.poll()  # finishes a checkpoint whose background copies are done
            if config.checkpoint.every_steps and step % config.checkpoint.every_steps == 0 \
                    and step < alg.total_steps:
                def parts(tmp: Path, local: Path | None) -> dict:
                    return {"learner_rng": ray.get([r.save_checkpoint.remote(str(tmp), local) for r in learners])}

                kept = {k: without_screenshots(v) for k, v in before.items()}
                checkpoints.save(step, parts, {"before": kept, "compared": compared, "rng": rng_state(),
                                               "curve": curve, "curriculum": curriculum.state(),
                                               "planner": str(planner)})

        ahead.close()
        checkpoints.wait()
        checkpoint = Path(ray.get([r.save.remote(str(run_dir / "checkpoints" / "final")) for r in learners])[0])
        after = evaluate("after", weights=checkpoint)  # the rollout workers hold the final weights
        log.log({f"eval/{k}_success": episode_report(v)["overall"]["success_rate"] for k, v in after.items()},
                alg.total_steps)
        ray.wait([e.close.remote() for e in envs], num_returns=len(envs), timeout=60)  # browsers before actors

    report = {"stage": 3, "planner": str(planner), "checkpoint": str(checkpoint), "steps": alg.total_steps,
              "resumed_from": str(resume) if resume else None, "seconds": round(time.time() - started, 1),
              "trained_families": trained, "held_out_families": held, "success_curve": curve,
              "before": {k: episode_report(v) for k, v in before.items()},
              "after": {k: episode_report(v) for k, v in after.items()},
              "paired_gain": {k: paired_difference(before[k], after[k]) for k in after},
              "compared": {k: episode_report(v) for k, v in compared.items()}}
    save_trajectories(run_dir, after["trained"])  # example episodes on their screenshots, for report.html
    save_json_atomic(run_dir / "stage3_episodes.json", {k: {name: without_screenshots(v) for name, v in r.items()}
                                                        for k, r in (("before", before), ("after", after))})
    report_path = save_json_atomic(finished, report)
    print(planact_summary(report, {"checkpoint": checkpoint, "report": report_path,
                                   "TensorBoard": run_dir / "tensorboard", "config": run_dir / "config.yaml"}))
    return 0
