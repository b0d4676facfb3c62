"""Every console page for every role through FastAPI's TestClient, on the demo project.

Checks what each role sees (personal data masked without ``pii:read``, counts below k as
``<5``), that writes need the permission and the CSRF token, and that errors are clear pages.
"""

from __future__ import annotations

import json
import re
from html import escape, unescape
from importlib import resources
from typing import Any

import pytest
import yaml
from console_testapp import API_KEY_ROLE, ROLE_COOKIE, USER_COOKIE, csrf_token
from fastapi import FastAPI
from fastapi.testclient import TestClient

from jingzhun.core import MIN_GROUP_SIZE, Principal
from jingzhun.measure import campaign_kpis
from jingzhun.profile import mask_email, mask_name, mask_phone
from jingzhun.recommend import stored_recommendations
from jingzhun.workspace import Workspace

ROLES = ["admin", "marketer", "analyst", "viewer"]
PII_ROLES = {"admin", "marketer"}
SMALL = f"&lt;{MIN_GROUP_SIZE}"  # "<5" as the HTML holds it


def client(app: FastAPI, role: str, name: str | None = None) -> TestClient:
    c = TestClient(app, follow_redirects=False)
    c.cookies.set(ROLE_COOKIE, role)
    c.cookies.set(USER_COOKIE, name or role)
    return c


def charts(html: str) -> dict[str, dict[str, Any]]:
    """The plotly figures a page carries, by chart id."""
    found = re.findall(
        r'<script type="application/json" class="chart-data" data-target="([^"]+)">(.*?)</script>',
        html,
        flags=re.S,
    )
    return {target: json.loads(body) for target, body in found}


