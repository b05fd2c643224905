"""`kino demo` (what `make demo` runs): the main job end to end on the embedded default.

It starts Kino (or uses --target), encodes a prompt, submits a text-to-video job, follows it to the
end, downloads the MP4 and verifies its C2PA manifest and watermark. A stage that cannot run is
reported with the error Kino answers with (and a non-zero exit): the demo never shows a fake result.
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

from grpc_health.v1 import health_pb2, health_pb2_grpc

from kino.v1 import common_pb2, generation_pb2, generation_pb2_grpc, text_encoder_pb2, text_encoder_pb2_grpc
from services.common.errors import KinoError
from services.common.tensors import from_proto

PROMPT = "a red circle bouncing left and right on a black background"
OUTPUT = Path("out/demo.mp4")


def _line(stage: str, verdict: str, detail: str) -> None:
    print(f"  {stage:<16} {verdict:<14} {detail}", flush=True)


async def run_demo(args: argparse.Namespace) -> int:
    from services.cli import _download, _kino_channel, follow_job

    print(f"Kino demo: {PROMPT!r}\n")
    async with _kino_channel(args) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        status = await health.Check(health_pb2.HealthCheckRequest(service=""))
        _line("server", health_pb2.HealthCheckResponse.ServingStatus.Name(status.status), "grpc.health.v1")

        encoder = text_encoder_pb2_grpc.TextEncoderStub(channel)
        started = time.perf_counter()
        encoded = await encoder.Encode(text_encoder_pb2.EncodeRequest(texts=[PROMPT], include_tokens=True))
        elapsed_ms = 1000 * (time.perf_counter() - started)
        embedding = encoded.embeddings[0]
        tokens = from_proto(embedding.tokens, field="tokens")
        _line(
            "text encoder",
            "ok",
            f"{encoded.model}: {tokens.shape[0]} tokens x {encoded.dim}-d, {elapsed_ms:.0f} ms",
        )

        jobs = generation_pb2_grpc.GenerationStub(channel)
        key = f"demo-{uuid.uuid4().hex[:8]}"
        request = generation_pb2.SubmitRequest(
            spec=generation_pb2.GenerationSpec(
                mode=generation_pb2.GENERATION_MODE_TEXT_TO_VIDEO, prompt=PROMPT, duration_seconds=2.0, seed=7
            ),
            requester="demo",
            priority=common_pb2.PRIORITY_INTERACTIVE,
            idempotency_key=key,
        )
        job = await jobs.Submit(request)
        again = await jobs.Submit(request)
        _line("submit", "ok", f"{job.name} queued; resubmitting key {key} returned {again.name}")
        assert again.name == job.name

        stages_seen: list[str] = []

        def show(update: generation_pb2.Job) -> None:
            stage = generation_pb2.JobStage.Name(update.progress.stage).removeprefix("JOB_STAGE_").lower()
            if update.state == generation_pb2.JOB_STATE_RUNNING and stage not in stages_seen:
                _line("job", "running", f"stage {stage}, {update.progress.fraction:.0%}")
                stages_seen.append(stage)

        job = await follow_job(jobs, job.name, show)
        state = generation_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_")
        if job.state != generation_pb2.JOB_STATE_SUCCEEDED:
            error = KinoError.from_status(job.error)
            _line("job", state.lower(), f"{error.code.name} {error.reason}: {error.message}")
            if error.reason == "BACKEND_UNAVAILABLE":
                print(
                    f"\nNot available here: {error.metadata.get('backend', 'a backend')} (see the warnings above)."
                )
            return 1
        result = job.result
        size = await _download(jobs, result.video, OUTPUT)
        _line(
            "video",
            "ok",
            f"{OUTPUT}: {size} bytes, {result.duration_seconds:.1f} s, {result.width}x{result.height} "
            f"@ {result.fps:g} fps, {result.provenance.model}",
        )
        verdict = await jobs.Verify(generation_pb2.VerifyRequest(file=OUTPUT.read_bytes()))
        manifest = "valid" if verdict.manifest_valid else "INVALID " + ", ".join(verdict.manifest_issues)
        _line(
            "provenance",
            "ok" if verdict.manifest_valid else "failed",
            f"C2PA manifest {manifest}; watermark -> {verdict.watermark_video}",
        )
        listed = await jobs.List(generation_pb2.ListRequest(requester="demo", page_size=5))
        _line("list", "ok", f"{len(listed.jobs)} recent demo job(s), newest {listed.jobs[0].name}")
    print(f"\nPlay it: {OUTPUT}   Check it: .venv/bin/kino verify {OUTPUT}")
    return 0 if verdict.manifest_valid else 1


__all__ = ["run_demo"]
