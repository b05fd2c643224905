"""FeedRanker benchmark: Rank in process, Rank and Ingest through gRPC. `make bench` runs it.

The catalog is 20,000 videos (384-d unit vectors in 50 clusters) and 2,000 users with 30 events of
history each, so that every Rank scores about 1,000 candidates. Each gRPC server runs in its own
process (as a ranker replica does), single-threaded (RankerSettings.threads = 1); the load
generator runs here. Two deployments are measured:

* one replica with the in-process store (the embedded default);
* `--replicas N` replicas (default 2: one per core of a 2-core machine) sharing the Redis store
  (production), the clients' connections spread over them as a Kubernetes Service spreads them.
  The catalog and events are sent to the first replica only; the others pick them up through Redis.

Each deployment is measured under 2, 4, 6 and 8 closed-loop clients. Its capacity is the highest
throughput measured with p99 latency within the target: what the deployment serves at that latency.
On 2 cores the load generator shares the CPU with the replicas (and Redis with them all), so more
clients do not mean more throughput; they mean longer queues.

Prints measurements and their ratio to each target (> 1 is better).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
import uuid
from pathlib import Path

import numpy as np

from kino.v1 import ranker_pb2, ranker_pb2_grpc
from services.common.tensors import to_proto

VIDEOS = 20_000
USERS = 2_000
HISTORY = 30
DIM = 384
TARGET_RANK_P99_MS = 20.0
TARGET_RPC_PER_S = 300.0
TARGET_RPC_P99_MS = 50.0
TARGET_INGEST_PER_S = 5_000.0
# Closed-loop Rank clients in all, spread over the replicas' channels: the load is swept, since the
# latency a closed loop sees is set by its number of clients (Little's law) as much as by the server.
# Capacity is the highest throughput measured at p99 <= TARGET_RPC_P99_MS.
CLIENT_COUNTS = (2, 4, 6, 8)
# Heavy users: Rank reads a user's seen set (up to store.MAX_SEEN) and last store.MAX_RESPONSES
# responses, so a user with a long history costs more than the 30-impression users above, most on Redis.
HEAVY_USERS = 8
HEAVY_IMPRESSIONS = 10_000
WARM_UP_S = 2.0
MEASURE_S = 8.0
E = ranker_pb2


def _items(seed: int = 0) -> list[ranker_pb2.FeedItem]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(50, DIM))
    x = centers[rng.integers(50, size=VIDEOS)] + 0.8 * rng.normal(size=(VIDEOS, DIM))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return [
        E.FeedItem(
            video=f"videos/b{i}",
            creator=f"creator{i % 3000}",
            content_embedding=to_proto(x[i]),
            duration_seconds=12.0,
            prompt=f"benchmark video {i}",
        )
        for i in range(VIDEOS)
    ]


def _history(seed: int = 1) -> list[ranker_pb2.FeedEvent]:
    rng = np.random.default_rng(seed)
    events = []
    for user in range(USERS):
        for video in rng.integers(VIDEOS, size=HISTORY):
            name = f"videos/b{video}"
            events.append(E.FeedEvent(user=f"user{user}", video=name, type=E.FEED_EVENT_TYPE_IMPRESSION))
            events.append(
                E.FeedEvent(user=f"user{user}", video=name, type=E.FEED_EVENT_TYPE_WATCH, watch_seconds=11)
            )
            if rng.random() < 0.3:
                events.append(E.FeedEvent(user=f"user{user}", video=name, type=E.FEED_EVENT_TYPE_LIKE))
    return events


def _heavy_history(seed: int = 3) -> list[ranker_pb2.FeedEvent]:
    """HEAVY_IMPRESSIONS impressions and watches for each of HEAVY_USERS users, a like on one in ten."""
    rng = np.random.default_rng(seed)
    events = []
    for user in range(HEAVY_USERS):
        who = f"heavy{user}"
        for video in rng.choice(VIDEOS, size=HEAVY_IMPRESSIONS, replace=False):
            name = f"videos/b{video}"
            events.append(E.FeedEvent(user=who, video=name, type=E.FEED_EVENT_TYPE_IMPRESSION))
            events.append(
                E.FeedEvent(
                    user=who,
                    video=name,
                    type=E.FEED_EVENT_TYPE_WATCH,
                    watch_seconds=float(rng.uniform(0, 12)),
                )
            )
            if rng.random() < 0.1:
                events.append(E.FeedEvent(user=who, video=name, type=E.FEED_EVENT_TYPE_LIKE))
    return events


async def _load(upsert, ingest, events: list[ranker_pb2.FeedEvent] | None = None) -> None:
    items = _items()
    for start in range(0, len(items), 1000):
        await upsert(E.UpsertItemsRequest(items=items[start : start + 1000]))
    events = _history() if events is None else events
    for start in range(0, len(events), 10_000):
        await ingest(E.IngestRequest(events=events[start : start + 10_000]))


def _percentiles(latencies: list[float]) -> tuple[float, float]:
    return float(np.percentile(latencies, 50) * 1e3), float(np.percentile(latencies, 99) * 1e3)


# -- in process ------------------------------------------------------------------------------------


async def _in_process() -> dict:
    from services.common.settings import RankerSettings
    from services.ranker.core import RankerCore

    core = RankerCore.from_settings(RankerSettings(threads=1))
    await _load(core.upsert_items, core.ingest)
    await core.wait_for_index()
    rng = np.random.default_rng(2)
    latencies, cpu, candidates = [], [], []
    for i in range(400):
        request = E.RankRequest(user=f"user{rng.integers(USERS)}", page_size=10)
        started, started_cpu = time.perf_counter(), time.process_time()
        await core.rank(request)
        if i >= 50:  # warm-up
            latencies.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
        candidates.append(core.last_candidates)
    p50, p99 = _percentiles(latencies)
    await core.close()
    return {
        "rank_p50_ms": p50,
        "rank_p99_ms": p99,
        "rank_cpu_mean_ms": float(np.mean(cpu) * 1e3),
        "candidates_mean": float(np.mean(candidates)),
        "scorer": core.scorer.name,
    }


async def _heavy_users(redis_url: str | None) -> dict:
    """Rank for the heavy users, in this process, on the in-process store and (with `redis_url`) on
    Redis: p50 / p99 and CPU per Rank of each."""
    from services.common.settings import RankerSettings
    from services.ranker.core import RankerCore

    stores = {"memory": {}}
    if redis_url:
        prefix = f"kino-bench:heavy:{uuid.uuid4().hex}"
        stores["redis"] = {"store": "redis", "redis_url": redis_url, "key_prefix": prefix}
    events = _heavy_history()
    results = {}
    for store, fields in stores.items():
        core = RankerCore.from_settings(RankerSettings(threads=1, **fields))
        try:
            await _load(core.upsert_items, core.ingest, events)
            await core.wait_for_index()
            latencies, cpu = [], []
            for i in range(30 * HEAVY_USERS):
                request = E.RankRequest(user=f"heavy{i % HEAVY_USERS}", page_size=10)
                started, started_cpu = time.perf_counter(), time.process_time()
                await core.rank(request)
                if i >= 2 * HEAVY_USERS:  # warm-up
                    latencies.append(time.perf_counter() - started)
                    cpu.append(time.process_time() - started_cpu)
            p50, p99 = _percentiles(latencies)
            results[store] = {"p50_ms": p50, "p99_ms": p99, "cpu_ms": float(np.mean(cpu) * 1e3)}
        finally:
            await core.close()
            if store == "redis":
                await _delete_keys(redis_url, fields["key_prefix"])
    return results


# -- through gRPC ----------------------------------------------------------------------------------


def _serve(port_queue, ranker: dict) -> None:
    from services.common.server import KinoServer
    from services.common.settings import load_settings
    from services.ranker.servicer import registration

    async def serve() -> None:
        settings = load_settings(
            env={}, server={"port": 0, "metrics_port": -1}, ranker={"threads": 1, **ranker}
        )
        server = KinoServer(settings.server, [registration(settings)])
        await server.start()
        port_queue.put(server.port)
        await server.serve_until_signal()

    asyncio.run(serve())


def _process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of another process (Linux /proc); NaN where /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _through_grpc(ports: list[int], server_pids: list[int], settle_s: float) -> dict:
    """Loads the catalog through the first replica, then sweeps the load: for each count in
    CLIENT_COUNTS, that many closed-loop clients call Rank for MEASURE_S seconds, spread over the
    replicas' channels (client i on replica i mod N). Then Ingest from one client."""
    import grpc

    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for port in ports]
    try:
        stubs = [ranker_pb2_grpc.FeedRankerStub(channel) for channel in channels]
        await _load(stubs[0].UpsertItems, stubs[0].Ingest)
        # The retrieval index trains in the background; other replicas first sync the catalog from Redis.
        await asyncio.sleep(settle_s)
        rng = np.random.default_rng(3)

        async def client(stub, until: float, latencies: list[float]) -> None:
            while time.perf_counter() < until:
                started = time.perf_counter()
                await stub.Rank(E.RankRequest(user=f"user{rng.integers(USERS)}", page_size=10))
                latencies.append(time.perf_counter() - started)

        async def closed_loop(clients: int, seconds: float) -> dict:
            latencies: list[float] = []
            deadline = time.perf_counter() + seconds
            started, server_cpu = time.perf_counter(), sum(map(_process_cpu_seconds, server_pids))
            await asyncio.gather(
                *(client(stubs[i % len(stubs)], deadline, latencies) for i in range(clients))
            )
            rps = len(latencies) / (time.perf_counter() - started)
            server_cpu_ms = (sum(map(_process_cpu_seconds, server_pids)) - server_cpu) / len(latencies) * 1e3
            p50, p99 = _percentiles(latencies)
            return {
                "clients": clients,
                "rpc_per_s": rps,
                "rpc_p50_ms": p50,
                "rpc_p99_ms": p99,
                "rpc_server_cpu_ms": server_cpu_ms,
            }

        await closed_loop(max(CLIENT_COUNTS), WARM_UP_S)
        sweep = []
        for clients in CLIENT_COUNTS:
            await closed_loop(clients, 1.0)  # the queues settle at the new load
            sweep.append(await closed_loop(clients, MEASURE_S))

        batch = [
            E.FeedEvent(
                user=f"user{i % USERS}",
                video=f"videos/b{(i * 7) % VIDEOS}",
                type=E.FEED_EVENT_TYPE_WATCH,
                watch_seconds=6.0,
            )
            for i in range(1000)
        ]
        request = E.IngestRequest(events=batch)
        await stubs[0].Ingest(request)
        started, sent = time.perf_counter(), 0
        while time.perf_counter() - started < 5.0:
            await stubs[0].Ingest(request)
            sent += len(batch)
        ingest_rate = sent / (time.perf_counter() - started)
    finally:
        for channel in channels:
            await channel.close()
    within = [point for point in sweep if point["rpc_p99_ms"] <= TARGET_RPC_P99_MS]
    capacity = max(within, key=lambda point: point["rpc_per_s"]) if within else None
    return {"sweep": sweep, "capacity": capacity, "ingest_events_per_s": ingest_rate}


