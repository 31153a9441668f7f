"""The web UI in a real headless Chromium against a real ``cmr serve`` on loopback.

Each test saves a screenshot of the page it ends on under the session's screenshot
directory (printed at the end of the run with ``-rA``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.ui.conftest import UiServer
from tests.ui.seed import HOSTILE, MODEL

from crucible_model_registry import Stage

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def shot(page: Any, screenshots: Path, name: str) -> None:
    page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)


def version_column(page: Any) -> list[str]:
    return page.locator("#versions tbody tr td:nth-child(1) a").all_inner_texts()


def test_models_page_shows_latest_version_and_stage_holders(
    ui: UiServer, page: Any, screenshots: Path
) -> None:
    page.goto(ui.url + "/")
    row = page.locator("tr", has=page.locator(f"a:text-is('{MODEL}')"))
    assert row.locator("td:nth-child(3) a").inner_text() == "4"
    staging = set(row.locator("td:nth-child(5) a").all_inner_texts())
    expected = {v.version for v in ui.registry.query({"model_name": MODEL, "stage": "staging"})}
    assert staging == expected
    page.fill("input[name=q]", "mistral")
    page.click("form[role=search] button")
    page.wait_for_url("**/?q=mistral")
    assert page.locator("tbody tr td:first-child a").all_inner_texts() == ["mistral-7b-sft"]
    shot(page, screenshots, "models")


def test_model_page_sorts_by_a_metric_and_filters_by_stage(
    ui: UiServer, page: Any, screenshots: Path
) -> None:
    page.goto(f"{ui.url}/")
    page.click(f"a:text-is('{MODEL}')")
    page.wait_for_url(f"**/models/{MODEL}")
    page.click("th a[data-sort='metric:accuracy']")
    page.wait_for_url("**sort=metric%3Aaccuracy**")
    by_accuracy = sorted(
        ui.registry.query({"model_name": MODEL}), key=lambda v: v.metrics["accuracy"]
    )
    assert version_column(page) == [v.version for v in reversed(by_accuracy)]
    page.click("th a[data-sort='metric:accuracy']")  # again: ascending
    page.wait_for_url("**dir=asc**")
    assert version_column(page) == [v.version for v in by_accuracy]
    page.check("input[name=stage][value=staging]")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**stage=staging**")
    in_staging = ui.registry.query({"model_name": MODEL, "stage": "staging"})
    expected = [v.version for v in sorted(in_staging, key=lambda v: v.metrics["accuracy"])]
    assert version_column(page) == expected
    assert set(page.locator("#versions tbody .stage").all_inner_texts()) == {"staging"}
    # The histories load when scrolled into view (htmx), from their own page.
    page.locator("#history").scroll_into_view_if_needed()
    aliases = page.locator("#history table").first
    aliases.wait_for()
    moved = {c.alias for c in ui.registry.alias_history(MODEL)}
    assert {t.strip() for t in aliases.locator("td .alias").all_inner_texts()} == moved
    shot(page, screenshots, "model")


def test_model_page_works_without_javascript(
    ui: UiServer, chromium: Any, screenshots: Path
) -> None:
    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(f"{ui.url}/models/{MODEL}?metric=accuracy%3E%3D0.9&sort=metric%3Aaccuracy")
        expected = ui.registry.query({"model_name": MODEL, "min_accuracy": 0.9})
        assert sorted(version_column(page)) == sorted(v.version for v in expected)
        page.click("th a[data-sort='version']")
        page.wait_for_url("**sort=version**")
        assert page.locator("#versions tbody tr").count() == len(expected)
        page.click("a:text-is('Alias and stage history')")
        page.wait_for_url(f"**/history/{MODEL}")
        reasons = page.locator("#history").inner_text()
        assert all(t.reason in reasons for t in ui.registry.stage_history(ui.seeded.v2))
    finally:
        context.close()


def test_version_page_draws_the_registrys_lineage(
    ui: UiServer, page: Any, screenshots: Path
) -> None:
    v3 = ui.seeded.v3
    page.goto(f"{ui.url}/versions/{v3.id}")
    graph = ui.registry.get_lineage(v3, max_depth=3)  # the version page's generations
    svg = page.locator("svg.lineage")
    assert svg.locator("g.node.version, g.node.focus").count() == len(graph.versions)
    assert svg.locator("g.node.base").count() == len(graph.base_models)
    assert svg.locator("g.edge.lineage").count() == len(graph.edges)
    assert svg.locator("g.edge.base").count() == sum(map(len, graph.base_models.values()))
    labels = svg.locator("g.edge.lineage text").all_text_contents()
    assert sorted(labels) == sorted(e.relationship.value for e in graph.edges)
    assert svg.locator("g.node.focus").get_attribute("data-key") == f"v{v3.id}"
    # The hostile text in a description and a reason is shown as text, never run.
    page.goto(f"{ui.url}/versions/{ui.seeded.v1.id}")
    assert HOSTILE in page.locator("main").inner_text()
    assert page.locator("script").count() == 1  # htmx only
    page.goto(f"{ui.url}/versions/{v3.id}")
    page.click(f"svg.lineage a:has(g[data-key='v{ui.seeded.v4.id}'])")
    page.wait_for_url(f"**/versions/{ui.seeded.v4.id}")
    assert page.locator("h1").inner_text().startswith(f"{MODEL} @{ui.seeded.v4.version}")
    shot(page, screenshots, "version")  # the merge: the README's docs/version-page.png
    # The artifact: size, checksum and a download link that serves its bytes.
    artifact = ui.registry.get_version(ui.seeded.v4.id).artifacts[0]
    link = page.locator("a:text-is('Download')")
    assert link.get_attribute("href") == f"/api/v1/artifacts/{artifact.id}/content"
    assert (artifact.checksum or "")[:16] in page.locator("main").inner_text()
    assert "4.0 KiB" in page.locator("main").inner_text()
    response = page.request.get(ui.url + link.get_attribute("href"))
    assert response.status == 200
    assert len(response.body()) == artifact.size_bytes


def test_lineage_page(ui: UiServer, page: Any, screenshots: Path) -> None:
    page.goto(f"{ui.url}/versions/{ui.seeded.v4.id}/lineage")
    graph = ui.registry.get_lineage(ui.seeded.v4)
    assert page.locator("svg.lineage g.edge.lineage").count() == len(graph.edges)
    shot(page, screenshots, "lineage")
    page.fill("input[name=depth]", "1")
    page.click("button:text-is('Draw')")
    page.wait_for_url("**depth=1")
    near = ui.registry.get_lineage(ui.seeded.v4, max_depth=1)
    assert len(near.versions) < len(graph.versions)
    versions = page.locator("svg.lineage g.node.version, svg.lineage g.node.focus")
    assert versions.count() == len(near.versions)
    page.emulate_media(color_scheme="dark")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(21, 23, 27)"  # the dark theme's --bg
    shot(page, screenshots, "lineage-dark")


def test_compare_highlights_a_changed_config_key(
    ui: UiServer, page: Any, screenshots: Path
) -> None:
    v2, v3 = ui.seeded.v2, ui.seeded.v3
    page.goto(f"{ui.url}/compare")
    page.locator("input[name=v]").nth(0).fill(f"{MODEL}@{v2.version}")
    page.locator("input[name=v]").nth(1).fill(str(v3.id))
    page.click("form.filters button")
    page.wait_for_url("**/compare?v=**")
    assert page.locator("tr.changed[data-key='lr']").count() == 1
    assert page.locator("tr.changed[data-key='beta']").count() == 1  # added in v3
    assert page.locator("tr[data-key='epochs']").get_attribute("class") == ""
    assert "+0.05" in page.locator("tr", has=page.locator("th:text-is('accuracy')")).inner_text()
    relation = page.locator("td.relation")
    assert relation.get_attribute("data-kind") == ui.registry.diff(v2, v3).lineage.kind
    assert relation.inner_text() == f"made from {MODEL}@{v2.version} (1 step)"
    shot(page, screenshots, "compare")


def test_query_page(ui: UiServer, page: Any, screenshots: Path) -> None:
    page.goto(f"{ui.url}/query")
    page.fill("textarea[name=q]", '{"min_accuracy": 0.9}')
    page.click("form.card button")
    page.wait_for_url("**/query?q=**")
    expected = ui.registry.query({"min_accuracy": 0.9})
    assert sorted(version_column_of_query(page)) == sorted(v.id for v in expected)
    shot(page, screenshots, "query")
    page.fill("textarea[name=q]", '{"min_acc": ')
    page.click("form.card button")
    assert "is not JSON" in page.locator("p.error").inner_text()


def version_column_of_query(page: Any) -> list[int]:
    rows = page.locator("#versions tbody tr")
    return [int(rows.nth(i).get_attribute("data-version-id")) for i in range(rows.count())]


def test_a_promotion_failing_its_gate_is_denied_with_every_reason(
    ui: UiServer, page: Any, screenshots: Path
) -> None:
    v2 = ui.seeded.v2
    page.goto(f"{ui.url}/versions/{v2.id}")
    page.click("a:text-is('Promote to production…')")
    page.wait_for_url("**/promote?stage=production")
    failed = page.locator("ul.conditions li.unmet").all_inner_texts()
    passed = page.locator("ul.conditions li.met").all_inner_texts()
    assert len(failed) == 1
    assert "accuracy >= 0.9 (it is 0.88)" in failed[0]
    assert len(passed) == 1
    assert "production may be entered from staging" in passed[0]
    page.fill("input[name=reason]", "try anyway")
    page.click("button:text-is('Promote to production')")
    page.wait_for_selector(".denied")
    unmet = page.locator(".denied ul.unmet li").all_inner_texts()
    check = ui.registry.check_promotion(v2, "production")
    assert unmet == check.unmet
    assert ui.registry.get_version(v2.id).stage is Stage.STAGING
    shot(page, screenshots, "promote-denied")


def test_a_promotion_passing_its_gate_changes_the_stage_and_the_history(
    ui: UiServer, page: Any, screenshots: Path
) -> None:
    v3 = ui.seeded.v3
    page.goto(f"{ui.url}/versions/{v3.id}/promote?stage=production")
    assert page.locator("ul.conditions li.unmet").count() == 0
    assert page.locator("ul.conditions li.met").count() == 2
    shot(page, screenshots, "promote")
    page.fill("input[name=reason]", "gate passed in the UI")
    page.click("button:text-is('Promote to production')")
    page.wait_for_url(f"**/versions/{v3.id}**")
    assert page.locator("h1 .stage").inner_text() == "production"
    assert "stage staging → production" in page.locator("#timeline").inner_text()
    assert "gate passed in the UI" in page.locator("#timeline").inner_text()
    assert ui.registry.get_version(v3.id).stage is Stage.PRODUCTION
    last = ui.registry.stage_history(v3)[-1]
    assert (last.to_stage, last.reason) == (Stage.PRODUCTION, "gate passed in the UI")


def submit(page: Any, selector: str) -> None:
    """Click a form's button and wait for the answer to its POST (htmx or not)."""
    with page.expect_response(lambda r: r.request.method == "POST"):
        page.click(selector)
    page.wait_for_load_state()


