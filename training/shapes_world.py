"""The shapes world: Kino's synthetic video domain, small enough to train a text-to-video model on a CPU.

A scene is one object (shape, size, color, material) moving over a plain background. `render` turns a
`SceneSpec` into uint8 frames plus the ground truth of what happens in them: the object's centroid in
every frame and every impact (wall or floor contact, where the velocity reverses). The audio model
places impact sounds at those times, and the evaluator checks generated videos against the same facts.

Captions say the same thing in many ways, and `parse_caption` reads any of them back into attributes.
`HELD_OUT_COMBOS` lists the (color, shape, motion) triples training never sees.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

FPS = 8
NUM_FRAMES = 16
SIZE = 64  # frames are SIZE x SIZE pixels

SHAPES = ("circle", "square", "triangle")
SIZES = ("small", "large")
COLORS = ("red", "green", "blue", "yellow", "magenta", "cyan", "white", "orange")
BACKGROUNDS = ("black", "gray", "navy")
MOTIONS = (
    "moves left",
    "moves right",
    "moves up",
    "moves down",
    "bounces left and right",
    "bounces on the floor",
    "stays still",
)
MATERIALS = ("rubber", "metal", "wood", "glass")

PALETTE = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 100, 245),
    "yellow": (240, 220, 40),
    "magenta": (220, 50, 220),
    "cyan": (40, 220, 230),
    "white": (245, 245, 245),
    "orange": (250, 140, 20),
}
BACKGROUND_PALETTE = {
    "black": (0, 0, 0),
    "gray": (110, 110, 110),
    "navy": (20, 25, 90),
}
# Half the side of the object's bounding box, in pixels.
HALF_EXTENT = {"small": 7.0, "large": 12.0}
# Fraction of vertical speed kept at a floor bounce; the audio issue maps material to timbre too.
RESTITUTION = {"rubber": 0.8, "metal": 0.55, "wood": 0.6, "glass": 0.65}

# One (color, shape, motion) triple every 16 steps of three co-prime cycles: each color is held out
# twice, each shape five or six times, each motion two or three times, and all 16 triples differ.
HELD_OUT_COMBOS = frozenset(
    (COLORS[i % len(COLORS)], SHAPES[i % len(SHAPES)], MOTIONS[(3 * i) % len(MOTIONS)]) for i in range(16)
)


@dataclass(frozen=True)
class SceneSpec:
    """Everything that decides a clip. Start position and speed come from `seed`."""

    shape: str
    size: str
    color: str
    motion: str
    material: str
    background: str
    seed: int

    def __post_init__(self):
        for value, allowed in (
            (self.shape, SHAPES),
            (self.size, SIZES),
            (self.color, COLORS),
            (self.motion, MOTIONS),
            (self.material, MATERIALS),
            (self.background, BACKGROUNDS),
        ):
            if value not in allowed:
                raise ValueError(f"{value!r} is not one of {allowed}")
        if PALETTE[self.color] == BACKGROUND_PALETTE[self.background]:
            raise ValueError("the background must differ from the object's color")

    @property
    def combo(self) -> tuple[str, str, str]:
        return (self.color, self.shape, self.motion)


@dataclass(frozen=True)
class Impact:
    """A contact that reverses the object's velocity."""

    frame: int  # the frame nearest the contact
    time_s: float  # exact contact time from the start of the clip
    surface: str  # "left wall", "right wall" or "floor"
    speed: float  # pixels per frame into the surface, before the bounce


@dataclass(frozen=True)
class Clip:
    frames: np.ndarray  # uint8 (F, H, W, 3)
    masks: np.ndarray  # bool (F, H, W), the object's pixels
    centroids: np.ndarray  # float32 (F, 2), (x, y) of the object's pixels
    impacts: tuple[Impact, ...]
    spec: SceneSpec
    caption: str


def sample_spec(rng: np.random.Generator, *, held_out: bool | None = False) -> SceneSpec:
    """A random spec; held_out=False keeps to training combos, True to held-out ones, None to any."""
    while True:
        spec = SceneSpec(
            shape=SHAPES[rng.integers(len(SHAPES))],
            size=SIZES[rng.integers(len(SIZES))],
            color=COLORS[rng.integers(len(COLORS))],
            motion=MOTIONS[rng.integers(len(MOTIONS))],
            material=MATERIALS[rng.integers(len(MATERIALS))],
            background=BACKGROUNDS[rng.integers(len(BACKGROUNDS))],
            seed=int(rng.integers(2**31)),
        )
        if held_out is None or (spec.combo in HELD_OUT_COMBOS) == held_out:
            return spec


