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
        update={
            "server": settings.server.model_copy(update={"port": 0, "metrics_port": -1}),
            "log_level": "WARNING",
        }
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
    if error.code() in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    ):
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
        settings = settings.model_copy(
            update={"server": settings.server.model_copy(update={"port": args.port})}
        )
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


_CAMERA_MOTIONS = {
    name.removeprefix("CAMERA_MOTION_").lower().replace("_", "-"): value
    for name, value in common_pb2.CameraMotion.items()
    if value != common_pb2.CAMERA_MOTION_UNSPECIFIED
}


def _resource(value: str, collection: str) -> str:
    """The full name from an id or a name: ids as `kino generate` prints them are accepted bare."""
    return value if value.startswith(f"{collection}/") else f"{collection}/{value}"


def _text(value: str) -> str:
    """Command-line text bound for a request: a shell passes any bytes, and ones that are not UTF-8
    arrive as lone surrogates that no protobuf string can hold."""
    if not _is_utf8(value):
        raise argparse.ArgumentTypeError(f"{ascii(value)} is not valid UTF-8 text")
    return value


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _int_in(bits: int):
    """An argparse type for an integer that fits the request's signed `bits`-bit field."""
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"invalid int value: {value!r}") from error
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"{number} is out of range [{low}, {high}]")
        return number

    return parse


def _output_file(path: str) -> Path:
    """Where the video will go, checked before the job is submitted so that no video is made only
    for the write to fail."""
    output = Path(path)
    if output.is_dir():
        raise CliError(f"output {path}: is a folder; name a file, e.g. {output / 'out.mp4'}", EXIT_BAD_INPUT)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CliError(
            f"output {path}: cannot make its folder ({error.strerror or error})", EXIT_BAD_INPUT
        ) from error
    if not os.access(output.parent, os.W_OK):
        raise CliError(f"output {path}: its folder {output.parent} is not writable", EXIT_BAD_INPUT)
    return output


def _read_file(path: str, what: str) -> bytes:
    if not path:
        raise CliError(f"{what}: the file name is empty", EXIT_BAD_INPUT)
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise CliError(f"{what} {path}: {error.strerror or error}", EXIT_BAD_INPUT) from error


def parse_camera(text: str) -> common_pb2.CameraMove:
    """A camera move from MOVE[:AMOUNT], e.g. "pan-left" or "zoom-in:0.3" (how far, 0..1)."""
    motion, _, amount = text.partition(":")
    if motion not in _CAMERA_MOTIONS:
        raise CliError(f"camera {text!r}: the move is one of {', '.join(_CAMERA_MOTIONS)}", EXIT_BAD_INPUT)
    try:
        return common_pb2.CameraMove(motion=_CAMERA_MOTIONS[motion], amount=float(amount) if amount else 0.0)
    except ValueError as error:
        raise CliError(f"camera {text!r}: the amount after ':' must be a number", EXIT_BAD_INPUT) from error


def parse_path(text: str) -> list[common_pb2.TrajectoryPoint]:
    """Path points from TIME:X,Y items (seconds; x, y as fractions of the frame) separated by spaces
    or semicolons, e.g. "0:0.2,0.5 2:0.8,0.5". Bounds are the server's to check."""
    points = []
    for item in text.replace(";", " ").split():
        try:
            time, xy = item.split(":")
            x, y = xy.split(",")
            points.append(common_pb2.TrajectoryPoint(time_seconds=float(time), x=float(x), y=float(y)))
        except ValueError as error:
            raise CliError(
                f"path point {item!r} is not TIME:X,Y (e.g. 1.5:0.25,0.75)", EXIT_BAD_INPUT
            ) from error
    if not points:
        raise CliError("--path needs at least one TIME:X,Y point", EXIT_BAD_INPUT)
    return points


