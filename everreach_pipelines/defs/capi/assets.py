"""CAPI assets: pick conversions out of ``user_event``, deliver pending events to Meta."""

# No `from __future__ import annotations`: Dagster reads the config and resource
# annotations at decoration time.
import dagster as dg
from pydantic import Field

from everreach.capi.delivery import MAX_BATCH, DeliveryConfig, deliver_pending
from everreach.capi.pickup import pick_up_user_events
from everreach.capi.settings import CapiSettings, parse_etype_map
from everreach_pipelines.resources.meta import MetaGraphResource
from everreach_pipelines.resources.warehouse import WarehouseResource
from everreach_pipelines.tables import written_elsewhere

GROUP = "capi"
OWNERS = ["team:data"]
#: An event pending longer than this is close to Meta's 7-day limit: the check warns.
STALE_PENDING_HOURS = 24


meta_conversion_event = written_elsewhere(
    "meta_conversion_event",
    written_by="the receiver's CAPI intake, database functions and the pickup asset below",
    description="The Conversions API queue: one row per event, with Meta's answer to it.",
    group=GROUP,
    owners=OWNERS,
)


class UserEventPickupConfig(dg.Config):
    """Which ``user_event`` etypes are conversions, and how many rows per run."""

    etypes: str = Field(
        default="",
        description="Comma list etype[:EventName], e.g. 'purchase:Purchase,lead:Lead'. "
        "Empty: META_CAPI_CONVERSION_ETYPES, else purchase, lead, signup.",
    )
    limit: int = Field(default=10_000, description="At most this many rows per run.")
    pixel_id: str = Field(
        default="", description="Pixel of the queued events (empty: META_PIXEL_ID)."
    )
    test_event_code: str = Field(
        default="",
        description="Queue the events in test mode with this code. Empty: "
        "META_CAPI_TEST_EVENT_CODE, else real events.",
    )


@dg.asset(
    group_name=GROUP,
    kinds={"postgres"},
    description="Conversions the app wrote into user_event (purchase, lead, …), queued "
    "once each into meta_conversion_event (source 'user_event') with the user's "
    "email/phone hashed.",
)
def capi_user_event_conversions(
    context: dg.AssetExecutionContext, config: UserEventPickupConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Queue the conversion rows of ``user_event`` that are not queued yet."""
    settings = CapiSettings.from_env()
    mapping = parse_etype_map(config.etypes) if config.etypes else settings.conversion_etypes
    overrides = {"pixel_id": config.pixel_id, "test_event_code": config.test_event_code}
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v})
    with warehouse.connect() as conn:
        result = pick_up_user_events(
            conn, etype_events=mapping, settings=settings, limit=config.limit
        )
    context.log.info(
        f"picked up {result.queued} conversions from user_event "
        f"({result.duplicates} already queued, {sum(result.skipped.values())} "
        "skipped)"
    )
    return dg.MaterializeResult(
        metadata={
            "considered": result.considered,
            "queued": result.queued,
            "duplicates": result.duplicates,
            "skipped_by_field": dict(result.skipped),
            "etypes": ", ".join(f"{k}→{v}" for k, v in sorted(mapping.items())),
        }
    )


class DeliveryRunConfig(dg.Config):
    """Knobs of one delivery run (defaults suit production)."""

    batch_size: int = Field(default=MAX_BATCH, description="Events per request (≤ 1000).")
    test_event_code: str = Field(
        default="",
        description="Send every event in test mode with this code. Empty: "
        "META_CAPI_TEST_EVENT_CODE, else per event.",
    )
    pixel_id: str = Field(default="", description="Only this pixel (empty: all).")
    max_events: int = Field(default=0, description="Stop after this many (0: all).")
    max_attempts: int = Field(
        default=8, description="Attempts before a transiently failing event is marked failed."
    )


@dg.asset(
    group_name=GROUP,
    kinds={"postgres", "meta"},
    deps=[capi_user_event_conversions],
    check_specs=[
        dg.AssetCheckSpec(
            "no_events_rejected_by_meta",
            asset="capi_event_batches",
            description="Meta accepted every event it was sent in this run.",
        ),
        dg.AssetCheckSpec(
            "no_stale_pending_events",
            asset="capi_event_batches",
            description=f"No event has waited more than {STALE_PENDING_HOURS} h "
            "(Meta refuses events older than 7 days).",
        ),
    ],
    description="Pending meta_conversion_event rows sent to POST /{pixel-id}/events in "
    "batches of ≤ 1000, bad events isolated by bisection, outcome recorded per event, "
    "each accepted event logged once into user_event as meta_conversion_<EventName>.",
)
def capi_event_batches(
    context: dg.AssetExecutionContext,
    config: DeliveryRunConfig,
    warehouse: WarehouseResource,
    meta: MetaGraphResource,
) -> dg.MaterializeResult:
    """Deliver every pending CAPI event; see ``everreach.capi.delivery``."""
    delivery = DeliveryConfig(
        batch_size=config.batch_size,
        test_event_code=config.test_event_code or CapiSettings.from_env().test_event_code,
        pixel_id=config.pixel_id or None,
        max_events=config.max_events or None,
        max_attempts=config.max_attempts,
    )
    with warehouse.connect(autocommit=True) as conn:
        report = deliver_pending(conn, meta.get_client(), config=delivery)
        stale = conn.execute(
            "select count(*) from meta_conversion_event where status = 'pending' "
            "and created_at < now() - make_interval(hours => %s)",
            (STALE_PENDING_HOURS,),
        ).fetchone()[0]
    context.log.info(f"CAPI delivery: {report.summary()}")
    return dg.MaterializeResult(
        metadata={
            "requests": report.requests,
            "sent": report.sent,
            "rejected_local": report.rejected_local,
            "rejected_by_meta": report.rejected_meta,
            "failed": report.failed,
            "deferred": report.deferred,
            "retries": report.retries,
            "bisections": report.bisections,
            "sent_by_pixel": dict(report.pixels),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="no_events_rejected_by_meta",
                passed=report.rejected_meta == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "rejected_by_meta": report.rejected_meta,
                    "rejected_local": report.rejected_local,
                },
            ),
            dg.AssetCheckResult(
                check_name="no_stale_pending_events",
                passed=stale == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"stale_pending": stale},
            ),
        ],
    )
