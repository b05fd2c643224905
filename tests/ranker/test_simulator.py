"""The simulator and the evaluation metrics, on a tiny synthetic world."""

import numpy as np
import pytest

from services.ranker.scoring import ContentScorer, ModelScorer
from training.ranker.evaluate import (
    DIAGNOSTICS,
    TASTE_ORACLE,
    SimulatedPlatform,
    cold_start,
    held_out_ranking,
    logging_period,
    ndcg_at,
    parse_args,
    recall_at,
    report,
    served_by,
)
from training.ranker.simulator import SimConfig, World
from training.ranker.train import ImpressionLog, TrainConfig, train_ranker


def test_metrics():
    gains = np.array([0.0, 3.0, 1.0])
    assert ndcg_at(np.array([0.0, 2.0, 1.0]), gains, 2) == 1.0
    assert ndcg_at(np.array([2.0, 0.0, 1.0]), gains, 2) < 0.5
    assert ndcg_at(np.array([1.0, 2.0, 3.0]), np.zeros(3), 2) is None
    assert recall_at(np.array([3.0, 2.0, 1.0]), np.array([False, True, True]), 2) == 0.5


def test_users_respond_more_to_videos_that_match_their_taste():
    world = World(SimConfig(content="synthetic", num_users=20, initial_videos=300), 300)
    match = np.stack([world.match(u, np.arange(300)) for u in range(20)])
    own_topic = np.array([[world.topics[v] in world.user_topics[u] for v in range(300)] for u in range(20)])
    assert match[own_topic].mean() > 3 * match[~own_topic].mean()
    best = np.argsort(-match[0])[:20]
    worst = np.argsort(match[0])[:20]
    assert world.draw(0, best, []).mean() > world.draw(0, worst, []).mean()
    tired = [int(world.topics[best[0]])] * 5
    assert world.expected_gain(0, best[:1], tired)[0] < world.expected_gain(0, best[:1], [])[0]
    assert world.fatigue_factor(best[:1], tired)[0] == world.config.fatigue**5


async def test_a_short_simulation_logs_impressions_and_trains():
    config = SimConfig(content="synthetic", num_users=30, initial_videos=200)
    world = World(config, 260)
    platform = SimulatedPlatform(world, ContentScorer())
    await platform.publish(config.initial_videos)
    logs = ImpressionLog()
    await platform.run(20, 4, logs, random_slots=3)
    assert len(logs) == 20 * 4 * 10 and platform.published == 240
    model, info = train_ranker(logs, TrainConfig(epochs=2))
    assert info["impressions"] == len(logs) and 1 <= info["best_epoch"] <= 2
    held_out, by_history = await held_out_ranking(platform, model, requests=20, seed=1)
    assert set(held_out) == {"random", "popularity", "content-only", "model", "oracle", *DIAGNOSTICS}
    assert len({r["requests"] for r in held_out.values()}) == 1  # every method on the same requests
    assert held_out["oracle"]["ndcg@10"] > held_out["random"]["ndcg@10"]
    # The requests grouped by history length: every request counted once.
    assert sum(group["requests"] for group in by_history) == held_out["oracle"]["requests"]
    # Knowing the video's quality too can only rank better in expectation; on 20 requests, not worse by much.
    assert held_out["oracle"]["ndcg@10"] >= held_out[TASTE_ORACLE]["ndcg@10"] - 0.05

    first_new = platform.published
    await platform.run(5, 4)
    text = report(
        parse_args(
            ["--content", "synthetic", "--log-steps", "20", "--cold-steps", "5", "--sessions-per-step", "4"]
            + ["--epochs", "2", "--random-slots", "3"]
        ),
        config,
        logs,
        info,
        held_out,
        by_history,
        cold_start(platform, first_new),
        1.0,
    )
    ratio = held_out["model"]["ndcg@10"] / held_out[TASTE_ORACLE]["ndcg@10"]
    assert "| the same against an oracle that knows the tastes and the fatigue" in text
    assert f"{ratio:.0%} of its {held_out[TASTE_ORACLE]['ndcg@10']:.3f}" in text


async def test_later_logging_rounds_are_served_by_the_model_trained_on_the_earlier_ones():
    config = SimConfig(content="synthetic", num_users=30, initial_videos=200)
    world = World(config, 260)
    platform = SimulatedPlatform(world, ContentScorer())
    await platform.publish(config.initial_videos)
    args = parse_args(
        ["--content", "synthetic", "--log-steps", "20", "--rounds", "2", "--sessions-per-step", "4"]
        + ["--epochs", "1"]
    )
    logs = await logging_period(platform, args)
    assert len(logs) == 20 * 4 * 10 and platform.published == 240
    assert isinstance(platform.core.scorer, ModelScorer)
    assert served_by(2).startswith("in 2 rounds") and served_by(1) == "with the content-only fallback scorer"


def test_rounds_outside_one_to_the_logging_steps_are_refused(capsys):
    for rounds in ("0", "21"):
        with pytest.raises(SystemExit):
            parse_args(["--log-steps", "20", "--rounds", rounds])
        assert "--rounds must be between 1 and --log-steps (20)" in capsys.readouterr().err
