"""The Dagster UI as a person sees it after `make demo` twice: a real chromium opens every family's card, a held
family's failed check with its reason, and the cross-family plot on `allocations`.

One home runs the demo's own code twice (fewer bootstrap resamples, otherwise the shipped demo) with two
synthetic held families added: one held before fitting (all runs at one size), one held by its gates. The second
demo fits nothing new (no version 2 anywhere), and every family's page still shows its card. `scalereg ui`'s own
command line (`dg dev`) is started once, in its own process group, and the whole group is stopped after.
Screenshots go to test-output/ui/ (not committed).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipelines.cli import LOCATION, ui_command_line
from pipelines.demo import run_demo
from registry.db import reader, writer
from registry.home import Home
from registry.ingest import ingest_path
from tests.synthetic import chinchilla_runs, write_runs

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PROJECT = Path(__file__).resolve().parents[2]
SCREENSHOTS = PROJECT / "test-output" / "ui"
FAST = {"ops": {"fits": {"config": {"bootstrap_resamples": 60, "other_law_resamples": 8, "profile_points": 10}}}}
#: Twelve runs whose sizes span 12% (1e8 to 1.12e8): alpha is not pinned down, the Chinchilla fit is held by its
#: gates (an implausible alpha, an interval far too wide), and its profiles are stored.
HELD = "near-one-size"
#: Twelve runs all at N = 1e8: held by the design check before anything is fitted, so there is no profile.
ONE_SIZE = "one-size"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture(scope="module")
def demo_ui(tmp_path_factory):
    """(url, home, demo output, every family's newest Chinchilla status) after two demos, with `scalereg ui` serving."""
    tmp_path = tmp_path_factory.mktemp("ui")
    home = Home.from_env(tmp_path / "home").ensure()
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("SCALEREG_HOME", str(home.root))
        environment.setenv("DAGSTER_HOME", str(home.dagster))  # the runner sets it too; restored after
        with writer(home.registry) as con:
            for family, frame in {
                HELD: chinchilla_runs(HELD, n_sizes=3, n_tokens=4, size_range=(8.0, 8.05)),
                ONE_SIZE: chinchilla_runs(ONE_SIZE, n_sizes=1, n_tokens=12, size_range=(8.0, 8.0)),
            }.items():
                ingest_path(con, home, write_runs(tmp_path / f"{family}.csv", frame))
        output: list[str] = []
        for _ in range(2):
            run_demo(home, echo=output.append, run_config=FAST)
        with reader(home.registry) as con:
            statuses = dict(con.execute(
                "SELECT family, status FROM fits WHERE law = 'chinchilla' "
                "QUALIFY row_number() OVER (PARTITION BY family ORDER BY version DESC) = 1"
            ).fetchall())
        with _serve(home, tmp_path) as url:
            yield url, home, output, statuses


@contextmanager
def _serve(home: Home, tmp_path: Path):
    port = _free_port()
    command, folder = ui_command_line(home, port)
    env = os.environ | {"DAGSTER_HOME": str(home.dagster), "SCALEREG_HOME": str(home.root)}
    log_path = tmp_path / "dg-dev.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True, preexec_fn=_default_signals)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 240
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/server_info", timeout=2) as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    pass
                assert server.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, "dg dev did not answer within 240 s"
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
    startup = log_path.read_text()
    assert "will not be used" not in startup and "WARNING" not in startup, startup[-3000:]


@contextmanager
def browser_page(url: str):
    """A headless chromium page opened at ``url`` (the first-visit dialog dismissed)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, wait_until="networkidle")
            skip = page.get_by_role("button", name="Skip")
            if skip.count():
                skip.first.click()
            yield page
        finally:
            browser.close()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def metadata_row(page, name: str):
    """The row of the materialisation's metadata entry ``name`` (its label cell, exactly)."""
    return page.locator("tr").filter(has=page.get_by_text(name, exact=True)).first


def shown_image(page, name: str):
    """Open the markdown of metadata entry ``name`` and return the embedded PNG it shows (one, loaded)."""
    from playwright.sync_api import expect

    metadata_row(page, name).get_by_text("Show Markdown").click()
    image = page.get_by_role("dialog").locator("img[src^='data:image/png']")
    expect(image).to_have_count(1, timeout=30_000)
    assert image.evaluate("img => img.naturalWidth") > 400
    alt = image.get_attribute("alt")
    page.keyboard.press("Escape")
    return alt


def test_the_code_location_is_scalereg_and_the_demo_summary_shows_intervals(demo_ui):
    url, _, output, _ = demo_ui
    query = b'{"query": "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"}'
    request = urllib.request.Request(f"{url}/graphql", data=query, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert f'"name":"{LOCATION}"' in answer.read().decode()
    text = "\n".join(output)
    assert "Next:" in text and ".venv/bin/scalereg allocate --family chinchilla --compute 1e24" in text
    coefficients = text[text.index("Latest published Chinchilla coefficients"):]
    chinchilla = next(line for line in coefficients.splitlines() if line.startswith("│ chinchilla "))
    assert chinchilla.count("[") >= 6  # each of E, A, B, alpha, beta, a with its interval


def test_every_familys_page_shows_its_card_after_a_second_demo(demo_ui):
    from playwright.sync_api import expect

    url, _, _, statuses = demo_ui
    assert len(statuses) >= 12 and statuses[ONE_SIZE] == "held" and statuses[HELD] == "held"
    with browser_page(f"{url}/assets/fits?view=partitions") as page:
        for family, status in sorted(statuses.items()):
            page.goto(f"{url}/assets/fits?view=partitions&partition={family}", wait_until="networkidle")
            # the second demo fitted nothing new: the card still shows the first (and only) version of the family's fits
            expect(metadata_row(page, "refit")).to_contain_text(f"{family}/chinchilla/v1", timeout=60_000)
            expect(metadata_row(page, "loss_law_status")).to_contain_text(f"chinchilla: {status}")
            if family == ONE_SIZE:  # held before fitting: the reason, no parameters, nothing to draw
                expect(metadata_row(page, "not_published")).to_contain_text("same model size N = 1e+08")
                expect(page.get_by_text("plot", exact=True)).to_have_count(0)
                continue
            coefficients = metadata_row(page, "coefficients")
            expect(coefficients.locator("th")).to_contain_text(["law", "version", "status", "parameter", "value", "ci_lo", "ci_hi"])
            alpha = coefficients.locator("tbody tr").filter(has=page.get_by_role("cell", name="alpha", exact=True)).first
            cells = alpha.locator("td").all_inner_texts()
            assert cells[0] == "chinchilla" and cells[2] == status and cells[3] == "alpha"
            assert float(cells[5]) <= float(cells[4]) <= float(cells[6])  # the value inside its interval
            assert shown_image(page, "plot") == f"{family} fit"
            if status == "published":
                expect(metadata_row(page, "allocation_status")).to_contain_text("1e+24")
            screenshot(page, f"family-{family}")


def test_a_held_familys_page_and_its_failed_check_show_the_reason(demo_ui):
    from playwright.sync_api import expect

    url = demo_ui[0]
    with browser_page(f"{url}/assets/fits?view=partitions&partition={HELD}") as page:
        expect(metadata_row(page, "not_published")).to_contain_text("chinchilla: held: plausible: alpha=", timeout=60_000)
        expect(metadata_row(page, "failed_checks")).to_contain_text("plausible (held): chinchilla")
        assert shown_image(page, "profile_plot") == f"{HELD} profiles"
        screenshot(page, "held-family")

        # the design check of the family held before fitting: failed, for its partition, with the reason
        page.goto(f"{url}/assets/fits?view=checks", wait_until="networkidle")
        page.get_by_text("design", exact=True).first.click()
        page.locator("button[role=tab]#partitions").click()
        page.get_by_text(ONE_SIZE, exact=True).locator("visible=true").last.click()
        expect(page.get_by_text("same model size N = 1e+08").first).to_be_visible(timeout=60_000)
        expect(page.get_by_text("Failed", exact=True).first).to_be_visible()
        screenshot(page, "held-family-check")


def test_the_allocations_asset_shows_every_familys_frontier(demo_ui):
    from playwright.sync_api import expect

    url = demo_ui[0]
    with browser_page(f"{url}/assets/allocations?view=events") as page:
        expect(metadata_row(page, "frontiers")).to_be_visible(timeout=60_000)
        assert shown_image(page, "frontiers") == "compute-optimal frontiers of every family"
        screenshot(page, "allocations")
