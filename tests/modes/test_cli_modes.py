"""`kino generate` with each mode's flags against the running Kino, and its errors and exit codes."""

from __future__ import annotations

import json

import pytest

from kino.v1 import generation_pb2
from services.cli import EXIT_BAD_INPUT, CliError, _spec_from_args, build_parser
from tests.gateway.helpers import png_declaring
from tests.modes.helpers import png, scene
from tests.test_cli import _kino


@pytest.fixture(scope="module")
def made(kino, tmp_path_factory):
    """A video made from an image with the CLI: its name, for the remix and extend commands."""
    folder = tmp_path_factory.mktemp("cli-modes")
    image = folder / "first.png"
    image.write_bytes(png(scene(64)))
    result = _kino(
        "generate", "a red ball moves right", "--image", str(image), "--seed", "3",
        "-o", str(folder / "i2v.mp4"), target=kino.address,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (folder / "i2v.mp4").stat().st_size > 0
    return result.stdout.split(": ")[1].split(",")[0]


def test_remix_and_extend_name_their_source(kino, made, tmp_path):
    remix = _kino(
        "generate", "a blue ball moves right", "--remix-of", made, "--strength", "0.5",
        "-o", str(tmp_path / "remix.mp4"), target=kino.address,
    )  # fmt: skip
    assert remix.returncode == 0, remix.stderr
    assert f"from {made}" in remix.stdout
    bare_id = made.removeprefix("videos/")
    extend = _kino(
        "generate", "the ball keeps going", "--extend", bare_id, "--seconds", "1",
        "-o", str(tmp_path / "extend.mp4"), target=kino.address,
    )  # fmt: skip
    assert extend.returncode == 0, extend.stderr
    assert "3.00 s" in extend.stdout and f"from {made}" in extend.stdout


def test_storyboard_from_a_file(kino, tmp_path):
    board = tmp_path / "board.json"
    board.write_text(
        json.dumps(
            {
                "prompt": "a green square",
                "shots": [{"prompt": "moves left", "seconds": 1}, {"prompt": "stays still", "seconds": 1}],
            }
        )
    )
    result = _kino("generate", "--storyboard", str(board), "-o", str(tmp_path / "s.mp4"), target=kino.address)
    assert result.returncode == 0, result.stderr
    assert "2.00 s" in result.stdout


def test_cameo_register_and_consent_from_the_cli(kino, tmp_path):
    image = tmp_path / "me.png"
    image.write_bytes(png(scene(64, color=(40, 220, 230))))
    registered = _kino("cameo", "register", str(image), "--user", "carol", target=kino.address)
    assert registered.returncode == 0, registered.stderr
    cameo = registered.stdout.split(":")[0]
    assert cameo.startswith("cameos/") and "only_me" in registered.stdout
    refused = _kino("generate", "a ball", "--cameo", cameo, "--user", "dave", target=kino.address)
    assert refused.returncode == 2 and "FAILED_PRECONDITION CAMEO_CONSENT_MISSING" in refused.stderr
    revoked = _kino("cameo", "revoke", cameo, "--user", "carol", target=kino.address)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout


def _board(tmp_path, shots) -> str:
    path = tmp_path / "board.json"
    path.write_text(json.dumps({"shots": shots}))
    return str(path)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--remix-of", "videos/nosuchvideo"], "NOT_FOUND VIDEO_NOT_FOUND"),
        (["--extend", "nosuchvideo"], "NOT_FOUND VIDEO_NOT_FOUND"),
        (["--cameo", "nosuchcameo"], "NOT_FOUND CAMEO_NOT_FOUND"),
        (["--path", "0:0.2,0.5 1:1.4,0.5"], "INVALID_ARGUMENT OUT_OF_RANGE"),
        (["--image", "{tmp}/notes.txt"], "INVALID_ARGUMENT INVALID_MEDIA"),
        (["--image", "{tmp}/huge.png"], "INVALID_ARGUMENT INVALID_MEDIA"),
        (["--image", "{tmp}/bomb.png"], "INVALID_ARGUMENT INVALID_MEDIA"),
        (["--storyboard", "{tmp}/many.json"], "INVALID_ARGUMENT OUT_OF_RANGE"),
        (["--storyboard", "{tmp}/zero.json"], "INVALID_ARGUMENT OUT_OF_RANGE"),
    ],
    ids=[
        "unknown remix source",
        "unknown extend source",
        "unknown cameo",
        "path outside the frame",
        "not an image",
        "image too big",
        "decompression bomb",
        "too many shots",
        "zero-length shot",
    ],
)
def test_bad_input_the_server_refuses_exits_2_with_the_reason(kino, tmp_path, args, expected):
    (tmp_path / "notes.txt").write_text("not an image, not a storyboard")
    (tmp_path / "huge.png").write_bytes(png_declaring(5000, 8))
    (tmp_path / "bomb.png").write_bytes(png_declaring(100_000, 100_000))
    _board(tmp_path, [{"prompt": "a ball", "seconds": 1}] * 17)
    (tmp_path / "board.json").rename(tmp_path / "many.json")
    _board(tmp_path, [{"prompt": "a ball", "seconds": 0}])
    (tmp_path / "board.json").rename(tmp_path / "zero.json")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = _kino("generate", "a red ball moves right", *args, target=kino.address)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert expected in result.stderr


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--path", "left then right"], "is not TIME:X,Y"),
        (["--camera", "dolly"], "the move is one of"),
        (["--image", "{tmp}/missing.png"], "No such file"),
        (["--storyboard", "{tmp}/notes.txt"], "expected"),
        (["--storyboard", "{tmp}/endless.yaml"], "shot 1 seconds must be a number"),
        (["--storyboard", "{tmp}/surrogate.json"], "shot 1 prompt is not valid UTF-8"),
        (["--storyboard", "{tmp}/numbers.yaml"], "prompt must be text"),
        (["--image", ""], "the file name is empty"),
        (["--storyboard", ""], "the file name is empty"),
        (["--path", ""], "needs at least one TIME:X,Y point"),
        (["--camera", ""], "the move is one of"),
    ],
    ids=[
        "malformed path",
        "unknown camera move",
        "missing image",
        "not a storyboard",
        "shot length beyond any number",
        "shot prompt not text",
        "shared prompt a list",
        "empty image name",
        "empty storyboard name",
        "empty path",
        "empty camera move",
    ],
)
def test_flags_that_cannot_make_a_spec_are_usage_errors(tmp_path, args, expected):
    (tmp_path / "notes.txt").write_text("not a storyboard")
    (tmp_path / "endless.yaml").write_text(f"shots:\n  - prompt: a ball\n    seconds: {10**400}\n")
    (tmp_path / "surrogate.json").write_text('{"shots": [{"prompt": "a \\ud800 ball", "seconds": 1}]}')
    (tmp_path / "numbers.yaml").write_text("prompt: [1, 2]\nshots:\n  - prompt: a ball\n    seconds: 1\n")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    with pytest.raises(CliError) as caught:
        _spec_from_args(build_parser().parse_args(["generate", "a ball", *args]))
    assert caught.value.exit_code == EXIT_BAD_INPUT and expected in str(caught.value)


@pytest.mark.parametrize("flag", ["--remix-of", "--extend"])
def test_an_empty_source_still_asks_for_its_mode(flag):
    """An empty value is a mistake for the server to name (MALFORMED_NAME), not a text-to-video job."""
    spec = _spec_from_args(build_parser().parse_args(["generate", "a ball", flag, ""]))
    assert spec.mode != generation_pb2.GENERATION_MODE_TEXT_TO_VIDEO and spec.source_video == "videos/"
