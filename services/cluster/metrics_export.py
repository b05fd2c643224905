"""Every Kino process's Prometheus metrics on one port per node: prometheus_client multiprocess mode.

Under Ray each replica is its own process, and replicas come and go; a /metrics port per replica
could not be scraped from one static configuration. Instead every Kino process on a node writes its
metrics to memory-mapped files in one directory (PROMETHEUS_MULTIPROC_DIR, set on the node before Ray
starts, so the raylet hands it to every worker), and one exporter per node serves their sum. Metric
names and labels are the ones a single-process Kino exposes; docs/metrics.md lists them. Ray's and
Serve's own metrics come from Ray's metrics agent on its own port.

Run as the `kino-metrics` sidecar of every Ray pod (k8s/) or inside `kino up`:

    python -m services.cluster.metrics_export --dir /tmp/kino-metrics --port 9464
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, multiprocess, start_http_server

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
KINO_PREFIX = "kino_"

log = logging.getLogger(__name__)


def prepare_directory(directory: Path) -> Path:
    """Creates the directory and removes files of an earlier run, whose counters would be summed in."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return directory


class LiveGaugeCollector:
    """The multiprocess metrics with each gauge summed over the processes still alive.

    prometheus_client keeps a gauge per process (a `pid` label) and never forgets a process that was
    killed rather than shut down, such as a replica lost with its node or OOM-killed. Summing live
    processes only gives a gauge the meaning and labels it has in a single process (`kino_rpc_in_flight`
    is the calls in flight on this node). Counters and histograms keep dead processes' counts, which
    keeps them monotonic. Needs the processes' pids visible: in k8s the pod shares its process namespace.
    """

    def __init__(self, directory: Path) -> None:
        self._inner = multiprocess.MultiProcessCollector(None, path=str(directory))

    def collect(self):
        for family in self._inner.collect():
            if not family.name.startswith(KINO_PREFIX):
                continue  # Ray's own processes write here too; Ray's metrics agent exports theirs
            if family.type != "gauge":
                yield family
                continue
            summed: dict[tuple, object] = {}
            for sample in family.samples:
                pid = sample.labels.get("pid")
                if pid is not None and not _alive(int(pid)):
                    continue
                labels = {k: v for k, v in sample.labels.items() if k != "pid"}
                key = (sample.name, tuple(sorted(labels.items())))
                previous = summed.get(key)
                value = sample.value + (previous.value if previous is not None else 0.0)
                summed[key] = sample._replace(labels=labels, value=value)
            family.samples = list(summed.values())
            yield family


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def registry_for(directory: Path) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(LiveGaugeCollector(directory))
    return registry


def serve_directory(directory: Path, host: str, port: int) -> int:
    """Serves the summed metrics of `directory` on http://host:port/metrics; returns the bound port."""
    server, _thread = start_http_server(port, addr=host, registry=registry_for(directory))
    return server.server_address[1]


def mark_this_process_dead() -> None:
    """Drops this process's live gauges from the sum (counters and histograms stay): call on exit."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(os.getpid())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=os.environ.get(MULTIPROC_ENV), help="the multiprocess directory")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9464)
    parser.add_argument("--keep", action="store_true", help="keep files already in --dir")
    args = parser.parse_args(argv)
    if not args.dir:
        parser.error(f"--dir or {MULTIPROC_ENV} is required")
    directory = Path(args.dir) if args.keep else prepare_directory(Path(args.dir))
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s %(message)s")
    port = serve_directory(directory, args.host, args.port)
    log.info("serving the metrics of %s on :%d/metrics", directory, port)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