def parse_storyboard(path: str) -> tuple[str, list[generation_pb2.Shot]]:
    """A storyboard file, JSON or YAML: {"prompt": shared subject (optional), "shots": [{"prompt": ...,
    "seconds": ..., "camera": "pan-left:0.3" (optional)}, ...]}. Returns the prompt and the shots."""
    import yaml

    try:
        board = yaml.safe_load(_read_file(path, "storyboard"))
    except yaml.YAMLError as error:
        raise CliError(f"storyboard {path}: not JSON or YAML ({error})", EXIT_BAD_INPUT) from error
    if not isinstance(board, dict) or not isinstance(board.get("shots"), list):
        raise CliError(
            f'storyboard {path}: expected {{"shots": [{{"prompt": ..., "seconds": ...}}, ...]}}',
            EXIT_BAD_INPUT,
        )
    shots = []
    for index, shot in enumerate(board["shots"]):
        if not isinstance(shot, dict) or not isinstance(shot.get("prompt"), str):
            raise CliError(f"storyboard {path}: shot {index + 1} needs a prompt", EXIT_BAD_INPUT)
        if not _is_utf8(shot["prompt"]):
            raise CliError(
                f"storyboard {path}: shot {index + 1} prompt is not valid UTF-8 text", EXIT_BAD_INPUT
            )
        try:
            seconds = float(shot.get("seconds", 0))
        except (TypeError, ValueError, OverflowError) as error:
            raise CliError(
                f"storyboard {path}: shot {index + 1} seconds must be a number", EXIT_BAD_INPUT
            ) from error
        message = generation_pb2.Shot(prompt=shot["prompt"], duration_seconds=seconds)
        if shot.get("camera"):
            message.camera.CopyFrom(parse_camera(str(shot["camera"])))
        shots.append(message)
    shared = board.get("prompt") or ""
    if not isinstance(shared, str):
        raise CliError(
            f"storyboard {path}: prompt must be text (the subject the shots share), got {shared!r:.60}",
            EXIT_BAD_INPUT,
        )
    if not _is_utf8(shared):
        raise CliError(f"storyboard {path}: prompt is not valid UTF-8 text", EXIT_BAD_INPUT)
    return shared, shots


def _spec_from_args(args: argparse.Namespace) -> generation_pb2.GenerationSpec:
    """The GenerationSpec the flags describe; the mode follows from --image, --remix-of, --extend or
    --storyboard (text-to-video without any). Everything the server checks is left to it, so the
    errors are the API's."""
    spec = generation_pb2.GenerationSpec(
        mode=generation_pb2.GENERATION_MODE_TEXT_TO_VIDEO,
        prompt=args.prompt,
        duration_seconds=args.seconds or 0,
        num_steps=args.steps or 0,
        cameos=[_resource(c, "cameos") for c in args.cameo],
    )
    if args.seed is not None:
        spec.seed = args.seed
    if args.image is not None:
        spec.mode = generation_pb2.GENERATION_MODE_IMAGE_TO_VIDEO
        spec.first_frame.data = _read_file(args.image, "image")
    elif args.remix_of is not None:
        spec.mode = generation_pb2.GENERATION_MODE_REMIX
        spec.source_video = _resource(args.remix_of, "videos")
    elif args.extend is not None:
        spec.mode = generation_pb2.GENERATION_MODE_EXTEND
        spec.source_video = _resource(args.extend, "videos")
    elif args.storyboard is not None:
        spec.mode = generation_pb2.GENERATION_MODE_STORYBOARD
        shared, shots = parse_storyboard(args.storyboard)
        spec.prompt = args.prompt or shared
        spec.shots.extend(shots)
    if args.strength is not None:
        spec.remix_strength = args.strength
    if args.path is not None:
        spec.subject_path.extend(parse_path(args.path))
    if args.camera is not None:
        spec.camera.CopyFrom(parse_camera(args.camera))
    return spec


