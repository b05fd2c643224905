"""The load-test harness against a real single-process Kino on loopback (TextEncoder only, so other
operations meet UNIMPLEMENTED and show up in the errors by code)."""

from __future__ import annotations

import json

import pytest

from services.common.server import KinoServer
from services.common.settings import load_settings
from services.loadtest.cli import main
from services.loadtest.runner import LoadConfig, run_load
from services.loadtest.workload import parse_mix
from services.text_encoder.servicer import registration


@pytest.fixture
async def kino_address():
    settings = load_settings(server={"port": 0, "metrics_port": -1})
    server = KinoServer(settings.server, [registration(settings)])
    await server.start()
    yield server.address
    await server.stop(0)


async def test_open_loop_reports_percentiles_throughput_and_errors(kino_address, tmp_path):
    config = LoadConfig(
        target=kino_address, mode="open", rate=40, duration_seconds=1.5, mix=parse_mix("encode=3,rank=1")
    )
    report = await run_load(config)
    summary = report.summary()
    encode, rank = summary["operations"]["encode"], summary["operations"]["rank"]
    assert encode["ok"] == encode["requests"] > 10
    assert 0 < encode["latency_ms"]["p50"] <= encode["latency_ms"]["p95"] <= encode["latency_ms"]["p99"]
    assert encode["throughput_per_second"] > 5
    assert rank["ok"] == 0 and rank["errors"] == {"UNIMPLEMENTED": rank["requests"]}
    assert summary["operations"]["all"]["requests"] == encode["requests"] + rank["requests"]
    assert json.loads(report.to_json())["mode"] == "open"
    assert "encode" in report.to_text()
    png = report.plot(tmp_path / "run.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_closed_loop_stops_at_max_requests(kino_address):
    config = LoadConfig(
        target=kino_address,
        mode="closed",
        concurrency=3,
        duration_seconds=30,
        max_requests=12,
        mix={"encode": 1.0},
    )
    report = await run_load(config)
    assert len(report.records) == 12
    assert report.elapsed_seconds < 30


def test_bounds_and_mix_are_checked():
    with pytest.raises(ValueError):
        LoadConfig(target="x:1", duration_seconds=7200)
    with pytest.raises(ValueError):
        LoadConfig(target="x:1", max_requests=0)
    with pytest.raises(ValueError):
        parse_mix("encode=1,upload=2")
    assert parse_mix("generate=1,rank=3") == {"generate": 0.25, "rank": 0.75}


async def test_the_command_writes_text_json_and_png(kino_address, tmp_path):
    import asyncio

    prefix = tmp_path / "reports" / "run"
    argv = [
        "--target",
        kino_address,
        "--closed",
        "2",
        "--duration",
        "1",
        "--mix",
        "encode=1",
        "--out",
        str(prefix),
    ]
    assert await asyncio.to_thread(main, argv) == 0
    assert json.loads(prefix.with_suffix(".json").read_text())["operations"]["encode"]["ok"] > 0
    assert "p95 ms" in prefix.with_suffix(".txt").read_text()
    assert prefix.with_suffix(".png").stat().st_size > 1000
