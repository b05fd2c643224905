"""The FeedRanker's multi-task ranking model, end to end in one file.

Shapes: B candidates of one request, D the content-embedding width (384), F = NUM_FEATURES dense
features, H the tower width. The user tower runs once per request on the taste vector (1, D) and is
broadcast over the candidates.

    taste (1, D) ──user_tower──▶ u (1, H) ─┐
    items (B, D) ──item_tower──▶ i (B, H) ─┼─ [u, i, u*i, norm(dense)] (B, 3H+F) ── trunk ── heads ─┐
    dense (B, F) ───────────────────────────┘                                                       + ─▶ (B, 3)
    norm(dense) (B, F) ─────────────────────────── wide (linear) ──────────────────────────────────┘

The wide path (Wide & Deep, Cheng et al. 2016) lets the strong, simple signals (similarity to the
taste vector, smoothed rates) act linearly from the first steps; the deep part learns interactions.
Logged feedback is small and noisy, and the wide path keeps the model from having to rediscover
that similarity matters through the towers.

Heads: expected watch ratio (sigmoid of the first output; trained with a soft-label BCE on the watched
fraction, capped at 1), P(like) and P(remix) (sigmoids; BCE). The ranking score combines them with
the weights in `RankerConfig.head_weights`, which say what the feed optimizes for: by default a like is
worth two complete watches and a remix four, because a remix is new content for everyone else.

Dense features are standardized inside the model with the training set's mean and std, which are
saved with the weights, so callers pass raw features.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from services.ranker.features import FEATURE_NAMES, NUM_FEATURES

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS_DIR = Path(__file__).parent / "weights"
HEADS = ("watch", "like", "remix")


@dataclass(frozen=True)
class RankerConfig:
    embedding_dim: int = 384
    num_features: int = NUM_FEATURES
    tower_dim: int = 64  # H
    trunk_dim: int = 64  # T: the first trunk layer runs per candidate, its width sets most of the cost
    dropout: float = 0.1  # training only: the logs are small and noisy
    # (watch ratio, like, remix) -> score = sum of weight * head probability.
    head_weights: tuple[float, float, float] = (1.0, 2.0, 4.0)
    feature_names: tuple[str, ...] = field(default=FEATURE_NAMES)


@dataclass
class RankerHeads:
    watch: torch.Tensor  # (B,) expected watch ratio in [0, 1]
    like: torch.Tensor  # (B,) P(like)
    remix: torch.Tensor  # (B,) P(remix)


class FeedRankerModel(nn.Module):
    def __init__(self, config: RankerConfig) -> None:
        super().__init__()
        self.config = config
        d, h, f = config.embedding_dim, config.tower_dim, config.num_features
        self.user_tower = nn.Sequential(nn.Linear(d, h), nn.GELU(), nn.Linear(h, h))
        self.item_tower = nn.Sequential(nn.Linear(d, h), nn.GELU(), nn.Linear(h, h))
        self.trunk = nn.Sequential(
            nn.Linear(3 * h + f, config.trunk_dim),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.trunk_dim, config.trunk_dim // 2),
            nn.GELU(),
        )
        self.heads = nn.Linear(config.trunk_dim // 2, len(HEADS))
        self.wide = nn.Linear(f, len(HEADS), bias=False)
        self.register_buffer("dense_mean", torch.zeros(f))
        self.register_buffer("dense_std", torch.ones(f))
        self.initialize_weights()

    def initialize_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)  # keeps tower outputs O(1) for unit-norm inputs
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        # Start the like/remix heads at rare-event base rates, so early training is not spent on the bias.
        with torch.no_grad():
            self.heads.bias.copy_(torch.tensor([0.0, -3.0, -5.0]))

    def set_feature_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.dense_mean.copy_(mean)
        self.dense_std.copy_(std.clamp_min(1e-3))

    def forward(self, taste: torch.Tensor, items: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        """Logits of the heads.

        taste: float32 (1, D) or (B, D); items: float32 (B, D); dense: float32 (B, F) raw features.
        Returns float32 (B, 3): logits of (watch ratio, like, remix).
        """
        u = self.user_tower(taste).expand(items.shape[0], -1)  # (B, H)
        i = self.item_tower(items)  # (B, H)
        x = (dense - self.dense_mean) / self.dense_std  # (B, F)
        deep = self.heads(self.trunk(torch.cat([u, i, u * i, x], dim=1)))  # (B, 3H + F) -> (B, 3)
        return deep + self.wide(x)  # (B, 3)

    def predict(self, taste: torch.Tensor, items: torch.Tensor, dense: torch.Tensor) -> RankerHeads:
        return self._heads(self.forward(taste, items, dense))

    # -- serving with per-video caching -------------------------------------------------------------
    #
    # The trunk's first layer is linear in its concatenated input, so it splits into a user part, an
    # item part, the user-item product and the dense part:
    #     W [u, i, u*i, x] + b = (W_u u + b) + W_i i + (W_ui ⊙ u) i + W_x x
    # Everything that depends on the item alone (the item tower and W_i i) is computed once per video
    # and cached by the scorer; a request then costs two small matmuls per candidate instead of the
    # item tower over D = 384 inputs and the full first layer. Same function as `forward` in eval mode.

    def item_features(self, items: torch.Tensor) -> torch.Tensor:
        """items float32 (B, D) -> (B, H + T) = [item tower output, its first-layer contribution W_i i]."""
        h = self.config.tower_dim
        i = self.item_tower(items)  # (B, H)
        w_i = self.trunk[0].weight[:, h : 2 * h]  # (T, H)
        return torch.cat([i, i @ w_i.T], dim=1)  # (B, H + T)

    def predict_cached(
        self, taste: torch.Tensor, item_features: torch.Tensor, dense: torch.Tensor
    ) -> RankerHeads:
        """taste (1, D); item_features (B, H + T) from `item_features`; dense (B, F) raw. Eval mode only."""
        h = self.config.tower_dim
        first = self.trunk[0]
        w_u, w_ui, w_x = first.weight[:, :h], first.weight[:, 2 * h : 3 * h], first.weight[:, 3 * h :]
        u = self.user_tower(taste)  # (1, H)
        i, w_i_i = item_features[:, :h], item_features[:, h:]  # (B, H), (B, T)
        x = (dense - self.dense_mean) / self.dense_std  # (B, F)
        hidden = w_i_i + torch.addmm(first.bias, u, w_u.T)  # (B, T)
        hidden = hidden + i @ (u.T * w_ui.T) + x @ w_x.T  # (B, H) @ (H, T), (B, F) @ (F, T)
        deep = self.heads(self.trunk[1:](hidden))  # (B, 3)
        return self._heads(deep + self.wide(x))

    @staticmethod
    def _heads(logits: torch.Tensor) -> RankerHeads:
        probs = torch.sigmoid(logits)  # (B, 3)
        return RankerHeads(watch=probs[:, 0], like=probs[:, 1], remix=probs[:, 2])

    def score(self, heads: RankerHeads) -> torch.Tensor:
        """(B,) the combined ranking score."""
        w_watch, w_like, w_remix = self.config.head_weights
        return w_watch * heads.watch + w_like * heads.like + w_remix * heads.remix


def multitask_loss(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """logits (B, 3); targets (B, 3) = (watch ratio capped at 1, liked 0/1, remixed 0/1)."""
    per_head = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(dim=0)  # (3,)
    return per_head.sum(), {name: float(v) for name, v in zip(HEADS, per_head.detach(), strict=True)}


def save_ranker(model: FeedRankerModel, directory: Path, metadata: dict | None = None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, directory / "model.safetensors")
    config = asdict(model.config) | {"training": metadata or {}}
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def load_ranker(directory: Path | None = None) -> FeedRankerModel | None:
    """The trained model from `directory` (the shipped weights by default); None when there are none."""
    directory = Path(directory or DEFAULT_WEIGHTS_DIR)
    weights, config_file = directory / "model.safetensors", directory / "config.json"
    if not (weights.is_file() and config_file.is_file()):
        return None
    fields = json.loads(config_file.read_text())
    fields.pop("training", None)
    fields["head_weights"] = tuple(fields["head_weights"])
    fields["feature_names"] = tuple(fields["feature_names"])
    config = RankerConfig(**fields)
    if config.feature_names != FEATURE_NAMES:
        raise ValueError(
            f"{directory}: the weights were trained on other features than features.FEATURE_NAMES"
        )
    model = FeedRankerModel(config)
    model.load_state_dict(load_file(weights))
    model.eval()
    log.info(
        "ranking model loaded from %s: %d parameters, head weights %s",
        directory,
        sum(p.numel() for p in model.parameters()),
        config.head_weights,
    )
    return model