async def cmd_generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    output = _output_file(args.output)
    async with _kino_channel(args) as channel:
        stub = generation_pb2_grpc.GenerationStub(channel)
        job = await stub.Submit(
            generation_pb2.SubmitRequest(
                spec=_spec_from_args(args),
                requester=args.user,
                priority=common_pb2.PRIORITY_INTERACTIVE,
                idempotency_key=args.idempotency_key or "",
                publish_to_feed=args.publish,
            )
        )
        print(f"submitted {job.name}", file=sys.stderr)
        with tqdm(
            total=100, unit="%", desc="queued", bar_format="{desc:<12} {percentage:3.0f}%|{bar}| {elapsed}"
        ) as bar:

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
    parent = f", from {result.provenance.parent_video}" if result.provenance.parent_video else ""
    print(
        f"wrote {output} ({size} bytes): {result.video}, {result.duration_seconds:.2f} s, "
        f"{result.width}x{result.height} @ {result.fps:g} fps, seed {result.seed}{parent}"
    )
    return EXIT_OK


_POLICIES = {
    "only-me": generation_pb2.CONSENT_POLICY_ONLY_ME,
    "approved": generation_pb2.CONSENT_POLICY_APPROVED_USERS,
    "everyone": generation_pb2.CONSENT_POLICY_EVERYONE,
}


