"""The ad creatives asset: `meta_ad_creative`, refreshed daily, deleted creatives kept."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    asset,
)

from everreach.ads.creatives import sync_creatives
from everreach.ads.settings import AdsSettings
from everreach.ads.sync import configured_accounts
from everreach.meta import GraphConfigurationError
from everreach.settings import SettingError
from everreach_pipelines.defs.ads.assets import (
    ADS_POOL,
    ADS_RETRY_POLICY,
    GROUP,
    KINDS,
    OWNERS,
    _api_delta,
    _config_failure,
)
from everreach_pipelines.resources.meta import MetaGraphResource
from everreach_pipelines.resources.warehouse import WarehouseResource

AD_CREATIVES = AssetKey("meta_ad_creative")
CHECK_EVERY_AD_HAS_ITS_CREATIVE = "every_ad_creative_known"


@asset(
    key=AD_CREATIVES,
    deps=["meta_ad"],
    group_name=GROUP,
    owners=OWNERS,
    kinds=KINDS,
    retry_policy=ADS_RETRY_POLICY,
    pool=ADS_POOL,
    check_specs=[
        AssetCheckSpec(
            CHECK_EVERY_AD_HAS_ITS_CREATIVE,
            asset=AD_CREATIVES,
            description="Every creative an ad points at (meta_ad.creative_id) has a row.",
        )
    ],
)
def ad_creatives(
    context: AssetExecutionContext, warehouse: WarehouseResource, meta: MetaGraphResource
) -> MaterializeResult:
    """Ad creatives of every configured ad account: name, title, body, call to action,
    story type, destination and `url_tags`, the landing URL with its UTM parameters parsed
    (encoded values, repeated keys, single-page-app fragments, Meta's `{{…}}` macros),
    thumbnail. Creatives Meta no longer lists are read by id and kept with their last
    status; no row is ever deleted."""
    client = meta.get_client()
    before = client.metrics.as_dict()
    try:
        settings = AdsSettings.from_env()
        with warehouse.connect() as conn:
            accounts = configured_accounts(conn, settings)
            result = sync_creatives(client, conn, accounts)
            missing = conn.execute(
                "select count(distinct a.creative_id) from meta_ad a "
                "left join meta_ad_creative c using (creative_id) "
                "where a.creative_id is not null and c.creative_id is null"
            ).fetchone()[0]
            by_status = dict(
                conn.execute(
                    "select coalesce(status, 'unknown'), count(*) from meta_ad_creative group by 1"
                ).fetchall()
            )
            with_utm = conn.execute(
                "select count(*) filter (where utm_source is not null), count(*) "
                "from meta_ad_creative"
            ).fetchone()
    except (GraphConfigurationError, SettingError) as exc:
        raise _config_failure(exc) from exc
    api = _api_delta(before, client.metrics.as_dict())
    context.log.info(
        f"creatives of {len(accounts)} account(s): {result.listed} listed, "
        f"{result.read_by_id} read by id, {len(result.unreadable)} gone"
    )
    return MaterializeResult(
        metadata={
            "listed": result.listed,
            "read_by_id": result.read_by_id,
            "unreadable_kept": len(result.unreadable),
            "rows_written": result.written,
            "creatives_by_status": by_status,
            "with_utm_source": f"{with_utm[0]} of {with_utm[1]}",
            "accounts": len(accounts),
            "api_calls": int(api.get("calls", 0)),
        },
        check_results=[
            AssetCheckResult(
                check_name=CHECK_EVERY_AD_HAS_ITS_CREATIVE,
                passed=missing == 0,
                severity=AssetCheckSeverity.WARN,
                metadata={"creatives_missing": missing},
                description=None if missing == 0 else "Meta would not return these creatives",
            )
        ],
    )


__all__ = ["CHECK_EVERY_AD_HAS_ITS_CREATIVE", "AD_CREATIVES", "ad_creatives"]
