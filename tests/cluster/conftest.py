"""One real Ray cluster for the whole test session, on this machine's CPU.

Ray gets explicit logical CPUs, a 200 MB object store and a GCS port of its own choosing (never
Redis's 6379). Every built service is deployed once, behind Serve's gRPC proxy; tests that need odd
deployment options (tiny queues, a replica to kill) deploy their own application beside them.
Tests here are marked `ray` and run serially in one process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from services.cluster import catalog
from services.cluster.local_ray import LocalRayConfig, ServeEndpoint, start_kino_on_ray, stop_kino_on_ray
from services.common.settings import Settings, load_settings


@dataclass
class KinoOnRay:
    endpoint: ServeEndpoint
    settings: Settings
    metrics_dir: Path


@pytest.fixture(scope="session")
def kino_on_ray(tmp_path_factory) -> KinoOnRay:
    data_dir = tmp_path_factory.mktemp("kino-on-ray")
    metrics_dir = data_dir / "metrics"
    settings = load_settings(
        data_dir=str(data_dir), server={"port": 0, "metrics_port": -1}, log_level="WARNING"
    )
    # The proxy knows every Kino service, built or not, so that probe applications of any service
    # can be deployed; clients of a service that is not built get NOT_FOUND from the proxy.
    endpoint = start_kino_on_ray(
        settings,
        0,
        LocalRayConfig(num_cpus=4, object_store_mb=200, metrics_dir=metrics_dir),
        catalog.built_services(),
        proxy_services=list(catalog.ALL_SERVICES),
    )
    yield KinoOnRay(endpoint, settings, metrics_dir)
    stop_kino_on_ray()
