"""Every page in both colour schemes, seeded and empty, checked by axe-core; and the flows of the second UI pass:
charts across runs, brushing, saved views, image versions, alias rollback, audit filters. Screenshots go to
test-artifacts/screenshots; timings of the big pages are printed, not asserted."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

import cairn
from tests.conftest import LiveServer
from tests.ui.conftest import SHOTS, axe_violations, new_tab, sign_in

pytestmark = pytest.mark.slow
SCHEMES = ("light", "dark")


def pages_of(seeded: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Each page's path and a test id (or role text) that shows it has loaded."""
    runs = seeded["runs"]
    return {
        "experiments": ("/", "text=mnist"),
        "runs": (f"/experiments/{seeded['experiment']}", "[data-testid=run-row]"),
        "runs-empty": (f"/experiments/{seeded['empty']}", "[data-testid=first-run-snippet]"),
        "run": (f"/runs/{runs['alpha']}", "[data-testid=run-overview]"),
        "compare": (f"/compare?runs={runs['alpha']},{runs['beta']},{runs['gamma']}", "[data-testid=parallel]"),
        "models": ("/models", "text=dev.churn"),
        "model": ("/models/dev.churn", "[data-testid=alias-champion]"),
        "admin": ("/admin", "[data-testid=tokens]"),
    }


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_page_in_both_themes_has_no_serious_axe_violation(browser: Any, seeded: dict[str, Any],
                                                                  scheme: str) -> None:
    url = seeded["server"].url
    page = new_tab(browser, scheme)
    sign_in(page, url)
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert (background == "rgb(17, 21, 27)") == (scheme == "dark")  # the theme follows the OS setting
    found = {}
    for name, (path, ready) in pages_of(seeded).items():
        page.goto(url + path)
        page.locator(ready).first.wait_for(timeout=30_000)
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(SHOTS / f"{name}-{scheme}.png"))
        violations = axe_violations(page)
        if violations:
            found[name] = violations
    assert found == {}
    assert page.errors == []


@pytest.mark.parametrize("scheme", SCHEMES)
def test_empty_pages_say_what_to_do_next(browser: Any, tmp_path: Path, scheme: str) -> None:
    server = LiveServer(tmp_path / "home", f"sqlite:///{tmp_path / 'empty.db'}").start()
    try:
        page = new_tab(browser, scheme)
        page.goto(server.url)
        expect(page.get_by_test_id("first-run-snippet")).to_contain_text("cairn.start_run")
        page.screenshot(path=str(SHOTS / f"experiments-empty-{scheme}.png"))
        assert axe_violations(page) == []
        page.get_by_role("link", name="Models").click()
        expect(page.get_by_test_id("empty")).to_contain_text("No registered models yet")
        expect(page.get_by_test_id("requests")).to_contain_text("Nothing waits for review")
        page.screenshot(path=str(SHOTS / f"models-empty-{scheme}.png"))
        assert axe_violations(page) == []
        page.get_by_role("link", name="Workspace").click()
        page.get_by_test_id("no-auth").wait_for()
        assert axe_violations(page) == []
        assert page.errors == []
    finally:
        server.stop()


def test_overlay_across_fifty_runs_grouped_and_brushed(page: Any, seeded: dict[str, Any]) -> None:
    url = seeded["server"].url
    sign_in(page, url)
    page.goto(f"{url}/experiments/{seeded['fifty']}")
    page.get_by_test_id("run-row").first.wait_for()
    chart = page.get_by_test_id("overlay-loss")
    chart.locator("canvas").wait_for(timeout=30_000)
    legend = chart.get_by_test_id("legend")
    expect(legend).to_contain_text("f00")
    assert "\u2013" not in legend.inner_text().split("f00")[1].split("f01")[0]  # the last value, not a dash, by default
    print(f"50-run overlay: {page.get_by_test_id('overlay-drawn').inner_text()}")
    page.get_by_label("overlay grouping").select_option("tag:team")
    expect(chart.get_by_test_id("legend")).to_contain_text("a (25)")
    page.screenshot(path=str(SHOTS / "runs-charts.png"), full_page=True)
    # brush the top of the lr axis: the table keeps only runs with a large learning rate
    page.get_by_test_id("parallel").scroll_into_view_if_needed()
    axis = page.get_by_test_id("brush-param:lr").bounding_box()
    page.mouse.move(axis["x"] + axis["width"] / 2, axis["y"] + 2)
    page.mouse.down()
    page.mouse.move(axis["x"] + axis["width"] / 2, axis["y"] + axis["height"] * 0.3, steps=5)
    page.mouse.up()
    kept = int(page.get_by_test_id("brushed-count").inner_text().split(" of ")[0])
    assert 0 < kept < 50
    expect(page.get_by_test_id("run-row")).to_have_count(kept)
    page.get_by_role("button", name="Clear brush").click()
    assert page.errors == []


