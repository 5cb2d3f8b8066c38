"""Ad objects as Meta serves them: every spec field, Meta's errors, its list parameters.

Reads (``GET /{id}``) and lists (``GET /{id}/campaigns|adsets|ads|adcreatives``,
``GET /me/adaccounts``) of AdAccount, Campaign, AdSet, Ad, AdCreative, plus the fields of an
AdReportRun status, checked against Meta's spec (:mod:`everreach.sandbox.ads_spec`):

* every field the spec lists for the type is accepted. A field has a value when the
  sandbox's object has one (plausible and of the spec's type: enums from Meta's values,
  money as strings of minor units, times in the account's zone, object references as
  ``{"id"}``), and is left out otherwise, as Meta leaves out fields an object has no value
  for; ``bool`` fields are always answered. ``creative{name,url_tags}`` /
  ``campaign{name}`` expand references, ``targeting{age_min}`` picks keys, an edge named
  as a field (``ads{id}``, ``adcreatives.limit(5){name}``) lists the children;
* a name the spec does not list is refused with Meta's
  ``(#100) Tried accessing nonexisting field (x) on node type (Campaign)``;
* a parameter that is neither Graph-wide, nor a list edge's, nor the endpoint's own is
  refused (code 100, naming it) instead of being ignored; the endpoint's own are honoured
  (``effective_status``, ``filtering``, ``updated_since``, ``is_completed``, ``summary``)
  or at least validated (``date_preset``, ``time_range``, which only affect stats fields).

Creatives come from :mod:`everreach.sandbox.creatives` (their data: landing URLs, formats);
this module serves them like every other object.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from everreach.sandbox import creatives
from everreach.sandbox.ads_spec import (
    EDGE_PARAMS,
    EDGES,
    ENUMS,
    FIELDS,
    GRAPH_WIDE_PARAMS,
    LIST_EDGE_PARAMS,
    NODE_PARAMS,
)
from everreach.sandbox.core import Sandbox, parse_field, split_fields, unknown_parameter_message

if TYPE_CHECKING:
    from everreach.sandbox.ads import Account, AdsState

#: sandbox node kind → Meta's node type
TYPE_OF = {
    "ad_account": "AdAccount",
    "campaign": "Campaign",
    "adset": "AdSet",
    "ad": "Ad",
    "adcreative": "AdCreative",
    "ad_report_run": "AdReportRun",
    "user": "User",
}
#: list edge → kind of the objects it lists
EDGE_KIND = {
    "campaigns": "campaign",
    "adsets": "adset",
    "ads": "ad",
    "adcreatives": "adcreative",
    "adaccounts": "ad_account",
}
#: edges the sandbox lists, per parent kind
LIST_EDGES = {
    "ad_account": ("campaigns", "adsets", "ads", "adcreatives"),
    "campaign": ("adsets", "ads"),
    "adset": ("ads", "adcreatives"),
    "ad": ("adcreatives",),
    "user": ("adaccounts",),
}
#: parameters Meta documents on the object list edges beyond the codegen spec's
LIST_EXTRA_PARAMS = ("filtering", "summary", "default_summary")
HIDDEN_BY_DEFAULT = {"DELETED", "ARCHIVED"}
FILTER_OPERATORS = ENUMS["AdRuleFilters_operator"]
CREATIVE_ID_BASE = 23_880_000_000_000_001

_MISSING = object()


class Lazy:
    """A field value computed only when the field is asked for (it costs something)."""

    def __init__(self, compute: Callable[[], Any]) -> None:
        self.compute = compute


class ObjectError(Exception):
    """A bad object request: carries the Graph error to answer with."""

    def __init__(self, code: int, message: str, subcode: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.subcode = code, message, subcode


def nonexisting_field(name: str, node_type: str) -> ObjectError:
    """Meta's answer to a field (or edge) its node type does not have."""
    return ObjectError(
        100, f"(#100) Tried accessing nonexisting field ({name}) on node type ({node_type})"
    )


# --------------------------------------------------------------------------- parameters
def check_params(params: dict, allowed: Sequence[str] | set[str], where: str) -> None:
    """Refuse any parameter not in ``allowed`` (nor Graph-wide), naming it and ``where``."""
    accepted = set(GRAPH_WIDE_PARAMS) | set(allowed)
    for name in params:
        if name not in accepted:
            raise ObjectError(100, unknown_parameter_message(name, where))


