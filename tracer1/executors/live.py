"""Online stage 2: a plan's first step executed by the frozen executor in a live env at the sample's state, and
the env's feedback on it (`env.grounding: online`; DESIGN.md §1).

    worker = LiveExecutorWorker(config.executor, config.env)
    for first in worker.first_steps([(plan_text, sample), ...]):
        RewardItem(key, plan_text, label=sample.label, executed=first.step, result=first.result,
                   feedback=first.feedback)

`first_steps` takes what `ExecutorWorker.first_steps` takes and answers, per pair, the same `FirstStep`: the
grounded step and result (as offline) and a `tracer1.rewards.LiveFeedback`, which `live_reward` scores (its
docstring gives the formula and what "progress" means in each env). For each (plan, sample):

1. **restore**: a live env of the sample's source is brought to the sample's state. Samples record how:
   * built-in world (`tracer1.data.synthetic`): `meta` holds the task family and its seed, the sample its screen
     size and history. The task is rebuilt with `make_task(seed, ...)` — the generator drew the family from its
     `--tasks` pool, which `meta` does not record, so the run's `env.tasks` is tried first, then every family,
     then the family alone (and the run's `env.max_steps`, then the generator's default 20) — a fresh episode of
     it is started (`BuiltinEnv.reset(options={"task": task})` without drawing the start screen) and the history
     replayed. The first candidate whose accessibility tree then equals the sample's is taken, so a wrong guess
     is never used. The restored state is kept (the env's `Episode`, its whole state, cheap to copy), so the G
     plans of a sample and the sample's later visits cost one copy each, not a replay;
   * MiniWoB++ (`tracer1.envs.miniwob.samples`): `meta` holds the task and seed; the env is reset with them and
     the history replayed, for every plan (a browser's state cannot be copied; a plan the executor could not
     ground leaves the page as it was, and the next plan uses it without a reset), and the DOM must then equal
     the sample's (MiniWoB is deterministic per seed; a page that replays differently is not used);
   * anything else (the toolbox world, converted datasets: nothing to replay them in) is not live;
2. **execute**: the frozen executor (`make_executor(config.executor)`, a11y by default) grounds the plan's first
   step on the live observation (the built-in screenshot is drawn only for executors that look at it), and the
   env steps with the concrete step (built-in: `Episode.step`, which is `BuiltinEnv.step` without drawing the
   next screenshot; its reward is the env's: 1.0 when the step ends the episode in success);
3. **feedback**: the env's reward, end of episode and success; in the built-in world the env's oracle (which
   plans from any state) gives the steps left to the goal before and after, and whether the task is still
   solvable (kept per resulting state: plans of a group that lead to the same state, or onto the oracle's own
   path, are not simulated again); everywhere the state after the step is compared with the one the sample's
   reference step (`future[0]`) leads to (built-in: the phone's whole state; MiniWoB: the DOM and the end of
   the episode).

A sample that cannot be restored is executed offline on its recorded observation (as `ExecutorWorker`) and
gets `feedback=None` and `fell_back=True` (the loop's `executor_fallbacks` metric), so the reward worker scores
it with `grounded_reward` against its label; `stats()` counts these with their reasons. A plan with no readable
first step gets `LiveFeedback.not_executed` (the reward is `unparseable` either way). The episode's step limit
is not applied to the step being judged (as the oracle's forecasts do), so a sample taken at the last allowed
step is still judged on its merits; MiniWoB's own time limit still applies. Infrastructure failures (a browser
that cannot start) raise, as in every executor.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tracer1.envs.base import a11y_text
from tracer1.executors.base import Executor, make_executor, observation_from_env, observation_from_sample
from tracer1.executors.worker import FirstStep
from tracer1.plan import Step, parse_plan
from tracer1.rewards.live import LiveFeedback

log = logging.getLogger(__name__)

LIVE_SOURCES = ("builtin", "miniwob")
ORACLE_LIMIT = 60        # oracle steps simulated to measure the distance to the goal (tasks take at most ~20)
SCREENLESS = ("a11y", "oracle", "toolbox")  # executors that never look at the screenshot
NO_STEP_LIMIT = 10_000   # the live envs' step limit: the step being judged is never cut off


class NotLive(Exception):
    """The sample cannot be brought back in a live env (the reason is the message)."""


@dataclass
class _Restored:
    """A built-in sample's state in the live env, kept for its G plans and later visits."""

    snapshot: Any                      # the env's `Episode` at the sample's state (copied for each plan)
    observation: dict                  # the executor's observation of that state
    before: tuple[int | None, bool]    # the oracle's steps to the end from there, and whether that end succeeds
    reference: tuple                   # `state_key` after the reference step
    outcomes: dict                     # `state_key` after a step -> `oracle_outcome` from there (plans of a
                                       # group often lead to the same few states)


