"""A small tabular network: an embedding per categorical, scaled numerics, an MLP."""

from __future__ import annotations

import torch
from torch import nn


class TabularNet(nn.Module):
    def __init__(
        self, n_numeric: int, cardinalities: list[int], embedding_dim: int, hidden_units: int
    ) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(c, embedding_dim) for c in cardinalities)
        width = n_numeric + embedding_dim * len(cardinalities)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden_units),
            nn.ReLU(),
            nn.Linear(hidden_units, hidden_units),
            nn.ReLU(),
        )
        self.head = nn.Linear(hidden_units, 1)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        parts = [numeric]
        parts += [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        return self.head(self.mlp(torch.cat(parts, dim=1))).squeeze(1)