# ---------------------------------------------------------------------------------------------
# Motion
# ---------------------------------------------------------------------------------------------


def _trajectory(spec: SceneSpec, num_frames: int = NUM_FRAMES) -> tuple[np.ndarray, list[Impact]]:
    """Bounding-box centres (num_frames, 2) in pixels and the impacts, for the spec's motion. The first
    NUM_FRAMES are the clip's whatever num_frames is; past them the same laws go on (`long_path`)."""
    rng = np.random.default_rng(spec.seed)
    r = HALF_EXTENT[spec.size]
    lo, hi = r + 1.0, SIZE - r - 1.0
    last = NUM_FRAMES - 1
    t = np.arange(num_frames, dtype=np.float64)
    impacts: list[Impact] = []

    if spec.motion == "stays still":
        x, y = rng.uniform(lo, hi), rng.uniform(lo, hi)
        return np.stack([np.full_like(t, x), np.full_like(t, y)], axis=1), impacts

    if spec.motion in ("moves left", "moves right", "moves up", "moves down"):
        speed = rng.uniform(1.5, 2.5)
        travel = speed * last
        start = rng.uniform(lo, hi - travel)  # along the motion axis, before the sign is applied
        along = np.minimum(start + speed * t, hi)  # past the clip, it stops at the far side
        if spec.motion in ("moves left", "moves up"):
            along = lo + hi - along
        across = np.full_like(t, rng.uniform(lo, hi))
        xy = (along, across) if spec.motion in ("moves left", "moves right") else (across, along)
        return np.stack(xy, axis=1), impacts

    if spec.motion == "bounces left and right":
        # Rejection-sample until the first wall contact is visible on both sides of the reversal.
        left_wall, right_wall = r, SIZE - r
        while True:
            vx = rng.uniform(4.0, 6.0) * rng.choice([-1.0, 1.0])
            x0 = rng.uniform(lo, hi)
            xs, impacts, x, v = [x0], [], x0, vx
            for f in range(1, num_frames):
                nx = x + v
                if nx > right_wall or nx < left_wall:
                    wall = right_wall if nx > right_wall else left_wall
                    frac = (wall - x) / v
                    impacts.append(
                        Impact(f, (f - 1 + frac) / FPS, "right wall" if v > 0 else "left wall", abs(v))
                    )
                    nx = 2 * wall - nx
                    v = -v
                xs.append(nx)
                x = nx
            if impacts and 2 <= impacts[0].frame <= last - 2:
                break
        y = rng.uniform(lo, hi)
        for i, imp in enumerate(impacts):
            impacts[i] = dataclasses.replace(imp, frame=_nearest_frame(imp.time_s, num_frames))
        return np.stack([np.array(xs), np.full(num_frames, y)], axis=1), impacts

    if spec.motion == "bounces on the floor":
        floor = SIZE - r
        restitution = RESTITUTION[spec.material]
        while True:
            gravity = rng.uniform(0.9, 1.3)
            y0 = rng.uniform(lo, lo + 14.0)
            vy0 = rng.uniform(0.0, 1.5)
            ys, impacts = _fall(y0, vy0, gravity, floor, restitution, num_frames)
            if impacts and 2 <= impacts[0].frame <= last - 3:
                break
        x = rng.uniform(lo, hi)
        return np.stack([np.full(num_frames, x), ys], axis=1), impacts

    raise AssertionError(spec.motion)


def _fall(
    y0: float, vy0: float, gravity: float, floor: float, restitution: float, num_frames: int = NUM_FRAMES
) -> tuple[np.ndarray, list[Impact]]:
    """Exact ballistic motion sampled at every frame, with bounces solved in closed form."""
    ys = np.empty(num_frames)
    impacts: list[Impact] = []
    t0, y, v = 0.0, y0, vy0  # the current arc starts at time t0 (in frames) at height y, speed v (down > 0)
    for f in range(num_frames):
        while True:
            # Time from t0 at which this arc reaches the floor: y + v*s + g*s^2/2 = floor.
            s = (-v + math.sqrt(v * v + 2 * gravity * (floor - y))) / gravity
            if t0 + s > f or v * v < 1e-6:
                break
            impact_speed = v + gravity * s
            impact_frame = _nearest_frame((t0 + s) / FPS, num_frames)
            impacts.append(Impact(impact_frame, (t0 + s) / FPS, "floor", impact_speed))
            t0, y, v = t0 + s, floor, -impact_speed * restitution
        dt = f - t0
        ys[f] = min(floor, y + v * dt + 0.5 * gravity * dt * dt)
    return ys, impacts


