"""The one feature code path: training, validation, batch scoring and the service all turn
raw feature values into model inputs here, with preprocessing fitted at training time."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import polars as pl

OOV_INDEX = 0  # index 0 of every vocabulary is the out-of-vocabulary bucket
# The data pipeline maps categories outside the configured vocabulary to this value; it is
# never a vocabulary entry, so it lands in the OOV bucket exactly as unknown values do
# at serving time (and training gives that bucket a learned embedding).
OOV_TOKEN = "__oov__"


def fit_ranges(
    frame: pl.DataFrame,
    numeric: tuple[str, ...],
    configured: dict[str, tuple[float, float]],
    slack: float,
) -> dict[str, list[float]]:
    """The [min, max] of each numeric feature for this model: the configured domain where
    there is one, else the training range widened by `slack` × its width on each side (a
    constant feature gets ±`slack` × max(1, |value|)).

    Recorded in the artifact: the service serves a value beyond it and flags it in the log
    as drift (`out_of_range`); only configured domains and absurd magnitudes are refused."""
    out: dict[str, list[float]] = {}
    for col in numeric:
        if col in configured:
            low, high = configured[col]
            out[col] = [float(low), float(high)]
            continue
        values = frame[col].cast(pl.Float64)
        lo, hi = values.min(), values.max()
        if lo is None or hi is None:
            continue  # no training values: nothing to learn a range from
        lo, hi = float(cast(float, lo)), float(cast(float, hi))
        width = hi - lo if hi > lo else max(1.0, abs(hi))
        out[col] = [lo - slack * width, hi + slack * width]
    return out


@dataclass(frozen=True)
class Preprocessor:
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]
    vocabularies: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def fit(
        cls, frame: pl.DataFrame, numeric: tuple[str, ...], categorical: tuple[str, ...]
    ) -> Preprocessor:
        means, stds = [], []
        for col in numeric:
            values = frame[col].cast(pl.Float64)
            mean = cast(float, values.mean() or 0.0)
            std = cast(float, values.std() or 0.0)
            means.append(mean)
            stds.append(std if std > 1e-12 else 1.0)
        vocab = {
            col: tuple(
                sorted(v for v in frame[col].drop_nulls().unique().to_list() if v != OOV_TOKEN)
            )
            for col in categorical
        }
        return cls(tuple(numeric), tuple(categorical), tuple(means), tuple(stds), vocab)

    def cardinalities(self) -> list[int]:
        return [len(self.vocabularies[c]) + 1 for c in self.categorical]

    def transform(self, frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(numeric float32 [n, k], categorical int64 [n, m]) for a frame of raw features."""
        n = frame.height
        if self.numeric:
            num = (
                frame.select(
                    [
                        ((pl.col(c).cast(pl.Float64) - m) / s).alias(c)
                        for c, m, s in zip(self.numeric, self.means, self.stds, strict=True)
                    ]
                )
                .to_numpy()
                .astype(np.float32, copy=False)
            )
        else:
            num = np.zeros((n, 0), dtype=np.float32)
        if self.categorical:
            cats = []
            for col in self.categorical:
                vocab = self.vocabularies[col]
                mapping = pl.DataFrame(
                    {col: list(vocab), "_idx": np.arange(1, len(vocab) + 1, dtype=np.int64)},
                    schema={col: pl.String(), "_idx": pl.Int64()},
                )
                idx = (
                    frame.select(pl.col(col).cast(pl.String))
                    .join(mapping, on=col, how="left", maintain_order="left")["_idx"]
                    .fill_null(OOV_INDEX)
                )
                cats.append(idx.to_numpy())
            cat = np.stack(cats, axis=1).astype(np.int64, copy=False)
        else:
            cat = np.zeros((n, 0), dtype=np.int64)
        return np.ascontiguousarray(num), np.ascontiguousarray(cat)

    @functools.cached_property
    def _index(self) -> dict[str, dict[str, int]]:
        return {c: {v: i for i, v in enumerate(self.vocabularies[c], 1)} for c in self.categorical}

    def transform_rows(self, rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """The same transform for request payloads (a list of feature dicts).

        Plain numpy and dict lookups: a single request must not pay for building a frame.
        The arithmetic is the frame path's (float64, then float32), so results are identical.
        """
        n = len(rows)
        num = np.array([[float(r[c]) for c in self.numeric] for r in rows], dtype=np.float64)
        num = num.reshape(n, len(self.numeric))
        num = ((num - np.array(self.means)) / np.array(self.stds)).astype(np.float32)
        index = self._index
        cat = np.array(
            [[index[c].get(str(r[c]), OOV_INDEX) for c in self.categorical] for r in rows],
            dtype=np.int64,
        ).reshape(n, len(self.categorical))
        return np.ascontiguousarray(num), np.ascontiguousarray(cat)

    def to_json(self) -> dict[str, Any]:
        return {
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "means": list(self.means),
            "stds": list(self.stds),
            "vocabularies": {k: list(v) for k, v in self.vocabularies.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Preprocessor:
        return cls(
            numeric=tuple(data["numeric"]),
            categorical=tuple(data["categorical"]),
            means=tuple(float(x) for x in data["means"]),
            stds=tuple(float(x) for x in data["stds"]),
            vocabularies={k: tuple(str(x) for x in v) for k, v in data["vocabularies"].items()},
        )
