"""The Dagster UI, driven in headless Chromium: groups, descriptions, the demo's assets
materialized, a partition launched, its charts shown.

Runs `everreach demo --days 3` into a Dagster instance of its own (Postgres) and a warehouse
database of its own, then starts `dagster dev` from `workspace.yaml` on 127.0.0.1 on the same
instance and warehouse (the local sandbox as Meta), opens the asset lineage, checks every
group of the layout (raw per domain, the app's tables, staging, intermediate, marts per
area) is there with described assets, that every asset the demo filled shows as materialized
or observed (GraphQL, and no "Never materialized" node in those groups), launches the latest
partition of `ad_performance` from the asset page's "Materialize…" dialog, waits for the
run to succeed, finds the sync's progress line in the run's logs, checks the asset's
Overview shows the inline spend sparkline and that the full chart opens from
"[Show Markdown]" (both images decoded: naturalWidth > 0), and saves screenshots of the
run, its progress line, the materialized node, the ads group's asset graph
(`dagster_ui_asset_graph.png`) and the charts to `artifacts/`.

Needs Chromium (Debian's `chromium` package). `.ci/run` installs it and sets
EVERREACH_REQUIRE_BROWSER=1 so a missing browser fails instead of skipping.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from everreach.dev import DAGSTER_YAML
from everreach.settings import project_root
from everreach.warehouse import database

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("EVERREACH_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
GROUP_SAMPLES = {  # group -> an asset whose page must show its description
    "app": "user_event",
    "ads": "ad_performance",
    "organic": "social_media_post",
    "capi": "capi_event_batches",
    "messaging": "meta_webhook_event",
    # dbt models: checked through the lineage page only
    "staging": None,
    "intermediate": None,
    "marts_ads": None,
    "marts_attribution": None,
    "marts_calendar": None,
    "marts_conversations": None,
    "marts_journeys": None,
    "marts_organic": None,
}
#: Groups whose lineage page must show no "Never materialized" node after the demo.
DEMO_GROUP_PAGES = {
    "app": "user_event",
    "messaging": "meta_webhook_event",
    "marts_journeys": "touchpoints",
}
LAUNCH_ASSET = "ad_performance"
LOCATION = "everreach_pipelines"  # workspace.yaml's location_name
#: Metadata keys of LAUNCH_ASSET's inline sparkline and full chart (defs/ads/assets.py).
SPARK_KEY = "spend_vs_conversion_value"
CHART_KEY = "spend_vs_conversion_value_chart"
ARTIFACTS = project_root() / "artifacts"


def _relation(key) -> str:
    """The table or view an asset key names: `[name]` → public.name, `[schema, name]`."""
    return f"public.{key.path[0]}" if len(key.path) == 1 else ".".join(key.path)


def demo_filled(warehouse_url: str) -> list[str]:
    """Every asset of the code location the demo filled: its table or view has rows, or it
    has no relation of its own (the CAPI pickup and delivery, which the demo runs). Read
    from the warehouse, not listed by hand."""
    from psycopg import sql

    from everreach_pipelines.definitions import defs

    filled = []
    with psycopg.connect(warehouse_url) as conn:
        for spec in defs.resolve_all_asset_specs():
            relation = _relation(spec.key)
            if conn.execute("select to_regclass(%s)", (relation,)).fetchone()[0] is not None:
                schema, name = relation.split(".")
                rows = sql.SQL("select exists (select 1 from {})").format(
                    sql.Identifier(schema, name)
                )
                if not conn.execute(rows).fetchone()[0]:
                    continue
            filled.append(spec.key.to_user_string())
    return filled


def _register_sandbox_ad_accounts(database_url: str, base_url: str) -> None:
    """Put the sandbox's ad accounts into meta_platform_config, as a user would."""
    from everreach.meta.client import GraphClient

    client = GraphClient("sandbox-ui-test-token", base_url=base_url)
    accounts = list(client.paginate("me/adaccounts", {"fields": "account_id,name", "limit": 100}))
    assert accounts, "the sandbox lists no ad accounts"
    with psycopg.connect(database_url, autocommit=True) as conn:
        for acct in accounts:
            conn.execute(
                "insert into meta_platform_config (platform, external_id, name) "
                "values ('ad_account', %s, %s) on conflict do nothing",
                (str(acct["account_id"]), acct.get("name")),
            )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        if os.environ.get("EVERREACH_REQUIRE_BROWSER") == "1":
            pytest.fail(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
        pytest.skip(f"Chromium not found at {CHROMIUM}: apt-get install chromium")
    return CHROMIUM


@pytest.fixture(scope="module")
def dagster_ui(server_url: str, tmp_path_factory) -> tuple[str, list[str]]:
    """The UI's base URL, and the assets the demo filled before it started."""
    from everreach.sandbox.testing import running_sandbox
    from everreach.warehouse import migrate

    suffix = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
    storage_db, warehouse_db = f"everreach_dagster_{suffix}", f"everreach_ui_{suffix}"
    storage_url = database.ensure_database(server_url, storage_db)
    # a warehouse of its own: the demo fills it, the other tests expect theirs empty
    warehouse_url = database.ensure_database(server_url, warehouse_db)
    migrate.upgrade(warehouse_url)
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    port = _free_port()
    env = dict(os.environ)
    env.update(
        DAGSTER_HOME=str(home),
        EVERREACH_DAGSTER_PG_URL=database.sqlalchemy_url(storage_url),
        DATABASE_URL=warehouse_url,
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        DO_NOT_TRACK="1",
    )
    for name in ("META_ACCESS_TOKEN", "META_GRAPH_API_BASE_URL", "META_APP_SECRET"):
        env.pop(name, None)  # the demo starts its own sandbox (seed 7, like the one below)
    demo = subprocess.run(
        [sys.executable, "-m", "everreach.cli", "demo", "--days", "3"],
        cwd=project_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    (home / "demo.log").write_text(demo.stdout + demo.stderr)
    assert demo.returncode == 0, (demo.stdout + demo.stderr)[-3000:]
    filled = demo_filled(warehouse_url)
    with running_sandbox() as sandbox:
        env.update(
            META_GRAPH_API_BASE_URL=sandbox.base_url,
            META_ACCESS_TOKEN="sandbox-ui-test-token",
        )
        _register_sandbox_ad_accounts(warehouse_url, sandbox.base_url)
        log = (home / "dagster-dev.log").open("w")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dagster",
                "dev",
                "-w",
                "workspace.yaml",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=project_root(),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            import httpx

            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    pytest.fail(
                        "dagster dev exited: " + (home / "dagster-dev.log").read_text()[-3000:]
                    )
                try:
                    if httpx.get(base + "/server_info", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(1)
            else:
                pytest.fail("dagster dev did not answer within 240 s")
            yield base, filled
        finally:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
            log.close()
            with psycopg.connect(server_url, autocommit=True) as conn:
                for name in (storage_db, warehouse_db):
                    conn.execute(f'drop database if exists "{name}" with (force)')


def test_asset_graph_groups_descriptions_and_a_partition_run(
    dagster_ui: tuple[str, list[str]], chromium_path: str
):
    from playwright.sync_api import expect, sync_playwright

    dagster_ui, filled = dagster_ui
    ARTIFACTS.mkdir(exist_ok=True)
    # assertions wait up to 30 s unless told otherwise (the UI loads lazily on a busy CI box)
    expect.set_options(timeout=30_000)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)

        # 1. the asset graph has every domain group (waits for the code location to load)
        page.goto(dagster_ui + "/asset-groups")
        for group in GROUP_SAMPLES:
            expect(page.get_by_text(group, exact=True).first).to_be_visible(timeout=180_000)

        # 1b. every asset the demo filled is materialized or observed: in the instance
        # (GraphQL) and on the lineage page of each group it fills
        # (an empty warehouse cannot pass: the demo fills every group's tables)
        assert {"user_event", "ad_performance", "meta_webhook_event", "marts/touchpoints"} <= set(
            filled
        ), filled
        never = _never_materialized(dagster_ui)
        demo_never = sorted(set(never) & set(filled))
        assert not demo_never, f"filled by the demo but never materialized: {demo_never}"
        for group, sample in DEMO_GROUP_PAGES.items():
            page.goto(f"{dagster_ui}/locations/__repository__@{LOCATION}/asset-groups/{group}")
            expect(page.get_by_text(sample, exact=True).first).to_be_visible(timeout=120_000)
            expect(page.get_by_text(re.compile(r"^(Materialized|Observed)$")).first).to_be_visible(
                timeout=120_000
            )
            expect(page.get_by_text("Never materialized", exact=True)).to_have_count(0)
        page.screenshot(path=str(ARTIFACTS / "dagster_ui_demo_group.png"), full_page=True)

        # 2. sample assets show their group and description
        from everreach_pipelines.definitions import defs

        specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
        for group, asset in GROUP_SAMPLES.items():
            if asset is None:
                continue
            spec = specs[asset]
            page.goto(f"{dagster_ui}/assets/{asset}")
            first_line = (spec.description or "").strip().splitlines()[0]
            expect(page.get_by_text(first_line[:60]).first).to_be_visible()
            expect(page.get_by_text(group, exact=True).first).to_be_visible()

        # 3. launch the latest partition from the Materialize dialog and wait for success
        page.goto(f"{dagster_ui}/assets/{LAUNCH_ASSET}")
        page.get_by_role("button", name="Materialize…").click()
        dialog = page.get_by_role("dialog").filter(has_text="Partition selection")
        # The ad objects (campaign rows) upstream are not materialized yet: the UI asks
        # first; ad_performance creates the campaign rows it needs, so go ahead.
        warning = page.get_by_role("dialog").filter(has_text="Are you sure?")
        expect(warning.or_(dialog).first).to_be_visible()
        if warning.count():
            warning.get_by_role("button", name="Confirm").click()
        try:
            dialog.get_by_text("Latest", exact=True).click()
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "dagster_ui_failure.png"), full_page=True)
            raise
        dialog.get_by_role("button", name=re.compile(r"^Launch 1 run$")).click()
        page.get_by_role("link", name="View", exact=True).or_(
            page.get_by_role("button", name="View", exact=True)
        ).first.click()
        expect(page).to_have_url(re.compile(r"/runs/"))
        expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=300_000)
        page.screenshot(path=str(ARTIFACTS / "dagster_ui_run.png"), full_page=True)
        # the run's logs carry the sync's progress line (steps done/total, rows, rate)
        log_filter = page.get_by_placeholder(re.compile(r"^Filter"))
        log_filter.fill("fetches")
        expect(
            page.get_by_text(re.compile(r"account×level fetches \(100%\)")).first
        ).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "dagster_ui_run_progress.png"))
        log_filter.fill("")

        # 4. the asset graph around the run's asset, now materialized
        page.get_by_role("link", name="View asset lineage").or_(
            page.get_by_role("button", name="View asset lineage")
        ).first.click()
        expect(page.get_by_text(LAUNCH_ASSET).first).to_be_visible(timeout=120_000)
        # the node shows the new materialization and its passed checks
        expect(page.get_by_text("Latest event").first).to_be_visible(timeout=120_000)
        expect(page.get_by_text(re.compile(r"^(\d+) / \1 Passed$")).first).to_be_visible(
            timeout=120_000
        )
        time.sleep(3)  # let the graph finish its layout animation
        page.screenshot(path=str(ARTIFACTS / "dagster_ui_asset_node.png"), full_page=True)
        # the whole ads group's graph: the materialized asset beside the ad objects
        page.goto(f"{dagster_ui}/locations/__repository__@{LOCATION}/asset-groups/ads")
        try:
            expect(page.get_by_text("meta_ad_campaign").first).to_be_visible(timeout=120_000)
            expect(page.get_by_text(LAUNCH_ASSET, exact=True).first).to_be_visible()
            # the nodes load their status after the layout (slow on a busy machine)
            expect(page.get_by_text(re.compile(r"^(\d+) / \1 Passed$")).first).to_be_visible(
                timeout=120_000
            )
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "dagster_ui_failure.png"), full_page=True)
            raise
        time.sleep(3)
        page.screenshot(path=str(ARTIFACTS / "dagster_ui_asset_graph.png"), full_page=True)

        # 5. the materialization's charts: the sparkline inline in the Overview's metadata
        # table, the full chart in the "[Show Markdown]" dialog; both decoded by the browser
        page.goto(f"{dagster_ui}/assets/{LAUNCH_ASSET}")
        spark_row = page.locator("tr").filter(has=page.get_by_text(SPARK_KEY, exact=True))
        spark = spark_row.locator("img").first
        expect(spark).to_be_visible(timeout=120_000)
        _expect_decoded(page, spark)
        spark_row.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "dagster_ui_chart_inline.png"))
        chart_row = page.locator("tr").filter(has=page.get_by_text(CHART_KEY, exact=True))
        chart_row.get_by_text("[Show Markdown]").click()
        chart = page.get_by_role("dialog").locator("img").first
        expect(chart).to_be_visible()
        _expect_decoded(page, chart, min_width=400)
        page.screenshot(path=str(ARTIFACTS / "dagster_ui_chart.png"))
        browser.close()
    assert (ARTIFACTS / "dagster_ui_asset_graph.png").stat().st_size > 10_000
    assert (ARTIFACTS / "dagster_ui_chart.png").stat().st_size > 10_000


def _never_materialized(base: str) -> dict[str, str]:
    """asset key → group of every asset with neither a materialization nor an observation
    in the instance the UI serves."""
    import httpx

    query = """
    { assetNodes { assetKey { path } groupName
        assetMaterializations(limit: 1) { timestamp }
        assetObservations(limit: 1) { timestamp } } }
    """
    answer = httpx.post(f"{base}/graphql", json={"query": query}, timeout=120).json()
    assert "errors" not in answer, answer.get("errors")
    return {
        "/".join(node["assetKey"]["path"]): node["groupName"]
        for node in answer["data"]["assetNodes"]
        if not node["assetMaterializations"] and not node["assetObservations"]
    }


def _expect_decoded(page, img, min_width: int = 1) -> None:
    """The <img> loaded and decoded (a stripped or broken src has naturalWidth 0)."""
    handle = img.element_handle()
    page.wait_for_function(
        "([el, w]) => el.complete && el.naturalWidth >= w", arg=[handle, min_width]
    )
    src = handle.get_attribute("src") or ""
    assert src.startswith("data:image/"), src[:80]
