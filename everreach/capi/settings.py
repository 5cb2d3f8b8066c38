"""Conversions API settings: the default pixel, test mode, and when delivery runs."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator

from everreach.settings import EverReachSettings, cron_expression, setting

#: user_event etype → Meta standard event name.
DEFAULT_ETYPE_EVENTS: dict[str, str] = {
    "purchase": "Purchase",
    "lead": "Lead",
    "signup": "CompleteRegistration",
}


def parse_etype_map(text: object) -> object:
    """``"purchase:Purchase,lead:Lead"`` → mapping; empty → :data:`DEFAULT_ETYPE_EVENTS`.

    An entry without ``:`` maps the etype to its CamelCased name (``add_to_cart`` →
    ``AddToCart``).
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        return dict(DEFAULT_ETYPE_EVENTS)
    if not isinstance(text, str):
        return text
    mapping: dict[str, str] = {}
    for item in text.split(","):
        etype, _, name = item.strip().partition(":")
        if etype.strip():
            etype = etype.strip()
            mapping[etype] = name.strip() or "".join(p.capitalize() for p in etype.split("_"))
    return mapping


class CapiSettings(EverReachSettings):
    """Intake and delivery defaults: the pixel for events without one, global test mode,
    which app events are conversions, and the delivery cadence."""

    pixel_id: str | None = setting(
        "META_PIXEL_ID", None, "Default pixel for Conversions API events."
    )
    test_event_code: str | None = setting(
        "META_CAPI_TEST_EVENT_CODE",
        None,
        "When set, every CAPI event is sent in test mode with this code.",
    )
    conversion_etypes: Annotated[dict[str, str], BeforeValidator(parse_etype_map)] = setting(
        "META_CAPI_CONVERSION_ETYPES",
        DEFAULT_ETYPE_EVENTS,
        "user_event etypes picked up as CAPI conversions, as etype:EventName pairs.",
        expected="a comma list of etype:EventName pairs",
    )
    sensor_interval_seconds: Annotated[int, Field(ge=5)] = setting(
        "META_CAPI_SENSOR_INTERVAL_SECONDS",
        60,
        "How often the CAPI sensor looks for pending events.",
        expected="whole seconds ≥ 5, e.g. 60",
    )
    sweep_cron: str = setting(
        "META_CAPI_SWEEP_CRON",
        "*/30 * * * *",
        "Fallback schedule of the CAPI delivery.",
        expected="five fields, e.g. '*/30 * * * *'",
    )
    #: Calling code assumed for national phone numbers without a country (not an
    #: environment variable: per event, `country` wins).
    default_phone_country: str | None = "us"

    _sweep_cron = field_validator("sweep_cron")(cron_expression)
