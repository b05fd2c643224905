"""The path measure counts only frames where the subject can be in view: decided by the request (the
path seen through the camera), so a camera that leaves its subject is not scored on empty frames."""

import numpy as np

from services.denoiser.model.camera import CameraMotion, scene_to_view, view_params
from services.gateway.evaluate_modes import SUBJECT_PATHS, in_view
from training.shapes_world import NUM_FRAMES


def straight(start: tuple[float, float], end: tuple[float, float]) -> np.ndarray:
    return np.linspace(start, end, NUM_FRAMES)


def test_every_frame_of_the_reports_paths_is_measured_without_a_camera():
    for _, points in SUBJECT_PATHS.values():
        xy = np.array([p[1:] for p in points])
        assert in_view(xy, np.ones(len(xy))).all()


def test_a_pan_away_from_the_subject_stops_measuring_when_it_leaves_the_view():
    scene = straight((0.2, 0.5), (0.8, 0.5))
    view = scene_to_view(scene, CameraMotion.PAN_LEFT, 0.3)  # x goes 0.2 -> 1.1
    measured = in_view(view, view_params(CameraMotion.PAN_LEFT, 0.3, NUM_FRAMES)[1])
    assert measured[:10].all() and not measured[-3:].any()
    # the first frame left out is the first whose subject would be cut by the edge
    first_out = int(np.argmin(measured))
    assert view[first_out, 0] > 1 - 12 / 64 >= view[first_out - 1, 0]


def test_a_zoom_widens_the_margin_with_the_subject():
    centre = np.full((NUM_FRAMES, 2), 0.5)
    edge = np.tile([0.78, 0.5], (NUM_FRAMES, 1))
    scale = view_params(CameraMotion.ZOOM_IN, 0.5, NUM_FRAMES)[1]
    assert in_view(centre, scale).all()
    measured = in_view(edge, scale)
    assert measured[0] and not measured[-1]  # at 0.78 a large subject fits at scale 1, not at 1.5
