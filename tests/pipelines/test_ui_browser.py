"""The Dagster UI as a person sees it: a real chromium opens the asset graph and a family's fit.

Starts `dagster dev` against a home holding one fitted family, in its own process group with
default signal handlers so the whole group (webserver, daemon, code server) is stopped after.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipelines.runner import refit
from registry.db import writer
from registry.ingest import ingest_path
from tests.synthetic import chinchilla_runs, write_runs

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PROJECT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture
def dagster_ui(home, tmp_path):
    with writer(home.registry) as con:
        ingest_path(con, home, write_runs(tmp_path / "runs.csv", chinchilla_runs("family-a")))
    refit(home, ["family-a"], run_config={"ops": {"fits": {"config": {"bootstrap_resamples": 100, "other_law_resamples": 10}}}})
    port = _free_port()
    env = os.environ | {"DAGSTER_HOME": str(home.dagster), "SCALEREG_HOME": str(home.root)}
    log = (tmp_path / "dagster-dev.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port), "-m", "pipelines.definitions"],
        cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_default_signals,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "dagster-dev.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "dagster dev did not answer within 180 s"
            time.sleep(1)
        yield url
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(server.pid, sig)
            except ProcessLookupError:
                break
            try:
                server.wait(timeout=20)
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()


def test_the_asset_graph_and_a_family_fit_show_coefficients_and_plot(dagster_ui, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{dagster_ui}/asset-groups", wait_until="networkidle")
        skip = page.get_by_role("button", name="Skip")
        if skip.count():
            skip.first.click()
        for group in ("ingest", "registry", "fits"):
            expect(page.get_by_text(group, exact=True).first).to_be_visible(timeout=60_000)
        page.screenshot(path=str(tmp_path / "asset-graph.png"))

        page.goto(f"{dagster_ui}/assets/fits?partition=family-a", wait_until="networkidle")
        # the metadata entry "coefficients" is a table: one row per law and parameter, with its interval
        coefficients = page.locator("tr").filter(has=page.get_by_text("coefficients", exact=True)).first
        expect(coefficients.locator("th")).to_contain_text(["law", "version", "status", "parameter", "value", "ci_lo", "ci_hi"],
                                                             timeout=60_000)
        alpha = coefficients.locator("tbody tr").filter(has=page.get_by_role("cell", name="alpha", exact=True))
        expect(alpha).to_have_count(1)
        expect(alpha.locator("td")).to_have_count(7)
        cells = alpha.locator("td").all_inner_texts()
        assert cells[:4] == ["chinchilla", "v1", "published", "alpha"]
        lo, value, hi = float(cells[5]), float(cells[4]), float(cells[6])
        assert lo < value < hi and lo < 0.34 < hi  # Hoffmann et al.'s alpha, from which the runs were drawn
        page.locator("tr", has_text="plot").first.get_by_text("Show Markdown").click()
        plot = page.locator("img[src^='data:image/png']")
        expect(plot).to_have_count(1, timeout=30_000)
        assert plot.evaluate("img => img.naturalWidth") > 400
        page.screenshot(path=str(tmp_path / "family-fit.png"))
        browser.close()
    assert (tmp_path / "family-fit.png").stat().st_size > 10_000