def test_tags_and_aliases_through_forms(ui: UiServer, page: Any) -> None:
    from playwright.sync_api import expect

    v1 = ui.seeded.v1
    page.goto(f"{ui.url}/versions/{v1.id}")
    page.fill("input[name=add]", "reviewed, keep")
    submit(page, "button:text-is('Add tags')")
    assert {"reviewed", "keep"} <= set(ui.registry.get_version(v1.id).tags)
    submit(page, "button[aria-label='remove tag keep']")
    assert "keep" not in ui.registry.get_version(v1.id).tags
    page.fill("input[name=alias]", "candidate")  # held by v3: moves here
    submit(page, "button:text-is('Set / move alias')")
    assert ui.registry.get_version(f"{MODEL}@candidate").id == v1.id
    expect(page.locator("#timeline")).to_contain_text("alias candidate set here")
    submit(page, "button:text-is('Delete alias candidate')")
    history = ui.registry.alias_history(MODEL)
    assert (history[-1].alias, history[-1].version_id) == ("candidate", None)
    # A bad alias: the registry's own error, as a page, and nothing changed.
    page.fill("input[name=alias]", "production")
    submit(page, "button:text-is('Set / move alias')")
    expect(page.locator("h1")).to_have_text("ValidationError")
    assert ui.registry.alias_history(MODEL) == history


