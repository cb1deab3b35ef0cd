"""Inference-aware answers name training, inference and total FLOPs, and reduce to the compute-optimal model without
inference (Sardana et al. 2023 on Hoffmann et al.'s published coefficients)."""

from __future__ import annotations

import math

from laws.catalog import get_law
from registry.planning import inference_flops
from tests.synthetic import HOFFMANN

CHINCHILLA = get_law("chinchilla")


def test_with_almost_no_inference_the_answer_is_the_compute_optimal_model_for_the_budget():
    plain = CHINCHILLA.allocate(HOFFMANN, 1e24)
    aware = inference_flops(CHINCHILLA, HOFFMANN, 1e24, 1.0)
    assert math.isclose(aware["n_opt"], float(plain.n_opt), rel_tol=1e-3)
    assert math.isclose(aware["training_flops"], 1e24, rel_tol=1e-3)


def test_serving_tokens_buy_a_smaller_model_trained_longer_and_the_flops_add_up():
    plain = CHINCHILLA.allocate(HOFFMANN, 1e24)
    aware = inference_flops(CHINCHILLA, HOFFMANN, 1e24, 1e13)
    assert aware["n_opt"] < float(plain.n_opt) and aware["tokens_per_param"] > float(plain.tokens_per_param)
    assert aware["training_flops"] > 1e24  # the same loss costs more to train, less to serve
    assert math.isclose(aware["inference_flops"], 2 * aware["n_opt"] * 1e13, rel_tol=1e-12)
    assert math.isclose(aware["total_flops"], aware["training_flops"] + aware["inference_flops"], rel_tol=1e-12)
    h = HOFFMANN
    reached = h["E"] + h["A"] / aware["n_opt"] ** h["alpha"] + h["B"] / aware["d_opt"] ** h["beta"]
    assert math.isclose(reached, float(plain.predicted_loss), rel_tol=1e-6)  # the loss the budget buys