def test_a_saved_view_opens_from_its_url(browser: Any, seeded: dict[str, Any]) -> None:
    url = seeded["server"].url
    page = new_tab(browser)
    sign_in(page, url)
    page.goto(f"{url}/experiments/{seeded['experiment']}")
    page.get_by_test_id("run-row").first.wait_for()
    page.locator("summary", has_text="Columns").click()
    page.get_by_test_id("column-chooser").get_by_role("checkbox", name="User", exact=True).uncheck()
    page.get_by_role("button", name="move loss left").click()
    page.locator("summary", has_text="Columns").click()  # closed again, off the headers
    page.locator('.head [data-column="param:lr"] span').click()
    page.locator("summary", has_text="Views").click()
    page.get_by_label("view name").fill("by lr")
    page.get_by_role("button", name="Save view").click()
    href = page.get_by_test_id("views").get_by_role("link", name="by lr").get_attribute("href")
    other = page.context.new_page()
    other.goto(f"{url}{href}")  # the link holds the whole view: filter, columns, sort
    other.get_by_test_id("run-row").first.wait_for()
    headers = other.locator(".head [data-column]").evaluate_all("cells => cells.map(c => c.dataset.column)")
    assert "attr:user" not in headers
    assert headers.index("metric:loss") < headers.index("attr:tags")
    expect(other.locator('.head [data-column="param:lr"]')).to_contain_text("▼")
    # the column choice is remembered for this experiment without the URL too
    other.goto(f"{url}/experiments/{seeded['experiment']}")
    other.get_by_test_id("run-row").first.wait_for()
    assert other.locator('.head [data-column="attr:user"]').count() == 0
    assert page.errors == []


def test_image_versions_alias_rollback_and_audit_filter(page: Any, seeded: dict[str, Any]) -> None:
    url, client = seeded["server"].url, seeded["client"]
    sign_in(page, url)
    page.goto(f"{url}/runs/{seeded['runs']['alpha']}")
    page.get_by_role("link", name="img.png").click()
    page.get_by_role("button", name="preview v1").click()
    image = page.get_by_test_id("artifact-preview").locator("img")
    assert "version=1" in image.get_attribute("src")
    page.get_by_label("image version").fill("2")
    expect(page.get_by_test_id("artifact-preview")).to_contain_text("version 2")
    assert "version=2" in image.get_attribute("src")
    page.screenshot(path=str(SHOTS / "run-image-versions.png"), full_page=True)
    # a text artifact's two versions, diffed
    page.get_by_role("link", name="notes.txt").click()
    page.get_by_role("button", name="Show diff").click()
    expect(page.get_by_test_id("artifact-diff")).to_contain_text("- first draft")
    expect(page.get_by_test_id("artifact-diff")).to_contain_text("+ second draft")
    # roll the champion back and see the move on its timeline
    page.goto(f"{url}/models/dev.churn")
    champion = page.get_by_test_id("alias-champion")
    expect(champion).to_contain_text("→ v2")
    champion.get_by_role("button", name="Roll back champion").click()
    expect(champion).to_contain_text("→ v1")
    expect(champion.get_by_role("list")).to_contain_text("v2 → v1")
    assert client.get_model_version_by_alias("dev.churn", "champion").version == 1
    page.screenshot(path=str(SHOTS / "model.png"), full_page=True)
    # the audit log filtered by action; each entry links to its object
    page.goto(f"{url}/admin")
    page.get_by_label("audit action").fill("alias.*")
    page.get_by_role("button", name="Show").click()
    actions = page.get_by_test_id("audit").locator("td:nth-child(3)")
    # the unfiltered log shown first holds alias moves too: wait until every entry shown is one
    expect(actions.first).to_have_text(re.compile(r"^alias\."))
    expect(actions.filter(has_not_text=re.compile(r"^alias\."))).to_have_count(0)
    assert page.errors == []


def test_sdk_runs_show_in_a_fresh_workspace(browser: Any, tmp_path: Path) -> None:
    """The empty state's snippet is real: run it against the server and the run shows up."""
    server = LiveServer(tmp_path / "home", f"sqlite:///{tmp_path / 'fresh.db'}").start()
    try:
        client = cairn.Client(server.url)
        experiment = client.create_experiment("my-experiment")
        run = client.create_run(experiment.id, name="first")
        client.log_batch(run.id, metrics=[{"key": "loss", "steps": [0], "values": [0.25]}])
        page = new_tab(browser)
        page.goto(f"{server.url}/experiments/{experiment.id}")
        page.get_by_test_id("run-row").first.wait_for()
        page.get_by_role("link", name="first").click()
        expect(page.get_by_test_id("copy-id").first).to_contain_text(run.id[:8])
        assert page.errors == []
    finally:
        server.stop()
