"""An invisible watermark in the luma channel that carries a video's id through re-encoding and scaling.

Payload: 64 bits that name the video (`payload_for_video`) and a CRC-16, 80 bits in all, protected by
the rate-1/2, constraint-length-7 convolutional code (generators 133/171 octal, as in 802.11 and DVB)
and decoded with soft-decision Viterbi: 172 coded bits.

Carrier: every frame is cut into a GRID x GRID grid of blocks (16 x 16: 16 x 16 pixels at 256 x 256,
8 x 8 after a 0.5x downscale). The mean luma of each block is quantized by dithered quantization index
modulation (QIM): onto the lattice `dither + k * STEP` for a 0 bit and `dither + STEP / 2 + k * STEP`
for a 1 bit. Block means are what survives: H.264 keeps low frequencies best, and downscaling
averages pixels within a block. QIM needs no knowledge of the original to decode (the content does
not interfere the way it does with additive spread spectrum) and every frame carries the whole
codeword, so the detector sums the soft decisions of all frames and needs no frame alignment.

The change is a smooth field (bilinear between block centres), not flat steps, so no block edges show;
its block means are solved iteratively to hit the lattice exactly, with clipping at 0 and 255 taken
into account. The mean change is about STEP / 4 = 1 luma level (PSNR about 44 dB); on black, where
the lattice can only be reached upwards, about STEP / 2 (PSNR about 38 dB).

Luma is Y' of BT.709 limited range (16..235), exactly the plane the MP4 encoder writes (media.mux), so
the detector reads the coded luma plane of a file with no colour conversion in between.

Where a key is secret in production, `WatermarkKey` takes it from configuration; the default key is
public, so anyone can check the watermark of Kino's own videos.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

GRID = 16  # blocks per side
STEP = 4.0  # QIM lattice step, in luma levels
PAYLOAD_BITS = 64
CRC_BITS = 16
MESSAGE_BITS = PAYLOAD_BITS + CRC_BITS
CONSTRAINT_LENGTH = 7
GENERATORS = (0o133, 0o171)
CODED_BITS = (MESSAGE_BITS + CONSTRAINT_LENGTH - 1) * len(GENERATORS)
# A decode is a detection only when the CRC matches and this share of coded bits agree with the
# re-encoded message. Viterbi always finds some close codeword: unmarked video agrees at 0.75..0.85
# (and fails the CRC but for 1 in 65536); marked video at 0.99..1 even after CRF 35.
MIN_CONFIDENCE = 0.92
_EMBED_ITERATIONS = 8
_LUMA = np.array([0.2126, 0.7152, 0.0722])
_LIMITED_SCALE = 219.0 / 255.0


@dataclass(frozen=True)
class WatermarkKey:
    """Decides the block dithers and which coded bit each block carries."""

    seed: bytes = b"kino-watermark-v1"

    def layout(self) -> tuple[np.ndarray, np.ndarray]:
        """(dither float (GRID, GRID) in [0, STEP), coded-bit index int (GRID, GRID))."""
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(self.seed).digest()[:8], "big"))
        dither = rng.uniform(0.0, STEP, size=(GRID, GRID))
        order = rng.permutation(GRID * GRID) % CODED_BITS  # every coded bit in 1 or 2 blocks
        return dither, order.reshape(GRID, GRID)


DEFAULT_KEY = WatermarkKey()


@dataclass(frozen=True)
class WatermarkReading:
    found: bool
    # The 64-bit payload, when found.
    payload: int | None
    # Share of coded bits that agree with the decoded message's codeword, 0..1.
    confidence: float
    # The decoded 64 payload bits (also when not found), for bit-accuracy measurements.
    bits: np.ndarray


# ---------------------------------------------------------------------------------------------
# Payload: video id <-> 64 bits
# ---------------------------------------------------------------------------------------------


def payload_for_video(video: str) -> int:
    """The 64 bits a video's watermark carries: the first 16 hex digits of its id.

    Kino's video ids are 32 hex digits (a UUID); 64 bits of it leave a collision between two
    videos unlikely below billions of videos, and the gateway resolves the prefix to the video.
    Ids that are not hexadecimal are hashed (SHA-256), so any id can be marked and checked.
    """
    video_id = video.removeprefix("videos/")
    digits = video_id.lower()
    if len(digits) >= 16 and all(c in "0123456789abcdef" for c in digits):
        return int(digits[:16], 16)
    return int.from_bytes(hashlib.sha256(video_id.encode()).digest()[:8], "big")


def video_for_payload(payload: int) -> str:
    """ "videos/{16 hex digits}": the id prefix a found watermark names."""
    return f"videos/{payload:016x}"


def watermark_matches(watermark_video: str, video: str) -> bool:
    """Whether a decoded watermark ("videos/{16 hex}") names this video."""
    return watermark_video == video_for_payload(payload_for_video(video))


# ---------------------------------------------------------------------------------------------
# Error detection and correction
# ---------------------------------------------------------------------------------------------


def crc16(bits: np.ndarray) -> np.ndarray:
    """CRC-16/CCITT (polynomial 0x1021, initial 0xFFFF) of a bit array, as 16 bits."""
    register = 0xFFFF
    for bit in bits.astype(int):
        top = ((register >> 15) & 1) ^ bit
        register = ((register << 1) & 0xFFFF) ^ (0x1021 if top else 0)
    return np.array([(register >> (15 - i)) & 1 for i in range(16)], np.uint8)


def _int_to_bits(value: int, n: int) -> np.ndarray:
    return np.array([(value >> (n - 1 - i)) & 1 for i in range(n)], np.uint8)


def _bits_to_int(bits: np.ndarray) -> int:
    return int("".join(str(int(b)) for b in bits), 2)


def _parity(x: np.ndarray) -> np.ndarray:
    return np.array([bin(int(v)).count("1") & 1 for v in np.ravel(x)], np.uint8).reshape(np.shape(x))


def convolutional_encode(bits: np.ndarray) -> np.ndarray:
    """Rate-1/2 K=7 code; the register is flushed with K-1 zero tail bits."""
    state = 0
    out = []
    for bit in np.concatenate([bits, np.zeros(CONSTRAINT_LENGTH - 1, np.uint8)]).astype(int):
        state = ((state << 1) | bit) & ((1 << CONSTRAINT_LENGTH) - 1)
        out.extend(bin(state & g).count("1") & 1 for g in GENERATORS)
    return np.array(out, np.uint8)


def viterbi_decode(soft: np.ndarray) -> np.ndarray:
    """Most likely message for soft values (> 0 means a 1 bit), one per coded bit."""
    n = len(GENERATORS)
    num_states = 1 << (CONSTRAINT_LENGTH - 1)
    steps = len(soft) // n
    # State = the last K-1 input bits, newest lowest. Next state ns is reached with input ns & 1
    # from either of two predecessors, (ns >> 1) and (ns >> 1) | top bit.
    next_states = np.arange(num_states)
    predecessors = np.stack([next_states >> 1, (next_states >> 1) | (num_states >> 1)], axis=1)  # (S, 2)
    registers = (predecessors << 1) | (next_states & 1)[:, None]  # (S, 2) full K-bit registers
    signs = np.stack([_parity(registers & g) for g in GENERATORS], axis=-1) * 2.0 - 1.0  # (S, 2, n)
    metric = np.full(num_states, -np.inf)
    metric[0] = 0.0
    choice = np.zeros((steps, num_states), np.int64)
    for t in range(steps):
        candidate = metric[predecessors] + signs @ soft[t * n : (t + 1) * n]  # (S, 2)
        choice[t] = np.argmax(candidate, axis=1)
        metric = candidate[next_states, choice[t]]
    state = 0  # the tail flushes the register to zero
    decoded = np.zeros(steps, np.uint8)
    for t in range(steps - 1, -1, -1):
        decoded[t] = state & 1
        state = predecessors[state, choice[t, state]]
    return decoded[: steps - (CONSTRAINT_LENGTH - 1)]


def codeword(payload: int) -> np.ndarray:
    """The CODED_BITS bits that carry a 64-bit payload."""
    message = _int_to_bits(payload, PAYLOAD_BITS)
    return convolutional_encode(np.concatenate([message, crc16(message)]))


# ---------------------------------------------------------------------------------------------
# Luma and block means
# ---------------------------------------------------------------------------------------------


def luma_of_rgb(frames: np.ndarray) -> np.ndarray:
    """float64 (F, H, W): BT.709 limited-range Y' of uint8 RGB frames, as the encoder computes it."""
    return 16.0 + _LIMITED_SCALE * (frames.astype(np.float64) @ _LUMA)