def text_of(html: str) -> str:
    html = re.sub(r"<script.*?</script>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.fixture(scope="module")
def someone(workspace: Workspace) -> dict[str, Any]:
    """A customer with a name, e-mail, phone, orders, segments and a churn score."""
    engine = workspace.engine
    p = engine.read("profiles")
    members = engine.read("segment_members")
    scores = engine.read("scores")
    scored = scores.filter(scores.score_name == "churn_score").select("customer_key")
    in_segment = members.select("customer_key").distinct()
    candidates = (
        p.filter(
            p.email.notnull()
            & p.phone.notnull()
            & p.first_name.notnull()
            & p.last_name.notnull()
            & (p.orders >= 3)
        )
        .semi_join(scored, "customer_key")
        .semi_join(in_segment, "customer_key")
        .order_by("customer_key")
        .limit(1)
    )
    row = engine.execute(candidates).to_pylist()[0]
    return dict(row)


def test_every_page_answers_every_role(app: FastAPI, workspace: Workspace, someone: dict) -> None:
    model_id = workspace.models.list()[0].model_id
    pages = {
        "/console/": "overview",
        f"/console/customers?q={someone['customer_key']}": "1 customer for",
        f"/console/customers/{someone['customer_key']}": "360° view as of 2011-12-10",
        "/console/segments": "best_customers",
        "/console/segments/new": "Segment builder",
        "/console/segments/new?start=best_customers": "rfm_segment IN",
        "/console/segments/best_customers": "RFM Champions and Loyal customers",
        "/console/campaigns": "winback",
        "/console/campaigns/winback": "Eligibility waterfall",
        "/console/models": model_id,
        f"/console/models/{model_id}/report": "Cumulative gains",
    }
    for role in ROLES:
        c = client(app, role)
        for path, expected in pages.items():
            response = c.get(path)
            assert response.status_code == 200, (role, path, response.text[:2000])
            assert expected in unescape(response.text), (role, path)
            assert response.headers["cache-control"] == "no-store"
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            if "/report" not in path:
                # the console's own pages run no inline script and load nothing from elsewhere
                assert "script-src 'self'" in response.headers["content-security-policy"]
                assert not re.search(
                    r"<script(?![^>]*\b(src|type=\"application/json\"))", response.text
                )
                assert "http://" not in unescape(response.text) and "https://" not in unescape(
                    response.text
                )
        badge = "PII masked" in c.get("/console/").text
        assert badge == (role not in PII_ROLES)


def test_no_session_and_no_read_permission(app: FastAPI) -> None:
    anonymous = TestClient(app, follow_redirects=False)
    assert anonymous.get("/console/").status_code == 401  # the login dependency decides
    assert "demo — overview" in client(app, "viewer").get("/console").text  # without the slash
    collector = client(app, API_KEY_ROLE, "tracking-key")
    for path in ["/console/", "/console/segments", "/console/campaigns/winback"]:
        response = collector.get(path)
        assert response.status_code == 403
        assert "may not use the console: that needs the permission 'read'" in unescape(
            response.text
        )
    answer = collector.post("/console/api/segments/count", json={"rule": "frequency >= 1"})
    assert answer.status_code == 403 and answer.json()["ok"] is False


def test_overview_tiles_and_charts_follow_the_figures(app: FastAPI, workspace: Workspace) -> None:
    figures = workspace.measure.overview()
    admin = client(app, "admin").get("/console/").text
    viewer = client(app, "viewer").get("/console/").text
    assert f"{figures.customers:,}" in text_of(admin)
    assert f"GBP {float(figures.revenue):,.2f}" in text_of(admin)
    admin_charts, viewer_charts = charts(admin), charts(viewer)
    assert (
        set(admin_charts)
        == set(viewer_charts)
        >= {
            "chart-revenue-by-month",
            "chart-customers-by-orders",
            "chart-rfm-segments",
            "chart-top-category-by-revenue",
            "chart-top-countries-by-revenue",
        }
    )
    months = admin_charts["chart-revenue-by-month"]["data"]
    assert months[0]["x"] == [m.month for m in figures.by_month]
    assert months[1]["y"] == [m.orders for m in figures.by_month]
    # RFM segments: horizontal bars, biggest on top; 'Promising' has one customer in the demo
    rfm = {s.name: s.count for s in figures.rfm_segments or ()}
    small = {name: n for name, n in rfm.items() if 0 < n < MIN_GROUP_SIZE}
    assert small, "the demo should have an RFM segment with fewer than 5 customers"
    admin_bars = admin_charts["chart-rfm-segments"]["data"][0]
    viewer_bars = viewer_charts["chart-rfm-segments"]["data"][0]
    # labels from the data are escaped for plotly, which reads entities back when it draws
    assert dict(zip(admin_bars["y"], admin_bars["x"], strict=True)) == {
        escape(name): n for name, n in rfm.items()
    }
    shown = dict(
        zip(viewer_bars["y"], zip(viewer_bars["x"], viewer_bars["text"], strict=True), strict=True)
    )
    for name, n in rfm.items():
        name = escape(name)
        if unescape(name) in small:
            assert shown[name] == (None, f"<{MIN_GROUP_SIZE}")  # no bar, only the label
        else:
            assert shown[name] == (n, f"{n:,}")
    # country breakdown: orders below k hidden in the viewer's table, exact for the admin
    country = next(c for c in figures.top_countries if 0 < c.orders < MIN_GROUP_SIZE)
    cell = r'<td class="num">([^<]*)</td>'
    row = re.compile(rf"<td>{re.escape(country.name)}</td>{cell}{cell}")
    assert row.search(admin).group(2) == str(country.orders)
    assert row.search(viewer).group(2) == SMALL


def test_search_masks_personal_data(app: FastAPI, someone: dict) -> None:
    email, phone = someone["email"], someone["phone"]
    first, last = someone["first_name"], someone["last_name"]
    # people with pii:read search inside names and see everything
    found = client(app, "marketer").get("/console/customers", params={"q": f"{first} {last}"}).text
    assert someone["customer_key"] in found and email in found and phone in found
    # analysts and viewers look up by an exact id, e-mail or phone and see it masked
    for role in ("analyst", "viewer"):
        c = client(app, role)
        for query in (email.upper(), phone, someone["customer_key"]):
            # the results only: the search box shows back what the user typed
            page = c.get("/console/customers", params={"q": query}).text
            page = page.split('id="results"')[1].split("</h2>", 1)[1]
            assert f">{someone['customer_key']}</a>" in page, (role, query)
            assert mask_email(email) in page and mask_phone(phone) in page
            assert mask_name(first) in page
            assert email not in page and phone not in page and f">{first} " not in page
        partial = c.get("/console/customers", params={"q": first}).text
        assert "0 customers for" in partial
        assert "looks customers up by an exact id" in partial


def test_profile_360(app: FastAPI, workspace: Workspace, someone: dict) -> None:
    key = someone["customer_key"]
    admin = client(app, "admin").get(f"/console/customers/{key}").text
    analyst = client(app, "analyst").get(f"/console/customers/{key}").text
    assert someone["email"] in admin and someone["phone"] in admin
    assert someone["email"] not in analyst and mask_email(someone["email"]) in analyst
    assert "personal data masked for your role" in analyst
    engine = workspace.engine
    members = engine.read("segment_members")
    segments = engine.execute(members.filter(members.customer_key == key)).column("segment")
    assert len(segments) > 0
    for name in segments.to_pylist():
        assert f'href="/console/segments/{name}">{name}</a>' in admin
    scores = engine.read("scores")
    churn = engine.execute(
        scores.filter((scores.customer_key == key) & (scores.score_name == "churn_score"))
    ).to_pylist()[0]
    assert f'<td>churn_score</td><td class="num">{churn["score"]:,.4f}'.rstrip("0") in admin
    recommendations = stored_recommendations(engine, key, top=5)
    assert recommendations, "the fixture stores recommendations for every buyer"
    for item in recommendations:
        assert f"<td>{item['item_id']}</td>" in admin
    view = workspace.profiles.show(key)
    for order in view["recent_orders"]:
        assert f"<td>{order['order_id']}</td>" in analyst
    missing = client(app, "viewer").get("/console/customers/nobody-at-all")
    assert missing.status_code == 404 and "no customer found for that id" in unescape(missing.text)


def test_live_count_and_explain(app: FastAPI, workspace: Workspace, someone: dict) -> None:
    c = client(app, "analyst")
    token = csrf_token(c.get("/console/segments/new").text)
    headers = {"X-CSRF-Token": token}

    def count(rule: str, who: TestClient = c, head: dict | None = None) -> Any:
        return who.post("/console/api/segments/count", json={"rule": rule}, headers=head or headers)

    text_rule = "frequency >= 3 AND rfm_segment = 'Loyal'"
    expected = workspace.segments.count(workspace.segments.from_rule("x", text_rule))
    assert expected >= MIN_GROUP_SIZE
    answer = count(text_rule)
    assert answer.status_code == 200
    assert answer.json()["count"] == expected and answer.json()["display"] == f"{expected:,}"
    assert "SELECT" in answer.json()["sql"].upper()
    tree = "all:\n  - frequency >= 3\n  - event: order\n    within: 90d\n"
    expected_tree = workspace.segments.count(
        workspace.segments.from_rule("x", yaml.safe_load(tree))
    )
    assert count(tree).json()["count"] == expected_tree
    assert count(json.dumps(yaml.safe_load(tree))).json()["count"] == expected_tree
    bad = count("frequencyy >= 3")
    assert bad.status_code == 422
    assert any("did you mean 'frequency'" in p for p in bad.json()["problems"])
    assert count("").status_code == 422
    # without the token, or with someone else's, the call is refused
    assert count(text_rule, head={"X-CSRF-Token": "forged"}).status_code == 403
    other = client(app, "analyst", "someone-else")
    other.cookies.set("jz_console_csrf", c.cookies.get("jz_console_csrf"))
    assert count(text_rule, who=other).status_code == 403
    # one customer: exact for people with pii:read, "<5" for the others
    one = f"customer_key = '{someone['customer_key']}'"
    assert count(one).json() | {"sql": ""} == {
        "ok": True,
        "count": None,
        "display": f"<{MIN_GROUP_SIZE}",
        "as_of": "2011-12-10",
        "sql": "",
    }
    marketer = client(app, "marketer")
    marketer_token = csrf_token(marketer.get("/console/segments/new").text)
    assert count(one, who=marketer, head={"X-CSRF-Token": marketer_token}).json()["count"] == 1
    # explain: every step with the customer's value and truth
    explained = c.post(
        "/console/api/segments/explain",
        json={"rule": text_rule, "customer": someone["customer_key"]},
        headers=headers,
    ).json()
    spec = workspace.segments.from_rule("x", text_rule)
    truth = workspace.segments.explain(spec, someone["customer_key"])
    assert explained["member"] is truth.member
    assert [s["result"] for s in explained["steps"]] == [s.result for s in truth.steps]
    unknown = c.post(
        "/console/api/segments/explain",
        json={"rule": text_rule, "customer": "nobody-at-all"},
        headers=headers,
    )
    assert unknown.status_code == 404 and "no customer found" in unknown.json()["message"]


def test_save_segment(app: FastAPI, workspace: Workspace, project: Any) -> None:
    rule = "all:\n  - frequency >= 3\n  - rfm_segment = 'Champions'\n"
    analyst = client(app, "analyst", "ana")
    token = csrf_token(analyst.get("/console/segments/new").text)
    form = {"name": "frequent_champions", "description": "Champions with 3+ orders", "rule": rule}
    target = project / "segments" / "frequent_champions.yml"
    # viewers may count but not save; nothing is written
    viewer = client(app, "viewer")
    viewer_page = viewer.get("/console/segments/new").text
    assert (
        'id="save"' not in viewer_page and "may count and explain rules but not save" in viewer_page
    )
    denied = viewer.post("/console/segments", data={**form, "csrf_token": csrf_token(viewer_page)})
    assert denied.status_code == 403 and "needs the permission 'segments:write'" in unescape(
        denied.text
    )
    # a form without the token is refused
    forged = analyst.post("/console/segments", data={**form, "csrf_token": "nope"})
    assert forged.status_code == 403 and "security token" in unescape(forged.text)
    assert not target.exists()
    saved = analyst.post("/console/segments", data={**form, "csrf_token": token})
    assert saved.status_code == 303
    assert saved.headers["location"] == "/console/segments/frequent_champions?saved=1"
    stored = yaml.safe_load(target.read_text())
    assert stored == {
        "name": "frequent_champions",
        "description": "Champions with 3+ orders",
        "rule": {"all": ["frequency >= 3", "rfm_segment = 'Champions'"]},
    }
    expected = workspace.segments.count("frequent_champions")
    page = analyst.get(saved.headers["location"]).text
    assert f'id="segment-count">{expected:,}<' in page and "Saved to" in page
    assert "frequent_champions" in analyst.get("/console/segments").text
    # saving the name again is refused and the file is kept as it was
    again = analyst.post(
        "/console/segments", data={**form, "rule": "frequency >= 1", "csrf_token": token}
    )
    assert again.status_code == 409 and "exists already" in unescape(again.text)
    assert yaml.safe_load(target.read_text()) == stored
    # a rule with problems comes back with them and the typed text, nothing written
    broken = analyst.post(
        "/console/segments",
        data={"name": "broken_one", "rule": "frequencyy >= 3", "csrf_token": token},
    )
    assert broken.status_code == 422 and "did you mean 'frequency'" in unescape(broken.text)
    assert "frequencyy &gt;= 3</textarea>" in broken.text
    bad_name = analyst.post(
        "/console/segments", data={"name": "Bad Name", "rule": rule, "csrf_token": token}
    )
    assert bad_name.status_code == 422 and "must be lower-case letters" in unescape(bad_name.text)
    assert not (project / "segments" / "broken_one.yml").exists()
    assert sorted(p.name for p in (project / "segments").glob(".*")) == []  # no temporary files


def test_segment_page_hides_small_member_lists(app: FastAPI, workspace: Workspace) -> None:
    engine = workspace.engine
    members_table = engine.read("segment_members")
    sizes = engine.execute(members_table.group_by("segment").agg(n=members_table.count()))
    small = min((r["n"], r["segment"]) for r in sizes.to_pylist() if r["n"] >= MIN_GROUP_SIZE)[1]
    admin = client(app, "admin").get(f"/console/segments/{small}").text
    viewer = client(app, "viewer").get(f"/console/segments/{small}").text
    members = workspace.segments.members(small)
    assert all(key in admin for key in members)
    assert all(key in viewer for key in members)  # at least k: listed, personal data masked
    tiny_rule = f"customer_key = '{members[0]}'"
    (workspace.segments.folder / "just_one.yml").write_text(
        yaml.safe_dump({"name": "just_one", "rule": tiny_rule})
    )
    try:
        admin_one = client(app, "admin").get("/console/segments/just_one").text
        viewer_one = client(app, "viewer").get("/console/segments/just_one").text
        assert 'id="segment-count">1<' in admin_one and members[0] in admin_one
        assert f'id="segment-count">{SMALL}<' in viewer_one
        assert "the member list is hidden for your role" in viewer_one
        assert f">{members[0]}</a>" not in viewer_one
        listing = client(app, "viewer").get("/console/segments").text
        assert f'data-segment="just_one">{SMALL}<' in listing  # not built yet: counted now
        built = workspace.segments.count("best_customers")
        assert f'data-segment="best_customers">{built:,}<' in listing  # the last build's
    finally:
        (workspace.segments.folder / "just_one.yml").unlink()
    missing = client(app, "viewer").get("/console/segments/no_such_segment")
    assert missing.status_code == 404 and "no segment named 'no_such_segment'" in unescape(
        missing.text
    )


def test_campaign_plan_approve_launch(app: FastAPI, workspace: Workspace) -> None:
    mia = client(app, "marketer", "mia")
    token = csrf_token(mia.get("/console/segments/new").text)
    # roles without the permission get a clear 403 and nothing changes
    before = workspace.campaigns.latest_plan("winback").plan_id
    analyst = client(app, "analyst")
    analyst_token = csrf_token(analyst.get("/console/segments/new").text)  # one token a user
    refused = analyst.post("/console/campaigns/winback/plan", data={"csrf_token": analyst_token})
    assert refused.status_code == 403
    assert "may not plan campaigns: that needs the permission 'campaigns:write'" in unescape(
        refused.text
    )
    assert workspace.campaigns.latest_plan("winback").plan_id == before
    assert mia.post("/console/campaigns/winback/plan", data={}).status_code == 403  # no token
    assert app.state.live.opened == 0  # nothing refused reached the warehouse
    # plan: written through the writable workspace the API gives (its Warehouse.live)
    planned = mia.post("/console/campaigns/winback/plan", data={"csrf_token": token})
    assert planned.status_code == 303 and app.state.live.opened == 1
    assert planned.headers["location"] == "/console/campaigns/winback?done=planned"
    plan = workspace.campaigns.latest_plan("winback")
    assert plan.plan_id != before and plan.status == "planned" and plan.created_by == "mia"
    page = mia.get(planned.headers["location"]).text
    assert "Plan made and stored." in page and 'id="plan-status">planned<' in page
    waterfall = charts(page)["chart-waterfall"]["data"][0]
    assert waterfall["y"] == [row["customers"] for row in plan.waterfall]
    assert 'id="approve-button" disabled' in page  # the author may not approve
    # the author's approval is refused by the campaign rules, with the reason
    own = mia.post("/console/campaigns/winback/approve", data={"csrf_token": token})
    assert own.status_code == 409 and "approval must come from someone else" in unescape(own.text)
    viewer = client(app, "viewer")
    viewer_page = viewer.get("/console/campaigns/winback").text
    assert 'id="approve-button"' not in viewer_page and 'id="plan-button"' not in viewer_page
    denied = viewer.post(
        "/console/campaigns/winback/approve", data={"csrf_token": csrf_token(viewer_page)}
    )
    assert denied.status_code == 403 and "'campaigns:approve'" in unescape(denied.text)
    # a launch before approval is refused
    early = mia.post("/console/campaigns/winback/launch", data={"csrf_token": token})
    assert early.status_code == 409 and "needs approval first" in unescape(early.text)
    # approve as someone else, then launch
    ada = client(app, "admin", "ada")
    ada_token = csrf_token(ada.get("/console/segments/new").text)
    approved = ada.post("/console/campaigns/winback/approve", data={"csrf_token": ada_token})
    assert approved.status_code == 303
    plan = workspace.campaigns.latest_plan("winback")
    assert plan.status == "approved" and plan.approved_by == "ada"
    launched = mia.post("/console/campaigns/winback/launch", data={"csrf_token": token})
    assert launched.status_code == 303
    # every treated customer was queued by the demo's launch already: nothing twice
    assert launched.headers["location"] == "/console/campaigns/winback?done=launched&queued=0"
    assert workspace.campaigns.latest_plan("winback").status == "launched"
    page = mia.get(launched.headers["location"]).text
    assert "0 message(s) queued now." in page
    # results of the launched plan, as jingzhun.measure computes them
    kpis = campaign_kpis(
        workspace.engine, workspace.store, workspace.campaigns.spec("winback"), currency="GBP"
    )
    assert kpis.plan_id == plan.plan_id
    assert f"Launched plan {plan.plan_id}" in page
    figures = charts(page)
    assert {"chart-lift-conversions", "chart-lift-revenue", "chart-funnel"} <= set(figures)
    funnel = figures["chart-funnel"]["data"][0]
    assert funnel["y"] == [step["customers"] for step in kpis.funnel]
    unknown = mia.post("/console/campaigns/nope/plan", data={"csrf_token": token})
    assert unknown.status_code == 404 and "no campaign named 'nope'" in unescape(unknown.text)


def test_campaign_small_counts(app: FastAPI, workspace: Workspace) -> None:
    plan = workspace.campaigns.latest_plan("winback")
    holdout = plan.figures["holdout"]
    assert 0 < holdout < MIN_GROUP_SIZE  # 3 in the demo: a group too small to show exactly
    admin = client(app, "admin").get("/console/campaigns/winback").text
    viewer = client(app, "viewer").get("/console/campaigns/winback").text
    assert f'<tr><td>holdout</td><td class="num">{holdout}</td>' in admin
    assert f'<tr><td>holdout</td><td class="num">{SMALL}</td>' in viewer
    admin_bars = charts(admin)["chart-waterfall"]["data"][0]
    viewer_bars = charts(viewer)["chart-waterfall"]["data"][0]
    assert admin_bars["y"][-1] == holdout
    assert viewer_bars["y"][-1] is None and viewer_bars["text"][-1] == f"<{MIN_GROUP_SIZE}"
    # the holdout's measured rates are hidden too; the treated group's are shown
    holdout_row = re.search(
        r"<tr><td>holdout</td>(.*?)</tr>", viewer.split('id="results-table"')[1]
    )
    assert holdout_row and "hidden" in holdout_row.group(1)
    assert "hidden" not in re.search(r"<tr><td>treated</td>(.*?)</tr>", viewer).group(1)
    listing = client(app, "viewer").get("/console/campaigns").text
    assert f'<td class="num">{plan.figures["contacts"]}</td>' in listing


def test_models_and_report(app: FastAPI, workspace: Workspace) -> None:
    records = workspace.models.list()
    assert records
    c = client(app, "viewer")
    page = c.get("/console/models").text
    for record in records:
        assert f'/console/models/{record.model_id}/report"' in page
    assert f"auc <b>{records[0].metrics['auc']}</b>" in page
    report = c.get(f"/console/models/{records[0].model_id}/report")
    assert report.status_code == 200
    assert records[0].model_id in report.text and "Plotly.newPlot" in report.text
    assert "script-src 'unsafe-inline'" in report.headers["content-security-policy"]
    assert "connect-src" not in report.headers["content-security-policy"]  # default-src 'none'
    missing = c.get("/console/models/nope-1/report")
    assert missing.status_code == 404 and "no model 'nope-1' in the registry" in unescape(
        missing.text
    )


def test_static_files_come_from_the_packages(app: FastAPI) -> None:
    import plotly

    c = TestClient(app)
    plotly_js = c.get("/console/static/plotly.min.js")
    package = resources.files("plotly") / "package_data" / "plotly.min.js"
    assert plotly_js.status_code == 200 and plotly_js.content == package.read_bytes()
    assert plotly.__version__.split(".")[0] in plotly_js.text[:400] or plotly_js.text
    assert plotly_js.headers["content-type"].startswith("text/javascript")
    again = c.get(
        "/console/static/plotly.min.js", headers={"If-None-Match": plotly_js.headers["etag"]}
    )
    assert again.status_code == 304
    for name in ("console.css", "console.js"):
        response = c.get(f"/console/static/{name}")
        assert response.status_code == 200 and len(response.content) > 500
    assert c.get("/console/static/..%2F_router.py").status_code == 404
    assert c.get("/console/static/secret.key").status_code == 404


def test_error_pages_speak_plainly(app: FastAPI) -> None:
    c = client(app, "marketer")
    response = c.get("/console/campaigns/does_not_exist")
    assert response.status_code == 404
    assert "no campaign named 'does_not_exist'; campaigns: winback" in unescape(response.text)
    assert "<h1>Not found</h1>" in unescape(response.text)
    builder = c.get("/console/segments/new?start=nope")
    assert builder.status_code == 404 and "no segment named 'nope'" in unescape(builder.text)


def test_principal_is_the_callers(app: FastAPI) -> None:
    """The page says who is logged in, from the caller's dependency."""
    page = client(app, "analyst", "ana").get("/console/").text
    assert 'id="who">ana · analyst' in page
    assert Principal.user("ana", "analyst").sees_pii is False
