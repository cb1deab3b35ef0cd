"""Synthetic training curves with a known compute-optimal allocation.

Each run of ``N`` parameters is trained to ``D_final`` tokens with a cosine
learning-rate schedule.  A checkpoint at ``D_t < D_final`` has seen ``D_t``
tokens but its learning rate has not been annealed, so its loss lies *above*
that of a run trained (and annealed) to exactly ``D_t``; the gap shrinks with
the learning rate and vanishes at the end of the schedule.  The excess is
modelled as proportional to the cosine learning rate:

    loss(t) = L(N, D_t) + penalty * (1 + cos(pi * D_t / D_final)) / 2,

with ``L`` a Chinchilla law written out here, so the true optimal exponent is
``a = beta / (alpha + beta)`` independently of the code under test.
"""

from __future__ import annotations

import numpy as np

from laws_truth import chinchilla_loss


def cosine_runs(
    truth: dict[str, float],
    sizes: np.ndarray,
    tokens_per_param: np.ndarray,
    *,
    n_checkpoints: int = 40,
    penalty: float = 0.1,
    noise: float = 0.0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Curves of every size trained to every horizon (``D_final = tokens_per_param * N``).

    Returns ``{"params", "tokens", "loss", "run"}`` with one row per checkpoint;
    ``noise`` is a log-normal scatter per checkpoint.
    """
    rng = np.random.default_rng(seed)
    N_run = np.repeat(sizes, tokens_per_param.size)
    D_final = N_run * np.tile(tokens_per_param, sizes.size)
    u = np.arange(1, n_checkpoints + 1) / n_checkpoints  # fraction of the schedule done
    N = np.repeat(N_run, n_checkpoints)
    D = (D_final[:, None] * u[None, :]).ravel()
    frac = np.tile(u, N_run.size)
    loss = chinchilla_loss(truth, N, D) + penalty * 0.5 * (1 + np.cos(np.pi * frac))
    loss = loss * np.exp(rng.normal(0.0, noise, loss.size))
    return {"params": N, "tokens": D, "loss": loss, "run": np.repeat(np.arange(N_run.size), n_checkpoints)}
