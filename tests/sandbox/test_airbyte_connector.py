"""A widely used third-party client reads the sandbox: Airbyte's source-facebook-marketing.

The connector is not a dependency of the project (it pins its own SDK and CDK); install it
in a virtualenv of its own and name that interpreter in ``EVERREACH_AIRBYTE_PYTHON``::

    python3.11 -m venv /tmp/airbyte-venv
    /tmp/airbyte-venv/bin/pip install airbyte-source-facebook-marketing
    EVERREACH_AIRBYTE_PYTHON=/tmp/airbyte-venv/bin/python ./scripts/test tests/sandbox -k airbyte

Without it the test is skipped, saying so. It runs the connector's ``check``, ``discover``
and a ``read`` of campaigns, ad sets, ads, ad creatives, ads insights (its default
fields, action breakdowns and attribution windows) and its breakdown streams through ``bench/airbyte_facebook_marketing.py``
against a sandbox on the realistic profile, and asks for no error and the rows the
sandbox holds.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from everreach.sandbox.testing import running_sandbox

WRAPPER = Path(__file__).resolve().parents[2] / "bench" / "airbyte_facebook_marketing.py"
STREAMS = ["campaigns", "ad_sets", "ads", "ad_creatives", "ads_insights"]
#: Some of the connector's breakdown streams (each one of Meta's breakdown combinations),
#: read over the last 3 days only: on the realistic profile every day is a report run.
BREAKDOWN_STREAMS = [
    "ads_insights_age_and_gender",
    "ads_insights_region",
    "ads_insights_platform_and_device",
    "ads_insights_action_type",
]
SCALE = 0.01


def _airbyte_python() -> str:
    python = os.environ.get("EVERREACH_AIRBYTE_PYTHON", "")
    if not python:
        pytest.skip(
            "EVERREACH_AIRBYTE_PYTHON is not set (an interpreter with "
            "airbyte-source-facebook-marketing installed; see this file's docstring)"
        )
    if not Path(python).exists():
        pytest.skip(f"EVERREACH_AIRBYTE_PYTHON={python} does not exist")
    return python


def _messages(out: str) -> list[dict]:
    messages = []
    for line in out.splitlines():
        try:
            messages.append(json.loads(line))
        except ValueError:
            continue
    return messages


def _errors(messages: list[dict]) -> list[str]:
    found = []
    for m in messages:
        if m.get("type") == "LOG" and m["log"]["level"] in ("ERROR", "FATAL"):
            found.append(m["log"]["message"][:500])
        if m.get("type") == "TRACE" and m["trace"].get("type") == "ERROR":
            found.append(str(m["trace"]["error"].get("message"))[:500])
    return found


@pytest.mark.slow
def test_airbyte_source_facebook_marketing_checks_discovers_and_reads(tmp_path: Path):
    python = _airbyte_python()
    now = datetime.now(UTC)
    with running_sandbox(profile="realistic", time_scale=SCALE, days=20) as sb:
        accounts = [a.id for a in sb.sandbox.domains["ads"].accounts.values()][:2]

        def config(name: str, days_back: int) -> Path:
            path = tmp_path / f"{name}.json"
            body = {
                "account_ids": accounts,
                "credentials": {"auth_type": "Service", "access_token": "sandbox-token"},
                "start_date": (now - timedelta(days=days_back)).strftime("%Y-%m-%dT00:00:00Z"),
                "end_date": now.strftime("%Y-%m-%dT00:00:00Z"),
                "insights_lookback_window": 1,
            }
            path.write_text(json.dumps(body))
            return path

        # Object streams keep what was updated after start_date (the sandbox's objects are
        # older than its days of delivery); insights run a job per day from start_date.
        objects_config, insights_config = config("objects", 800), config("insights", 21)
        base = [python, str(WRAPPER), "--graph-url", sb.base_url, "--time-scale", str(SCALE)]

        def connector(*args: str) -> list[dict]:
            done = subprocess.run(
                [*base, "--", *args], capture_output=True, text=True, timeout=600, check=False
            )
            messages = _messages(done.stdout)
            assert not _errors(messages), _errors(messages)
            assert done.returncode == 0, done.stderr[-3000:]
            return messages

        def read(config_path: Path, streams: list[str]) -> Counter:
            catalog = tmp_path / f"catalog-{streams[0]}.json"
            subprocess.run(
                [
                    *base,
                    "--write-catalog",
                    str(catalog),
                    "--streams",
                    ",".join(streams),
                    "--config",
                    str(config_path),
                ],
                check=True,
                timeout=600,
            )
            messages = connector("read", "--config", str(config_path), "--catalog", str(catalog))
            return Counter(m["record"]["stream"] for m in messages if m["type"] == "RECORD")

        checked = connector("check", "--config", str(objects_config))
        status = [m for m in checked if m["type"] == "CONNECTION_STATUS"]
        assert status[-1]["connectionStatus"]["status"] == "SUCCEEDED"
        records = read(objects_config, STREAMS[:-1]) + read(insights_config, STREAMS[-1:])
        breakdowns = read(config("breakdowns", 3), BREAKDOWN_STREAMS)
        state = sb.sandbox.domains["ads"]
        # Meta's defaults: no DELETED/ARCHIVED objects unless the connector asks for them
        live = [a for a in state.accounts.values() if a.id in accounts]
        ads = sum(
            1 for a in live for ad in a.ads if ad["effective_status"] not in ("DELETED", "ARCHIVED")
        )
        assert records["ads"] == ads and records["campaigns"] and records["ad_sets"]
        assert records["ad_creatives"]
        assert records["ads_insights"] >= ads  # a row per ad and day with delivery
        # every ad delivering in those days has at least one row per breakdown stream
        for stream in BREAKDOWN_STREAMS:
            assert breakdowns[stream] >= ads, stream
