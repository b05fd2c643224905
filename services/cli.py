"""The `kino` command: run Kino, encode a prompt, generate a video, list jobs, run the demo.

Client commands talk to the Kino at --target or KINO_TARGET; with neither, they start an embedded
single-process Kino for the duration of the call (state under --data-dir, default ./var).

Exit codes: 0 success, 1 the job failed or was cancelled (verify: the manifest is missing or invalid), 2 bad usage or input (INVALID_ARGUMENT,
NOT_FOUND, FAILED_PRECONDITION), 3 Kino or a backend is unavailable, 4 internal error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from kino.v1 import common_pb2, generation_pb2, generation_pb2_grpc, text_encoder_pb2, text_encoder_pb2_grpc
from services.common.errors import error_info
from services.common.settings import Settings, load_settings

EXIT_OK, EXIT_JOB_FAILED, EXIT_BAD_INPUT, EXIT_UNAVAILABLE, EXIT_INTERNAL = 0, 1, 2, 3, 4
_BAD_INPUT_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.OUT_OF_RANGE,
}


class CliError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    return load_settings(getattr(args, "config", None), **overrides)


@contextlib.asynccontextmanager
async def _kino_channel(args: argparse.Namespace, quiet: bool = False) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to --target/KINO_TARGET, or to an embedded Kino started for this command."""
    from services.cluster.routing import insecure_channel

    target = args.target or os.environ.get("KINO_TARGET")
    if target:
        # The routing channel adds the `application` metadata Ray Serve's proxy needs; a
        # single-process Kino ignores it, so one client reaches either kind of endpoint.
        async with insecure_channel(target) as channel:
            yield channel
        return
    from services.app import LocalKino

    settings = _settings(args)
    settings = settings.model_copy(
        update={"server": settings.server.model_copy(update={"port": 0, "metrics_port": -1}), "log_level": "WARNING"}
    )
    if not quiet:
        print("starting an embedded Kino (no --target or KINO_TARGET given)...", file=sys.stderr)
    kino = LocalKino(settings)
    await kino.start()
    try:
        async with grpc.aio.insecure_channel(kino.address) as channel:
            yield channel
    finally:
        await kino.stop(grace=1.0)


def _describe_rpc_error(error: grpc.aio.AioRpcError) -> CliError:
    reason, metadata = error_info(error)
    detail = f"{error.code().name}"
    if reason:
        detail += f" {reason}"
    message = f"{detail}: {error.details()}"
    if error.code() in _BAD_INPUT_CODES:
        return CliError(message, EXIT_BAD_INPUT)
    if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED):
        return CliError(message, EXIT_UNAVAILABLE)
    return CliError(message, EXIT_INTERNAL)


# ---- commands ------------------------------------------------------------------------------------


async def cmd_up(args: argparse.Namespace) -> int:
    from services.common.logs import configure_logging

    settings = _settings(args)
    if not args.local:
        from services.cluster.up import run_cluster

        configure_logging(settings.log_level)
        await run_cluster(settings, args.port)
        return EXIT_OK
    from services.app import LocalKino

    if args.port is not None:
        settings = settings.model_copy(update={"server": settings.server.model_copy(update={"port": args.port})})
    configure_logging(settings.log_level)
    kino = LocalKino(settings)
    await kino.start()
    print(f"Kino is serving on {kino.address}  (export KINO_TARGET={kino.address})", flush=True)
    if kino.metrics_port:
        print(f"metrics: http://{settings.server.host}:{kino.metrics_port}/metrics", flush=True)
    await kino.serve_until_signal()
    return EXIT_OK


async def cmd_encode(args: argparse.Namespace) -> int:
    async with _kino_channel(args) as channel:
        stub = text_encoder_pb2_grpc.TextEncoderStub(channel)
        response = await stub.Encode(text_encoder_pb2.EncodeRequest(texts=[args.text], include_tokens=True))
    from services.common.tensors import from_proto

    embedding = response.embeddings[0]
    pooled = from_proto(embedding.pooled, field="pooled")
    head = ", ".join(f"{v:+.4f}" for v in pooled[:8])
    print(f"model: {response.model}  dim: {response.dim}  tokens: {embedding.num_tokens}")
    print(f"pooled[:8]: [{head}, ...]  |pooled| = {float((pooled**2).sum() ** 0.5):.4f}")
    return EXIT_OK


