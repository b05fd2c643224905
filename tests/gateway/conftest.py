"""Fixtures for the gateway tests: a real Generation server on loopback, and scaffold backends."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg
import pytest

from kino.v1 import generation_pb2_grpc
from services.common.server import KinoServer, channel_options
from services.common.settings import Settings, load_settings
from services.gateway.core import GenerationCore
from services.gateway.servicer import registration
from tests.gateway.scaffold import Backends, start_backends

POSTGRES_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"


@dataclass
class Gateway:
    server: KinoServer
    channel: grpc.aio.Channel
    stub: generation_pb2_grpc.GenerationStub
    core: GenerationCore
    settings: Settings


def gateway_settings(
    data_dir: Path, services_target: str = "", database_url: str = "", server: dict | None = None, **gateway
) -> Settings:
    return load_settings(
        env={},
        data_dir=data_dir,
        server={"port": 0, "metrics_port": -1, **(server or {})},
        gateway={"database_url": database_url, "services_target": services_target, **gateway},
    )


async def open_gateway(data_dir: Path, services_target: str = "", **overrides) -> Gateway:
    """A Generation server on a free loopback port; see start_gateway for the arguments."""
    settings = gateway_settings(data_dir, services_target, **overrides)
    server = KinoServer(settings.server)
    if not services_target:
        settings = settings.model_copy(
            update={"gateway": settings.gateway.model_copy(update={"services_target": server.address})}
        )
    service = registration(settings)
    server.add(service)
    await server.start()
    channel = grpc.aio.insecure_channel(server.address, options=channel_options(settings.server))
    return Gateway(
        server, channel, generation_pb2_grpc.GenerationStub(channel), service.servicer.core, settings
    )


async def close_gateway(gateway: Gateway) -> None:
    await gateway.channel.close()
    await gateway.server.stop(0)


@pytest.fixture
async def start_gateway(tmp_path):
    """start_gateway(services_target="", database_url="", server={...}, **gateway_settings) -> Gateway.

    An empty services_target points the gateway at its own server, where no other service runs: every
    backend is then unavailable, as in a deployment where they are not built.
    """
    started: list[Gateway] = []

    async def start(services_target: str = "", *, data_dir: Path | None = None, **overrides) -> Gateway:
        gateway = await open_gateway(data_dir or tmp_path / "gateway", services_target, **overrides)
        started.append(gateway)
        return gateway

    yield start
    for gateway in reversed(started):
        await close_gateway(gateway)


@pytest.fixture
async def start_scaffold():
    """start_scaffold(encoder=..., denoiser=..., audio=..., ranker=...) -> Backends on their own server."""
    started: list[Backends] = []

    async def start(**services) -> Backends:
        backends = await start_backends(**services)
        started.append(backends)
        return backends

    yield start
    for backends in reversed(started):
        await backends.server.stop(0)


@pytest.fixture
def postgres_url():
    """A SQLAlchemy URL into a fresh schema of the local PostgreSQL, dropped afterwards."""
    try:
        admin = psycopg.connect(POSTGRES_DSN, autocommit=True)
    except psycopg.OperationalError as error:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is unreachable: {error}")
    schema = f"kino_gateway_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()
