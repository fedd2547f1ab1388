"""Browser tests of the UI's finer points: the sign-in page in both themes, the run page's structured previews
and params compared with another run, grants on the workspace page, keyboard brushing of parallel coordinates,
and the conventions UI (badge, report, runs column, admin section) in a workspace whose conventions warn."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

import cairn
from tests.ui.conftest import SHOTS, axe_violations, new_tab, sign_in

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_sign_in_page_in_both_themes_has_no_serious_axe_violation(browser: Any, seeded: dict[str, Any],
                                                                    scheme: str) -> None:
    page = new_tab(browser, scheme)
    page.goto(seeded["server"].url)
    page.get_by_role("button", name="Sign in").wait_for()
    assert axe_violations(page) == []
    page.get_by_label("user name").fill("alice")
    page.get_by_label("password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").wait_for()  # the error shown is checked too
    page.screenshot(path=str(SHOTS / f"sign-in-{scheme}.png"))
    assert axe_violations(page) == []


def test_run_page_previews_structure_and_compares_params(page: Any, seeded: dict[str, Any]) -> None:
    url, runs = seeded["server"].url, seeded["runs"]
    sign_in(page, url)
    page.goto(f"{url}/runs/{runs['alpha']}")
    compare = page.get_by_test_id("param-compare")
    compare.get_by_label("compare params with run").select_option(label=f"beta ({runs['beta'][:8]})")
    expect(compare.get_by_test_id("param-differences")).to_have_text("1 of 1 params differ")
    expect(compare.locator("tr[data-differs]")).to_contain_text("0.01")
    # markdown: headings and lists as elements, the file's HTML as text
    page.get_by_role("link", name="README.md").click()
    page.get_by_role("button", name="preview v1").click()
    markdown = page.get_by_test_id("markdown")
    expect(markdown.get_by_role("heading", name="Churn model")).to_be_visible()
    expect(markdown.locator("li")).to_have_count(2)
    expect(markdown).to_contain_text("<script>alert(1)</script>")
    assert markdown.locator("script").count() == 0
    # YAML: keys nested under their parents
    page.get_by_role("link", name="config.yaml").click()
    page.get_by_role("button", name="preview v1").click()
    expect(page.get_by_test_id("yaml").locator('[data-key="layers"] > ul > li')).to_contain_text(["- 64", "- 32"])
    # the logged model's manifest and signature
    page.get_by_role("button", name="Show manifest of m").click()
    manifest = page.get_by_test_id("model-manifest")
    expect(manifest).to_contain_text("numpy==2.1.0")
    expect(manifest.get_by_role("table", name="signature inputs")).to_contain_text("income")
    expect(manifest.get_by_label("signature outputs")).to_contain_text("int64")
    page.screenshot(path=str(SHOTS / "run-previews.png"), full_page=True)
    assert axe_violations(page) == []
    assert page.errors == []


def test_grants_are_given_and_revoked_on_the_workspace_page(page: Any, seeded: dict[str, Any]) -> None:
    url, client = seeded["server"].url, seeded["client"]
    sign_in(page, url)
    page.goto(f"{url}/admin")
    grants = page.get_by_test_id("grants")
    expect(grants).to_contain_text("No grants yet")
    grants.get_by_label("grant resource", exact=True).select_option("mnist")
    grants.get_by_label("grant to").select_option("user:vic")
    grants.get_by_label("grant role").select_option("editor")
    grants.get_by_role("button", name="Grant", exact=True).click()
    revoke = grants.get_by_role("button", name="Revoke editor on mnist from vic")
    expect(revoke).to_be_visible()
    listed = client._t.request("GET", "/api/v1/workspaces/vision/grants")["grants"]
    assert [(g["resource"], g.get("user"), g["role"]) for g in listed] == [("mnist", "vic", "editor")]
    page.screenshot(path=str(SHOTS / "admin-grants.png"), full_page=True)
    assert axe_violations(page) == []
    revoke.click()
    expect(grants).to_contain_text("No grants yet")
    assert client._t.request("GET", "/api/v1/workspaces/vision/grants")["grants"] == []
    assert page.errors == []


def test_parallel_coordinates_brushed_from_the_keyboard(page: Any, seeded: dict[str, Any]) -> None:
    url = seeded["server"].url
    sign_in(page, url)
    page.goto(f"{url}/experiments/{seeded['fifty']}")
    page.get_by_test_id("run-row").first.wait_for()
    axis = page.get_by_role("slider", name="brush lr")
    axis.focus()
    axis.press("ArrowUp")  # brushes the middle fifth of the axis
    axis.press("ArrowUp")
    count = page.get_by_test_id("brushed-count")
    kept = int(count.inner_text().split(" of ")[0])
    assert 0 < kept < 50
    expect(page.get_by_test_id("run-row")).to_have_count(kept)
    axis.press("+")
    assert int(count.inner_text().split(" of ")[0]) >= kept
    axis.press("Escape")
    expect(count).to_have_text("50 of 50 runs")
    assert page.errors == []


def test_conventions_badge_report_column_and_settings(browser: Any, seeded: dict[str, Any]) -> None:
    url = seeded["server"].url
    rules = cairn.Client(url, token=seeded["token"], workspace="rules")
    rules._t.request("PUT", "/api/v1/conventions",
                     json={"mode": "warn", "rules": {"required_tags": {"tags": ["task"]}}})
    experiment = rules.create_experiment("ruled")
    tidy = rules.create_run(experiment.id, name="tidy", tags={"task": "churn"})
    messy = rules.create_run(experiment.id, name="messy")
    for run in (tidy, messy):
        rules.set_terminated(run.id)
    page = new_tab(browser)
    sign_in(page, url)
    page.get_by_label("workspace").select_option("rules")
    page.goto(f"{url}/experiments/{experiment.id}")
    page.get_by_test_id("run-row").first.wait_for()
    page.locator("summary", has_text="Columns").click()
    page.get_by_test_id("column-chooser").get_by_role("checkbox", name="Conventions").check()
    page.locator("summary", has_text="Columns").click()
    column = page.locator('[data-testid="run-row"] [data-column="attr:compliant"]')
    expect(column).to_have_count(2)
    assert sorted(column.all_inner_texts()) == ["✓ compliant", "✗ not compliant"]
    page.screenshot(path=str(SHOTS / "runs-conventions.png"))
    assert axe_violations(page) == []
    page.get_by_role("link", name="messy").click()
    expect(page.get_by_test_id("compliance-badge").first).to_have_text("✗ not compliant")
    report = page.get_by_test_id("compliance-report")
    expect(report).to_contain_text("(warn)")
    expect(report.locator("tr", has_text="required_tags")).to_contain_text("task")
    page.screenshot(path=str(SHOTS / "run-conventions.png"), full_page=True)
    assert axe_violations(page) == []
    page.goto(f"{url}/admin")
    section = page.get_by_test_id("conventions-section")
    expect(section).to_contain_text("Mode warn")
    expect(section).to_contain_text("required_tags")
    assert axe_violations(page) == []
    assert page.errors == []
