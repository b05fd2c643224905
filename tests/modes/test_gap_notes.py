"""The modes report's closing notes follow its numbers: a note for each missed target, naming the chain
that missed it."""

from services.gateway.evaluate_modes import gap_notes


def chain(caption: str, normal_step: float, within: float, same_shape: float, shapes: list[str]) -> dict:
    return {
        "caption": caption,
        "normal_step_px": normal_step,
        "seam_step_px_median": 2.5 * normal_step,
        "seam_step_within_2x": within,
        "same_color": 1.0,
        "same_shape": same_shape,
        "first_color": "red",
        "first_shape": shapes[0],
        "colors_seen": ["red"],
        "shapes_seen": shapes,
    }


def test_seam_and_identity_notes_name_the_resting_chain_and_the_shapes_read():
    report = {
        "extend": {
            "chains": [
                chain("a red circle bouncing", 4.5, 0.9, 1.0, ["circle"]),
                chain("a red square going right", 1.5, 0.1, 0.8, ["circle", "square"]),
            ]
        }
    }
    text = "\n".join(gap_notes(report))
    assert "**Extension seams**" in text
    assert "'a red square going right': normal step 1.5 px, seam step 3.8 px" in text
    assert "in 1 of 2 chains" in text and "read as circle / square (80% of segments as the first)" in text
    assert "The colour holds" in text


def test_no_notes_when_every_seam_and_segment_holds():
    report = {"extend": {"chains": [chain("a red circle bouncing", 4.5, 1.0, 1.0, ["circle"])]}}
    text = "\n".join(gap_notes(report))
    assert "Extension seams" not in text and "Identity" not in text
    # The section says so instead of standing empty, and points to where more chains are measured.
    assert "Every target above is met in this run. The extension's are judged on 1 chain here" in text
    assert "training.seam_probe --chains 30" in text
