"""`make bench`: every benchmark of the services that are built, printed side by side.

Benchmarks are scripts, never timed tests: these machines are shared and noisy, so each bench
prints its measurements and the ratio to its target rather than asserting on time.
"""

from __future__ import annotations

import sys


def main() -> int:
    from services.cluster.bench import run_bench as serve_overhead_bench
    from services.ranker.bench import run_bench as ranker_bench
    from services.text_encoder.bench import run_bench as text_encoder_bench

    print("== TextEncoder ==", flush=True)
    text_encoder_bench()
    print("\n== FeedRanker ==", flush=True)
    ranker_bench()
    print("\n== Ray Serve path vs single process ==", flush=True)
    serve_overhead_bench()
    return 0


if __name__ == "__main__":
    sys.exit(main())