def block_means(luma: np.ndarray) -> np.ndarray:
    """float64 (F, GRID, GRID): area-weighted block means of (F, H, W) luma, for any frame size."""
    return np.stack(
        [
            np.asarray(Image.fromarray(frame.astype(np.float32)).resize((GRID, GRID), Image.Resampling.BOX))
            for frame in luma
        ]
    ).astype(np.float64)


def _smooth_field(coarse: np.ndarray, height: int, width: int) -> np.ndarray:
    """(F, GRID, GRID) -> (F, H, W): bilinear interpolation between block centres, edges held."""
    ys = np.clip((np.arange(height) + 0.5) * GRID / height - 0.5, 0, GRID - 1)
    xs = np.clip((np.arange(width) + 0.5) * GRID / width - 0.5, 0, GRID - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, GRID - 1), np.minimum(x0 + 1, GRID - 1)
    wy, wx = (ys - y0)[None, :, None], (xs - x0)[None, None, :]
    top = coarse[:, y0][:, :, x0] * (1 - wx) + coarse[:, y0][:, :, x1] * wx
    bottom = coarse[:, y1][:, :, x0] * (1 - wx) + coarse[:, y1][:, :, x1] * wx
    return top * (1 - wy) + bottom * wy


# ---------------------------------------------------------------------------------------------
# Embedding and detection
# ---------------------------------------------------------------------------------------------


