"""One scrape of the node's exporter shows the documented metric names of every replica."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest

from kino.v1 import text_encoder_pb2, text_encoder_pb2_grpc
from services.cluster import routing
from services.cluster.metrics_export import serve_directory

pytestmark = pytest.mark.ray

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def documented_names(section: str) -> set[str]:
    """Metric names listed in one `## section` of docs/metrics.md."""
    text = DOC.read_text()
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(kino_[a-z0-9_]+)`", body, flags=re.MULTILINE))


async def test_the_scrape_shows_the_documented_names(kino_on_ray):
    async with routing.insecure_channel(kino_on_ray.endpoint.address) as channel:
        stub = text_encoder_pb2_grpc.TextEncoderStub(channel)
        await stub.Encode(text_encoder_pb2.EncodeRequest(texts=["metrics probe: a green cone spins"]))
        await stub.Encode(text_encoder_pb2.EncodeRequest(texts=["metrics probe: a green cone spins"]))
    port = serve_directory(kino_on_ray.metrics_dir, "127.0.0.1", 0)
    scraped = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    families = set(re.findall(r"^# TYPE (\S+) ", scraped, flags=re.MULTILINE))
    expected = documented_names("RPC metrics (every service)") | documented_names("TextEncoder")
    assert expected, "docs/metrics.md lists no names"
    # A counter's TYPE line names it with or without _total, depending on the client version.
    missing = {
        name for name in expected if name not in families and name.removesuffix("_total") not in families
    }
    assert not missing
    assert all(name.startswith("kino_") for name in families)
    assert re.search(
        r'kino_rpc_requests_total\{code="OK",method="/kino.v1.TextEncoder/Encode"\} [1-9]', scraped
    )
    assert re.search(r"kino_text_encoder_cache_hits_total [1-9]", scraped)