def _spec_from_args(args: argparse.Namespace) -> generation_pb2.GenerationSpec:
    spec = generation_pb2.GenerationSpec(
        mode=generation_pb2.GENERATION_MODE_TEXT_TO_VIDEO,
        prompt=args.prompt,
        duration_seconds=args.seconds,
        num_steps=args.steps or 0,
    )
    if args.seed is not None:
        spec.seed = args.seed
    return spec


async def cmd_generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    output = Path(args.output)
    async with _kino_channel(args) as channel:
        stub = generation_pb2_grpc.GenerationStub(channel)
        job = await stub.Submit(
            generation_pb2.SubmitRequest(
                spec=_spec_from_args(args),
                requester=args.user,
                priority=common_pb2.PRIORITY_INTERACTIVE,
                idempotency_key=args.idempotency_key or "",
            )
        )
        print(f"submitted {job.name}", file=sys.stderr)
        with tqdm(total=100, unit="%", desc="queued", bar_format="{desc:<12} {percentage:3.0f}%|{bar}| {elapsed}") as bar:

            def show(update: generation_pb2.Job) -> None:
                stage = generation_pb2.JobStage.Name(update.progress.stage).removeprefix("JOB_STAGE_").lower()
                state = generation_pb2.JobState.Name(update.state).removeprefix("JOB_STATE_").lower()
                bar.set_description_str(stage if update.state == generation_pb2.JOB_STATE_RUNNING else state)
                bar.n = round(100 * update.progress.fraction)
                bar.refresh()

            job = await follow_job(stub, job.name, show)
        if job.state != generation_pb2.JOB_STATE_SUCCEEDED:
            return _report_unsuccessful(job)
        size = await _download(stub, job.result.video, output)
    result = job.result
    print(
        f"wrote {output} ({size} bytes): {result.video}, {result.duration_seconds:.2f} s, "
        f"{result.width}x{result.height} @ {result.fps:g} fps, seed {result.seed}"
    )
    return EXIT_OK


async def follow_job(stub: generation_pb2_grpc.GenerationStub, name: str, on_update) -> generation_pb2.Job:
    """Watches a job to its end, calling on_update(job) for every change; returns the final Job."""
    final = None
    async for update in stub.Watch(generation_pb2.WatchRequest(name=name)):
        on_update(update)
        final = update
    return final if final is not None else await stub.Get(generation_pb2.GetRequest(name=name))


def _report_unsuccessful(job: generation_pb2.Job) -> int:
    from services.common.errors import KinoError

    state = generation_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_")
    if job.HasField("error"):
        error = KinoError.from_status(job.error)
        print(f"{job.name} {state}: {error.code.name} {error.reason}: {error.message}", file=sys.stderr)
    else:
        print(f"{job.name} ended {state}", file=sys.stderr)
    return EXIT_JOB_FAILED


async def _download(stub: generation_pb2_grpc.GenerationStub, video: str, output: Path) -> int:
    partial = output.with_name(output.name + ".part")
    partial.parent.mkdir(parents=True, exist_ok=True)
    with partial.open("wb") as file:
        async for chunk in stub.DownloadVideo(generation_pb2.DownloadVideoRequest(name=video)):
            file.write(chunk.chunk)
    partial.replace(output)
    return output.stat().st_size


async def cmd_jobs(args: argparse.Namespace) -> int:
    state = generation_pb2.JobState.Value(f"JOB_STATE_{args.state.upper()}") if args.state else 0
    async with _kino_channel(args, quiet=True) as channel:
        stub = generation_pb2_grpc.GenerationStub(channel)
        response = await stub.List(
            generation_pb2.ListRequest(requester=args.user or "", state=state, page_size=args.limit)
        )
    if not response.jobs:
        print("no jobs")
        return EXIT_OK
    print(f"{'JOB':<30} {'STATE':<10} {'PROGRESS':>8}  {'CREATED':<20} PROMPT")
    for job in response.jobs:
        state_name = generation_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_")
        created = job.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
        prompt = job.spec.prompt if len(job.spec.prompt) <= 40 else job.spec.prompt[:37] + "..."
        print(f"{job.name:<30} {state_name:<10} {job.progress.fraction:>7.0%}  {created:<20} {prompt}")
    return EXIT_OK