def state_key(episode) -> tuple:
    """What two built-in episodes must share to be in the same state: the phone's whole state (screens, their
    fields and scroll, settings, contacts, cart, orders, notes, screens visited) and how the episode ended."""
    episode.phone.layout  # laying the screen out settles its scroll offset (a list may have shrunk)
    return repr(episode.phone.state), episode.over, episode.success


def sample_key(sample) -> tuple:
    """What the caches know a sample by: its id, and what it shows (ids repeat across separately generated
    datasets: two runs of the generator with the same seed name their episodes alike)."""
    return sample.source, sample.sample_id, sample.instruction, sample.a11y


def oracle_outcome(episode, limit: int = ORACLE_LIMIT, path: dict | None = None) -> tuple[int | None, bool]:
    """(steps the built-in world's oracle takes from `episode`'s state to the end of the episode, whether that
    end is a success), simulated on a copy; (None, False) when the oracle finds no way to the end. `path`, when
    given, also gets the outcome of every state on the way, by `state_key` (the oracle plans from the state
    alone, so from the k-th state on its path it takes the remaining n − k steps to the same end)."""
    from tracer1.envs.builtin import OracleError

    if episode.over:
        return 0, episode.success
    twin = episode.copy()
    twin.max_steps = twin.steps + limit + 1
    keys = []
    for n in range(1, limit + 1):
        try:
            step = twin.oracle()
        except OracleError:
            return None, False
        problems, _ = twin.step(step)
        if problems:
            return None, False
        if path is not None:
            keys.append(state_key(twin))
        if twin.over:
            for k, key in enumerate(keys, start=1):
                path.setdefault(key, (n - k, twin.success))
            return n, twin.success
    return None, False


class _BuiltinLive:
    """Restores built-in samples and steps the plans' first steps (see the module docstring)."""

    def __init__(self, env_cfg, cache_size: int):
        self.env_cfg, self.cache_size = env_cfg, cache_size
        self._envs: dict[tuple[int, int], Any] = {}
        self._tasks: dict[tuple, Any] = {}
        self._restored: OrderedDict[tuple, _Restored] = OrderedDict()

    def env(self, width: int, height: int):
        """The live env of this screen size (it draws restored states' screenshots)."""
        from tracer1.envs.builtin import BuiltinEnv

        key = (width, height)
        if key not in self._envs:
            self._envs[key] = BuiltinEnv(width=width, height=height, max_steps=NO_STEP_LIMIT)
        return self._envs[key]

    def _candidates(self, sample, family: str, seed: int):
        from tracer1.envs.builtin import make_task

        cfg = self.env_cfg
        pools = ([tuple(cfg.tasks)] if cfg is not None and cfg.tasks else []) + [(), (family,)]
        limits = ([cfg.max_steps] if cfg is not None else []) + [20]
        seen = set()
        for pool in pools:
            for max_steps in limits:
                if (pool, max_steps) in seen:
                    continue
                seen.add((pool, max_steps))
                try:
                    task = make_task(seed, None, pool, sample.width, sample.height, max_steps)
                except (ValueError, RuntimeError):
                    continue
                if task.family == family and task.instruction == sample.instruction:
                    yield task

    def restore(self, sample) -> _Restored:
        key = sample_key(sample)
        if key in self._restored:
            self._restored.move_to_end(key)
            return self._restored[key]
        seed, family = sample.meta.get("seed"), sample.meta.get("task")
        if seed is None or family is None or not (sample.width and sample.height):
            raise NotLive("a built-in sample without meta seed/task or screen size")
        from tracer1.envs.builtin import Episode

        task_key = (seed, family, sample.width, sample.height, sample.instruction)
        tasks = [self._tasks[task_key]] if task_key in self._tasks else self._candidates(sample, family, seed)
        for task in tasks:
            # `env.reset(options={"task": task})` without drawing the start screen: a fresh episode of the task
            episode = Episode(task, sample.width, sample.height, NO_STEP_LIMIT)
            if all(not episode.step(step)[0] for step in sample.history) and not episode.over \
                    and a11y_text(episode.phone.elements) == sample.a11y:
                self._tasks[task_key] = task
                break
        else:
            raise NotLive("no built-in task rebuilt from the sample's seed replays its history to its screen")
        snapshot = episode.copy()
        reference = snapshot.copy()
        reference.step(sample.future[0])
        observation = {"instruction": task.instruction, "a11y": sample.a11y, "elements": episode.phone.elements,
                       "width": sample.width, "height": sample.height}
        outcomes: dict = {}
        restored = _Restored(snapshot, observation, oracle_outcome(snapshot, path=outcomes), state_key(reference),
                             outcomes)
        self._restored[key] = restored
        while len(self._restored) > self.cache_size:
            self._restored.popitem(last=False)
        return restored

    def observation(self, restored: _Restored, screenshot: bool) -> dict:
        """The executor's observation of a restored state; the screenshot is drawn the first time an executor
        that looks at screens (not the a11y, oracle or toolbox executor) asks for it."""
        if screenshot and "screenshot" not in restored.observation:
            env = self.env(restored.snapshot.phone.width, restored.snapshot.phone.height)
            env.episode = restored.snapshot
            restored.observation["screenshot"] = env.render()
            env.episode = None
        return restored.observation

    def run(self, executor: Executor, planned: Step, sample) -> tuple[Step | None, str | None, LiveFeedback]:
        restored = self.restore(sample)
        execution = executor.execute(planned, self.observation(restored, executor.kind not in SCREENLESS))
        if execution.step is None:
            return None, execution.result, LiveFeedback.not_executed(*execution.problems)
        # The env's own step (`BuiltinEnv.step` is this plus drawing the next screenshot, which nobody looks at).
        episode = restored.snapshot.copy()
        problems, _ = episode.step(execution.step)
        key = state_key(episode)
        if key not in restored.outcomes:
            restored.outcomes[key] = oracle_outcome(episode)
        after_steps, solvable = restored.outcomes[key]
        before_steps = restored.before[0]
        progress = None if before_steps is None or after_steps is None else before_steps - after_steps
        success = episode.over and episode.success
        feedback = LiveFeedback(
            executed=not problems, env_reward=1.0 if success else 0.0,  # BuiltinEnv's reward
            terminated=episode.over and not episode.truncated, success=success, progress=progress,
            solvable=solvable, matches_reference=key == restored.reference,
            problems=tuple(execution.problems) + tuple(problems))
        return execution.grounded_step, execution.result, feedback

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


