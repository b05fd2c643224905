"""The serving bench end to end on the tiny model, on the CPU: the GPU preset's path with its windows
shrunk, and the batch-invariance check the GPU run states its tolerance with."""

import json
from dataclasses import replace

import pytest

from services.common.settings import DenoiserSettings
from services.denoiser.bench import GPU_PRESET, Prompts, batch_invariance, run_bench
from services.denoiser.bench_variants import parse_variant
from tests.denoiser.engine.helpers import prompt, save_tiny_weights, tiny_executor


def test_on_the_cpu_a_request_beside_eight_others_matches_it_alone_exactly():
    executor = tiny_executor()
    bucket = executor.bucket(16, 64, 64, 9)
    prompts = Prompts([prompt(i, 9) for i in range(9)])
    check = batch_invariance(executor, bucket, prompts, num_steps=3, neighbours=8)
    assert check["neighbours"] == 8 and check["latents_max_abs"] > 0
    assert check["latents_max_abs_diff"] == 0.0 and check["frames_max_abs_diff"] == 0


def test_the_gpu_preset_runs_end_to_end_on_the_cpu_and_writes_its_report(tmp_path):
    config = replace(
        GPU_PRESET,
        window_s=0.8,
        saturated_window_s=0.8,
        capacity_seconds=0.4,
        rounds=1,
        num_steps=2,
        max_rows=8,
    )
    settings = DenoiserSettings(weights_dir=save_tiny_weights(tmp_path / "weights"), device="cpu")
    # Saved prompts, as a GPU machine without the MiniLM package reads them.
    Prompts([prompt(i, 5 + i % 4) for i in range(6)]).save(tmp_path / "prompts.npz")
    report = run_bench(config, tmp_path / "report", settings, prompts_file=tmp_path / "prompts.npz")
    assert report["device"]["type"] == "cpu" and report["device"]["name"]
    assert report["step_engine_capacity_per_min"] > 0
    assert report["batch_invariance"]["latents_max_abs_diff"] == 0.0
    assert [r["scenario"] for r in report["runs"]] == ["mixed 1.5x"] * 3 + ["saturated"] * 3
    saturated = report["runs"][-1]
    # Saturated arrivals follow the step engine's own capacity, not fcfs's.
    expected = 1.5 * report["step_engine_capacity_per_min"] / report["capacity_per_min"]
    assert saturated["load"] == pytest.approx(expected + GPU_PRESET.saturated_interactive_load)
    assert saturated["arrivals"] > 0 and saturated["arrival_lag_p99_ms"] is not None
    assert "throughput_ratio_step_engine_over_fcfs (target >= 2.5)" in report["targets"]
    written = json.loads((tmp_path / "report" / "results.json").read_text())
    assert written["device"] == report["device"]
    for name in ("results.md", "mixed.png", "saturated.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0


def test_scheduler_variants_parse_to_typed_overrides_and_unknown_names_fail_before_any_measuring():
    assert parse_variant("share_urgent_steps=false,batch_step_limit=1.5,max_rows=8") == {
        "share_urgent_steps": False,
        "batch_step_limit": 1.5,
        "max_rows": 8,
    }
    assert parse_variant("") == {}
    with pytest.raises(SystemExit, match="unknown SchedulerConfig field 'sharing'"):
        parse_variant("sharing=true")
    with pytest.raises(SystemExit, match="takes true or false"):
        parse_variant("share_urgent_steps=yes")
    with pytest.raises(SystemExit, match="max_rows takes an integer, not 'many'"):
        parse_variant("max_rows=many")
    with pytest.raises(SystemExit, match="max_rows must be at least 2"):
        parse_variant("max_rows=1")


def test_the_slowest_requests_are_split_into_waiting_stepping_and_decoding():
    from services.denoiser.bench import Outcome, RunStats, Scenario

    stats = RunStats("step-engine", Scenario("saturated", 0.1, 1.5, 10.0), capacity_per_s=1.0)
    stats.steady_seconds = 7.5
    stats.outcomes = [
        # alone-like: a first step after 0.1 s, 0.5 s of steps, 0.4 s of decode
        Outcome("interactive", 0.0, latency=1.0, unloaded=1.0, first_step=0.1, last_step=0.6),
        # arrived while the first was in flight, waited for it: 2x
        Outcome("interactive", 0.5, latency=2.0, unloaded=1.0, first_step=0.9, last_step=1.5),
        # the same arrival time in another round: not in flight beside the first
        Outcome("interactive", 0.5, latency=1.2, unloaded=1.0, first_step=0.1, last_step=0.7, round_=1),
        Outcome("batch", 0.2, latency=9.0, unloaded=1.0, first_step=5.0, last_step=8.0),
    ]
    slowest = stats.summary()["interactive"]["slowest"]
    assert [row["over_unloaded"] for row in slowest] == [2.0, 1.2, 1.0]
    assert slowest[0] == {
        "over_unloaded": 2.0,
        "to_first_step": 0.9,
        "steps": 0.6,
        "after_last_step": 0.5,
        "in_flight_at_arrival": 1,
    }
    assert slowest[1]["in_flight_at_arrival"] == 0 and slowest[2]["in_flight_at_arrival"] == 0
