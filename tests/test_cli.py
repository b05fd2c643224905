"""The kino command against a real `kino up --local` process, and its errors and exit codes."""

import os
import signal
import subprocess
from pathlib import Path

import pytest

from services.cli import EXIT_BAD_INPUT, main
from tests.local_kino import KINO, free_port, kino_up_local


@pytest.fixture(scope="module")
def running_kino(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("kino-data")
    with kino_up_local(data_dir) as (address, process):
        yield address, process, data_dir


def _kino(*args, target: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "KINO_TARGET"}
    if target:
        env["KINO_TARGET"] = target
    return subprocess.run([*KINO, *args], env=env, capture_output=True, text=True, timeout=120, cwd=cwd)


def test_encode_prints_the_embedding(running_kino):
    address, _, _ = running_kino
    result = _kino("encode", "a red circle bouncing", target=address)
    assert result.returncode == 0, result.stderr
    assert "dim: 384" in result.stdout and "|pooled| = 1.0000" in result.stdout


def test_generate_writes_an_mp4_that_ffprobe_accepts_and_verify_traces(running_kino, tmp_path):
    import json

    address, _, _ = running_kino
    output = tmp_path / "clip.mp4"
    result = _kino("generate", "a blue square moves left", "-o", str(output), "--seed", "1", target=address)
    assert result.returncode == 0, result.stderr
    assert output.stat().st_size > 0 and "videos/" in result.stdout
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,pix_fmt", "-of", "json", str(output)],
        capture_output=True,
        text=True,
        check=True,
    )
    codecs = {stream["codec_name"] for stream in json.loads(probe.stdout)["streams"]}
    assert codecs == {"h264", "aac"}
    verified = _kino("verify", str(output), target=address)
    assert verified.returncode == 0 and "C2PA:       valid" in verified.stdout, verified.stdout


def test_generate_without_weights_fails_clearly(tmp_path):
    """With no video model, the job fails with BACKEND_UNAVAILABLE and no file is written."""
    empty = tmp_path / "no-weights"
    empty.mkdir()
    output = tmp_path / "clip.mp4"
    env_dir = tmp_path / "var"
    result = subprocess.run(
        [*KINO, "--data-dir", str(env_dir), "generate", "a red circle", "-o", str(output)],
        env={
            **{k: v for k, v in os.environ.items() if k != "KINO_TARGET"},
            "KINO_DENOISER__WEIGHTS_DIR": str(empty),
        },
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 1, result.stderr
    assert "BACKEND_UNAVAILABLE" in result.stderr
    assert not output.exists()


def test_generate_with_bad_input_exits_2_with_the_reason(running_kino):
    address, _, _ = running_kino
    result = _kino("generate", "", target=address)
    assert result.returncode == 2
    assert "INVALID_ARGUMENT" in result.stderr and "FIELD_REQUIRED" in result.stderr


def test_jobs_lists_what_was_submitted(running_kino, tmp_path):
    address, _, _ = running_kino
    _kino(
        "generate",
        "a green triangle stays still",
        "--user",
        "lister",
        "-o",
        str(tmp_path / "t.mp4"),
        target=address,
    )
    result = _kino("jobs", "--user", "lister", target=address)
    assert result.returncode == 0, result.stderr
    assert "a green triangle stays still" in result.stdout and "SUCCEEDED" in result.stdout


def test_verify_reports_manifest_and_watermark_of_a_kino_file(running_kino, tmp_path):
    from services.common.settings import load_settings
    from services.gateway.provenance import ProvenanceClaims, load_credentials, package_video, prompt_digest
    from training.shapes_world import SceneSpec, render

    address, _, data_dir = running_kino
    clip = render(SceneSpec("circle", "large", "red", "bounces left and right", "rubber", "black", seed=3))
    claims = ProvenanceClaims(
        "kino-test", prompt_digest("a red circle"), "jobs/j1", "videos/0123456789abcdef0123"
    )
    credentials = load_credentials(load_settings(env={"KINO_DATA_DIR": str(data_dir)}))
    path = tmp_path / "signed.mp4"
    path.write_bytes(package_video(clip.frames, 8.0, None, 48000, claims, credentials))

    result = _kino("verify", str(path), target=address)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "C2PA:       valid" in result.stdout and "jobs/j1" in result.stdout
    assert "watermark:  videos/0123456789abcdef" in result.stdout

    tampered = bytearray(path.read_bytes())
    tampered[len(tampered) // 2] ^= 0xFF
    path.write_bytes(bytes(tampered))
    result = _kino("verify", str(path), target=address)
    assert result.returncode == 1 and "INVALID" in result.stdout


def test_verify_of_a_file_that_is_not_media_exits_2(running_kino, tmp_path):
    address, _, _ = running_kino
    path = tmp_path / "notes.txt"
    path.write_text("not a video")
    result = _kino("verify", str(path), target=address)
    assert result.returncode == 2 and "INVALID_MEDIA" in result.stderr


@pytest.mark.parametrize(
    "args, expected",
    [
        (["generate", "a ball", "--seed", "1" * 20], "--seed"),
        (["generate", "a ball", "--steps", "9999999999"], "--steps"),
        (["jobs", "--limit", "9999999999"], "--limit"),
        (["generate", "a \udcff ball"], "not valid UTF-8"),
        (["generate", "a ball", "--user", "\udcffbob"], "not valid UTF-8"),
        (["generate", "a ball", "--remix-of", "videos/\udcff"], "not valid UTF-8"),
    ],
    ids=["seed beyond int64", "steps beyond int32", "limit beyond int32", "prompt", "user", "video name"],
)
def test_flag_values_no_request_can_carry_are_usage_errors_not_tracebacks(args, expected, capsys):
    """A number beyond its field's range, or bytes a shell passed that are not UTF-8 text."""
    with pytest.raises(SystemExit) as exited:
        main([*args, "--target", f"127.0.0.1:{free_port()}"])
    assert exited.value.code == EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert expected in error and "Traceback" not in error


def test_generate_into_a_folder_is_refused_before_anything_is_submitted(tmp_path, capsys):
    """The output is checked first, so a job's video is never made only to fail at the write."""
    code = main(["generate", "a ball", "-o", str(tmp_path), "--target", f"127.0.0.1:{free_port()}"])
    assert code == EXIT_BAD_INPUT
    assert "is a folder" in capsys.readouterr().err


def test_unreachable_target_exits_3():
    result = _kino("jobs", target=f"127.0.0.1:{free_port()}")
    assert result.returncode == 3
    assert "UNAVAILABLE" in result.stderr


def test_loadtest_with_a_bad_mix_is_a_usage_error(running_kino):
    address, _, _ = running_kino
    result = _kino("loadtest", "--mix", "teleport=1", "--duration", "1", target=address)
    assert result.returncode == 2 and "teleport" in result.stderr


def test_sigterm_stops_the_server_gracefully(running_kino):
    address, process, _ = running_kino
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "stopped" in output


def test_demo_runs_the_main_job_on_the_embedded_default(tmp_path):
    result = _kino("--data-dir", str(tmp_path / "var"), "demo", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "text encoder" in result.stdout and "all-MiniLM-L6-v2" in result.stdout
    assert (tmp_path / "out" / "demo.mp4").stat().st_size > 0
