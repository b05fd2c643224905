"""The finished file: frames and PCM muxed into an MP4 that browsers and phones play, and read back.

Encoding runs the ffmpeg binary: raw RGB frames on stdin, the sound track from a temporary WAV.
The result is H.264 (High profile, yuv420p, BT.709 limited range, tagged) with AAC-LC at 48 kHz,
`moov` first (faststart) so playback starts before the download ends. The frame rate is passed as an
exact rational and the PCM is cut or padded to exactly `num_frames / fps` seconds, so picture and
sound have the same length; ffmpeg's edit list hides the AAC encoder's priming samples, which keeps
the sound in sync when decoded.

Reading back (`probe`, `decode_frames`, `decode_luma`, `decode_audio`) is what Verify, the tests and
the evaluation use. A file ffmpeg cannot parse is the caller's mistake: INVALID_ARGUMENT/INVALID_MEDIA.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import subprocess
import tempfile
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from services.common.errors import invalid_argument, out_of_range

Resample = Literal["nearest", "lanczos"]

MAX_SIDE = 1920
MAX_FRAMES = 60 * 60  # one minute at 60 fps
MAX_FPS = 120.0
AUDIO_BITRATE = "128k"
FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"

# H.264 levels (Annex A, Table A-1): (level, max macroblocks per frame, max macroblocks per second).
# The smallest level that fits is written into the stream, so decoders know the file is in reach.
_H264_LEVELS = (
    ("3.0", 1620, 40500),
    ("3.1", 3600, 108000),
    ("3.2", 5120, 216000),
    ("4.0", 8192, 245760),
    ("4.1", 8192, 245760),
    ("4.2", 8704, 522240),
    ("5.0", 22080, 589824),
    ("5.1", 36864, 983040),
    ("5.2", 36864, 2073600),
)


@dataclass(frozen=True)
class EncodeOptions:
    """How `mux` encodes. The defaults make a small, high-quality file for the feed."""

    # Output size (width, height); None keeps the frames' size. Odd sides are rounded up to even.
    size: tuple[int, int] | None = (256, 256)
    # How frames are scaled to `size`: "nearest" keeps the shapes' hard edges, "lanczos" smooths.
    resample: Resample = "nearest"
    crf: int = 18
    preset: str = "medium"
    audio_bitrate: str = AUDIO_BITRATE


DEFAULT_OPTIONS = EncodeOptions()


@dataclass(frozen=True)
class StreamInfo:
    codec: str
    duration_seconds: float
    # Video only.
    width: int = 0
    height: int = 0
    fps: Fraction = Fraction(0)
    num_frames: int = 0
    pix_fmt: str = ""
    profile: str = ""
    level: int = 0
    # Audio only.
    sample_rate: int = 0
    channels: int = 0


@dataclass(frozen=True)
class MediaInfo:
    """What ffprobe reports about a file."""

    format_name: str
    duration_seconds: float
    size_bytes: int
    video: StreamInfo | None
    audio: StreamInfo | None
    # Byte offset of the moov box before the mdat box (faststart) for MP4 files.
    moov_before_mdat: bool


def even_size(width: int, height: int) -> tuple[int, int]:
    """yuv420p needs even sides: odd ones are rounded up."""
    return width + (width & 1), height + (height & 1)


def upscale_frames(frames: np.ndarray, size: tuple[int, int], resample: Resample = "nearest") -> np.ndarray:
    """uint8 (F, H, W, 3) -> uint8 (F, height, width, 3) for viewing; (width, height) = size."""
    width, height = size
    if frames.shape[2] == width and frames.shape[1] == height:
        return frames
    f, h, w, _ = frames.shape
    if resample == "nearest" and width % w == 0 and height % h == 0:
        return frames.repeat(height // h, axis=1).repeat(width // w, axis=2)
    method = Image.Resampling.NEAREST if resample == "nearest" else Image.Resampling.LANCZOS
    return np.stack([np.asarray(Image.fromarray(frame).resize((width, height), method)) for frame in frames])


def h264_level(width: int, height: int, fps: float) -> str:
    """The smallest H.264 level whose frame-size and macroblock-rate limits fit this video."""
    macroblocks = math.ceil(width / 16) * math.ceil(height / 16)
    for level, max_frame, max_rate in _H264_LEVELS:
        if macroblocks <= max_frame and macroblocks * fps <= max_rate:
            return level
    raise out_of_range("macroblocks_per_second", macroblocks * fps, 0, _H264_LEVELS[-1][2])


def validate_frames(frames: np.ndarray, fps: float, *, field: str = "frames") -> None:
    """Raises INVALID_ARGUMENT unless frames is uint8 (F, H, W, 3) with sane sizes and fps is usable."""
    if (
        not isinstance(frames, np.ndarray)
        or frames.dtype != np.uint8
        or frames.ndim != 4
        or frames.shape[3] != 3
    ):
        shape = getattr(frames, "shape", None)
        dtype = getattr(frames, "dtype", None)
        detail = f"expected uint8 (F, H, W, 3), got {dtype} {shape}"
        raise invalid_argument("INVALID_TENSOR", f"{field}: {detail}", field=field, detail=detail)
    f, h, w, _ = frames.shape
    if not (1 <= f <= MAX_FRAMES):
        raise out_of_range(f"{field}.shape[0]", f, 1, MAX_FRAMES)
    for name, side in (("height", h), ("width", w)):
        if not (2 <= side <= MAX_SIDE):
            raise out_of_range(f"{field}.{name}", side, 2, MAX_SIDE)
    if not (math.isfinite(fps) and 0 < fps <= MAX_FPS):
        raise out_of_range("fps", fps, "> 0", MAX_FPS)


def exact_rate(fps: float) -> Fraction:
    """fps as the rational ffmpeg should use: 8 -> 8/1, 29.97 -> 30000/1001."""
    for base in (24, 30, 60, 120):
        if abs(fps - base * 1000 / 1001) < 1e-3:
            return Fraction(base * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


def fit_pcm(pcm: np.ndarray, num_samples: int) -> np.ndarray:
    """int16 (S, C) cut or zero-padded to num_samples, so the sound lasts exactly as long as the picture."""
    if pcm.shape[0] >= num_samples:
        return pcm[:num_samples]
    return np.concatenate([pcm, np.zeros((num_samples - pcm.shape[0], pcm.shape[1]), pcm.dtype)])


def write_wav(path: Path, pcm: np.ndarray, sample_rate: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(pcm.shape[1])
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(np.ascontiguousarray(pcm, "<i2").tobytes())


def mux(
    frames: np.ndarray,
    fps: float,
    pcm: np.ndarray | None,
    sample_rate: int = 48000,
    options: EncodeOptions = DEFAULT_OPTIONS,
) -> bytes:
    """MP4 bytes: frames uint8 (F, H, W, 3) at fps, with pcm int16 (S, C) at sample_rate (None: silent).

    Frames are scaled to options.size here unless they already have it; callers that watermark or
    label the frames scale them first (`upscale_frames`) so the marks are made at the final size.
    """
    validate_frames(frames, fps)
    if options.size is not None:
        frames = upscale_frames(frames, even_size(*options.size), options.resample)
    f, h, w, _ = frames.shape
    if (w, h) != even_size(w, h):
        frames = np.pad(frames, ((0, 0), (0, h & 1), (0, w & 1), (0, 0)), mode="edge")
        f, h, w, _ = frames.shape
    rate = exact_rate(fps)
    num_samples = round(f / rate * sample_rate)
    if pcm is None:
        pcm = np.zeros((num_samples, 2), np.int16)
    if pcm.dtype != np.int16 or pcm.ndim != 2 or not (1 <= pcm.shape[1] <= 2):
        detail = f"expected int16 (samples, 1 or 2 channels), got {pcm.dtype} {pcm.shape}"
        raise invalid_argument("INVALID_TENSOR", f"pcm: {detail}", field="pcm", detail=detail)
    with tempfile.TemporaryDirectory(prefix="kino-mux-") as tmp:
        wav, out = Path(tmp) / "audio.wav", Path(tmp) / "out.mp4"
        write_wav(wav, fit_pcm(pcm, num_samples), sample_rate)
        command = [
            FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", f"{rate.numerator}/{rate.denominator}",
            "-i", "pipe:0",
            "-i", str(wav),
            "-map", "0:v", "-map", "1:a",
            "-vf", "scale=out_color_matrix=bt709:out_range=tv:flags=accurate_rnd+full_chroma_int,format=yuv420p",
            "-c:v", "libx264", "-preset", options.preset, "-crf", str(options.crf),
            "-profile:v", "high", "-level:v", h264_level(w, h, float(rate)),
            "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
            "-c:a", "aac", "-b:a", options.audio_bitrate, "-ar", str(sample_rate),
            "-movflags", "+faststart", "-map_metadata", "-1",
            "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
            "-f", "mp4", str(out),
        ]  # fmt: skip
        _run(command, stdin=np.ascontiguousarray(frames).tobytes())
        return out.read_bytes()


def probe(data: bytes, *, count_frames: bool = True) -> MediaInfo:
    """ffprobe's view of a file; INVALID_ARGUMENT/INVALID_MEDIA when it is not a media file.

    count_frames decodes the whole file to count its frames exactly; without it num_frames is what
    the container declares.
    """
    command = [FFPROBE, "-v", "error", "-print_format", "json", "-show_format", "-show_streams"]
    with _as_file(data) as path:
        report = _run([*command, *(["-count_frames"] if count_frames else []), str(path)], media=True)
    parsed = json.loads(report)
    streams = parsed.get("streams", [])
    fmt = parsed.get("format", {})
    video = next((_stream(s) for s in streams if s.get("codec_type") == "video"), None)
    audio = next((_stream(s) for s in streams if s.get("codec_type") == "audio"), None)
    return MediaInfo(
        format_name=fmt.get("format_name", ""),
        duration_seconds=float(fmt.get("duration", 0) or 0),
        size_bytes=len(data),
        video=video,
        audio=audio,
        moov_before_mdat=_moov_before_mdat(data),
    )


def decode_frames(data: bytes, size: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 (F, H, W, 3) RGB frames of a video file, optionally scaled to size (width, height).

    Shrinking averages each output pixel's area, so a video that was shown enlarged (Kino's files are
    the model's frames scaled up by a whole factor) comes back close to the frames it was made from,
    with the coding noise averaged down.
    """
    info = probe(data, count_frames=False)
    if info.video is None:
        raise _bad_media("the file has no video stream")
    width, height = size or (info.video.width, info.video.height)
    shrinking = width < info.video.width or height < info.video.height
    flags = ("area+" if shrinking else "") + "accurate_rnd+full_chroma_int"
    scale = f"scale={width}:{height}:in_color_matrix=bt709:in_range=tv:flags={flags}"
    with _as_file(data) as path:
        raw = _run(
            [FFMPEG, "-nostdin", "-loglevel", "error", "-i", str(path), "-map", "0:v:0",
             "-vf", f"{scale},format=rgb24", "-f", "rawvideo", "pipe:1"],
            media=True, binary=True,
        )  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def decode_luma(data: bytes) -> np.ndarray:
    """uint8 (F, H, W): the coded luma plane of every frame, untouched by any colour conversion."""
    info = probe(data, count_frames=False)
    if info.video is None:
        raise _bad_media("the file has no video stream")
    width, height = info.video.width, info.video.height
    with _as_file(data) as path:
        raw = _run(
            [FFMPEG, "-nostdin", "-loglevel", "error", "-i", str(path), "-map", "0:v:0",
             "-pix_fmt", "yuv420p", "-f", "rawvideo", "pipe:1"],
            media=True, binary=True,
        )  # fmt: skip
    chroma = ((width + 1) // 2) * ((height + 1) // 2)
    per_frame = width * height + 2 * chroma
    planes = np.frombuffer(raw, np.uint8).reshape(-1, per_frame)
    return planes[:, : width * height].reshape(-1, height, width)


def decode_audio(data: bytes, sample_rate: int = 48000) -> np.ndarray:
    """float32 (S, C) in [-1, 1]: the file's first audio stream, resampled to sample_rate."""
    info = probe(data, count_frames=False)
    if info.audio is None:
        raise _bad_media("the file has no audio stream")
    with _as_file(data) as path:
        raw = _run(
            [FFMPEG, "-nostdin", "-loglevel", "error", "-i", str(path), "-map", "0:a:0",
             "-ar", str(sample_rate), "-f", "s16le", "-acodec", "pcm_s16le", "pipe:1"],
            media=True, binary=True,
        )  # fmt: skip
    return (np.frombuffer(raw, "<i2").reshape(-1, info.audio.channels) / 32768.0).astype(np.float32)


def decode_pcm(data: bytes, sample_rate: int, channels: int) -> np.ndarray | None:
    """int16 (S, channels): the file's first audio stream resampled and remixed to this layout, or
    None when the file has no sound."""
    info = probe(data, count_frames=False)
    if info.audio is None:
        return None
    with _as_file(data) as path:
        raw = _run(
            [FFMPEG, "-nostdin", "-loglevel", "error", "-i", str(path), "-map", "0:a:0",
             "-ar", str(sample_rate), "-ac", str(channels), "-f", "s16le", "-acodec", "pcm_s16le", "pipe:1"],
            media=True, binary=True,
        )  # fmt: skip
    return np.frombuffer(raw, "<i2").reshape(-1, channels).copy()


def transcode(data: bytes, *, crf: int = 23, scale: float = 1.0) -> bytes:
    """Re-encodes a file as a platform would on upload (H.264 at crf, optionally scaled): no C2PA survives."""
    info = probe(data, count_frames=False)
    if info.video is None:
        raise _bad_media("the file has no video stream")
    width, height = even_size(round(info.video.width * scale), round(info.video.height * scale))
    with _as_file(data) as path, tempfile.TemporaryDirectory(prefix="kino-transcode-") as tmp:
        out = Path(tmp) / "out.mp4"
        _run(
            [FFMPEG, "-nostdin", "-loglevel", "error", "-i", str(path), "-vf", f"scale={width}:{height}",
             "-c:v", "libx264", "-crf", str(crf), "-preset", "medium", "-pix_fmt", "yuv420p",
             "-c:a", "aac", "-b:a", "96k", "-movflags", "+faststart", str(out)],
            media=True,
        )  # fmt: skip
        return out.read_bytes()


def _stream(s: dict) -> StreamInfo:
    fps = (
        Fraction(s.get("avg_frame_rate") or "0/1")
        if s.get("avg_frame_rate") not in (None, "0/0")
        else Fraction(0)
    )
    return StreamInfo(
        codec=s.get("codec_name", ""),
        duration_seconds=float(s.get("duration", 0) or 0),
        width=int(s.get("width", 0)),
        height=int(s.get("height", 0)),
        fps=fps,
        num_frames=int(s.get("nb_read_frames", 0) or s.get("nb_frames", 0) or 0),
        pix_fmt=s.get("pix_fmt", ""),
        profile=s.get("profile", ""),
        level=int(s.get("level", 0) or 0),
        sample_rate=int(s.get("sample_rate", 0) or 0),
        channels=int(s.get("channels", 0) or 0),
    )


def _moov_before_mdat(data: bytes) -> bool:
    """Walks the top-level ISO BMFF boxes: faststart files have moov ahead of mdat."""
    offset, seen = 0, []
    while offset + 8 <= len(data) and len(seen) < 64:
        size = int.from_bytes(data[offset : offset + 4], "big")
        kind = data[offset + 4 : offset + 8]
        if size == 1 and offset + 16 <= len(data):
            size = int.from_bytes(data[offset + 8 : offset + 16], "big")
        elif size == 0:
            size = len(data) - offset
        if size < 8:
            break
        seen.append(kind)
        offset += size
    return b"moov" in seen and b"mdat" in seen and seen.index(b"moov") < seen.index(b"mdat")


def _bad_media(detail: str):
    return invalid_argument("INVALID_MEDIA", f"file: {detail}", field="file", detail=detail)


@contextlib.contextmanager
def _as_file(data: bytes) -> Iterator[Path]:
    """The bytes in a temporary file: ffprobe and MP4 demuxing need a seekable input."""
    if not data:
        raise _bad_media("the file is empty")
    with tempfile.NamedTemporaryFile(prefix="kino-media-", suffix=".bin") as tmp:
        tmp.write(data)
        tmp.flush()
        yield Path(tmp.name)


def _run(command: list[str], *, stdin: bytes | None = None, media: bool = False, binary: bool = False):
    """Runs ffmpeg/ffprobe. With media=True a failure means the input file is bad (INVALID_MEDIA)."""
    result = subprocess.run(command, input=stdin, capture_output=True, check=False)
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        if media:
            # ffmpeg names the temporary file; the caller knows it only as "file".
            message = re.sub(r"/\S*kino-media-\S+?:\s*", "", detail[0])
            raise _bad_media(message[:300])
        raise RuntimeError(f"{command[0]} failed ({result.returncode}): {detail[0]}")
    return result.stdout if binary else result.stdout.decode()