async def cmd_verify(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path}: no such file", EXIT_BAD_INPUT)
    async with _kino_channel(args, quiet=True) as channel:
        stub = generation_pb2_grpc.GenerationStub(channel)
        verdict = await stub.Verify(generation_pb2.VerifyRequest(file=path.read_bytes()))
    if not verdict.manifest_present:
        manifest = "none"
    elif verdict.manifest_valid:
        manifest = "valid"
    else:
        manifest = "INVALID (" + ", ".join(verdict.manifest_issues) + ")"
    print(f"file:       {path}")
    print(f"C2PA:       {manifest}")
    if verdict.manifest_present:
        p = verdict.provenance
        print(f"  source:   {p.digital_source_type}   model: {p.model}   job: {p.job}")
        print(f"  prompt:   sha256 {p.prompt_sha256}" + (f"   parent: {p.parent_video}" if p.parent_video else ""))
    if verdict.watermark_found:
        print(f"watermark:  {verdict.watermark_video} (confidence {verdict.watermark_confidence:.2f})")
    else:
        print("watermark:  none found")
    return EXIT_OK if verdict.manifest_valid else EXIT_JOB_FAILED


async def cmd_demo(args: argparse.Namespace) -> int:
    from services.demo import run_demo

    return await run_demo(args)


# ---- argument parsing ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kino", description="Kino: inference back end for AI-generated video.")
    parser.add_argument("--config", help="YAML settings file (default: KINO_CONFIG)")
    parser.add_argument("--data-dir", help="state of the embedded Kino: job database and videos (default ./var)")
    commands = parser.add_subparsers(dest="command", required=True)

    def client(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--target", help="HOST:PORT of a running Kino (default: KINO_TARGET, else embedded)")
        return sub

    up = commands.add_parser("up", help="run Kino's services (default: each a Ray Serve deployment on a local Ray)")
    up.add_argument("--local", action="store_true", help="every service on one grpc.aio server, one process, no Ray")
    up.add_argument("--port", type=int, help="gRPC port (default 50051)")
    up.set_defaults(run=cmd_up)

    encode = client("encode", "encode a prompt with the TextEncoder")
    encode.add_argument("text")
    encode.set_defaults(run=cmd_encode)

    generate = client("generate", "generate a video from a prompt")
    generate.add_argument("prompt")
    generate.add_argument("-o", "--output", default="out.mp4", help="where to write the MP4 (default out.mp4)")
    generate.add_argument("--seconds", type=float, default=2.0, help="clip length (default 2)")
    generate.add_argument("--seed", type=int, help="seed (default: random, reported)")
    generate.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    generate.add_argument("--user", default=_default_user(), help="requester (default: $USER)")
    generate.add_argument("--idempotency-key", help="makes resubmitting safe")
    generate.set_defaults(run=cmd_generate)

    jobs = client("jobs", "list jobs, newest first")
    jobs.add_argument("--user", help="only this requester's jobs")
    jobs.add_argument("--state", choices=["queued", "running", "succeeded", "failed", "cancelled"])
    jobs.add_argument("--limit", type=int, default=20)
    jobs.set_defaults(run=cmd_jobs)

    verify = client("verify", "check a file's C2PA manifest and invisible watermark (exit 0 when valid)")
    verify.add_argument("file")
    verify.set_defaults(run=cmd_verify)

    from services.loadtest.cli import add_parser as add_loadtest_parser

    loadtest = add_loadtest_parser(commands)
    loadtest.set_defaults(run=_bad_values_are_usage_errors(loadtest.get_default("run")))

    demo = client("demo", "run the main job end to end on the embedded default and report each stage")
    demo.set_defaults(run=cmd_demo)
    return parser


def _bad_values_are_usage_errors(run):
    """The load tester validates its own flags and raises ValueError for bad ones (exit 2)."""

    async def guarded(args: argparse.Namespace) -> int:
        try:
            return await run(args)
        except ValueError as error:
            raise CliError(str(error), EXIT_BAD_INPUT) from error

    return guarded


def _default_user() -> str:
    with contextlib.suppress(Exception):
        return getpass.getuser()
    return "cli"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(args.run(args))
    except CliError as error:
        print(f"kino: {error}", file=sys.stderr)
        return error.exit_code
    except grpc.aio.AioRpcError as error:
        described = _describe_rpc_error(error)
        print(f"kino: {described}", file=sys.stderr)
        return described.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
