"""Demo stage: the EverReach app's own events, from the people behind Meta's numbers.

In production the EverReach app writes these rows; the demo has no app, so it simulates the
population Meta's reported figures describe and writes what the app would have seen of it.
For every ad and day the ads stage loaded (`ad_performance`, ad level), Meta reported link
clicks and conversions with their value (7-day click and 1-day view windows). The people behind
them:

- **click-through buyers**: clicked the ad that day (`ad_click` with `fbclid`, UTM parameters and
  the Meta ids) and bought within a day or within a week (`purchase` with value and currency);
  some had clicked another ad a few days before;
- **view-through buyers**: saw the ad without clicking and bought within a day: Meta counts
  them, the app has no touch to credit;
- **late buyers**: clicked and bought 8 to 28 days later: Meta's 7-day click window misses them,
  first-party attribution (28 days) credits them;
- **organic buyers**: bought with no ad in sight (unattributed everywhere);
- **browsers**: clicked and did not buy.

So Meta-reported and attributed figures come out of the same people and differ for the reasons
real ones do. Users are written to `auth.users` (emails and phones the Conversions API stage
hashes), events to `user_event` (source `everreach_demo`). Re-running replaces the previous demo
rows: users, events, and the Conversions API queue rows and logged copies that came from them.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from everreach.warehouse import database
from everreach.warehouse.bulk import copy_rows
from everreach_pipelines.defs.app import auth_users, user_event
from everreach_pipelines.demo.instance import record_tables

DEMO_SOURCE = "everreach_demo"
DEMO_EMAIL_DOMAIN = "demo.everreach.invalid"

#: How Meta's reported conversions split by attribution window (1-day click, 2 to 7 days after
#: a click, 1-day view), as the sandbox and typical accounts report them.
WINDOW_SHARES = {"click_1d": 0.55, "click_7d": 0.25, "view_1d": 0.15}
#: Conversions 8 to 28 days after a click (beyond Meta's 7-day window), per reported conversion.
LATE_SHARE = 0.10
#: Conversions with no ad touch at all, per reported conversion.
ORGANIC_SHARE = 0.12
#: Click-through buyers who had clicked another ad 1 to 5 days before.
SECOND_TOUCH_SHARE = 0.25
#: Clickers who do not buy, per ad and day (at most the link clicks Meta reported).
BROWSERS_PER_AD_DAY = 2
#: Shares of purchases whose app session recorded a browser id (fbp), and client IP + agent.
FBP_SHARE = 0.7
CLIENT_SHARE = 0.6
USER_AGENT = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"


@dataclass(frozen=True)
class AdDay:
    """What Meta reported for one ad on one day."""

    day: dt.date
    ad_id: str | None
    campaign_id: str | None
    campaign_name: str
    currency: str
    link_clicks: int
    conversions: int
    conversion_value: float


@dataclass
class Person:
    """One simulated person and the app events they caused."""

    kind: str
    events: list[tuple[str, dict[str, Any], dt.datetime]] = field(default_factory=list)


def _ad_days(conn: Any, end: dt.date) -> list[AdDay]:
    """Every ad-day Meta reported up to `end`: the ads stage also loads the 28 days before the
    demo's range (Meta revises them), and the marts compare all of it."""
    rows = conn.execute(
        """
        select p.date, p.meta_ad_id, p.meta_campaign_id,
               coalesce(c.name, p.meta_campaign_id, 'campaign'), coalesce(p.account_currency, 'USD'),
               coalesce(p.link_clicks, p.clicks, 0), round(coalesce(p.conversions, 0))::int,
               coalesce(p.conversion_value, 0)
        from ad_performance p
        left join meta_ad_campaign c on c.campaign_id = p.meta_campaign_id
        where p.level = 'ad' and p.date <= %s
        order by p.date, p.meta_ad_id
        """,
        (end,),
    ).fetchall()
    return [AdDay(d, a, c, n, cur, int(lc), int(k), float(v)) for d, a, c, n, cur, lc, k, v in rows]


def _count(rng: random.Random, expected: float) -> int:
    """An integer whose mean is `expected` (stochastic rounding)."""
    whole = int(expected)
    return whole + (rng.random() < expected - whole)