def test_a_form_post_without_the_csrf_value_is_refused(ui: UiServer, page: Any) -> None:
    v1 = ui.seeded.v1
    page.goto(f"{ui.url}/versions/{v1.id}")  # sets the CSRF cookie
    before = ui.registry.get_version(v1.id).tags
    for form in ({"add": "forged"}, {"add": "forged", "csrf": "0" * 64}):
        response = page.request.post(f"{ui.url}/versions/{v1.id}/tags", form=form)
        assert response.status == 403
    assert ui.registry.get_version(v1.id).tags == before


def login(page: Any, url: str, token: str) -> None:
    page.goto(url + "/")
    page.wait_for_url("**/login?next=/")
    page.fill("input[name=token]", token)
    page.click("button:text-is('Log in')")
    page.wait_for_url(url + "/")


def test_login_sets_an_httponly_strict_session_cookie(
    ui_auth: UiServer, page: Any, screenshots: Path
) -> None:
    page.goto(ui_auth.url + "/login")
    shot(page, screenshots, "login")
    page.fill("input[name=token]", "tok-wrong")
    page.click("button:text-is('Log in')")
    assert "not valid" in page.locator("[role=alert]").inner_text()
    login(page, ui_auth.url, ui_auth.tokens["pat"])
    cookie = next(c for c in page.context.cookies() if c["name"] == "cmr_session")
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/")
    assert "pat · promote" in page.locator(".viewer").inner_text()
    page.goto(f"{ui_auth.url}/versions/{ui_auth.seeded.v2.id}")
    assert page.locator(".action").count() > 0
    page.click("button:text-is('Log out')")
    page.wait_for_url("**/login")
    assert not [c for c in page.context.cookies() if c["name"] == "cmr_session"]


