"""Prometheus metrics shared by every service, and the /metrics endpoint.

RPC metrics are recorded by the interceptor for every method; engine metrics are declared by each
service next to the code they measure, named kino_<service>_<what>_<unit>. One process-wide registry
(prometheus_client's default), so a single-process Kino exposes everything on one port.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RPC_REQUESTS = Counter(
    "kino_rpc_requests_total", "RPCs handled, by full method name and final status code.", ["method", "code"]
)
RPC_LATENCY = Histogram(
    "kino_rpc_latency_seconds",
    "Time from the start of an RPC to its last response, by method.",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
RPC_IN_FLIGHT = Gauge("kino_rpc_in_flight", "RPCs currently being handled, by method.", ["method"])


def serve_metrics(host: str, port: int) -> int:
    """Starts the /metrics HTTP endpoint in a daemon thread; returns the bound port (port 0 picks one)."""
    server, _thread = start_http_server(port, addr=host)
    return server.server_address[1]
