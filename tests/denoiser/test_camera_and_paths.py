"""Subject paths as heat maps and camera moves as view transforms (services/denoiser/model)."""

import numpy as np
import pytest
import torch

from services.common.subjects import subject_boxes, subject_centroids
from services.denoiser.model.camera import CameraMotion, apply_camera, backdrop_color, scene_to_view
from services.denoiser.model.paths import (
    EASE_IN_PX,
    FRAME_MARGIN_PX,
    STILL_PATH_SPAN,
    keep_in_frame,
    path_heatmap,
    resample_path,
    stays_still,
)


def test_the_heat_map_peaks_in_the_cell_holding_the_requested_place():
    points = torch.tensor([[[0.1, 0.9], [0.5, 0.5], [0.97, 0.03]]])  # (1, F=3, 2)
    maps = path_heatmap(points, size=16)
    assert maps.shape == (1, 1, 3, 16, 16) and float(maps.max()) <= 1.0
    peaks = [np.unravel_index(int(maps[0, 0, f].argmax()), (16, 16)) for f in range(3)]
    assert peaks[1] in {(7, 7), (7, 8), (8, 7), (8, 8)}  # the centre lies between four cells
    assert peaks[0] == (14, 1) and peaks[2] == (0, 15)


def test_a_path_is_interpolated_per_frame_and_held_outside_its_points():
    path = resample_path(np.array([1.0, 0.5]), np.array([[0.8, 0.2], [0.2, 0.2]]), num_frames=16, fps=8.0)
    assert path.shape == (16, 2)
    assert np.allclose(path[:5, 0], 0.2)  # held until 0.5 s (frame 4)
    assert np.isclose(path[6, 0], 0.2 + 0.6 * (0.75 - 0.5) / 0.5)
    assert np.allclose(path[8:, 0], 0.8)  # held after 1 s


def scene(x: int = 28, y: int = 28) -> np.ndarray:
    frames = np.full((16, 64, 64, 3), (0, 0, 128), np.uint8)  # a navy backdrop
    frames[:, y : y + 8, x : x + 8] = (255, 0, 0)
    return frames


def centroid(frame: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(frame[:, :, 0] == 255)
    return np.array([xs.mean() + 0.5, ys.mean() + 0.5]) / 64


@pytest.mark.parametrize("motion", list(CameraMotion))
def test_the_object_appears_where_the_camera_should_show_it(motion):
    frames = apply_camera(scene(), motion, 0.3)
    expected = scene_to_view(np.full((16, 2), 0.5), motion, 0.3)
    for f in (0, 7, 15):
        assert np.allclose(centroid(frames[f]), expected[f], atol=1 / 64)
    assert np.array_equal(frames[0], scene()[0])  # every move starts from the scene as it is


def test_a_pan_reveals_backdrop_and_a_zoom_scales_the_object():
    panned = apply_camera(scene(), CameraMotion.PAN_LEFT, 0.5)
    assert (panned[-1, :, :32] == (0, 0, 128)).all()  # the half the scene never rendered is backdrop
    zoomed = apply_camera(scene(), CameraMotion.ZOOM_IN, 1.0)
    assert (zoomed[-1, :, :, 0] == 255).sum() == 4 * 64  # twice the side, four times the area
    assert (backdrop_color(zoomed[-1]) == (0, 0, 128)).all()


def test_a_static_camera_or_a_zero_amount_changes_nothing():
    frames = scene()
    assert apply_camera(frames, CameraMotion.STATIC, 0.7) is frames
    assert apply_camera(frames, CameraMotion.ZOOM_OUT, 0.0) is frames


def test_the_subject_is_found_where_it_stands_out_from_the_backdrop():
    frames = scene(x=8, y=40)[:3]
    assert np.allclose(subject_centroids(frames), (12 / 64, 44 / 64))
    assert np.allclose(subject_boxes(frames), (8 / 64, 40 / 64, 16 / 64, 48 / 64))
    frames[1] = (0, 0, 128)  # the subject left the frame
    assert subject_centroids(frames) is None and subject_boxes(frames) is None


def test_a_continued_path_keeps_the_subject_as_large_as_the_known_frames_show_it_inside_the_frame():
    known = scene(x=40, y=28)[:3]  # an 8-pixel square, its box 40..48 across
    centroids, boxes = subject_centroids(known), subject_boxes(known)
    planned = np.repeat(centroids[-1:], 16, axis=0)
    planned[3:, 0] = np.linspace(0.7, 0.99, 13)  # planned on until its centre is at the frame's edge
    kept = keep_in_frame(planned, centroids, boxes, (1 / 64, 1 / 64))
    assert np.array_equal(kept[:3], planned[:3])  # the known positions are kept as they are
    assert np.isclose(kept[:, 0].max(), (64 - 4 - FRAME_MARGIN_PX) / 64)  # its box stays 2 px inside
    assert np.array_equal(kept[:, 1], planned[:, 1])  # the other axis had room


def test_a_subject_the_known_frames_show_past_the_margin_is_eased_back_without_a_jump():
    known = scene(x=58, y=28)[:3]  # 6 of its 8 columns show: 58..64, its centre 3 px from either side
    centroids, boxes = subject_centroids(known), subject_boxes(known)
    kept = keep_in_frame(np.repeat(centroids[-1:], 16, axis=0), centroids, boxes, (1 / 64, 1 / 64))
    steps = np.diff(kept[2:, 0]) * 64  # pixels per frame, from the last known frame on
    assert np.allclose(steps[:4], -EASE_IN_PX)  # moved back in no faster than EASE_IN_PX a frame
    assert np.isclose(kept[-1, 0], (64 - 3 - FRAME_MARGIN_PX) / 64)  # until its box is inside again


def test_a_path_stays_still_when_it_keeps_the_last_known_place_over_the_new_frames():
    still = np.full((16, 2), 0.5, np.float32)
    still[3:] += 0.5 * STILL_PATH_SPAN  # a wobble of a pixel or so after the known frames
    moving = np.stack([np.linspace(0.2, 0.8, 16), np.full(16, 0.5)], axis=1).astype(np.float32)
    assert stays_still(still, 3)
    assert not stays_still(moving, 3)
    # A move inside the known frames does not count; one after them does.
    arrived = moving.copy()
    arrived[3:] = arrived[2]
    assert stays_still(arrived, 3) and not stays_still(arrived, 2)
    assert not stays_still(None, 3) and not stays_still(still, 0) and not stays_still(still, 16)