def test_a_read_only_token_sees_no_actions_and_a_forged_post_is_refused(
    ui_auth: UiServer, page: Any, screenshots: Path
) -> None:
    v2 = ui_auth.seeded.v2
    login(page, ui_auth.url, ui_auth.tokens["rita"])
    page.goto(f"{ui_auth.url}/versions/{v2.id}")
    assert page.locator(".action, form[method=post][action*='/versions/']").count() == 0
    shot(page, screenshots, "version-read-only")
    page.goto(f"{ui_auth.url}/versions/{v2.id}/promote?stage=production")
    assert page.locator("ul.conditions li").count() == 2  # the conditions, but no button
    assert page.locator("button:text-is('Promote to production')").count() == 0
    # A forged form (another site's page posting with the session cookie) has no CSRF value.
    for form in ({"stage": "production"}, {"stage": "production", "csrf": "f" * 64}):
        response = page.request.post(f"{ui_auth.url}/versions/{v2.id}/promote", form=form)
        assert response.status == 403
        assert "CSRF" in response.text()
    assert ui_auth.registry.get_version(v2.id).stage is Stage.STAGING
    assert ui_auth.registry.stage_history(v2)[-1].to_stage is Stage.STAGING
    # With the right CSRF value the registry itself refuses: the role is read.
    from crucible_model_registry.domain.access import csrf_token_for

    csrf = csrf_token_for(ui_auth.tokens["rita"])
    response = page.request.post(
        f"{ui_auth.url}/versions/{v2.id}/tags", form={"add": "sneaky", "csrf": csrf}
    )
    assert response.status == 403
    assert "needs the write role" in response.text()
    assert "sneaky" not in ui_auth.registry.get_version(v2.id).tags


def test_without_a_session_every_page_asks_for_a_login(ui_auth: UiServer, page: Any) -> None:
    page.goto(f"{ui_auth.url}/versions/{ui_auth.seeded.v1.id}")
    page.wait_for_url(f"**/login?next=/versions/{ui_auth.seeded.v1.id}")
    response = page.request.post(
        f"{ui_auth.url}/versions/{ui_auth.seeded.v1.id}/tags", form={"add": "x"}, max_redirects=0
    )
    assert response.status == 401  # a form is no page: the API's answer
    assert "x" not in ui_auth.registry.get_version(ui_auth.seeded.v1.id).tags


def test_keyset_pages_of_a_model_with_a_slash_in_its_name(ui: UiServer, page: Any) -> None:
    name = "team/paged"
    made = [
        ui.registry.register(
            model_name=name,
            recipe="sft",
            base_model="org/base",
            training_config={"n": n},
            metrics={"accuracy": n / 100},
        )
        for n in range(30)
    ]
    page.goto(f"{ui.url}/?q=team")
    page.click(f"a:text-is('{name}')")
    page.wait_for_url(f"**/models/{name}")
    first = version_column(page)
    assert first == [v.version for v in reversed(made)][:25]  # newest first
    page.click("a[rel=next]")
    page.wait_for_url("**cursor=**")
    second = version_column(page)
    assert second == [v.version for v in reversed(made)][25:]
    assert page.locator("a[rel=next]").count() == 0


def test_the_audit_page_shows_the_registrys_audit_log(ui: UiServer, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(f"{ui.url}/")
    ui.registry.add_tags(ui.seeded.v1, ["audited"])
    page.click("header nav a:text-is('Audit')")
    entries = ui.registry.audit_log(limit=200)
    expect(page.locator("main tbody tr")).to_have_count(len(entries))
