"""Demo stage: the EverReach app's own events (users, ad clicks, purchases, leads).

In production the EverReach app writes these rows; the demo has no app, so it writes a
seeded, realistic set instead: users who land from Meta ads (`ad_click` with `fbclid`,
UTM parameters and the Meta campaign/ad ids of the ads just synced), browse, and some of
whom convert (`purchase` with value and currency, `lead`). They give the attribution and
journey marts something to credit. Re-running replaces the previous demo rows.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from typing import Any

from everreach.warehouse import database
from everreach.warehouse.bulk import copy_rows

DEMO_SOURCE = "everreach_demo"
DEMO_EMAIL_DOMAIN = "demo.everreach.invalid"


def generate(
    conn: Any, *, start: dt.date, end: dt.date, users: int = 300, seed: int = 7
) -> dict[str, int]:
    """Write demo users and app events between `start` and `end`; returns row counts."""
    rng = random.Random(seed)
    ads = conn.execute(
        "select a.ad_id, a.campaign_id, coalesce(c.name, a.campaign_id) "
        "from meta_ad a left join meta_ad_campaign c on c.campaign_id = a.campaign_id "
        "order by a.ad_id"
    ).fetchall()
    if not ads:  # no ads synced: clicks carry UTM parameters only
        ads = [(None, None, "spring_sale"), (None, None, "retargeting")]

    with conn.transaction():
        conn.execute("delete from user_event where source = %s", (DEMO_SOURCE,))
        conn.execute("delete from auth.users where email like %s", (f"%@{DEMO_EMAIL_DOMAIN}",))
        user_rows = []
        for i in range(users):
            uid = uuid.UUID(int=rng.getrandbits(128), version=4)
            phone = f"+1650555{i:04d}"
            user_rows.append((uid, f"user{i:04d}@{DEMO_EMAIL_DOMAIN}", phone))
        with conn.cursor() as cur:
            copy_rows(cur, "auth.users", ["id", "email", "phone"], user_rows)

        span = max(1, (end - start).days) * 86400
        base = dt.datetime.combine(start, dt.time(0), tzinfo=dt.UTC)
        events: list[tuple[Any, ...]] = []
        for uid, _, _ in user_rows:
            at = base + dt.timedelta(seconds=rng.randrange(span))
            for _ in range(rng.choice((1, 1, 2, 3))):
                ad_id, campaign_id, campaign_name = rng.choice(ads)
                props = {
                    "fbclid": "IwAR" + uuid.UUID(int=rng.getrandbits(128)).hex,
                    "utm_source": "facebook",
                    "utm_medium": "paid_social",
                    "utm_campaign": str(campaign_name),
                }
                if ad_id:
                    props.update(meta_campaign_id=campaign_id, meta_ad_id=ad_id)
                events.append((uid, "ad_click", DEMO_SOURCE, json.dumps(props), at))
                at += dt.timedelta(hours=rng.randrange(1, 72))
            roll = rng.random()
            if roll < 0.30:
                value = round(rng.uniform(15, 180), 2)
                events.append(
                    (
                        uid,
                        "purchase",
                        DEMO_SOURCE,
                        json.dumps(
                            {
                                "value": value,
                                "currency": "USD",
                                "order_id": f"ord_{uuid.uuid4().hex[:10]}",
                            }
                        ),
                        at,
                    )
                )
            elif roll < 0.45:
                events.append(
                    (uid, "lead", DEMO_SOURCE, json.dumps({"value": 0, "currency": "USD"}), at)
                )
        events = [e for e in events if e[4].date() <= end]
        with conn.cursor() as cur:
            copy_rows(
                cur, "user_event", ["user_id", "etype", "source", "props", "occurred_at"], events
            )
    purchases = sum(1 for e in events if e[1] == "purchase")
    return {"users": len(user_rows), "events": len(events), "purchases": purchases}


def run_demo(ctx: Any) -> list[str]:
    """Demo stage entry point (see everreach.demo)."""
    with database.connect(ctx.database_url) as conn:
        counts = generate(conn, start=ctx.start_date, end=ctx.end_date)
    return [
        f"{counts['users']} users, {counts['events']} app events "
        f"({counts['purchases']} purchases) written to user_event"
    ]
