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

# Serve's request path, tuned for latency (services/cluster/bench.py measures it; docs/operations.md):
# the proxy reaches replicas over gRPC instead of Ray actor calls, and routers and user code run on
# the replica's own event loop instead of hopping threads. The last one requires what Kino's cores
# already do: heavy compute runs in worker threads, never on the event loop. The same variables are
# set on the Ray containers in k8s/ and must be present on every node before Ray starts.
SERVE_LATENCY_ENV = {
    "RAY_SERVE_PROXY_USE_GRPC": "1",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
}


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
    # Applications running, and the services that could not be deployed with the reason.
    services: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

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
    extra = dict(SERVE_LATENCY_ENV)
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
) -> tuple[list[str], dict[str, str]]:
    """Deploys one application per service, the gateway last, each running before the next starts.

    A service that cannot be imported or whose replicas fail to start is left out (the gateway then
    reports it as BACKEND_UNAVAILABLE) rather than taking the others down. Returns (running, failed
    with reasons); replica logs hold the details.
    """
    overrides = settings.model_dump(mode="json", exclude={"data_dir"})
    overrides["data_dir"] = str(settings.data_dir.resolve())
    running: list[str] = []
    failed: dict[str, str] = {}
    for spec in services:
        problem = spec.import_error()
        if problem is not None:
            failed[spec.name] = f"cannot import {spec.servicer_module}: {problem!r}"
            log.error("not deploying %s: %s", spec.name, failed[spec.name])
            continue
        args = KinoAppArgs(
            service=spec.name,
            settings=overrides,
            deployment_options=(deployment_options or {}).get(spec.name, {}),
        )
        log.info("deploying %s", spec.name)
        try:
            serve.run(build_app(args), name=spec.name, route_prefix=f"/{spec.name}")
        except RuntimeError as error:
            failed[spec.name] = _deployment_message(spec.name) or str(error)
            log.error("%s failed to deploy: %s", spec.name, error)
            with contextlib.suppress(Exception):
                serve.delete(spec.name)
            continue
        running.append(spec.name)
    return running, failed


def _deployment_message(app_name: str) -> str:
    """Serve's account of why an application's deployment failed (the replica's exception)."""
    with contextlib.suppress(Exception):
        status = serve.status().applications[app_name]
        # The last line of a replica's traceback is its exception.
        return "; ".join(
            d.message.strip().splitlines()[-1] for d in status.deployments.values() if d.message.strip()
        )
    return ""


def start_kino_on_ray(
    settings: Settings,
    grpc_port: int,
    config: LocalRayConfig = LocalRayConfig(),
    services: list[catalog.ServiceSpec] | None = None,
    deployment_options: dict[str, dict] | None = None,
    proxy_services: list[catalog.ServiceSpec] | None = None,
) -> ServeEndpoint:
    """Local Ray, Serve's gRPC proxy on `grpc_port` (0 picks one), every built service deployed.

    The proxy registers `proxy_services` (default: the deployed ones); a method of a service it does
    not register answers UNIMPLEMENTED, which Kino's clients report as BACKEND_UNAVAILABLE.
    """
    services = services if services is not None else catalog.built_services()
    host = settings.server.host
    grpc_port = grpc_port or free_port(host)
    start_ray(config)
    endpoint = start_serve(host, grpc_port, proxy_services if proxy_services is not None else services)
    endpoint.services, endpoint.failed = deploy(settings, services, deployment_options)
    return endpoint


def stop_kino_on_ray() -> None:
    with contextlib.suppress(Exception):
        serve.shutdown()
    ray.shutdown()
