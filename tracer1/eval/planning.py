"""Offline planning quality on held-out samples: does the planner write valid plans, and is its first step right?

For each held-out sample the engine writes one greedy plan and `n` sampled plans (at the rollout temperature,
as RL will see them). Reported:

* ``parse_rate`` — sampled plans that parse with no problem at all (`parse_plan(...).problems == []` and at
  least one step); ``greedy_parse_rate`` the same for the greedy plans;
* ``first_step_action`` — greedy plans whose first step has the reference's action (for `call`, its tool);
* ``first_step_exact`` — greedy plans whose first step matches the reference step in every part
  (`step_similarity` = 1: same action, same target words or a point within the click radius, same value);
* ``first_step_grounded`` — when a `grounded(step, sample) -> bool` check is given (an executor plus the sample's
  grounding label): greedy first steps whose execution is right, the stage-2 measure;
* ``reward`` / ``greedy_reward`` — mean stage-1 trajectory reward of the sampled / greedy plans;
* ``problem_kinds`` — why sampled plans fail to parse: for each kind of problem (`problem_kind`: the message
  without its step number and quoted text), how many sampled plans have it, most common first.

The first `keep_examples` samples are kept as ``examples``: what a person needs to see what the planner did
(`tracer1.report` draws them on their screenshots). Each holds ``sample_id``, ``instruction``, ``greedy_plan``
(raw text), ``problems``, ``first_step`` (the greedy plan's first step, canonical, or None),
``reference_first_step``, ``target_box`` / ``target_point`` (the label's, 0..1000 grid of the screenshot),
``width`` / ``height`` (the screenshot's pixels), and when a grounding check ran: ``executed`` (the executor's
concrete step), ``point`` (where it acts, 0..1000 grid), ``grounded`` (whether the label accepts it) and
``execution_problems``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from tracer1.data.schema import Sample
from tracer1.engines.base import Prompt, RolloutEngine, Sampling
from tracer1.plan import Step, format_step, parse_plan, problem_kind
from tracer1.rewards import execution_correct, score_plan, step_similarity


@dataclass
class PlanningReport:
    samples: int
    plans: int
    parse_rate: float
    greedy_parse_rate: float
    first_step_action: float
    first_step_exact: float
    first_step_grounded: float | None
    reward: float
    greedy_reward: float
    mean_completion_tokens: float
    examples: list[dict] = field(default_factory=list)
    problem_kinds: dict[str, int] = field(default_factory=dict)
    sample_rewards: dict[str, float] = field(default_factory=dict)  # sample id → its sampled plans' mean reward

    def to_dict(self) -> dict:
        return asdict(self)

    def headline(self) -> str:
        grounded = "" if self.first_step_grounded is None else f", grounded {self.first_step_grounded:.1%}"
        return (f"parse {self.parse_rate:.1%} (greedy {self.greedy_parse_rate:.1%}), first step: action "
                f"{self.first_step_action:.1%}, exact {self.first_step_exact:.1%}{grounded}, stage-1 reward "
                f"{self.reward:+.3f} (greedy {self.greedy_reward:+.3f})")


@dataclass
class Grounding:
    """What the frozen executor made of a greedy first step, and whether the sample's label accepts it. It is
    truthy when correct, so a check may also be a plain `(step, sample) -> bool` function."""

    correct: bool
    executed: str | None = None              # the concrete step (canonical text), None: nothing to execute
    point: tuple[int, int] | None = None     # where it acts, 0..1000 grid of the screenshot
    problems: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.correct


def grounding_check(executor, reward_cfg) -> Callable[[Step, Sample], Grounding]:
    """`grounded(step, sample)`: does `executor` turn `step` into an execution the sample's label accepts (the
    stage-2 criterion: point in the target's box or within the click radius, right text, right answer)?"""
    from tracer1.executors.base import observation_from_sample  # noqa: PLC0415 — executors import envs

    def grounded(step: Step, sample: Sample) -> Grounding:
        execution = executor.execute(step, observation_from_sample(sample))
        executed = execution.grounded_step
        point = tuple(execution.point) if execution.point is not None else None
        correct = (sample.label is not None and executed is not None
                   and execution_correct(executed, sample.label, reward_cfg, result=execution.result))
        return Grounding(bool(correct), format_step(executed) if executed is not None else None, point,
                         list(execution.problems))

    return grounded