def simulate(ad_days: list[AdDay], rng: random.Random, now: dt.datetime) -> list[Person]:
    """The population behind `ad_days`, each person with their events (never after `now`)."""
    people: list[Person] = []

    def at(day: dt.date, rng: random.Random) -> dt.datetime:
        moment = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        return moment + dt.timedelta(seconds=rng.randrange(86400))

    def click(ad: AdDay, when: dt.datetime) -> tuple[str, dict[str, Any], dt.datetime]:
        props: dict[str, Any] = {
            "fbclid": "IwAR" + uuid.UUID(int=rng.getrandbits(128)).hex,
            "utm_source": "facebook",
            "utm_medium": "paid_social",
            "utm_campaign": ad.campaign_name,
        }
        if ad.ad_id:
            props.update(meta_campaign_id=ad.campaign_id, meta_ad_id=ad.ad_id)
        return ("ad_click", props, when)

    def purchase(
        ad: AdDay, value: float, when: dt.datetime, fbclid: str | None
    ) -> tuple[str, dict[str, Any], dt.datetime]:
        props: dict[str, Any] = {
            "value": round(value, 2),
            "currency": ad.currency,
            "order_id": f"ord_{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}",
        }
        if fbclid:  # the app kept the landing's click id in the session
            props["fbclid"] = fbclid
        if rng.random() < FBP_SHARE:
            props["fbp"] = f"fb.1.{int(when.timestamp() * 1000)}.{rng.getrandbits(31)}"
        if rng.random() < CLIENT_SHARE:
            props["client_ip_address"] = f"203.0.113.{rng.randrange(1, 255)}"
            props["client_user_agent"] = USER_AGENT
        return ("purchase", props, when)

    kinds = list(WINDOW_SHARES)
    weights = list(WINDOW_SHARES.values())
    # an earlier click on another ad of the same account (a person shops in one currency)
    by_currency: dict[str, list[AdDay]] = {}
    for ad in ad_days:
        by_currency.setdefault(ad.currency, []).append(ad)
    for ad in ad_days:
        average = ad.conversion_value / ad.conversions if ad.conversions else 0.0
        for _ in range(ad.conversions):
            kind = rng.choices(kinds, weights)[0]
            value = average * rng.uniform(0.6, 1.4)
            clicked = at(ad.day, rng)
            if clicked > now:
                clicked = now - dt.timedelta(seconds=rng.randrange(60, 3600))
            if kind == "view_1d":
                seen = clicked  # an impression, which the app never sees
                bought = min(now, seen + dt.timedelta(seconds=rng.randrange(600, 86400)))
                people.append(Person(kind, [purchase(ad, value, bought, None)]))
                continue
            lag = (
                dt.timedelta(seconds=rng.randrange(300, 86400))
                if kind == "click_1d"
                else dt.timedelta(seconds=rng.randrange(86400, 7 * 86400))
            )
            events = [click(ad, clicked)]
            same_account = by_currency[ad.currency]
            if rng.random() < SECOND_TOUCH_SHARE and len(same_account) > 1:
                other = rng.choice(same_account)
                earlier = clicked - dt.timedelta(seconds=rng.randrange(86400, 5 * 86400))
                events.insert(0, click(other, earlier))
            events.append(purchase(ad, value, min(now, clicked + lag), events[-1][1]["fbclid"]))
            people.append(Person(kind, events))
        for _ in range(_count(rng, ad.conversions * LATE_SHARE)):
            clicked = at(ad.day, rng)
            bought = clicked + dt.timedelta(seconds=rng.randrange(8 * 86400, 28 * 86400))
            if bought > now:
                continue  # has not happened yet
            value = (average or 50.0) * rng.uniform(0.6, 1.4)
            first = click(ad, clicked)
            people.append(Person("late", [first, purchase(ad, value, bought, None)]))
        for _ in range(_count(rng, ad.conversions * ORGANIC_SHARE)):
            bought = min(now, at(ad.day, rng))
            value = (average or 50.0) * rng.uniform(0.6, 1.4)
            people.append(Person("organic", [purchase(ad, value, bought, None)]))
        for _ in range(min(ad.link_clicks, BROWSERS_PER_AD_DAY)):
            clicked = min(now, at(ad.day, rng))
            people.append(Person("browser", [click(ad, clicked)]))
    return people


