"""Training runs drawn from a known Chinchilla surface, written in the generic format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def chinchilla_runs(
    family: str, n_sizes: int = 6, n_tokens: int = 5, noise: float = 0.003, seed: int = 0, truth: dict | None = None,
    size_range: tuple[float, float] = (7.0, 9.5), token_range: tuple[float, float] = (9.0, 11.0), prefix: str = "run",
) -> pl.DataFrame:
    truth = truth or HOFFMANN
    rng = np.random.default_rng(seed)
    N, D = np.meshgrid(np.logspace(*size_range, n_sizes), np.logspace(*token_range, n_tokens))
    N, D = N.ravel(), D.ravel()
    loss = truth["E"] + truth["A"] / N ** truth["alpha"] + truth["B"] / D ** truth["beta"]
    loss = loss * np.exp(rng.normal(0.0, noise, loss.size))
    return pl.DataFrame(
        {"family": family, "run_name": [f"{prefix}-{i}" for i in range(N.size)], "params": N, "tokens": D, "loss": loss}
    )


def write_runs(path: Path, frame: pl.DataFrame) -> Path:
    frame.write_csv(path)
    return path