def example_record(sample: Sample, greedy_text: str, plan, grounding) -> dict:
    """One kept example (see the module docstring); `grounding` is the check's answer or None when none ran."""
    label, first = sample.label, (plan.steps[0] if plan.steps else None)
    record = {"sample_id": sample.sample_id, "instruction": sample.instruction, "greedy_plan": greedy_text,
              "problems": list(plan.problems), "first_step": format_step(first) if first is not None else None,
              "reference_first_step": format_step(sample.future[0]),
              "target_box": list(label.box) if label is not None and label.box is not None else None,
              "target_point": list(label.point) if label is not None and label.point is not None else None,
              "width": sample.width, "height": sample.height}
    if grounding is not None:
        detailed = isinstance(grounding, Grounding)  # a plain bool check says only right or wrong
        record.update(grounded=bool(grounding), executed=grounding.executed if detailed else None,
                      point=list(grounding.point) if detailed and grounding.point is not None else None,
                      execution_problems=list(grounding.problems) if detailed else [])
    return record


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def evaluate_planning(engine: RolloutEngine, prompts: Sequence[Prompt], samples: Sequence[Sample], *,
                      reward_cfg, horizon: int, n: int, temperature: float, max_new_tokens: int, seed: int = 0,
                      grounded: Callable[[Step, Sample], bool] | None = None, keep_examples: int = 3,
                      batch_size: int = 32) -> PlanningReport:
    """Score `engine` on `samples` (with their prompts, built by `tracer1.models.prompt`)."""
    if len(prompts) != len(samples):
        raise ValueError(f"{len(prompts)} prompts for {len(samples)} samples")
    greedy_cfg = Sampling(n=1, temperature=0.0, max_new_tokens=max_new_tokens, seed=seed)
    sampled_cfg = Sampling(n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    greedy, sampled = [], []
    for start in range(0, len(prompts), batch_size):  # bounded batches: generation memory grows with n × batch
        chunk = prompts[start:start + batch_size]
        greedy += [c[0] for c in engine.generate(chunk, greedy_cfg)]
        sampled += engine.generate(chunk, sampled_cfg)

    parse_ok, rewards, tokens, kinds = [], [], [], Counter()
    g_parse, g_rewards, action_ok, exact_ok, grounded_ok, examples = [], [], [], [], [], []
    per_sample = {}
    for sample, g, group in zip(samples, greedy, sampled):
        first_plan = len(rewards)
        for completion in group:
            plan = parse_plan(completion.text)
            parse_ok.append(float(bool(plan.steps) and not plan.problems))
            kinds.update({problem_kind(p) for p in plan.problems})  # a plan counts once per kind
            rewards.append(score_plan(plan, sample.future, reward_cfg, horizon).reward)
            tokens.append(len(completion.token_ids))
        per_sample[sample.sample_id] = _mean(rewards[first_plan:])  # pairs two policies' scores item by item
        plan = parse_plan(g.text)
        g_parse.append(float(bool(plan.steps) and not plan.problems))
        g_rewards.append(score_plan(plan, sample.future, reward_cfg, horizon).reward)
        first, ref = (plan.steps[0] if plan.steps else None), sample.future[0]
        action_ok.append(float(first is not None and (first.action, first.tool) == (ref.action, ref.tool)))
        exact_ok.append(float(first is not None and step_similarity(first, ref, reward_cfg) >= 1.0 - 1e-9))
        grounding = None
        if grounded is not None:
            grounding = grounded(first, sample) if first is not None else Grounding(
                False, problems=["the greedy plan has no readable first step"])
            grounded_ok.append(float(bool(grounding)))
        if len(examples) < keep_examples:
            examples.append(example_record(sample, g.text, plan, grounding))
    return PlanningReport(
        samples=len(samples), plans=len(parse_ok), parse_rate=_mean(parse_ok), greedy_parse_rate=_mean(g_parse),
        first_step_action=_mean(action_ok), first_step_exact=_mean(exact_ok),
        first_step_grounded=_mean(grounded_ok) if grounded is not None else None, reward=_mean(rewards),
        greedy_reward=_mean(g_rewards), mean_completion_tokens=_mean(tokens), examples=examples,
        problem_kinds=dict(kinds.most_common()), sample_rewards=per_sample)