def remove_previous_run(conn: Any) -> None:
    """Delete what an earlier demo run wrote from its population: the Conversions API queue
    rows picked up from its events and the copies their delivery logged, its events, its
    users."""
    conn.execute(
        """
        delete from user_event as copy
        using meta_conversion_event as queued
        where copy.etype like 'meta\\_conversion\\_%%'
          and copy.props ->> 'event_id' = queued.event_id
          and copy.props ->> 'pixel_id' = queued.pixel_id
          and queued.source = 'user_event'
          and queued.source_event_ref in (
              select id::text from user_event where source = %s
          )
        """,
        (DEMO_SOURCE,),
    )
    conn.execute(
        "delete from meta_conversion_event where source = 'user_event' and source_event_ref in "
        "(select id::text from user_event where source = %s)",
        (DEMO_SOURCE,),
    )
    conn.execute("delete from user_event where source = %s", (DEMO_SOURCE,))
    conn.execute("delete from auth.users where email like %s", (f"%@{DEMO_EMAIL_DOMAIN}",))


def generate(
    conn: Any, *, start: dt.date, end: dt.date, seed: int = 7, now: dt.datetime | None = None
) -> dict[str, int]:
    """Write the demo population's users and app events (replacing an earlier run's): the
    people behind every ad-day loaded up to `end` (`start`..`end` for a made-up account when
    no ads were synced); returns counts (users, events, purchases, Meta-reported conversions
    and the people by kind)."""
    rng = random.Random(seed)
    now = now or dt.datetime.now(dt.UTC)
    ad_days = _ad_days(conn, end)
    if not ad_days:  # no ads synced: a small made-up account so the marts have something
        ad_days = [
            AdDay(start + dt.timedelta(days=d), None, None, name, "USD", 40, 3, 240.0)
            for d in range((end - start).days + 1)
            for name in ("spring_sale", "retargeting")
        ]
    people = simulate(ad_days, rng, now)
    with conn.transaction():
        remove_previous_run(conn)
        user_rows = []
        event_rows = []
        for i, person in enumerate(people):
            uid = uuid.UUID(int=rng.getrandbits(128), version=4)
            phone = f"+1{650 + i // 10000}555{i % 10000:04d}"
            user_rows.append((uid, f"user{i:05d}@{DEMO_EMAIL_DOMAIN}", phone))
            for etype, props, when in person.events:
                event_rows.append((uid, etype, DEMO_SOURCE, json.dumps(props), when))
        with conn.cursor() as cur:
            copy_rows(cur, "auth.users", ["id", "email", "phone"], user_rows)
            copy_rows(
                cur,
                "user_event",
                ["user_id", "etype", "source", "props", "occurred_at"],
                event_rows,
            )
    kinds: dict[str, int] = {}
    for person in people:
        kinds[person.kind] = kinds.get(person.kind, 0) + 1
    return {
        "users": len(user_rows),
        "events": len(event_rows),
        "purchases": sum(1 for e in event_rows if e[1] == "purchase"),
        "meta_conversions": sum(ad.conversions for ad in ad_days),
        **kinds,
    }


def run_demo(ctx: Any) -> list[str]:
    """Demo stage entry point (see everreach_pipelines.demo.cli): write the population, and
    record `user_event` and `auth.users` as materialized by the demo."""
    with database.connect(ctx.database_url) as conn:
        counts = generate(conn, start=ctx.start_date, end=ctx.end_date)
    record_tables(
        ctx, {user_event.key: counts["events"], auth_users.key: counts["users"]}, stage="app events"
    )
    through_clicks = counts.get("click_1d", 0) + counts.get("click_7d", 0)
    return [
        f"{counts['users']} people behind Meta's {counts['meta_conversions']} reported "
        f"conversions: {counts['events']} app events ({counts['purchases']} purchases) "
        "written to user_event",
        f"of the buyers Meta counts, {through_clicks} clicked (1-day / 7-day window), "
        f"{counts.get('view_1d', 0)} only saw the ad; beyond Meta's windows "
        f"{counts.get('late', 0)} bought 8-28 days after a click, {counts.get('organic', 0)} "
        f"without an ad; {counts.get('browser', 0)} clicked without buying",
    ]