class _MiniWoBLive:
    """Restores MiniWoB++ samples by reset + replay, once per plan (see the module docstring)."""

    def __init__(self, env_cfg, cache_size: int):
        self.env_cfg, self.cache_size = env_cfg, cache_size
        self._env = None
        self._reference: OrderedDict[tuple, tuple] = OrderedDict()
        self._at: tuple[tuple, dict, dict] | None = None  # the sample whose state the page shows untouched

    def env(self):
        if self._env is None:
            from tracer1.envs.miniwob import MiniWoBEnv

            headless = getattr(self.env_cfg, "headless", True)
            self._env = MiniWoBEnv(max_steps=NO_STEP_LIMIT, headless=headless)
        return self._env

    def _step(self, step: Step):
        self._at = None
        return self.env().step(step)

    def restore(self, sample) -> tuple[dict, dict]:
        """Reset and replay: the env at the sample's state; returns its (observation, info)."""
        if self._at is not None and self._at[0] == sample_key(sample):
            return self._at[1], self._at[2]
        task, seed = sample.meta.get("task"), sample.meta.get("seed")
        if task is None or seed is None:
            raise NotLive("a MiniWoB sample without meta task/seed")
        env = self.env()
        obs, info = env.reset(seed=int(seed), options={"task": task})
        for step in sample.history:
            obs, _, terminated, truncated, info = self._step(step)
            if info["problems"] or terminated or truncated:
                raise NotLive(f"MiniWoB {task} seed {seed}: the history does not replay ({step})")
        if obs["a11y"] != sample.a11y:
            raise NotLive(f"MiniWoB {task} seed {seed}: the replayed page differs from the sample's")
        self._at = (sample_key(sample), obs, info)
        return obs, info

    @staticmethod
    def _outcome(obs: dict, info: dict) -> tuple:
        """What two steps must share to lead to the same state: the page's elements and the end of episode."""
        return obs["a11y"], info["done"], info["success"]

    def reference(self, sample) -> tuple:
        """The outcome of the sample's reference step (once per sample: one more reset and replay)."""
        key = sample_key(sample)
        if key not in self._reference:
            self.restore(sample)
            obs, _, _, _, info = self._step(sample.future[0])
            self._reference[key] = self._outcome(obs, info)
            while len(self._reference) > self.cache_size:
                self._reference.popitem(last=False)
        return self._reference[key]

    def run(self, executor: Executor, planned: Step, sample) -> tuple[Step | None, str | None, LiveFeedback]:
        reference = self.reference(sample)
        obs, info = self.restore(sample)
        env = self.env()
        execution = executor.execute(planned, observation_from_env(obs, info, env))
        if execution.step is None:  # the page is untouched: the next plan of this sample needs no reset
            return None, execution.result, LiveFeedback.not_executed(*execution.problems)
        obs, reward, terminated, _, info = self._step(execution.step)
        feedback = LiveFeedback(
            executed=not info["problems"], env_reward=float(reward), terminated=bool(terminated),
            success=bool(info["success"]), matches_reference=self._outcome(obs, info) == reference,
            problems=tuple(execution.problems) + tuple(info["problems"]))
        return execution.grounded_step, execution.result, feedback

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
        self._at = None


