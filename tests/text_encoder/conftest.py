"""Fixtures for the TextEncoder tests: the real all-MiniLM-L6-v2, loaded once, and a call recorder."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest

from services.text_encoder.backends import EncoderBackend, load_default_backend
from tests.text_encoder.helpers import RecordingBackend


@pytest.fixture(scope="session")
def minilm() -> EncoderBackend:
    return load_default_backend()


@pytest.fixture
def recording(minilm) -> RecordingBackend:
    return RecordingBackend(minilm)