def _nearest_frame(time_s: float, num_frames: int = NUM_FRAMES) -> int:
    return min(num_frames - 1, int(round(time_s * FPS)))


# ---------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------

_PIXEL_CENTRES = np.arange(SIZE, dtype=np.float32) + 0.5


def shape_mask(shape: str, cx: float, cy: float, r: float) -> np.ndarray:
    """bool (H, W): the pixels whose centres fall inside the shape with bounding box centre (cx, cy)."""
    dx = _PIXEL_CENTRES[None, :] - cx
    dy = _PIXEL_CENTRES[:, None] - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    if shape == "triangle":  # upright: apex at the top, base at the bottom, as wide as it is tall
        return (dy >= -r) & (dy <= r) & (np.abs(dx) <= (dy + r) / 2)
    raise ValueError(shape)


def render(spec: SceneSpec, caption_rng: np.random.Generator | None = None) -> Clip:
    """Frames, masks, centroids and impacts for one spec; the caption is drawn with caption_rng."""
    centres, impacts = _trajectory(spec)
    caption = make_caption(spec, caption_rng or np.random.default_rng(spec.seed))
    return _draw(spec, centres, tuple(impacts), caption)


# Frames of a motion carried on past its clip that continuation windows are cut from.
LONG_PATH_FRAMES = 64


def render_continuation(spec: SceneSpec, rng: np.random.Generator) -> Clip:
    """A clip cut at a random point after frame 0 from the spec's motion carried on past its clip (see
    `long_path`), captioned as usual: what extending a video asks the model to continue from, such as
    an object resting at the far side after "moves right" or caught between two bounces."""
    start = int(rng.integers(1, LONG_PATH_FRAMES - NUM_FRAMES + 1))
    centres, _ = _trajectory(spec, LONG_PATH_FRAMES)
    return _draw(spec, centres[start : start + NUM_FRAMES], (), make_caption(spec, rng))


def long_path(spec: SceneSpec, num_frames: int) -> np.ndarray:
    """The object's centroid (num_frames, 2) in pixels when the spec's motion goes on past its clip:
    bounces keep bouncing, a fall settles on the floor, and a straight move stops at the far side of
    the frame. The first NUM_FRAMES are `render(spec)`'s. What a continuation (extending a video)
    should do, from any point of it."""
    centres, _ = _trajectory(spec, num_frames)
    return _masks_and_centroids(spec, centres)[1]


PATH_PHRASES = ("following a path", "moving along a path", "taking a winding route", "wandering around")


def random_path(rng: np.random.Generator, half_extent: float) -> np.ndarray:
    """Bounding-box centres (F, 2) in pixels along 2 to 4 random waypoints, straight between them, with
    the object sometimes waiting at the first: paths no physical motion of the world makes."""
    low, high = half_extent + 1, SIZE - half_extent - 1
    waypoints = rng.uniform(low, high, size=(rng.integers(2, 5), 2))
    times = np.sort(rng.uniform(0, 1, size=len(waypoints)))
    times[0], times[-1] = (rng.uniform(0, 0.4) if rng.random() < 0.3 else 0.0), 1.0
    frame_times = np.linspace(0, 1, NUM_FRAMES)
    return np.stack([np.interp(frame_times, times, waypoints[:, i]) for i in range(2)], axis=1)


def render_along_path(spec: SceneSpec, rng: np.random.Generator) -> Clip:
    """A clip of the spec's object on a random path (`random_path`), captioned as following a path; its
    spec's motion is not what happens. For teaching a model to follow a requested path."""
    centres = random_path(rng, HALF_EXTENT[spec.size])
    return _draw(spec, centres, (), make_caption(spec, rng, motion_phrase=PATH_PHRASES[rng.integers(4)]))


