"""A load test's results: per-operation latency percentiles, throughput, errors by status code; as
text, JSON and a PNG plot."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CallRecord:
    operation: str
    start_seconds: float  # since the test started
    latency_seconds: float
    code: str  # gRPC status code name, or CLIENT_OVERLOADED for an arrival never sent


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@dataclass
class LoadReport:
    config: Any
    records: list[CallRecord] = field(default_factory=list)
    elapsed_seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        operations: dict[str, Any] = {}
        for name in sorted({r.operation for r in self.records}) + ["all"]:
            records = [r for r in self.records if name in ("all", r.operation)]
            ok = [r.latency_seconds for r in records if r.code == "OK"]
            operations[name] = {
                "requests": len(records),
                "ok": len(ok),
                "throughput_per_second": len(ok) / self.elapsed_seconds if self.elapsed_seconds else 0.0,
                "latency_ms": {
                    "p50": percentile(ok, 0.50) * 1000,
                    "p95": percentile(ok, 0.95) * 1000,
                    "p99": percentile(ok, 0.99) * 1000,
                },
                "errors": dict(Counter(r.code for r in records if r.code != "OK").most_common()),
            }
        config = self.config
        return {
            "target": config.target,
            "mode": config.mode,
            "rate_per_second": config.rate if config.mode == "open" else None,
            "concurrency": config.concurrency if config.mode == "closed" else None,
            "mix": config.mix,
            "duration_seconds": round(self.elapsed_seconds, 3),
            "operations": operations,
        }

    def to_json(self) -> str:
        return json.dumps(self.summary(), indent=2, sort_keys=True, default=str)

    def to_text(self) -> str:
        summary = self.summary()
        load = (
            f"open loop, {summary['rate_per_second']:g}/s Poisson"
            if summary["mode"] == "open"
            else f"closed loop, {summary['concurrency']} callers"
        )
        lines = [
            f"target {summary['target']}: {load}, {summary['duration_seconds']:.1f} s",
            f"{'operation':<10} {'requests':>8} {'ok':>7} {'ok/s':>8} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9}  errors",
        ]
        for name, row in summary["operations"].items():
            latency = row["latency_ms"]
            errors = ", ".join(f"{code} {count}" for code, count in row["errors"].items()) or "-"
            lines.append(
                f"{name:<10} {row['requests']:>8} {row['ok']:>7} {row['throughput_per_second']:>8.2f} "
                f"{latency['p50']:>9.1f} {latency['p95']:>9.1f} {latency['p99']:>9.1f}  {errors}"
            )
        return "\n".join(lines)

    def plot(self, path: Path) -> Path:
        """Latency of every call over time (log scale, by operation; errors as crosses) above the
        throughput per second and errors per second."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, (latency_axes, rate_axes) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
        for name in sorted({r.operation for r in self.records}):
            ok = [r for r in self.records if r.operation == name and r.code == "OK"]
            failed = [r for r in self.records if r.operation == name and r.code != "OK"]
            points = latency_axes.scatter(
                [r.start_seconds for r in ok], [r.latency_seconds * 1000 for r in ok], s=6, label=name
            )
            if failed:
                latency_axes.scatter(
                    [r.start_seconds for r in failed],
                    [max(r.latency_seconds * 1000, 0.1) for r in failed],
                    s=18,
                    marker="x",
                    color=points.get_facecolor()[0],
                )
        latency_axes.set_yscale("log")
        latency_axes.set_ylabel("latency (ms), x = error")
        latency_axes.legend(loc="upper left", markerscale=2)
        latency_axes.set_title(f"Kino load test against {self.config.target}")
        seconds = int(self.elapsed_seconds) + 1
        ok_per_second, errors_per_second = [0] * seconds, [0] * seconds
        for record in self.records:
            bucket = min(seconds - 1, int(record.start_seconds + record.latency_seconds))
            (ok_per_second if record.code == "OK" else errors_per_second)[bucket] += 1
        rate_axes.plot(range(seconds), ok_per_second, label="ok/s")
        rate_axes.plot(range(seconds), errors_per_second, label="errors/s", color="tab:red")
        rate_axes.set_xlabel("seconds since start")
        rate_axes.set_ylabel("completions per second")
        rate_axes.legend(loc="upper left")
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100)
        plt.close(figure)
        return path