def embed_watermark(frames: np.ndarray, video: str, key: WatermarkKey = DEFAULT_KEY) -> np.ndarray:
    """uint8 (F, H, W, 3) frames carrying the watermark of `video` ("videos/{id}" or the id).

    Call it on the frames as they will be encoded (after scaling and any visible label). Frames
    must be at least GRID pixels on each side.
    """
    f, h, w, _ = frames.shape
    if h < GRID or w < GRID:
        raise ValueError(f"frames must be at least {GRID}x{GRID} to carry a watermark, got {w}x{h}")
    dither, order = key.layout()
    bits = codeword(payload_for_video(video))[order].astype(np.float64)  # (GRID, GRID)
    offset = dither + bits * STEP / 2
    base = frames.astype(np.float64)
    luma = luma_of_rgb(frames)
    means = block_means(luma)
    target = np.round((means - offset) / STEP) * STEP + offset  # nearest lattice point per block
    # A lattice point the block cannot reach (all pixels near black or white) is swapped for the
    # neighbouring point on the reachable side.
    target = np.where(target < 16.5, target + STEP, target)
    target = np.where(target > 234.5, target - STEP, target)
    coarse = target - means
    marked = frames
    for _ in range(_EMBED_ITERATIONS):
        field = _smooth_field(coarse, h, w) / _LIMITED_SCALE  # luma levels -> RGB levels
        marked = np.clip(np.rint(base + field[..., None]), 0, 255).astype(np.uint8)
        achieved = block_means(luma_of_rgb(marked))
        coarse = coarse + (target - achieved)
    return marked


def soft_bits(block_luma_means: np.ndarray, key: WatermarkKey = DEFAULT_KEY) -> np.ndarray:
    """float (CODED_BITS,): summed soft decisions of every block of every frame (> 0 means a 1 bit)."""
    dither, order = key.layout()
    phase = 2 * np.pi * (block_luma_means - dither) / STEP  # (F, GRID, GRID)
    per_block = -np.cos(phase).sum(axis=0)  # bit 0 sits at phase 0, bit 1 at phase pi
    soft = np.zeros(CODED_BITS)
    np.add.at(soft, order.ravel(), per_block.ravel())
    return soft


def detect_watermark(luma: np.ndarray, key: WatermarkKey = DEFAULT_KEY) -> WatermarkReading:
    """Reads the watermark from luma (F, H, W) (the coded Y' plane, any size, uint8 or float)."""
    if luma.ndim != 3 or luma.shape[0] == 0 or min(luma.shape[1:]) < GRID:
        return WatermarkReading(False, None, 0.0, np.zeros(PAYLOAD_BITS, np.uint8))
    soft = soft_bits(block_means(luma.astype(np.float64)), key)
    message = viterbi_decode(soft)
    payload_bits, check = message[:PAYLOAD_BITS], message[PAYLOAD_BITS:]
    agreement = float(np.mean((soft > 0) == convolutional_encode(message).astype(bool)))
    crc_ok = bool(np.array_equal(crc16(payload_bits), check))
    found = crc_ok and agreement >= MIN_CONFIDENCE
    return WatermarkReading(found, _bits_to_int(payload_bits) if found else None, agreement, payload_bits)


def detect_watermark_rgb(frames: np.ndarray, key: WatermarkKey = DEFAULT_KEY) -> WatermarkReading:
    """detect_watermark for uint8 RGB frames (F, H, W, 3) that were never encoded."""
    return detect_watermark(luma_of_rgb(frames), key)
