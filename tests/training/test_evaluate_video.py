import json

import numpy as np

from training.evaluate_video import Sample, caption_names_size, clip_record
from training.evaluator import score
from training.shapes_world import NUM_FRAMES, SceneSpec, render


def test_a_clip_record_says_what_was_asked_and_what_the_evaluator_read_frame_by_frame():
    spec = SceneSpec("square", "small", "cyan", "bounces left and right", "rubber", "black", 5)
    clip = render(spec)
    record = clip_record(
        Sample(spec, "a small cyan square bouncing left and right", clip.frames, score(clip.frames, spec))
    )
    assert record["read"] == {"color": "cyan", "shape": "square", "size": "small", "motion": spec.motion}
    assert record["score"]["no_flicker"] and record["size_named"]
    assert len(record["areas"]) == len(record["centroids"]) == NUM_FRAMES
    json.dumps(record, allow_nan=False)  # strict JSON: no NaN or Infinity


def test_a_vanished_subject_is_written_as_null_not_nan():
    spec = SceneSpec("circle", "large", "red", "stays still", "wood", "black", 1)
    frames = np.zeros((NUM_FRAMES, 64, 64, 3), np.uint8)  # nothing but the backdrop
    record = clip_record(Sample(spec, "a red circle", frames, score(frames, spec)))
    assert record["score"]["area_cv"] is None and record["centroids"][0] == [None, None]
    json.dumps(record, allow_nan=False)


def test_size_words_are_recognized_in_any_paraphrase():
    assert caption_names_size("tiny blue glass triangle sitting still")
    assert caption_names_size("a big, red circle")
    assert not caption_names_size("cyan rubber square bouncing left and right")
