"""Asset checks on the marts beyond dbt's own data tests: CAPI coverage that drops."""

# No `from __future__ import annotations`: Dagster reads the resource annotation at runtime.
from datetime import UTC, datetime

from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, MetadataValue, asset_check

from everreach.capi import checks
from everreach_pipelines.charts import markdown_table
from everreach_pipelines.resources.warehouse import WarehouseResource

PIXEL_MART = AssetKey(["marts", "meta_vs_first_party_by_pixel"])
#: A drop of this many points of coverage (recent week vs the four weeks before) warns.
MAX_DROP = 0.10
#: Fewer conversions than this in the earlier period say too little to compare with.
MIN_CONVERSIONS = 20


@asset_check(
    asset=PIXEL_MART,
    name="capi_coverage_not_dropping",
    description=(
        "Per pixel, the share of first-party conversions delivered to Meta through the "
        f"Conversions API over the last {checks.RECENT_DAYS} days is not more than "
        f"{MAX_DROP:.0%} points below the {checks.BEFORE_DAYS} days before (warns)."
    ),
)
def capi_coverage_not_dropping(warehouse: WarehouseResource) -> AssetCheckResult:
    """Warn when a pixel's CAPI coverage fell by more than MAX_DROP: conversions happen that
    Meta no longer hears about (pickup stopped, events rejected, a pixel misconfigured)."""
    with warehouse.connect() as conn:
        end, changes = checks.coverage_changes(conn, datetime.now(UTC).date())
    dropped = [
        c
        for c in changes
        if c.before_conversions >= MIN_CONVERSIONS and (c.dropped_by() or 0) > MAX_DROP
    ]

    def pct(share: float | None) -> str:
        return "-" if share is None else f"{share:.1%}"

    table = markdown_table(
        [
            {
                "pixel": c.pixel_id,
                f"last {checks.RECENT_DAYS} days": pct(c.recent),
                f"{checks.BEFORE_DAYS} days before": pct(c.before),
                "conversions (recent / before)": f"{c.recent_conversions} / {c.before_conversions}",
            }
            for c in changes
        ],
        empty="(no pixel has queued events)",
    )
    return AssetCheckResult(
        passed=not dropped,
        severity=AssetCheckSeverity.WARN,
        description=(
            "coverage dropped for " + ", ".join(c.pixel_id for c in dropped) if dropped else None
        ),
        metadata={
            "up_to": end.isoformat(),
            "coverage": MetadataValue.md(table),
            "pixels_dropped": len(dropped),
        },
    )
