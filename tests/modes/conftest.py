"""A real `kino up --local` with a tiny video model of random weights: every mode's plumbing end to end.

The frames the tiny model makes mean nothing; what these tests check is that each mode reaches the
model with the right conditioning and comes back as a signed, watermarked MP4 with sound, and that
bad requests are refused with the right code and reason. What the shipped model does with the same
requests is measured by `python -m services.gateway.evaluate_modes` (docs/modes/REPORT.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest

from kino.v1 import generation_pb2_grpc
from tests.denoiser.engine.helpers import save_tiny_weights
from tests.local_kino import kino_up_local


@dataclass
class RunningKino:
    address: str
    channel: grpc.Channel
    stub: generation_pb2_grpc.GenerationStub


@pytest.fixture(scope="package")
def kino(tmp_path_factory):
    weights = save_tiny_weights(tmp_path_factory.mktemp("tiny-weights"))
    data_dir = tmp_path_factory.mktemp("kino-modes")
    with (
        kino_up_local(data_dir, KINO_DENOISER__WEIGHTS_DIR=str(weights)) as (address, _process),
        grpc.insecure_channel(address) as channel,
    ):
        yield RunningKino(address, channel, generation_pb2_grpc.GenerationStub(channel))