class LiveExecutorWorker:
    """`ExecutorWorker` for online stage 2: each plan's first step executed in a live env at its sample's
    state, with the env's feedback (see the module docstring). `cache_size`: restored states kept per env."""

    def __init__(self, executor_cfg, env_cfg=None, *, cache_size: int = 64, dtype: str = "float32", seed: int = 0):
        """`dtype`, `seed`: the grounding model's, as for `ExecutorWorker` (kind=vlm only)."""
        self.executor_cfg, self.env_cfg, self.cache_size = executor_cfg, env_cfg, cache_size
        self._grounding = {}  # kind=vlm: one grounding engine serves the executors of every source
        if executor_cfg.kind == "vlm":
            from tracer1.executors.worker import grounding_engine  # noqa: PLC0415

            engine, processor = grounding_engine(executor_cfg, dtype=dtype, seed=seed)
            self._grounding = {"engine": engine, "processor_or_tokenizer": processor}
        self._executors: dict[str, Executor] = {}
        self._not_live: OrderedDict[tuple, str] = OrderedDict()  # sample_key -> why it cannot be restored
        self._live = {"builtin": _BuiltinLive(env_cfg, cache_size), "miniwob": _MiniWoBLive(env_cfg, cache_size)}
        self.counts: Counter = Counter()        # items: live, offline, unparseable; seconds
        self.offline_reasons: Counter = Counter()

    def executor(self, source: str) -> Executor:
        """The frozen executor for samples of `source` (a11y acts by DOM element in MiniWoB, as `make_executor`
        does for a MiniWoB run)."""
        if source not in self._executors:
            env_cfg = self.env_cfg
            if source in LIVE_SOURCES and env_cfg is not None and getattr(env_cfg, "name", source) != source:
                env_cfg = env_cfg.model_copy(update={"name": source})
            elif source in LIVE_SOURCES and env_cfg is None:
                from tracer1.config import EnvConfig

                env_cfg = EnvConfig(name=source)
            self._executors[source] = make_executor(self.executor_cfg, env_config=env_cfg, **self._grounding)
        return self._executors[source]

    def first_steps(self, pairs: Sequence[tuple[str, object]]) -> list[FirstStep]:
        """A `FirstStep` (grounded first step, result, feedback; `fell_back` when the sample ran offline) for each
        (plan text, planning sample)."""
        start = time.perf_counter()
        out = []
        for plan, sample in pairs:
            steps = parse_plan(plan).steps
            if not steps:
                self.counts["unparseable"] += 1
                out.append(FirstStep(None, None, LiveFeedback.not_executed("the plan has no readable step")))
                continue
            out.append(self._one(steps[0], sample))
        self.counts["seconds"] += time.perf_counter() - start
        return out

    def _one(self, planned: Step, sample) -> FirstStep:
        executor = self.executor(sample.source)
        live = self._live.get(sample.source)
        try:
            if live is None:
                raise NotLive(f"no live env for {sample.source!r} samples")
            if sample_key(sample) in self._not_live:
                raise NotLive(self._not_live[sample_key(sample)])
            step, result, feedback = live.run(executor, planned, sample)
            self.counts["live"] += 1
            return FirstStep(step, result, feedback)
        except NotLive as exc:
            reason = str(exc)
            if live is not None:  # the sample's other plans go offline without trying again
                self._not_live[sample_key(sample)] = reason
                while len(self._not_live) > self.cache_size:
                    self._not_live.popitem(last=False)
            if not self.offline_reasons[reason]:
                log.warning("online stage 2: %s (sample %s); such samples are scored offline against their "
                            "labels", reason, sample.sample_id)
            self.offline_reasons[reason] += 1
            self.counts["offline"] += 1
            execution = executor.execute(planned, observation_from_sample(sample))
            return FirstStep(execution.grounded_step, execution.result, fell_back=True)

    def observe(self, sample) -> dict:
        """The executor's observation of the live env brought to `sample`'s state (what each plan's first step
        is grounded on); raises `NotLive` with the reason when the sample cannot be restored."""
        live = self._live.get(sample.source)
        if live is None:
            raise NotLive(f"no live env for {sample.source!r} samples")
        if isinstance(live, _BuiltinLive):
            return live.observation(live.restore(sample), screenshot=True)
        obs, info = live.restore(sample)
        return observation_from_env(obs, info, live.env())

    def stats(self) -> dict:
        """Items executed live and offline (with the reasons), unparseable plans, and seconds spent."""
        return {**self.counts, "offline_reasons": dict(self.offline_reasons)}

    def close(self) -> None:
        for live in self._live.values():
            live.close()
        for executor in self._executors.values():
            executor.close()
