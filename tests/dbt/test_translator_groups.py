"""dbt nodes are grouped by the folder they live in: layer, then mart area."""

from __future__ import annotations

import pytest

from everreach_pipelines.defs.dbt.translator import group_of


@pytest.mark.parametrize(
    ("fqn", "group"),
    [
        (["everreach", "staging", "stg_meta__ads"], "staging"),
        (["everreach", "intermediate", "int_journey_steps"], "intermediate"),
        (["everreach", "marts", "ads", "campaign_performance"], "marts_ads"),
        (["everreach", "marts", "journeys", "touchpoints"], "marts_journeys"),
    ],
)
def test_group_is_the_layer_or_the_mart_area(fqn: list[str], group: str) -> None:
    assert group_of(fqn) == group


def test_a_model_outside_the_layer_folders_is_refused() -> None:
    with pytest.raises(ValueError, match="not in a layer folder"):
        group_of(["everreach", "orphan_model"])