async def cmd_cameo(args: argparse.Namespace) -> int:
    async with _kino_channel(args, quiet=True) as channel:
        stub = generation_pb2_grpc.GenerationStub(channel)
        if args.cameo_command == "register":
            cameo = await stub.RegisterCameo(
                generation_pb2.RegisterCameoRequest(
                    owner=args.user,
                    display_name=args.name or "",
                    appearance=common_pb2.Image(data=_read_file(args.image, "image")),
                    policy=_POLICIES[args.policy],
                    approved_users=args.approve,
                )
            )
        elif args.cameo_command == "consent":
            cameo = await stub.UpdateCameoConsent(
                generation_pb2.UpdateCameoConsentRequest(
                    name=_resource(args.cameo, "cameos"),
                    requester=args.user,
                    policy=_POLICIES[args.policy],
                    approved_users=args.approve,
                )
            )
        else:
            cameo = await stub.RevokeCameo(
                generation_pb2.RevokeCameoRequest(name=_resource(args.cameo, "cameos"), requester=args.user)
            )
    policy = generation_pb2.ConsentPolicy.Name(cameo.policy).removeprefix("CONSENT_POLICY_").lower()
    state = generation_pb2.CameoState.Name(cameo.state).removeprefix("CAMEO_STATE_").lower()
    approved = f" ({', '.join(cameo.approved_users)})" if cameo.approved_users else ""
    print(f"{cameo.name}: owner {cameo.owner}, {state}, policy {policy}{approved}")
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
        print(
            f"  prompt:   sha256 {p.prompt_sha256}"
            + (f"   parent: {p.parent_video}" if p.parent_video else "")
        )
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
    parser = argparse.ArgumentParser(
        prog="kino", description="Kino: inference back end for AI-generated video."
    )
    parser.add_argument("--config", help="YAML settings file (default: KINO_CONFIG)")
    parser.add_argument(
        "--data-dir", help="state of the embedded Kino: job database and videos (default ./var)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def client(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--target", help="HOST:PORT of a running Kino (default: KINO_TARGET, else embedded)")
        return sub

    up = commands.add_parser(
        "up", help="run Kino's services (default: each a Ray Serve deployment on a local Ray)"
    )
    up.add_argument(
        "--local", action="store_true", help="every service on one grpc.aio server, one process, no Ray"
    )
    up.add_argument("--port", type=int, help="gRPC port (default 50051)")
    up.set_defaults(run=cmd_up)

    encode = client("encode", "encode a prompt with the TextEncoder")
    encode.add_argument("text", type=_text)
    encode.set_defaults(run=cmd_encode)

    generate = client(
        "generate", "generate a video: from a prompt, an image, a video to remix or extend, a storyboard"
    )
    generate.add_argument(
        "prompt", nargs="?", default="", type=_text, help="what happens (a storyboard may carry its own)"
    )
    generate.add_argument(
        "-o", "--output", default="out.mp4", help="where to write the MP4 (default out.mp4)"
    )
    generate.add_argument(
        "--seconds",
        type=float,
        help="clip length (default 2); --extend: how much to add; --remix-of: how much of the source (default all)",
    )
    source = generate.add_mutually_exclusive_group()
    source.add_argument(
        "--image", metavar="FILE", help="image-to-video: the clip starts from this PNG or JPEG"
    )
    source.add_argument(
        "--remix-of", metavar="VIDEO", type=_text, help="remix this video: its motion, the prompt's changes"
    )
    source.add_argument(
        "--extend", metavar="VIDEO", type=_text, help="continue this video by --seconds from its last frames"
    )
    source.add_argument(
        "--storyboard",
        metavar="FILE",
        help='shots from a JSON/YAML file: {"prompt": ..., "shots": [{"prompt": ..., "seconds": ...}]}',
    )
    generate.add_argument("--strength", type=float, help="--remix-of: how much to change, 0..1 (default 0.8)")
    generate.add_argument(
        "--cameo",
        action="append",
        default=[],
        type=_text,
        metavar="CAMEO",
        help="put this cameo's likeness in the video (needs its consent)",
    )
    generate.add_argument(
        "--path",
        metavar="POINTS",
        help='subject path, TIME:X,Y points in seconds and fractions of the frame: "0:0.2,0.5 2:0.8,0.5"',
    )
    generate.add_argument(
        "--camera",
        metavar="MOVE[:AMOUNT]",
        help=f"camera move: {', '.join(_CAMERA_MOTIONS)} (e.g. pan-left:0.3)",
    )
    generate.add_argument("--publish", action="store_true", help="put the finished video into the feed")
    generate.add_argument("--seed", type=_int_in(64), help="seed (default: random, reported)")
    generate.add_argument("--steps", type=_int_in(32), help="sampler steps (default: the model's)")
    generate.add_argument("--user", default=_default_user(), type=_text, help="requester (default: $USER)")
    generate.add_argument("--idempotency-key", type=_text, help="makes resubmitting safe")
    generate.set_defaults(run=cmd_generate)

    cameo = client("cameo", "register a likeness with a consent policy, change who may use it, revoke it")
    cameo_commands = cameo.add_subparsers(dest="cameo_command", required=True)
    register = cameo_commands.add_parser("register", help="register an appearance image as a cameo")
    register.add_argument("image", help="the appearance, PNG or JPEG")
    register.add_argument("--name", type=_text, help="display name")
    for sub in (register, consent := cameo_commands.add_parser("consent", help="change who may use a cameo")):
        sub.add_argument(
            "--policy", choices=sorted(_POLICIES), default="only-me", help="who may use it (default only-me)"
        )
        sub.add_argument(
            "--approve",
            action="append",
            default=[],
            type=_text,
            metavar="USER",
            help="a user the approved policy lets in",
        )
    consent.add_argument("cameo", type=_text)
    revoke = cameo_commands.add_parser(
        "revoke", help="revoke a cameo: its queued jobs are cancelled, its videos unpublished"
    )
    revoke.add_argument("cameo", type=_text)
    for sub in (register, consent, revoke):
        sub.add_argument("--user", default=_default_user(), type=_text, help="the owner (default: $USER)")
    cameo.set_defaults(run=cmd_cameo)

    jobs = client("jobs", "list jobs, newest first")
    jobs.add_argument("--user", type=_text, help="only this requester's jobs")
    jobs.add_argument("--state", choices=["queued", "running", "succeeded", "failed", "cancelled"])
    jobs.add_argument("--limit", type=_int_in(32), default=20)
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
