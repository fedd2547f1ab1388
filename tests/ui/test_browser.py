"""The web UI in a real browser: Debian's headless Chromium driven by Playwright, against a real
``cairn server --auth`` seeded through the SDK. Screenshots of the main pages go to test-artifacts/."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

import cairn
from tests.conftest import LiveServer
from tests.ui.conftest import BIG, MANY, PASSWORD, SHOTS, sign_in

pytestmark = pytest.mark.slow


def cells(page: Any, column: str) -> list[str]:
    return [c.inner_text() for c in page.locator(f'[data-testid="run-row"] [data-column="{column}"]').all()]


def test_find_compare_and_drill_into_runs(page: Any, seeded: dict[str, Any]) -> None:
    url, client = seeded["server"].url, seeded["client"]
    sign_in(page, url)
    page.get_by_role("link", name="mnist").click()
    page.get_by_test_id("run-row").first.wait_for()
    page.screenshot(path=str(SHOTS / "runs.png"))
    # the min aggregation, sorted by it, agrees with the API
    page.get_by_label("aggregation", exact=True).select_option("min")
    page.locator('.head [data-column="metric:loss"] span').click()
    page.locator('.head [data-column="metric:loss"] span').click()  # second click: ascending
    expect(page.locator('[data-testid=run-row] [data-column="metric:loss"]').first).to_have_text(
                           "0.1", timeout=30_000)
    api_order = client.search_runs(seeded["experiment"], order_by=["metrics.loss.min ASC"])
    expected = [f"{r.metrics['loss'].min:g}" for r in api_order if "loss" in r.metrics]
    assert cells(page, "metric:loss")[:3] == expected
    # grouped by a param: one row per value, with mean ± std
    page.get_by_label("group by").select_option("param:lr")
    expect(page.get_by_test_id("groups").locator("tbody tr")).to_have_count(4)  # three learning rates, "(none)"
    page.get_by_label("group by").select_option("")
    # a valid filter, then an invalid one with the error at its position
    page.get_by_label("filter").fill("metrics.loss.min < 0.25")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_test_id("run-row")).to_have_count(2, timeout=30_000)
    page.get_by_label("filter").fill("metrics.loss <<< 1")
    page.get_by_role("button", name="Filter").click()
    error = page.get_by_test_id("filter-error")
    error.wait_for()
    assert "^" in error.inner_text()
    page.screenshot(path=str(SHOTS / "filter-error.png"))
    # a run page: its chart of a million points is drawn within seconds
    started = time.monotonic()
    page.goto(f"{url}/runs/{seeded['runs']['long']}")
    drawn = page.get_by_test_id("chart-drawn")
    drawn.wait_for(timeout=15_000)
    elapsed = time.monotonic() - started
    assert f"{BIG} points drawn" in drawn.inner_text()
    print(f"million-point chart visible {elapsed:.2f} s after navigation")
    assert elapsed < 10
    page.screenshot(path=str(SHOTS / "run-chart.png"))
    # deep links and the back button
    page.goto(f"{url}/runs/{seeded['runs']['alpha']}")
    page.get_by_role("heading", name="alpha").wait_for()
    page.go_back()
    page.get_by_test_id("chart-drawn").wait_for()
    assert page.errors == []


def test_sign_in_errors_and_sign_out(page: Any, seeded: dict[str, Any]) -> None:
    url = seeded["server"].url
    page.goto(url)
    page.get_by_label("user name").fill("alice")
    page.get_by_label("password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").wait_for()
    assert "wrong user name or password" in page.get_by_role("alert").inner_text()
    page.screenshot(path=str(SHOTS / "sign-in.png"))
    sign_in(page, url)
    page.get_by_role("heading", name="Experiments").wait_for()
    page.screenshot(path=str(SHOTS / "experiments.png"))
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for()
    assert [e for e in page.errors if "401" not in e] == []  # the signed-out probe of /auth/me is expected


def test_compare_artifacts_promotion_and_tokens(page: Any, seeded: dict[str, Any]) -> None:
    url, client, runs = seeded["server"].url, seeded["client"], seeded["runs"]
    sign_in(page, url)
    # compare three runs
    page.goto(f"{url}/experiments/{seeded['experiment']}")
    for name in ("alpha", "beta", "gamma"):
        page.get_by_label(f"select {name}").check()
    page.get_by_role("button", name="Compare (3)").click()
    page.get_by_test_id("overlay-loss").locator("canvas").wait_for()
    expect(page.get_by_test_id("param-diff")).to_contain_text("lr")
    page.get_by_test_id("parallel").wait_for()
    page.screenshot(path=str(SHOTS / "compare.png"))
    # version 1 of an artifact
    page.goto(f"{url}/runs/{runs['alpha']}")
    page.get_by_role("link", name="notes.txt").click()
    page.get_by_role("button", name="preview v1").click()
    assert "first draft" in page.get_by_test_id("artifact-preview").inner_text()
    page.screenshot(path=str(SHOTS / "artifact-versions.png"))
    # request a promotion into the protected registry; a second person approves it
    page.goto(f"{url}/models")
    page.get_by_role("link", name="dev.churn").click()
    page.once("dialog", lambda dialog: dialog.accept("prod.churn"))
    page.get_by_test_id("version-1").get_by_role("button", name="Request promotion").click()
    page.get_by_test_id("requests").get_by_text("dev.churn v1").wait_for()
    page.screenshot(path=str(SHOTS / "models.png"))
    page.get_by_role("button", name="Approve").click()
    page.get_by_role("alert").wait_for()  # alice cannot approve her own request
    assert "own promotion request" in page.get_by_role("alert").inner_text()
    second = page.context.browser.new_context().new_page()
    second.goto(url)
    second.get_by_label("user name").fill("bob")
    second.get_by_label("password").fill(PASSWORD)
    second.get_by_role("button", name="Sign in").click()
    second.get_by_label("workspace").select_option("vision")
    second.get_by_role("link", name="Models").click()
    second.get_by_role("button", name="Approve").click()
    second.get_by_test_id("requests").get_by_text("dev.churn v1").wait_for(state="detached")
    assert client.get_model_version("prod.churn", 1).version == 1
    # a token made in the UI is shown once, and revoked from there
    page.goto(f"{url}/admin")
    page.get_by_label("token name").fill("ui-made")
    page.get_by_role("button", name="Create token").click()
    secret = page.get_by_test_id("new-token").locator("code").inner_text()
    assert cairn.Client(url, token=secret, workspace="vision").list_experiments()
    page.get_by_role("button", name="Revoke ui-made").click()
    page.get_by_test_id("tokens").get_by_text("revoked").wait_for()
    with pytest.raises(cairn.AuthenticationError):
        cairn.Client(url, token=secret, workspace="vision").list_experiments()
    expect(page.get_by_test_id("audit")).to_contain_text("promotion.approve")
    page.screenshot(path=str(SHOTS / "admin.png"))
    assert [e for e in page.errors if "403" not in e] == []  # the refused self-approval is expected


def test_a_viewer_sees_no_actions_it_may_not_take(page: Any, seeded: dict[str, Any]) -> None:
    url = seeded["server"].url
    sign_in(page, url, "vic")
    page.get_by_role("heading", name="Experiments").wait_for()
    page.get_by_role("link", name="mnist").wait_for()
    assert page.get_by_role("button", name="Create").count() == 0
    assert page.get_by_role("button", name="Delete").count() == 0
    page.get_by_role("link", name="Models").click()
    page.get_by_role("link", name="dev.churn").click()
    page.get_by_role("link", name="v1", exact=True).click()
    page.get_by_test_id("version-details").wait_for()
    assert page.get_by_role("button", name="Request promotion").count() == 0
    assert page.get_by_role("button", name="Save description").count() == 0
    page.get_by_role("link", name="Workspace").click()
    page.get_by_text("Owners manage members.").wait_for()
    assert page.get_by_test_id("server-admin").count() == 0
    page.screenshot(path=str(SHOTS / "viewer.png"))
    assert page.errors == []


def test_ten_thousand_runs_stay_smooth(page: Any, seeded: dict[str, Any]) -> None:
    url = seeded["server"].url
    sign_in(page, url)
    started = time.monotonic()
    page.goto(f"{url}/experiments/{seeded['many']}")
    page.get_by_test_id("run-row").first.wait_for()
    first = time.monotonic() - started
    assert page.get_by_test_id("run-row").count() < 200  # virtualized: only what is on screen is in the page
    page.get_by_test_id("overlay-acc").locator("canvas").wait_for(timeout=60_000)  # the first 100 rows, overlaid
    print(f"100-run overlay {page.get_by_test_id('overlay-drawn').inner_text()} "
          f"({time.monotonic() - started:.2f} s after navigation)")
    grid = page.get_by_test_id("runs-grid")
    grid.evaluate("g => g.scrollTo(g.scrollWidth, 0)")  # sideways: the run name stays in view
    assert page.get_by_test_id("run-row").first.locator(".cell.name").bounding_box()["x"] >= grid.bounding_box()["x"] - 1
    page.locator('.head [data-column="metric:acc"] span').click()  # sort 10,000 runs by a metric, on the server
    expect(page.locator('[data-testid=run-row] [data-column="metric:acc"]').first).to_have_text(
                           "0.9999", timeout=30_000)
    scrolled = time.monotonic()
    done = f"{MANY:,} runs"
    for _ in range(150):  # scroll to the end: pages of 500 arrive as they are needed
        grid.evaluate("g => g.scrollTo(0, g.scrollHeight)")
        if page.get_by_test_id("run-count").inner_text() == done:
            break
        page.wait_for_timeout(200)
    assert page.get_by_test_id("run-count").inner_text() == done
    print(f"10,000 runs: first rows {first:.2f} s, scrolled through all in {time.monotonic() - scrolled:.2f} s")
    page.screenshot(path=str(SHOTS / "many-runs.png"))
    assert page.errors == []


def test_a_new_user_finds_compares_and_promotes_the_best_run_locally(tmp_path: Path, page: Any) -> None:
    """No --auth: the local single-user server, runs logged with the SDK, everything done in the browser."""
    server = LiveServer(tmp_path / "local", f"sqlite:///{tmp_path / 'local.db'}").start()
    try:
        client = cairn.Client(server.url)
        experiment = client.create_experiment("first")
        best = None
        for name, loss in (("a", 0.5), ("b", 0.2), ("c", 0.4)):
            run = client.create_run(experiment.id, name=name)
            client.log_batch(run.id, metrics=[{"key": "loss", "steps": [0, 1], "values": [1.0, loss]}])
            (tmp_path / "w.bin").write_bytes(name.encode())
            client.upload_artifact(run.id, tmp_path / "w.bin", "models/m/w.bin")
            manifest = {"flavor": "pyfunc", "files": {"w.bin": {"sha256": hashlib.sha256(name.encode()).hexdigest(),
                                                                "size": 1}}}
            logged = client._t.request("POST", f"/api/v1/runs/{run.id}/logged-models",
                                       json={"name": "m", "artifact_path": "models/m", "manifest": manifest})
            client.register_model(logged["id"], "dev.first")
            client.set_terminated(run.id)
            best = run.id if name == "b" else best
        page.goto(server.url)
        page.get_by_role("link", name="first").click()
        page.get_by_label("aggregation", exact=True).select_option("min")
        page.locator('.head [data-column="metric:loss"] span').click()
        page.locator('.head [data-column="metric:loss"] span').click()
        expect(page.locator('[data-testid=run-row] [data-column="metric:loss"]').first).to_have_text(
                               "0.2", timeout=30_000)
        for name in ("a", "b", "c"):
            page.get_by_label(f"select {name}").check()
        page.get_by_role("button", name="Compare (3)").click()
        page.get_by_test_id("overlay-loss").locator("canvas").wait_for()
        page.get_by_role("link", name="b", exact=True).click()
        page.get_by_role("heading", name="b").wait_for()
        page.get_by_role("link", name="Models", exact=True).click()  # not the "models/" artifact folder
        page.get_by_role("link", name="dev.first").click()
        version = next(v.version for v in client.list_model_versions("dev.first") if v.run_id == best)
        page.once("dialog", lambda dialog: dialog.accept("prod.first"))
        page.get_by_test_id(f"version-{version}").get_by_role("button", name="Promote").click()
        page.get_by_role("link", name="prod.first").wait_for()
        assert client.get_model_version("prod.first", 1).run_id == best
        assert page.errors == []
    finally:
        server.stop()