def _enum_check(values: list[str], enum: str, param: str) -> None:
    allowed = ENUMS.get(enum)
    if allowed is None:
        return
    for i, value in enumerate(values):
        if value not in allowed:
            raise ObjectError(
                100, f"(#100) Param {param}[{i}] must be one of {{{', '.join(allowed)}}}"
            )


def _json_value(sandbox: Sandbox, params: dict, name: str) -> Any:
    try:
        return sandbox.json_param(params, name)
    except orjson.JSONDecodeError as exc:
        raise ObjectError(100, f"(#100) Param {name} must be a valid JSON value") from exc


def _list_values(sandbox: Sandbox, params: dict, name: str) -> list[str]:
    try:
        return sandbox.list_param(params, name)
    except orjson.JSONDecodeError as exc:
        raise ObjectError(100, f"(#100) Param {name} must be an array") from exc


def _validate_stats_params(sandbox: Sandbox, params: dict, spec: dict[str, str]) -> None:
    """date_preset / time_range only shape stats fields the sandbox has none of: validate."""
    if "date_preset" in params and "date_preset" in spec:
        _enum_check([str(params["date_preset"])], spec["date_preset"], "date_preset")
    if "time_range" in params and "time_range" in spec:
        tr = _json_value(sandbox, params, "time_range")
        try:
            date.fromisoformat(tr["since"])
            date.fromisoformat(tr["until"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ObjectError(
                100,
                "(#100) param time_range must be a JSON object with since and until dates "
                "(YYYY-MM-DD)",
            ) from exc


# --------------------------------------------------------------------------- fields
Field = tuple[str, dict[str, str], list[str]]


def requested_fields(params: dict, node_type: str, default: str = "id") -> list[Field]:
    """The ``fields`` parameter, parsed and checked against ``node_type``'s spec fields."""
    raw = params.get("fields")
    text = default if raw is None or str(raw).strip() == "" else str(raw)
    fields = [parse_field(f) for f in split_fields(text)]
    _check_fields(fields, node_type)
    return fields


def _check_fields(fields: list[Field], node_type: str) -> None:
    known = FIELDS[node_type]
    for name, _mods, sub in fields:
        if name in known:
            target = _base_type(known[name])
            if sub and target in FIELDS:
                _check_fields([parse_field(f) for f in sub], target)
            continue
        if name in EDGES.get(node_type, ()):
            child = EDGE_KIND.get(name)
            if child is None or name not in LIST_EDGES.get(KIND_OF[node_type], ()):
                raise ObjectError(
                    100,
                    f"(#100) The sandbox does not serve {node_type}/{name}; "
                    "ask for it as its own request",
                )
            _check_fields([parse_field(f) for f in (sub or ["id"])], TYPE_OF[child])
            continue
        raise nonexisting_field(name, node_type)


KIND_OF = {v: k for k, v in TYPE_OF.items()}


def _base_type(type_name: str) -> str:
    """``list<AdLabel>`` → ``AdLabel``; ``Campaign`` → ``Campaign``."""
    while type_name.startswith("list<") and type_name.endswith(">"):
        type_name = type_name[5:-1]
    return type_name


# --------------------------------------------------------------------------- rendering
class Renderer:
    """Renders objects of one request: its date format, the account's time zone, and
    what it takes to resolve references (other objects) and edges."""

    def __init__(self, sandbox: Sandbox, state: AdsState, params: dict) -> None:
        self.sandbox = sandbox
        self.state = state
        self.date_format = params.get("date_format")

    def time(self, value: datetime, acct: Account | None) -> str | int:
        """A datetime as Meta writes it: ISO 8601 in the account's zone, or ``date_format``."""
        local = value.astimezone(acct.tz) if acct is not None else value.astimezone(UTC)
        fmt = self.date_format
        if fmt is None or fmt == "":
            return local.strftime("%Y-%m-%dT%H:%M:%S%z")
        if fmt == "U":
            return int(value.timestamp())
        return _php_date(local, str(fmt))

    def render(self, kind: str, obj: Any, fields: list[Field]) -> dict:
        """One object with the requested fields (and ``id``)."""
        node_type = TYPE_OF[kind]
        values, acct = VALUES[kind](self, obj)
        types = FIELDS[node_type]
        out: dict[str, Any] = {}
        for name, mods, sub in fields:
            if name not in types:  # an edge named as a field
                out[name] = self.edge(kind, obj, name, mods, sub)
                continue
            value = values.get(name, _MISSING)
            if isinstance(value, Lazy):
                value = value.compute()
            if value is _MISSING:
                if types[name] != "bool":
                    continue  # no value on this object: Meta leaves the field out
                value = False
            out[name] = self.shape(value, types[name], sub, acct)
        if "id" in values:
            out.setdefault("id", values["id"])
        return out

    def shape(self, value: Any, type_name: str, sub: list[str], acct: Account | None) -> Any:
        """Format one value: times, references expanded with sub-fields, picked keys."""
        if isinstance(value, datetime):
            return self.time(value, acct)
        base = _base_type(type_name)
        if isinstance(value, list):
            return [self.shape(v, base, sub, acct) for v in value]
        if isinstance(value, dict):
            ref_kind = KIND_OF.get(base)
            if sub and ref_kind is not None and "id" in value:
                target = self.lookup(ref_kind, str(value["id"]))
                if target is not None:
                    return self.render(ref_kind, target, [parse_field(f) for f in sub])
            if sub:
                picked = {}
                for name, _mods, inner in (parse_field(f) for f in sub):
                    if name in value:
                        inner_type = FIELDS.get(base, {}).get(name, "")
                        picked[name] = self.shape(value[name], inner_type, inner, acct)
                return picked
            return {k: self.shape(v, "", [], acct) for k, v in value.items()}
        return value

    def lookup(self, kind: str, object_id: str) -> Any:
        """The object of ``kind`` with ``object_id`` (None when unknown)."""
        state = self.state
        if kind == "adcreative":
            entry = state.creatives.get(object_id)
            return entry[1] if entry is not None else None
        if kind == "ad_account":
            return state.accounts.get(object_id.removeprefix("act_"))
        entry = state.objects.get(object_id)
        if entry is None or entry[0] != kind:
            return None
        _, acct, pos = entry
        return {"campaign": acct.campaigns, "adset": acct.adsets, "ad": acct.ads}[kind][pos]

    def edge(self, kind: str, obj: Any, edge: str, mods: dict[str, str], sub: list[str]) -> dict:
        """An edge expanded inside ``fields``: ``{"data": [...], "paging": {...}}``."""
        child = EDGE_KIND[edge]
        objs = children(self.state, kind, obj, child)
        objs = [o for o in objs if _status(o) not in HIDDEN_BY_DEFAULT]
        try:
            limit = int(mods.get("limit", 25))
        except ValueError as exc:
            raise ObjectError(100, f"(#100) Param limit of {edge} must be a number") from exc
        fields = [parse_field(f) for f in (sub or ["id"])]
        data = [self.render(child, o, fields) for o in objs[: max(limit, 0)]]
        body: dict[str, Any] = {"data": data}
        if data:
            body["paging"] = {
                "cursors": {
                    "before": self.sandbox.encode_cursor(0),
                    "after": self.sandbox.encode_cursor(len(data)),
                }
            }
        return body


def _php_date(value: datetime, fmt: str) -> str:
    """The subset of PHP's date() letters Graph's ``date_format`` is used with."""
    table: dict[str, Callable[[datetime], str]] = {
        "Y": lambda d: f"{d.year:04d}",
        "y": lambda d: f"{d.year % 100:02d}",
        "m": lambda d: f"{d.month:02d}",
        "n": lambda d: str(d.month),
        "d": lambda d: f"{d.day:02d}",
        "j": lambda d: str(d.day),
        "H": lambda d: f"{d.hour:02d}",
        "G": lambda d: str(d.hour),
        "i": lambda d: f"{d.minute:02d}",
        "s": lambda d: f"{d.second:02d}",
        "U": lambda d: str(int(d.timestamp())),
        "c": lambda d: d.isoformat(),
        "O": lambda d: d.strftime("%z"),
        "P": lambda d: d.strftime("%z")[:3] + ":" + d.strftime("%z")[3:],
    }
    out, escape = [], False
    for ch in fmt:
        if escape:
            out.append(ch)
            escape = False
        elif ch == "\\":
            escape = True
        else:
            out.append(table[ch](value) if ch in table else ch)
    return "".join(out)


# --------------------------------------------------------------------------- values
def _digest(*parts: object) -> int:
    text = ":".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


def _status(obj: dict) -> str:
    return str(obj.get("effective_status") or obj.get("status") or "ACTIVE")


LOCALES = {
    "America/Los_Angeles": ("US", "San Francisco", "CA", "94105", "548 Market St", 1),
    "Europe/Berlin": ("DE", "Berlin", "BE", "10115", "Invalidenstraße 117", 48),
    "Europe/London": ("GB", "London", "LND", "EC1V 9HX", "1 City Road", 44),
    "America/Sao_Paulo": ("BR", "São Paulo", "SP", "01310-100", "Av. Paulista 1000", 20),
}
OPTIMIZATION = {
    "OUTCOME_SALES": ("OFFSITE_CONVERSIONS", "WEBSITE", "SHOP_NOW"),
    "OUTCOME_LEADS": ("LEAD_GENERATION", "ON_AD", "SIGN_UP"),
    "OUTCOME_TRAFFIC": ("LANDING_PAGE_VIEWS", "WEBSITE", "LEARN_MORE"),
    "OUTCOME_AWARENESS": ("REACH", "UNDEFINED", "LEARN_MORE"),
    "OUTCOME_ENGAGEMENT": ("POST_ENGAGEMENT", "ON_POST", "LEARN_MORE"),
}


def _page_id(acct: Account) -> str:
    return creatives.page_of(acct)[0]


def _pixel_id(state: AdsState) -> str:
    return state.pixel_id()


def _labels(obj: dict, acct: Account) -> list[dict] | None:
    # About a third of objects carry a label (Meta leaves adlabels out when there is none).
    if _digest(obj["id"], "label") % 3:
        return None
    label_id = str(2_384_000_000_000_001 + _digest(obj["id"], "label-id") % 1000)
    name = ["Always on", "Prospecting", "Retargeting"][_digest(obj["id"], "label-name") % 3]
    created = acct.created_time + timedelta(days=1)
    return [
        {
            "id": label_id,
            "name": name,
            "created_time": created,
            "updated_time": created,
            "account": {"id": f"act_{acct.id}"},
        }
    ]


def _targeting(acct: Account, obj_id: str) -> dict:
    country = LOCALES.get(acct.timezone_name, LOCALES["America/Los_Angeles"])[0]
    age_min = 18 + 7 * (_digest(obj_id, "age") % 3)
    return {
        "age_max": 65,
        "age_min": age_min,
        "geo_locations": {"countries": [country], "location_types": ["home", "recent"]},
        "publisher_platforms": ["facebook", "instagram"],
        "facebook_positions": ["feed", "story"],
        "instagram_positions": ["stream", "story", "reels"],
        "device_platforms": ["mobile", "desktop"],
        "targeting_automation": {"advantage_audience": 1},
    }


def _budget_remaining(obj: dict) -> str | None:
    budget = obj.get("daily_budget") or obj.get("lifetime_budget")
    if budget is None:
        return None
    share = (_digest(obj["id"], "remaining") % 90 + 5) / 100
    return str(int(int(budget) * share))


def _stop_time(obj: dict) -> datetime | None:
    # Lifetime budgets need an end; daily ones run until stopped (no end time).
    if obj.get("lifetime_budget") is None:
        return None
    start = obj.get("start_time")
    return start + timedelta(days=90) if isinstance(start, datetime) else None


def _campaign_of(state: AdsState, obj: dict) -> dict | None:
    entry = state.objects.get(obj.get("campaign_id", ""))
    if entry is None:
        return None
    _, acct, pos = entry
    return acct.campaigns[pos]


def campaign_values(r: Renderer, obj: dict) -> tuple[dict, Account]:
    """Every field value a campaign has."""
    acct = r.state.objects[obj["id"]][1]
    values = dict(obj)
    values.update(
        {
            "configured_status": obj["status"],
            "bid_strategy": "LOWEST_COST_WITHOUT_CAP",
            "buying_type": "AUCTION",
            "budget_rebalance_flag": False,
            "can_use_spend_cap": True,
            "special_ad_categories": [],
            "special_ad_category": "NONE",
            "special_ad_category_country": [],
            "pacing_type": ["standard"],
            "smart_promotion_type": "GUIDED_CREATION",
            "source_campaign_id": "0",
            "topline_id": "0",
            "primary_attribution": "",
            "advantage_state_info": {
                "advantage_state": "DISABLED",
                "advantage_budget_state": "ENABLED",
                "advantage_audience_state": "DISABLED",
                "advantage_placement_state": "ENABLED",
            },
        }
    )
    remaining = _budget_remaining(obj)
    if remaining is not None:
        values["budget_remaining"] = remaining
    stop = _stop_time(obj)
    if stop is not None:
        values["stop_time"] = stop
    labels = _labels(obj, acct)
    if labels:
        values["adlabels"] = labels
    return values, acct


def adset_values(r: Renderer, obj: dict) -> tuple[dict, Account]:
    """Every field value an ad set has."""
    acct = r.state.objects[obj["id"]][1]
    campaign = _campaign_of(r.state, obj) or {}
    goal, destination, _cta = OPTIMIZATION.get(
        str(campaign.get("objective")), ("LINK_CLICKS", "WEBSITE", "LEARN_MORE")
    )
    values = dict(obj)
    values.update(
        {
            "configured_status": obj["status"],
            "campaign": {"id": obj["campaign_id"]},
            "bid_strategy": "LOWEST_COST_WITHOUT_CAP",
            "billing_event": "IMPRESSIONS",
            "optimization_goal": goal,
            "destination_type": destination,
            "targeting": _targeting(acct, obj["id"]),
            "attribution_spec": [
                {"event_type": "CLICK_THROUGH", "window_days": 7},
                {"event_type": "VIEW_THROUGH", "window_days": 1},
            ],
            "pacing_type": ["standard"],
            "source_adset_id": "0",
            "multi_optimization_goal_weight": "UNDEFINED",
            "lifetime_imps": 0,
            "learning_stage_info": {
                "status": "SUCCESS" if _digest(obj["id"], "learn") % 4 else "LEARNING",
            },
        }
    )
    if goal == "OFFSITE_CONVERSIONS":
        values["promoted_object"] = {
            "pixel_id": _pixel_id(r.state),
            "custom_event_type": "PURCHASE",
        }
    elif goal == "LEAD_GENERATION":
        values["promoted_object"] = {"page_id": _page_id(acct)}
    remaining = _budget_remaining(obj)
    if remaining is not None:
        values["budget_remaining"] = remaining
    end = _stop_time(campaign) if campaign else None
    if end is not None:
        values["end_time"] = end
    labels = _labels(obj, acct)
    if labels:
        values["adlabels"] = labels
    return values, acct


def ad_values(r: Renderer, obj: dict) -> tuple[dict, Account]:
    """Every field value an ad has."""
    acct = r.state.objects[obj["id"]][1]
    values = dict(obj)
    values.update(
        {
            "configured_status": obj["status"],
            "campaign": {"id": obj["campaign_id"]},
            "adset": {"id": obj["adset_id"]},
            "bid_type": "ABSOLUTE_OCPM",
            "source_ad_id": "0",
            "last_updated_by_app_id": r.sandbox.config.app_id,
            "preview_shareable_link": f"https://fb.me/{_digest(obj['id'], 'preview') % 36**8:x}",
            "targeting": _targeting(acct, obj["adset_id"]),
            "tracking_specs": [
                {"action.type": ["offsite_conversion"], "fb_pixel": [_pixel_id(r.state)]},
                {"action.type": ["link_click"], "post.wall": [_page_id(acct)]},
            ],
            "conversion_specs": [
                {"action.type": ["offsite_conversion"], "conversion_id": [_pixel_id(r.state)]}
            ],
        }
    )
    labels = _labels(obj, acct)
    if labels:
        values["adlabels"] = labels
    return values, acct


def creative_values(r: Renderer, obj: dict) -> tuple[dict, Account]:
    """Every field value a creative has (built by :mod:`everreach.sandbox.creatives`)."""
    return obj, r.state.creatives[obj["id"]][0]


def account_values(r: Renderer, acct: Account) -> tuple[dict, Account]:
    """Every field value an ad account has."""
    now = r.sandbox.now()
    offset = now.astimezone(acct.tz).utcoffset() or timedelta(0)
    hours = offset.total_seconds() / 3600
    country, city, region, zip_code, street, tz_id = LOCALES.get(
        acct.timezone_name, LOCALES["America/Los_Angeles"]
    )
    business = {"id": r.sandbox.config.business_id, "name": "EverReach"}
    disabled = acct.account_status != 1
    values: dict[str, Any] = {
        "id": f"act_{acct.id}",
        "account_id": acct.id,
        "name": acct.name,
        "currency": acct.currency,
        "timezone_name": acct.timezone_name,
        "timezone_offset_hours_utc": int(hours) if hours.is_integer() else hours,
        "account_status": acct.account_status,
        "created_time": acct.created_time,
        "age": round((now - acct.created_time).total_seconds() / 86400, 4),
        "amount_spent": Lazy(lambda: str(_amount_spent(r.state, acct))),
        "balance": "0",
        "spend_cap": "0",
        "min_campaign_group_spend_cap": "10000",
        "min_daily_budget": 100,
        "business": business,
        "owner_business": business,
        "viewable_business": business,
        "owner": r.sandbox.config.business_id,
        "business_name": "EverReach",
        "business_city": city,
        "business_country_code": country,
        "business_state": region,
        "business_street": street,
        "business_street2": "",
        "business_zip": zip_code,
        "capabilities": ["CAN_USE_REACH_AND_FREQUENCY", "HAS_AD_SET_FREQUENCY_CAP"],
        "all_capabilities": ["CAN_USE_REACH_AND_FREQUENCY", "HAS_AD_SET_FREQUENCY_CAP"],
        "brand_safety_content_filter_levels": ["FACEBOOK_STANDARD", "AN_STANDARD"],
        "attribution_spec": [
            {"event_type": "CLICK_THROUGH", "window_days": 7},
            {"event_type": "VIEW_THROUGH", "window_days": 1},
        ],
        "disable_reason": 1 if disabled else 0,
        "fb_entity": 85,
        "funding_source": str(6_010_000_000_000_001 + acct.index),
        "funding_source_details": {
            "id": str(6_010_000_000_000_001 + acct.index),
            "display_string": f"Visa *{4242 + acct.index}",
            "type": 1,
        },
        "is_personal": 0,
        "is_prepay_account": False,
        "is_attribution_spec_system_default": True,
        "is_notifications_enabled": True,
        "has_migrated_permissions": True,
        "offsite_pixels_tos_accepted": True,
        "media_agency": "UNFOUND",
        "partner": "UNFOUND",
        "end_advertiser": r.sandbox.config.business_id,
        "end_advertiser_name": "EverReach",
        "tax_id_status": 0,
        "timezone_id": tz_id,
        "tos_accepted": {"web_custom_audience_tos": 1},
        "user_tos_accepted": {"web_custom_audience_tos": 1},
        "user_tasks": ["DRAFT", "ANALYZE", "ADVERTISE", "MANAGE"],
    }
    return values, acct


def _amount_spent(state: AdsState, acct: Account) -> int:
    """Lifetime spend of ``acct`` in minor units (``amount_spent``), cached per day."""
    today = state.sandbox.now().astimezone(acct.tz).date()
    key = (acct.id, today)
    cached = state._spent.get(key)
    if cached is None:
        cached = state._spent[key] = amount_spent_cents(state, acct, today)
    return cached


def report_run_values(r: Renderer, job: dict) -> tuple[dict, Account]:
    """The fields of a report run's status (computed by the ads module)."""
    return job["status"], job["account"]


def user_values(r: Renderer, user: dict) -> tuple[dict, None]:
    """The token's user."""
    return user, None


VALUES: dict[str, Callable[[Renderer, Any], tuple[dict, Any]]] = {
    "campaign": campaign_values,
    "adset": adset_values,
    "ad": ad_values,
    "adcreative": creative_values,
    "ad_account": account_values,
    "ad_report_run": report_run_values,
    "user": user_values,
}


# --------------------------------------------------------------------------- lists
def children(state: AdsState, kind: str, obj: Any, child: str) -> list:
    """The objects ``obj`` (of ``kind``) lists on the edge of ``child`` objects."""
    if kind == "user":
        return list(state.accounts.values())
    acct = obj if kind == "ad_account" else state.objects[obj["id"]][1]
    if child == "adcreative":
        if kind == "ad":  # an ad's own creative, whatever its status
            return [state.creatives[obj["creative"]["id"]][1]]
        live = [c for c in acct.creatives if c["status"] != "DELETED"]
        if kind == "adset":
            used = {ad["creative"]["id"] for ad in acct.ads if ad["adset_id"] == obj["id"]}
            return [c for c in live if c["id"] in used]
        return live
    objs = {"campaign": acct.campaigns, "adset": acct.adsets, "ad": acct.ads}[child]
    if kind == "ad_account":
        return list(objs)
    return [o for o in objs if o.get(f"{kind}_id") == obj["id"]]


def _attr(state: AdsState, kind: str, obj: dict, prefix: str, attr: str) -> Any:
    """The value a filter on ``prefix.attr`` compares for ``obj`` (None when unknown)."""
    target = obj
    if prefix != kind:
        ref = obj.get(f"{prefix}_id")
        entry = state.objects.get(str(ref)) if ref is not None else None
        if entry is None:
            return None
        _, acct, pos = entry
        target = {"campaign": acct.campaigns, "adset": acct.adsets, "ad": acct.ads}[prefix][pos]
    if attr == "configured_status":
        attr = "status"
    value = target.get(attr)
    if isinstance(value, datetime):
        return int(value.timestamp())
    return value


FILTER_ATTRS = {
    "id",
    "name",
    "status",
    "configured_status",
    "effective_status",
    "created_time",
    "updated_time",
    "start_time",
    "objective",
    "campaign_id",
    "adset_id",
}
PARENTS = {
    "campaign": ("campaign",),
    "adset": ("adset", "campaign"),
    "ad": ("ad", "adset", "campaign"),
}


def _compare(op: str, left: Any, right: Any) -> bool:
    def num(v: Any) -> float | None:
        try:
            return float(v)
        except (TypeError, ValueError):
            return None

    values = right if isinstance(right, list) else [right]
    if op in ("IN", "ANY"):
        return str(left) in {str(v) for v in values}
    if op in ("NOT_IN", "NONE"):
        return str(left) not in {str(v) for v in values}
    if op == "ALL":
        return all(str(left) == str(v) for v in values)
    if op == "EQUAL":
        return str(left) == str(right)
    if op == "NOT_EQUAL":
        return str(left) != str(right)
    if op in ("CONTAIN", "NOT_CONTAIN"):
        hit = str(right).lower() in str(left).lower()
        return hit if op == "CONTAIN" else not hit
    a, b = num(left), num(right if not isinstance(right, list) else None)
    if op == "GREATER_THAN":
        return a is not None and b is not None and a > b
    if op == "LESS_THAN":
        return a is not None and b is not None and a < b
    if op in ("IN_RANGE", "NOT_IN_RANGE"):
        low, high = (num(values[0]), num(values[-1])) if values else (None, None)
        inside = a is not None and low is not None and high is not None and low <= a <= high
        return inside if op == "IN_RANGE" else not inside
    return False


def filter_objects(
    sandbox: Sandbox, state: AdsState, child: str, objs: list, params: dict, spec: dict[str, str]
) -> list:
    """Apply a list edge's ``effective_status``, ``filtering``, ``updated_since`` and
    ``is_completed``; hide DELETED/ARCHIVED unless a status filter asks for them."""
    status_asked = False
    if params.get("effective_status") not in (None, ""):
        statuses = _list_values(sandbox, params, "effective_status")
        _enum_check(statuses, _base_type(spec.get("effective_status", "")), "effective_status")
        wanted = set(statuses)
        objs = [o for o in objs if _status(o) in wanted]
        status_asked = True
    filtering = _json_value(sandbox, params, "filtering") if "filtering" in params else []
    if not isinstance(filtering, list):
        raise ObjectError(100, "(#100) param filtering must be an array")
    for i, flt in enumerate(filtering):
        if not isinstance(flt, dict) or not {"field", "operator"} <= flt.keys():
            raise ObjectError(
                100, f"(#100) param filtering[{i}] must be an object with field and operator"
            )
        field_name, op = str(flt["field"]), str(flt["operator"]).upper()
        if op not in FILTER_OPERATORS:
            raise ObjectError(
                100,
                f"(#100) param filtering[{i}][operator] must be one of "
                f"{{{', '.join(FILTER_OPERATORS)}}}",
            )
        prefix, _, attr = field_name.partition(".")
        if (
            child == "adcreative"
            or prefix not in PARENTS.get(child, ())
            or attr not in FILTER_ATTRS
        ):
            raise ObjectError(
                100,
                f"(#100) Filtering field '{field_name}' with operation '{op.lower()}' "
                "is not supported",
            )
        value = flt.get("value")
        objs = [o for o in objs if _compare(op, _attr(state, child, o, prefix, attr), value)]
        status_asked = status_asked or attr == "effective_status"
    if "updated_since" in params and "updated_since" in spec:
        try:
            since = int(str(params["updated_since"]))
        except ValueError as exc:
            raise ObjectError(100, "(#100) Param updated_since must be an integer") from exc
        objs = [o for o in objs if int(o["updated_time"].timestamp()) > since]
    if "is_completed" in params and "is_completed" in spec:
        flag = str(params["is_completed"]).lower()
        if flag not in ("true", "false", "1", "0"):
            raise ObjectError(100, "(#100) Param is_completed must be a boolean")
        now = sandbox.now()
        completed = flag in ("true", "1")
        objs = [o for o in objs if _completed(state, child, o, now) == completed]
    if child in ("campaign", "adset", "ad") and not status_asked:
        objs = [o for o in objs if _status(o) not in HIDDEN_BY_DEFAULT]
    return objs


def _completed(state: AdsState, kind: str, obj: dict, now: datetime) -> bool:
    campaign = obj if kind == "campaign" else _campaign_of(state, obj)
    end = _stop_time(campaign) if campaign else None
    return end is not None and end <= now


class RenderedList(Sequence):
    """A lazily rendered list of objects (for paging without rendering every row)."""

    def __init__(self, renderer: Renderer, kind: str, objs: list, fields: list[Field]) -> None:
        self.renderer, self.kind, self.objs, self.fields = renderer, kind, objs, fields

    def __len__(self) -> int:
        return len(self.objs)

    def __getitem__(self, item):  # type: ignore[override]
        if isinstance(item, slice):
            return [self.renderer.render(self.kind, o, self.fields) for o in self.objs[item]]
        return self.renderer.render(self.kind, self.objs[item], self.fields)


# --------------------------------------------------------------------------- handlers
def handle_read(
    request: Request, sandbox: Sandbox, state: AdsState, kind: str, obj: Any, default: str = "id"
) -> Response:
    """``GET /{id}``: the object with the requested fields."""
    params = request.state.params
    node_type = TYPE_OF[kind]
    check_params(params, NODE_PARAMS.get(node_type, {}), f"a {node_type} read")
    _validate_stats_params(sandbox, params, NODE_PARAMS.get(node_type, {}))
    fields = requested_fields(params, node_type, default)
    return sandbox.json_response(Renderer(sandbox, state, params).render(kind, obj, fields))


def handle_list(
    request: Request, sandbox: Sandbox, state: AdsState, kind: str, obj: Any, edge: str
) -> Response:
    """``GET /{id}/{edge}``: the children, filtered, paged, with the requested fields."""
    params = request.state.params
    node_type = TYPE_OF[kind]
    child = EDGE_KIND[edge]
    _, spec = EDGE_PARAMS[f"{node_type}.{edge}"]
    check_params(
        params, [*LIST_EDGE_PARAMS, *LIST_EXTRA_PARAMS, *spec], f"the {node_type}/{edge} edge"
    )
    _validate_stats_params(sandbox, params, spec)
    fields = requested_fields(params, TYPE_OF[child])
    objs = filter_objects(sandbox, state, child, children(state, kind, obj, child), params, spec)
    rows = RenderedList(Renderer(sandbox, state, params), child, objs, fields)
    extra = None
    if str(params.get("summary", "")).lower() in ("true", "1", "total_count"):
        extra = {"summary": {"total_count": len(objs)}}
    return sandbox.page(request, rows, extra=extra)


def unknown_edge(sandbox: Sandbox, kind: str, node_id: str, edge: str, method: str) -> Response:
    """An edge the sandbox does not list: Meta's answer for a name its type lacks, else
    Meta's "does not support this operation" for an edge Meta has and the sandbox not."""
    node_type = TYPE_OF[kind]
    if edge in EDGES.get(node_type, ()):
        return sandbox.unknown_node_response(f"{node_id}/{edge}", method)
    err = nonexisting_field(edge, node_type)
    return sandbox.error_response(err.code, err.message)


def amount_spent_cents(state: AdsState, acct: Account, today: date) -> int:
    """Lifetime spend of ``acct`` up to yesterday (account-local), in minor units."""
    if not acct.delivering:
        return 0
    total = 0
    day = acct.start_day
    while day < today:
        total += int(state.day_metrics(acct, day, today)["spend"].sum())
        day += timedelta(days=1)
    return total


__all__ = [
    "ObjectError",
    "Renderer",
    "check_params",
    "handle_list",
    "handle_read",
    "requested_fields",
    "unknown_edge",
]
