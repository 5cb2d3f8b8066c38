"""The messaging Dagster domain (webhook log asset + check, replay job) and the demo."""

from __future__ import annotations

from types import SimpleNamespace

import dagster as dg
from receiver_helpers import Rig

from everreach.sandbox.messaging import build_burst, serialize
from everreach_pipelines.defs.messaging import defs
from everreach_pipelines.defs.messaging.assets import meta_webhook_event
from everreach_pipelines.defs.messaging.schedules import replay_webhook_events_job
from everreach_pipelines.demo.messaging import run_demo
from everreach_pipelines.resources.warehouse import WarehouseResource


def test_webhook_log_asset_and_stale_check(rig: Rig) -> None:
    warehouse = WarehouseResource(database_url=rig.receiver.settings.database_url)
    for raw in build_burst(rig.sandbox.sandbox, 10, seed=2):
        rig.post_raw(raw)
    result = dg.materialize([meta_webhook_event], resources={"warehouse": warehouse})
    check = result.get_asset_check_evaluations()[0]
    assert result.success and check.passed
    body = rig.factory.messaging_body("messenger", [])
    body["entry"][0]["messaging"] = [{"sender": {}}]
    rig.post(body)  # fails to apply …
    rig.db.execute(
        "update meta_webhook_event set received_at = now() - interval '2 hours' "
        "where status = 'failed'"
    )  # … and has been stuck for two hours
    result = dg.materialize([meta_webhook_event], resources={"warehouse": warehouse})
    check = result.get_asset_check_evaluations()[0]
    assert not check.passed and check.metadata["stale_unapplied"].value == 1
    materialization = result.asset_materializations_for_node("meta_webhook_event")[0]
    assert materialization.metadata["events"].value == 11


def test_replay_job_and_definitions_load(rig: Rig) -> None:
    for raw in build_burst(rig.sandbox.sandbox, 15, seed=6):
        rig.post_raw(raw)
    warehouse = WarehouseResource(database_url=rig.receiver.settings.database_url)
    result = replay_webhook_events_job.execute_in_process(
        resources={"warehouse": warehouse},
        run_config={"ops": {"replay_webhook_events": {"config": {"failed_only": False}}}},
    )
    assert result.success
    assert result.output_for_node("replay_webhook_events") == {"applied": 15, "replayed": 15}
    merged = dg.Definitions.merge(defs, dg.Definitions(resources={"warehouse": warehouse}))
    assert merged.resolve_job_def("replay_webhook_events_job")
    assert (
        merged.resolve_assets_def("meta_webhook_event").group_names_by_key[
            dg.AssetKey("meta_webhook_event")
        ]
        == "messaging"
    )


def test_demo_burst_through_a_live_receiver(rig: Rig) -> None:
    logs: list[str] = []
    ctx = SimpleNamespace(
        database_url=rig.receiver.settings.database_url,
        sandbox_base_url=rig.sandbox.base_url,
        sandbox=rig.sandbox.sandbox,
        log=logs.append,
    )
    lines = run_demo(ctx, count=120)
    assert "120 sent, 120 answered 200, 120 stored, 120 applied, 0 failed" in lines[0], lines
    assert rig.scalar("select count(*) from conversation_message") > 50
    assert logs and serialize({"a": "é"}) == b'{"a":"\\u00e9"}'
