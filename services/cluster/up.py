"""`kino up` (without --local): every built service on a local Ray cluster, behind Serve's gRPC proxy.

`run_cluster` blocks its event loop while Ray starts and the services warm up (there is nothing else
on it), prints the endpoint, then serves until SIGINT/SIGTERM and shuts Serve and Ray down.
"""

from __future__ import annotations

import asyncio
import math
import signal
import sys

from services.cluster import catalog
from services.cluster.local_ray import LocalRayConfig, start_kino_on_ray, stop_kino_on_ray
from services.cluster.metrics_export import serve_directory
from services.common.settings import Settings


def fit_cpus(services: list[catalog.ServiceSpec], num_cpus: float, headroom: float = 0.25) -> dict[str, dict]:
    """Deployment options that fit one replica of every service into `num_cpus` logical CPUs.

    Ray reserves a replica's `num_cpus` before it starts it, whether or not the replica uses them; with
    the code's defaults (half a CPU each) five services need 2.5, so on a 2-CPU machine the last one
    deployed (the gateway) was never placed. When the defaults do not fit, every reservation shrinks by
    the same factor, leaving `headroom` of the CPUs for a replica that autoscaling adds. Returns {} when
    the defaults fit."""
    from services.cluster.deployments import DEPLOYMENTS

    wanted = {s.name: DEPLOYMENTS[s.name].ray_actor_options.get("num_cpus", 1.0) for s in services}
    budget = num_cpus * (1 - headroom)
    if sum(wanted.values()) <= budget:
        return {}
    scale = budget / sum(wanted.values())
    return {
        name: {"ray_actor_options": {"num_cpus": math.floor(100 * cpus * scale) / 100}}
        for name, cpus in wanted.items()
    }


async def run_cluster(settings: Settings, port: int | None = None, num_cpus: int = 4) -> None:
    """Runs Kino on Ray Serve on this machine until a signal; `port` is the gRPC port (default
    settings.server.port, 0 picks a free one)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    metrics_dir = (settings.data_dir / "metrics").resolve()
    grpc_port = settings.server.port if port is None else port
    services = catalog.built_services()
    missing = [spec.name for spec in catalog.ALL_SERVICES if spec not in services]
    print(
        f"starting Ray and deploying {', '.join(s.name for s in services)} ...", file=sys.stderr, flush=True
    )
    endpoint = start_kino_on_ray(
        settings,
        grpc_port,
        LocalRayConfig(
            num_cpus=num_cpus, metrics_dir=metrics_dir if settings.server.metrics_port >= 0 else None
        ),
        services,
        deployment_options=fit_cpus(services, num_cpus),
    )
    try:
        print(
            f"Kino is serving on {endpoint.address} through Ray Serve's gRPC proxy "
            f"(export KINO_TARGET={endpoint.address})",
            flush=True,
        )
        print(f"services: {', '.join(endpoint.services)}", flush=True)
        if missing:
            print(f"not built yet, not deployed: {', '.join(missing)}", flush=True)
        for name, reason in endpoint.failed.items():
            print(f"FAILED to deploy {name}: {reason}", flush=True)
        if settings.server.metrics_port >= 0:
            metrics_port = serve_directory(metrics_dir, settings.server.host, settings.server.metrics_port)
            print(f"metrics: http://{settings.server.host}:{metrics_port}/metrics", flush=True)
        print(
            "clients must send the `application` metadata (services.cluster.routing adds it); "
            "replica logs: /tmp/ray/session_latest/logs/serve/",
            flush=True,
        )
        await _wait_for_signal()
    finally:
        print("stopping Serve and Ray ...", file=sys.stderr, flush=True)
        stop_kino_on_ray()


async def _wait_for_signal() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