def _masks_and_centroids(spec: SceneSpec, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The object's pixels bool (F, H, W) at bounding-box centres (F, 2), and their centroids float32
    (F, 2): where the object is, as a clip's ground truth and a long path both measure it."""
    r = HALF_EXTENT[spec.size]
    masks = np.stack([shape_mask(spec.shape, cx, cy, r) for cx, cy in centres])  # (F, H, W)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5
    area = masks.sum(axis=(1, 2))
    centroids = np.stack([(masks * xs).sum(axis=(1, 2)) / area, (masks * ys).sum(axis=(1, 2)) / area], axis=1)
    return masks, centroids.astype(np.float32)


def _draw(spec: SceneSpec, centres: np.ndarray, impacts: tuple[Impact, ...], caption: str) -> Clip:
    masks, centroids = _masks_and_centroids(spec, centres)
    frames = np.empty((NUM_FRAMES, SIZE, SIZE, 3), np.uint8)
    frames[:] = BACKGROUND_PALETTE[spec.background]
    frames[masks] = PALETTE[spec.color]
    return Clip(frames, masks, centroids, impacts, spec, caption)


def render_reference(spec: SceneSpec, rng: np.random.Generator) -> np.ndarray:
    """uint8 (H, W, 3): a still of the spec's object at a random place, the appearance a cameo supplies."""
    r = HALF_EXTENT[spec.size]
    cx, cy = rng.uniform(r + 1, SIZE - r - 1, size=2)
    image = np.empty((SIZE, SIZE, 3), np.uint8)
    image[:] = BACKGROUND_PALETTE[spec.background]
    image[shape_mask(spec.shape, cx, cy, r)] = PALETTE[spec.color]
    return image


@dataclass(frozen=True)
class TrainingBatch:
    """Rendered training clips of one seeded batch (`render_training_batch`), ready to encode."""

    frames: np.ndarray  # uint8 (N, F, H, W, 3)
    references: np.ndarray  # uint8 (N, H, W, 3): another still of each clip's object
    paths: np.ndarray  # float32 (N, F, 2): the object's centroid per frame, fractions of the frame
    captions: list[str]
    generic_captions: list[str]  # the same clips, described without colour and shape


def render_training_batch(
    seed: tuple[int, ...], count: int, path_fraction: float, continuation_fraction: float = 0.0
) -> TrainingBatch:
    """`count` clips of training combos, a share of them along random paths and a share cut from their
    motion past its clip (`render_continuation`), from their own seed: batches are independent, so they
    render in any order or in parallel and give the same dataset."""
    rng = np.random.default_rng(seed)
    specs = [sample_spec(rng, held_out=False) for _ in range(count)]
    along_path = rng.random(count) < path_fraction
    continued = np.zeros(count, bool)  # no draw at 0, so datasets made before the option stay the same
    if continuation_fraction:
        continued = (rng.random(count) < continuation_fraction) & ~along_path
    clips = [
        render_along_path(s, rng) if a else render_continuation(s, rng) if c else render(s, rng)
        for s, a, c in zip(specs, along_path, continued, strict=True)
    ]
    references = np.stack([render_reference(s, rng) for s in specs])
    generic = [
        make_generic_caption(c.spec, rng, PATH_PHRASES[rng.integers(len(PATH_PHRASES))] if a else None)
        for c, a in zip(clips, along_path, strict=True)
    ]
    return TrainingBatch(
        frames=np.stack([c.frames for c in clips]),
        references=references,
        paths=np.stack([c.centroids / SIZE for c in clips]).astype(np.float32),
        captions=[c.caption for c in clips],
        generic_captions=generic,
    )


# ---------------------------------------------------------------------------------------------
# Captions
# ---------------------------------------------------------------------------------------------

MOTION_PHRASES = {
    "moves left": ("moving left", "moves to the left", "sliding left", "drifting to the left", "going left"),
    "moves right": (
        "moving right",
        "moves to the right",
        "sliding right",
        "drifting to the right",
        "going right",
    ),
    "moves up": ("moving up", "rising", "floating upward", "going up", "drifting upwards"),
    "moves down": ("moving down", "sinking", "drifting downward", "going down", "descending slowly"),
    "bounces left and right": (
        "bouncing left and right",
        "bouncing between the walls",
        "ricocheting from side to side",
        "bouncing back and forth",
    ),
    "bounces on the floor": (
        "bouncing on the floor",
        "dropping onto the floor",
        "falling and bouncing",
        "bouncing off the ground",
    ),
    "stays still": (
        "staying still",
        "sitting still",
        "resting in place",
        "not moving",
        "standing motionless",
    ),
}
MATERIAL_WORDS = {
    "rubber": ("rubber",),
    "metal": ("metal", "metallic"),
    "wood": ("wood", "wooden"),
    "glass": ("glass",),
}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
SHAPE_WORDS = {"circle": ("circle", "ball", "disc"), "square": ("square", "box"), "triangle": ("triangle",)}
BACKGROUND_TEMPLATES = ("on a {} background", "over a {} backdrop", "against {}", "in front of a {} wall")
SENTENCE_TEMPLATES = ("{article} {noun} {motion}{bg}", "{article} {noun} {motion}{bg}", "{noun} {motion}{bg}")


def make_caption(spec: SceneSpec, rng: np.random.Generator, motion_phrase: str | None = None) -> str:
    """One of many paraphrases; size, material and background are each mentioned or not at random.
    motion_phrase replaces the spec's motion (clips rendered along a path)."""

    def pick(options):
        return options[rng.integers(len(options))]

    adjectives = [spec.color]
    if rng.random() < 0.6:
        adjectives.insert(0, pick(MATERIAL_WORDS[spec.material]))
    if rng.random() < 0.6:
        adjectives.insert(0, pick(SIZE_WORDS[spec.size]))
    if len(adjectives) > 1 and rng.random() < 0.5:
        adjectives[-1], adjectives[-2] = adjectives[-2], adjectives[-1]
    noun = " ".join([*adjectives, pick(SHAPE_WORDS[spec.shape])])
    bg = " " + pick(BACKGROUND_TEMPLATES).format(spec.background) if rng.random() < 0.6 else ""
    template = pick(SENTENCE_TEMPLATES)
    article = "an" if noun[0] in "aeiou" else "a"
    motion = motion_phrase or pick(MOTION_PHRASES[spec.motion])
    return template.format(article=article, noun=noun, motion=motion, bg=bg)


GENERIC_NOUNS = ("object", "thing", "shape", "subject", "character")


def make_generic_caption(spec: SceneSpec, rng: np.random.Generator, motion_phrase: str | None = None) -> str:
    """A caption that says how the subject moves but not what it looks like ("an object moving left"):
    with a reference image beside it, the model must take colour and shape from the image (cameo)."""

    def pick(options):
        return options[rng.integers(len(options))]

    noun = pick(GENERIC_NOUNS)
    if rng.random() < 0.3:
        noun = f"{pick(SIZE_WORDS[spec.size])} {noun}"
    bg = " " + pick(BACKGROUND_TEMPLATES).format(spec.background) if rng.random() < 0.4 else ""
    article = "an" if noun[0] in "aeiou" else "a"
    motion = motion_phrase or pick(MOTION_PHRASES[spec.motion])
    return pick(SENTENCE_TEMPLATES).format(article=article, noun=noun, motion=motion, bg=bg)


@dataclass(frozen=True)
class CaptionAttributes:
    """What a caption says; None where it says nothing."""

    color: str | None
    shape: str | None
    motion: str | None
    size: str | None
    material: str | None
    background: str | None


def parse_caption(caption: str) -> CaptionAttributes:
    """Reads a caption made by `make_caption` back into attributes."""
    text = f" {caption.lower()} "
    background = next(
        (b for b in BACKGROUNDS if any(t.format(b) in text for t in BACKGROUND_TEMPLATES)), None
    )
    if background is not None:
        for template in BACKGROUND_TEMPLATES:
            text = text.replace(template.format(background), " ")

    def word(table: dict[str, tuple[str, ...]]) -> str | None:
        return next((key for key, words in table.items() if any(f" {w} " in text for w in words)), None)

    motion = next(
        (m for m, phrases in MOTION_PHRASES.items() if any(f" {p}" in text for p in phrases)),
        None,
    )
    return CaptionAttributes(
        color=word({c: (c,) for c in COLORS}),
        shape=word(SHAPE_WORDS),
        motion=motion,
        size=word(SIZE_WORDS),
        material=word(MATERIAL_WORDS),
        background=background,
    )
