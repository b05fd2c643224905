"""A Ray cluster on this machine with Kino's applications on Serve: what `kino up`, the tests and
the bench share.

Ray is sized for a small shared machine: explicit logical CPUs (replicas ask for fractions), a small
object store (Kino moves protos, not tensors, through it), no dashboard. Ray picks its own GCS port,
so it never collides with a Redis on 6379. Serve's gRPC proxy listens on the port given; its HTTP
proxy, which Kino does not use, on a free port of the loopback interface.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import ray
from ray import serve
from ray.serve.config import gRPCOptions

from services.cluster import catalog
from services.cluster.app import KinoAppArgs, build_app, grpc_servicer_functions
from services.cluster.metrics_export import MULTIPROC_ENV, prepare_directory
from services.common.settings import Settings

log = logging.getLogger(__name__)

MIB = 1 << 20


@dataclass(frozen=True)
class LocalRayConfig:
    # Logical CPUs Ray schedules against; replicas ask for fractions, so this may exceed the cores.
    num_cpus: int = 4
    object_store_mb: int = 200
    # Where every process of the cluster writes its Prometheus metrics (see metrics_export).
    metrics_dir: Path | None = None


@dataclass
class ServeEndpoint:
    host: str
    grpc_port: int
    http_port: int
    services: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.grpc_port}"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def _environment(extra: dict[str, str]) -> Iterator[None]:
    """Sets variables while Ray starts: the raylet keeps them and hands them to every worker."""
    saved = {key: os.environ.get(key) for key in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def start_ray(config: LocalRayConfig) -> None:
    """Starts a private local Ray cluster (never joins one found on the machine)."""
    extra = {}
    if config.metrics_dir is not None:
        extra[MULTIPROC_ENV] = str(prepare_directory(config.metrics_dir).resolve())
    with _environment(extra):
        ray.init(
            address="local",
            num_cpus=config.num_cpus,
            num_gpus=0,
            object_store_memory=config.object_store_mb * MIB,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )


def start_serve(host: str, grpc_port: int, services: list[catalog.ServiceSpec]) -> ServeEndpoint:
    http_port = free_port(host)
    serve.start(
        proxy_location="HeadOnly",
        http_options={"host": host, "port": http_port},
        grpc_options=gRPCOptions(port=grpc_port, grpc_servicer_functions=grpc_servicer_functions(services)),
    )
    return ServeEndpoint(host, grpc_port, http_port)


def deploy(
    settings: Settings,
    services: list[catalog.ServiceSpec],
    deployment_options: dict[str, dict] | None = None,
) -> None:
    """Deploys one application per service, the gateway last; returns when all are running."""
    overrides = settings.model_dump(mode="json", exclude={"data_dir"})
    overrides["data_dir"] = str(settings.data_dir.resolve())
    for spec in services:
        args = KinoAppArgs(
            service=spec.name,
            settings=overrides,
            deployment_options=(deployment_options or {}).get(spec.name, {}),
        )
        log.info("deploying %s", spec.name)
        serve.run(build_app(args), name=spec.name, route_prefix=f"/{spec.name}")


def start_kino_on_ray(
    settings: Settings,
    grpc_port: int,
    config: LocalRayConfig = LocalRayConfig(),
    services: list[catalog.ServiceSpec] | None = None,
    deployment_options: dict[str, dict] | None = None,
) -> ServeEndpoint:
    """Local Ray, Serve's gRPC proxy on `grpc_port` (0 picks one), every built service deployed."""
    services = services if services is not None else catalog.built_services()
    host = settings.server.host
    grpc_port = grpc_port or free_port(host)
    start_ray(config)
    endpoint = start_serve(host, grpc_port, services)
    deploy(settings, services, deployment_options)
    endpoint.services = [spec.name for spec in services]
    return endpoint


def stop_kino_on_ray() -> None:
    with contextlib.suppress(Exception):
        serve.shutdown()
    ray.shutdown()