def _deployment(replicas: int, ranker: dict, settle_s: float) -> dict:
    """Starts `replicas` server processes with these ranker settings and measures them."""
    context = multiprocessing.get_context("spawn")
    port_queue = context.Queue()
    servers = [
        context.Process(target=_serve, args=(port_queue, ranker), daemon=True) for _ in range(replicas)
    ]
    for server in servers:
        server.start()
    try:
        ports = [port_queue.get(timeout=120) for _ in servers]
        return asyncio.run(_through_grpc(ports, [s.pid for s in servers], settle_s))
    finally:
        for server in servers:
            server.terminate()
            server.join(10)


async def _delete_keys(redis_url: str, prefix: str) -> None:
    from services.ranker.redis_store import RedisFeatureStore

    store = RedisFeatureStore(redis_url, prefix)
    try:
        await store.delete_all()
    finally:
        await store.close()


def run_bench(replicas: int = 2, redis_url: str = "redis://127.0.0.1:6379/0") -> dict:
    """Measures and prints; returns the numbers (ratios > 1 are better). `replicas` 0 skips the Redis
    deployment (no Redis server)."""
    from services.ranker.core import limit_threads

    limit_threads(1)
    results = asyncio.run(_in_process())
    results["heavy"] = asyncio.run(_heavy_users(redis_url if replicas else None))
    results["grpc"] = _deployment(1, {}, settle_s=2.0)
    if replicas:
        prefix = f"kino-bench:ranker:{uuid.uuid4().hex}"
        try:
            results["grpc_redis"] = _deployment(
                replicas, {"store": "redis", "redis_url": redis_url, "key_prefix": prefix}, settle_s=5.0
            )
        finally:
            asyncio.run(_delete_keys(redis_url, prefix))
    r = results
    r["rank_p99_ratio"] = TARGET_RANK_P99_MS / r["rank_p99_ms"]
    print(
        f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other work on a "
        "shared machine adds queueing to wall-clock latency; CPU time per Rank is the work itself)"
    )
    print(
        f"catalog {VIDEOS} videos, {USERS} users; scorer: {r['scorer']}; candidates per Rank: {r['candidates_mean']:.0f}"
    )
    print(
        f"Rank in process      p50 {r['rank_p50_ms']:6.2f} ms  p99 {r['rank_p99_ms']:6.2f} ms   "
        f"target p99 <= {TARGET_RANK_P99_MS:.0f} ms: x{r['rank_p99_ratio']:.2f}   "
        f"CPU {r['rank_cpu_mean_ms']:.2f} ms per Rank"
    )
    for store, h in r["heavy"].items():
        print(
            f"Rank in process for users with {HEAVY_IMPRESSIONS} impressions, {store} store: p50 {h['p50_ms']:.2f} ms  "
            f"p99 {h['p99_ms']:.2f} ms  CPU {h['cpu_ms']:.2f} ms per Rank"
        )
    for key, label in (
        ("grpc", "1 replica, memory store"),
        ("grpc_redis", f"{replicas} replicas, Redis store"),
    ):
        if key not in r:
            continue
        g = r[key]
        print(f"through gRPC, {label}, under closed-loop clients (spread over the replicas):")
        for point in g["sweep"]:
            print(
                f"  {point['clients']} clients  Rank {point['rpc_per_s']:6.0f} RPC/s  p50 {point['rpc_p50_ms']:5.1f} ms  "
                f"p99 {point['rpc_p99_ms']:5.1f} ms  server CPU {point['rpc_server_cpu_ms']:.2f} ms per RPC"
            )
        best = g["capacity"]
        if best is None:
            g["rpc_per_s_ratio"] = 0.0
            print(
                f"  capacity: no load kept p99 <= {TARGET_RPC_P99_MS:.0f} ms; target >= {TARGET_RPC_PER_S:.0f} RPC/s: missed"
            )
        else:
            g["rpc_per_s_ratio"] = best["rpc_per_s"] / TARGET_RPC_PER_S
            print(
                f"  capacity at p99 <= {TARGET_RPC_P99_MS:.0f} ms: {best['rpc_per_s']:.0f} RPC/s ({best['clients']} clients, "
                f"p99 {best['rpc_p99_ms']:.1f} ms)  target >= {TARGET_RPC_PER_S:.0f}: x{g['rpc_per_s_ratio']:.2f}"
            )
        g["ingest_ratio"] = g["ingest_events_per_s"] / TARGET_INGEST_PER_S
        print(
            f"  Ingest  {g['ingest_events_per_s']:8.0f} events/s  target >= {TARGET_INGEST_PER_S:.0f}: "
            f"x{g['ingest_ratio']:.2f}",
            flush=True,
        )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=2, help="replicas sharing the Redis store; 0: skip")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    run_bench(args.replicas, args.redis_url)
