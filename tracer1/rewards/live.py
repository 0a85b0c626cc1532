"""Stage 2 online — the live environment's feedback on the executed first step (`env.grounding: online`).

Offline, stage 2 compares the executed first step with the sample's grounding label (`grounded_reward`). Online,
`tracer1.executors.live.LiveExecutorWorker` brings a live env to the sample's state, executes the step there and
reports what the env made of it as a `LiveFeedback`; `live_reward` turns that into the reward:

    R = 1.0 if the step made progress else 0.0,   minus `format_penalty` once when the plan parsed with
                                                  problems; `unparseable` when it has no readable step

"Made progress" (`LiveFeedback.made_progress`), in this order:

1. the step ended the episode (finish/answer, or the env ended it): progress iff the env judged it a success
   (its reward/success signal, the same that MiniWoB++ and the built-in world give at the end of an episode);
2. the env's oracle can plan from any state (built-in world): progress iff the oracle still ends the task in
   success from the new state and needs fewer steps than from the sample's state (`progress` > 0). Another
   route than the reference's counts when it brings the goal as close (tapping the Settings icon where the
   reference says open_app(app="Settings")); a step that does nothing (a no-op the env refused, `wait`), that
   leads away, or that breaks the task (deletes the wrong note) does not;
3. otherwise (MiniWoB++: its scripted solvers would need a browser episode per check): progress iff the page
   after the step is the page the reference step leads to (`matches_reference`: same DOM elements and the same
   end of episode). Other correct routes score 0 here.

A step that could not be executed (no readable step, nothing on screen matched its target) made no progress.
The live reward is binary like `grounded_reward`, so the two are on one scale and one run can mix them: a
sample that cannot be restored live (a converted dataset, a MiniWoB page that replays differently) carries no
feedback and is scored offline (`tracer1.rewards.worker.score_item`).
"""

from __future__ import annotations

from dataclasses import dataclass

from tracer1.plan import ParsedPlan
from tracer1.rewards.grounded import outcome_reward


@dataclass(frozen=True)
class LiveFeedback:
    """What a live env made of one executed first step (see the module docstring)."""

    executed: bool                      # the env carried the step out (False: nothing could be executed, or
                                        # the env refused it as a no-op; `problems` says why)
    env_reward: float = 0.0             # the env's reward for the step (1.0 on the step that ends it in success)
    terminated: bool = False            # the step ended the episode
    success: bool = False               # ... in success
    progress: int | None = None         # oracle steps to the end before minus after the step (None: no oracle)
    solvable: bool | None = None        # the oracle still ends the task in success after the step (None: no oracle)
    matches_reference: bool | None = None  # the state after the step is the one the reference step leads to
    problems: tuple[str, ...] = ()      # the executor's and the env's problems with the step

    @property
    def made_progress(self) -> bool:
        if self.terminated:
            return self.success
        if self.progress is not None and self.solvable is not None:
            return self.solvable and self.progress > 0
        return self.matches_reference is True

    @classmethod
    def not_executed(cls, *problems: str) -> LiveFeedback:
        """The feedback of a step that never reached the env: no progress, the state unchanged."""
        return cls(executed=False, progress=0, matches_reference=False, problems=tuple(problems))


def live_reward(plan: str | ParsedPlan, feedback: LiveFeedback, cfg) -> float:
    """The online stage-2 reward of one sampled plan whose first step the live env answered with `feedback`
    (`cfg`: a `RewardConfig`): 1.0 when the step made progress, else 0.0; minus `format_penalty` once when the
    plan parsed with problems; `unparseable` for a plan with no readable step (as `grounded_reward`)."""
    return outcome_reward(plan, lambda: feedback.made_progress, cfg)
