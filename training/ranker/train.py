"""Training of the FeedRanker's multi-task model on logged impressions (simulated, see simulator.py).

A logged impression is what the ranker saw when it served the video (the user's taste vector, the
video's embedding, the dense features) and what the user then did (watch ratio, like, remix).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from services.ranker.model import FeedRankerModel, RankerConfig, multitask_loss

log = logging.getLogger(__name__)


@dataclass
class ImpressionLog:
    tastes: list[np.ndarray] = field(default_factory=list)  # float32 (D,) each
    items: list[np.ndarray] = field(default_factory=list)  # float32 (D,)
    dense: list[np.ndarray] = field(default_factory=list)  # float32 (F,)
    targets: list[tuple[float, float, float]] = field(default_factory=list)  # (watch<=1, like, remix)

    def add(self, taste, item, dense, watch_ratio: float, liked: bool, remixed: bool) -> None:
        self.tastes.append(taste)
        self.items.append(item)
        self.dense.append(dense)
        self.targets.append((min(watch_ratio, 1.0), float(liked), float(remixed)))

    def __len__(self) -> int:
        return len(self.targets)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (
            torch.from_numpy(np.stack(self.tastes)),  # (N, D)
            torch.from_numpy(np.stack(self.items)),  # (N, D)
            torch.from_numpy(np.stack(self.dense)),  # (N, F)
            torch.tensor(self.targets, dtype=torch.float32),  # (N, 3)
        )


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 12
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    validation_fraction: float = 0.1
    seed: int = 0


def train_ranker(logs: ImpressionLog, config: TrainConfig = TrainConfig()) -> tuple[FeedRankerModel, dict]:
    torch.manual_seed(config.seed)
    tastes, items, dense, targets = logs.tensors()
    n = len(targets)
    order = torch.randperm(n)
    n_val = int(n * config.validation_fraction)
    val, train = order[:n_val], order[n_val:]
    model = FeedRankerModel(RankerConfig(embedding_dim=items.shape[1]))
    model.set_feature_stats(dense[train].mean(dim=0), dense[train].std(dim=0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * ((len(train) + config.batch_size - 1) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=steps)
    history, best_loss, best_state = [], float("inf"), None
    for epoch in range(config.epochs):
        model.train()
        shuffled = train[torch.randperm(len(train))]
        for start in range(0, len(shuffled), config.batch_size):
            batch = shuffled[start : start + config.batch_size]
            logits = model(tastes[batch], items[batch], dense[batch])  # (B, 3)
            loss, _ = multitask_loss(logits, targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
        with torch.no_grad():
            val_loss, per_head = multitask_loss(model(tastes[val], items[val], dense[val]), targets[val])
        history.append({"epoch": epoch + 1, "val_loss": float(val_loss), **per_head})
        log.info("epoch %d: validation loss %.4f %s", epoch + 1, float(val_loss), per_head)
        if float(val_loss) < best_loss:  # keep the epoch that generalizes best (early stopping)
            best_loss, best_state = float(val_loss), copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    best_epoch = min(history, key=lambda h: h["val_loss"])["epoch"]
    return model.eval(), {"impressions": n, "validation": n_val, "best_epoch": best_epoch, "history": history}
