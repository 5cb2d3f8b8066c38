"""Generate warehouse data for the dbt benchmark, set-based in Postgres (generate_series).

    python bench/generate_dbt_data.py --database-url postgresql://postgres@127.0.0.1:5432/postgres \
        --database everreach_bench_dbt --events 10000000 --ad-rows 1000000

Creates (or reuses) the database, migrates it, empties the raw tables and fills them with:
users, Meta campaigns and ads, `ad_performance` rows (every day: one account row, one row per
campaign, two ad sets per campaign, N ads per campaign), messaging threads and messages (through
the real triggers, which log them into `user_event`), and `user_event` rows (ad clicks with
Meta ids or UTM parameters, messages in / out, purchases and leads, page views), a few percent
of them written days after they happened, and the Conversions API queue (four in five purchases
and leads delivered to one pixel, with a realistic mix of match keys; `add_capi_deliveries()`,
also run on data generated before it existed). `add_day()` appends the next day the way the
daily syncs would (new events, the ads sync rewriting its 28-day window, the day's deliveries).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg

from everreach.warehouse import database, migrate

START = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Shape:
    """Sizes of the generated data."""

    events: int = 10_000_000
    ad_rows: int = 1_000_000
    users: int = 1_000_000
    campaigns: int = 400
    ads_per_campaign: int = 5
    threads: int = 50_000
    messages: int = 150_000

    @classmethod
    def scaled(cls, events: int, ad_rows: int, users: int) -> Shape:
        """A shape for `events` events: messaging threads and messages scale with them."""
        return cls(
            events=events,
            ad_rows=ad_rows,
            users=users,
            threads=max(10, events // 200),
            messages=max(30, events // 66),
        )

    @property
    def rows_per_day(self) -> int:
        """ad_performance rows per day: account + campaigns + 2 ad sets and N ads per campaign."""
        return 1 + self.campaigns * (3 + self.ads_per_campaign)

    @property
    def days(self) -> int:
        """Days of history, so that ad_performance has about `ad_rows` rows."""
        return max(1, self.ad_rows // self.rows_per_day)


def _truncate(conn: psycopg.Connection) -> None:
    tables = conn.execute(
        "select quote_ident(schemaname) || '.' || quote_ident(tablename) from pg_tables "
        "where schemaname in ('public', 'auth') and tablename <> 'everreach_schema_migrations'"
    ).fetchall()
    conn.execute("truncate " + ", ".join(t[0] for t in tables) + " restart identity cascade")


def _events_sql(first_day: int, n_days: int, count: int, shape: Shape, inserted_now: bool) -> tuple:
    """INSERT … SELECT of `count` random events on days [first_day, first_day + n_days)."""
    inserted = (
        "now()"
        if inserted_now
        else (
            "occurred_at + case when r2 < 0.03 then (1 + r2 * 100) * interval '1 day' "
            "else r2 * interval '2 hours' end"
        )
    )
    sql = f"""
        insert into user_event (user_id, etype, source, props, occurred_at, inserted_at)
        select user_id, etype, source, props, occurred_at, {inserted}
        from (
            select
                case when r1 < 0.05 then null
                     else md5('user' || (1 + floor(random() * %(users)s::int))::bigint)::uuid end as user_id,
                k.etype, k.source, k.props, k.occurred_at, random() as r2
            from (
                select
                    random() as r1,
                    %(start)s::timestamptz + (%(first_day)s::int + random() * %(n_days)s::int) * interval '1 day'
                        as occurred_at,
                    t.etype, t.source, t.props
                from generate_series(1, %(count)s::int) g
                cross join lateral (
                    select random() as r, 1 + floor(random() * %(campaigns)s::int)::int as c,
                           floor(random() * %(ads)s::int)::int as a, g as gg
                ) x
                cross join lateral (
                    select
                        case when x.r < 0.40 then 'ad_click'
                             when x.r < 0.45 then 'ad_click'
                             when x.r < 0.48 then 'messenger_received'
                             when x.r < 0.51 then 'whatsapp_received'
                             when x.r < 0.53 then 'instagram_dm_received'
                             when x.r < 0.57 then 'messenger_sent'
                             when x.r < 0.61 then 'whatsapp_sent'
                             when x.r < 0.63 then 'instagram_dm_sent'
                             when x.r < 0.68 then 'purchase'
                             when x.r < 0.70 then 'lead'
                             else 'page_view' end as etype,
                        case when x.r < 0.45 then 'app'
                             when x.r < 0.63 then 'messaging'
                             else 'app' end as source,
                        case when x.r < 0.40 then jsonb_build_object(
                                 'meta_campaign_id', (120000000000000000 + x.c)::text,
                                 'meta_ad_id', (230000000000000000 + (x.c - 1) * %(ads)s::int + x.a)::text,
                                 'fbclid', md5(x.gg::text))
                             when x.r < 0.45 then jsonb_build_object(
                                 'utm_source', 'facebook', 'utm_medium', 'paid',
                                 'utm_campaign', (120000000000000000 + x.c)::text)
                             when x.r < 0.68 and x.r >= 0.63 then jsonb_build_object(
                                 'value', round((5 + random() * 195)::numeric, 2)::text,
                                 'currency', 'USD', 'order_id', 'o' || x.gg)
                             else '{{}}'::jsonb end as props
                ) t
            ) k
        ) e
    """
    params = {
        "users": shape.users,
        "start": START,
        "first_day": first_day,
        "n_days": n_days,
        "count": count,
        "campaigns": shape.campaigns,
        "ads": shape.ads_per_campaign,
    }
    return sql, params


def _ad_performance_sql(first_day: int, n_days: int, shape: Shape) -> tuple:
    sql = """
        with days as (
            select (%(start)s::date + d) as day from generate_series(%(first_day)s::int, %(last_day)s::int) d
        ),
        campaigns as (
            select c, md5('campaign' || c)::uuid as campaign_id,
                   (120000000000000000 + c)::text as meta_campaign_id
            from generate_series(1, %(campaigns)s::int) c
        ),
        entities as (
            select 'account' as level, '1' as entity_id, null::uuid as campaign_id,
                   null::uuid as parent_campaign_id, null::text as meta_campaign_id,
                   null::text as meta_adset_id, null::text as meta_ad_id, 40.0 as scale
            union all
            select 'campaign', meta_campaign_id, campaign_id, campaign_id, meta_campaign_id, null, null, 1
            from campaigns
            union all
            select 'adset', (340000000000000000 + (c - 1) * 2 + s)::text, null, campaign_id,
                   meta_campaign_id, (340000000000000000 + (c - 1) * 2 + s)::text, null, 0.5
            from campaigns, generate_series(0, 1) s
            union all
            select 'ad', (230000000000000000 + (c - 1) * %(ads)s::int + a)::text, null, campaign_id,
                   meta_campaign_id, (340000000000000000 + (c - 1) * 2 + a %% 2)::text,
                   (230000000000000000 + (c - 1) * %(ads)s::int + a)::text, 1.0 / %(ads)s::int
            from campaigns, generate_series(0, %(ads)s::int - 1) a
        )
        insert into ad_performance (date, ad_account_id, level, entity_id, entity_name, campaign_id,
            parent_campaign_id, meta_campaign_id, meta_adset_id, meta_ad_id, account_currency,
            account_timezone, spend, impressions, reach, clicks, link_clicks, conversions,
            conversion_value, fetched_at)
        select day, '1', level, entity_id, level || ' ' || entity_id, campaign_id, parent_campaign_id,
               meta_campaign_id, meta_adset_id, meta_ad_id, 'USD', 'UTC',
               round((random() * 100 * scale)::numeric, 2), (random() * 10000 * scale)::bigint,
               (random() * 6000 * scale)::bigint, (random() * 200 * scale)::bigint,
               (random() * 150 * scale)::bigint, round((random() * 5 * scale)::numeric, 2),
               round((random() * 300 * scale)::numeric, 2), day + interval '1 day 3 hours'
        from days cross join entities
    """
    return sql, {
        "start": START,
        "first_day": first_day,
        "last_day": first_day + n_days - 1,
        "campaigns": shape.campaigns,
        "ads": shape.ads_per_campaign,
    }


#: The pixel the generated conversions are delivered to.
BENCH_PIXEL = "700000000000001"


def _capi_sql(where: str) -> str:
    """INSERT … SELECT of the Conversions API queue rows of the purchases and leads matching
    `where` (which carries one `%s` parameter): four in five delivered (one in fifty of those
    refused), match keys by id."""
    return f"""
        insert into meta_conversion_event (
            pixel_id, event_name, event_id, event_time, action_source, user_data, value,
            currency, status, source, source_event_ref, created_at, sent_at)
        select
            '{BENCH_PIXEL}',
            case etype when 'purchase' then 'Purchase' else 'Lead' end,
            'ue-' || id,
            occurred_at,
            'system_generated',
            jsonb_strip_nulls(jsonb_build_object(
                'em', case when id %% 10 <> 0 then md5(id::text) || md5(id::text) end,
                'ph', case when id %% 5 < 2 then md5('p' || id) || md5('p' || id) end,
                'external_id', md5('x' || id) || md5('x' || id),
                'fbp', case when id %% 2 = 0 then 'fb.1.' || id || '.1' end,
                'fbc', case when id %% 3 = 0 then 'fb.1.' || id || '.IwAR' end,
                'client_ip_address', case when id %% 4 < 2 then '203.0.113.7' end,
                'client_user_agent', case when id %% 4 < 2 then 'Mozilla/5.0' end)),
            nullif(props ->> 'value', '')::numeric,
            case when props ? 'value' then 'USD' end,
            case when id %% 50 = 0 then 'rejected' else 'sent' end,
            'user_event',
            id::text,
            inserted_at,
            case when id %% 50 <> 0 then inserted_at end
        from user_event
        where etype in ('purchase', 'lead') and id %% 5 <> 0 and ({where})
        on conflict do nothing
    """


def add_capi_deliveries(url: str, shape: Shape) -> int:
    """Fill the Conversions API queue for the generated history when it is empty (data
    generated before the queue was part of it); returns the rows added."""
    end = START + timedelta(days=shape.days)
    with database.connect(url, autocommit=True) as conn:
        if conn.execute("select exists (select 1 from meta_conversion_event)").fetchone()[0]:
            return 0
        added = conn.execute(_capi_sql("occurred_at < %s"), (end,)).rowcount
        conn.execute("analyze meta_conversion_event")
    return added


def generate(url: str, shape: Shape, log=print) -> dict[str, float]:
    """Empty the raw tables of the database at `url` and fill them; returns timings in seconds."""
    timings: dict[str, float] = {}
    with database.connect(url, autocommit=True) as conn:
        _truncate(conn)
        conn.execute("select setseed(0.42)")
        t0 = time.perf_counter()
        conn.execute(
            "insert into auth.users (id, email, phone, created_at) "
            "select md5('user' || g)::uuid, 'user' || g || '@example.com', "
            "case when g %% 10 = 0 then '+1 555 ' || lpad(g::text, 7, '0') end, %s "
            "from generate_series(1, %s::int) g",
            (START - timedelta(days=30), shape.users),
        )
        conn.execute(
            "insert into campaign (campaign_id, name, meta_campaign_id, meta_ad_account_id, source) "
            "select md5('campaign' || c)::uuid, 'Campaign ' || c, (120000000000000000 + c)::text, "
            "'1', 'meta' from generate_series(1, %s::int) c",
            (shape.campaigns,),
        )
        conn.execute(
            "insert into meta_ad (ad_id, ad_account_id, campaign_id, adset_id, name) "
            "select (230000000000000000 + (c - 1) * %(a)s::int + a)::text, '1', "
            "(120000000000000000 + c)::text, (340000000000000000 + (c - 1) * 2 + a %% 2)::text, "
            "'Ad ' || c || '.' || a from generate_series(1, %(c)s::int) c, generate_series(0, %(a)s::int - 1) a",
            {"a": shape.ads_per_campaign, "c": shape.campaigns},
        )
        timings["users_campaigns_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        conn.execute(*_ad_performance_sql(0, shape.days, shape))
        timings["ad_performance_s"] = time.perf_counter() - t0
        log(f"ad_performance: {shape.days} days, {timings['ad_performance_s']:.1f}s")

        # threads: every 10th is a WhatsApp contact whose number is a user's phone (stitchable)
        t0 = time.perf_counter()
        conn.execute(
            "insert into conversation_thread (platform, business_account_id, contact_id, "
            "referral_ad_id, first_message_at) "
            "select case when g %% 3 = 0 then 'whatsapp' when g %% 3 = 1 then 'messenger' "
            "else 'instagram' end, 'biz', "
            "case when g %% 3 = 0 then '1555' || lpad((g * 10)::text, 7, '0') else 'c' || g end, "
            "case when g %% 7 = 0 then (230000000000000000 + g %% %s::int)::text end, null "
            "from generate_series(1, %s::int) g",
            (shape.campaigns * shape.ads_per_campaign, shape.threads),
        )
        conn.execute(
            "insert into conversation_message (thread_id, platform, platform_message_id, direction, "
            "message_type, status, sent_at) "
            "select t.thread_id, t.platform, 'm' || g, case when g %% 2 = 0 then 'inbound' "
            "else 'outbound' end, 'text', case when g %% 2 = 0 then 'received' else 'sent' end, "
            "%s::timestamptz + (random() * %s::int) * interval '1 day' "
            "from generate_series(1, %s::int) g "
            "join (select thread_id, platform, row_number() over (order by thread_id) as n "
            "      from conversation_thread) t on t.n = 1 + g %% %s::int",
            (START, shape.days, shape.messages, shape.threads),
        )
        # a thread's row was last touched by its last message, not by the generator run
        conn.execute(
            "update conversation_thread set updated_at = coalesce(last_message_at, %s), "
            "created_at = coalesce(first_message_at, %s)",
            (START, START),
        )
        timings["messaging_s"] = time.perf_counter() - t0
        log(f"threads and messages (triggers): {timings['messaging_s']:.1f}s")

        remaining = shape.events - shape.messages
        chunk = 1_000_000
        t0 = time.perf_counter()
        done = 0
        while done < remaining:
            n = min(chunk, remaining - done)
            conn.execute(*_events_sql(0, shape.days, n, shape, inserted_now=False))
            done += n
            log(f"user_event: {done + shape.messages:,} rows, {time.perf_counter() - t0:.0f}s")
        timings["user_event_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        settle_history(conn, shape)
        timings["settle_s"] = time.perf_counter() - t0
        log(f"history settled (write times, insertion order): {timings['settle_s']:.0f}s")
    t0 = time.perf_counter()
    added = add_capi_deliveries(url, shape)
    timings["capi_s"] = time.perf_counter() - t0
    log(f"Conversions API queue: {added:,} rows, {timings['capi_s']:.0f}s")
    return timings


def settle_history(conn: psycopg.Connection, shape: Shape) -> None:
    """Make the generated history look written as it happened, with the benchmark's "now" at
    its end: no `user_event` row written after that (the messaging triggers stamp the
    generator's wall clock, and a late event's delay can run past the end: those are written
    at the end instead), and the table in insertion order, as an append-only event table is.
    Without this, every daily run's late-arrival lookback re-read ~190k rows "written in the
    future", and a day's rows were spread over every page of the table. Idempotent."""
    end = START + timedelta(days=shape.days)
    conn.execute(
        "update user_event set inserted_at = case "
        "when source in ('messenger', 'instagram', 'whatsapp') "
        "then least(occurred_at + random() * interval '10 seconds', %(end)s) else %(end)s end "
        "where inserted_at > %(end)s and occurred_at < %(end)s",
        {"end": end},
    )
    conn.execute("cluster user_event using user_event_inserted_at_idx")
    conn.execute("analyze")


def add_day(url: str, shape: Shape) -> tuple[date, int]:
    """Append the next day like the daily syncs: a day of new events (written now) and the ads
    sync rewriting its 28-day window plus the new day. Returns (the new day, events added)."""
    with database.connect(url, autocommit=True) as conn:
        last = conn.execute("select max(date) from ad_performance").fetchone()[0]
        new_day = last + timedelta(days=1)
        day_index = (new_day - START.date()).days
        per_day = max(1, (shape.events - shape.messages) // shape.days)
        conn.execute(*_events_sql(day_index, 1, per_day, shape, inserted_now=True))
        conn.execute(
            "update ad_performance set spend = spend * 1.01, fetched_at = now() "
            "where date > %s - 28",
            (last,),
        )
        conn.execute(*_ad_performance_sql(day_index, 1, shape))
        conn.execute("update ad_performance set fetched_at = now() where date = %s", (new_day,))
        # the day's conversions, delivered by the CAPI asset the same day
        conn.execute(
            _capi_sql("occurred_at >= %s"), (datetime.combine(new_day, datetime.min.time(), UTC),)
        )
        conn.execute("analyze user_event; analyze ad_performance; analyze meta_conversion_event")
    return new_day, per_day


def remove_added_days(url: str, shape: Shape) -> int:
    """Delete what earlier `add_day()` calls appended (events and ads rows after the generated
    history), so a benchmark re-run on reused data measures the same day again. Returns the
    number of rows removed."""
    end = START + timedelta(days=shape.days)
    with database.connect(url, autocommit=True) as conn:
        conn.execute("delete from meta_conversion_event where event_time >= %s", (end,))
        events = conn.execute("delete from user_event where occurred_at >= %s", (end,)).rowcount
        ads = conn.execute("delete from ad_performance where date >= %s", (end.date(),)).rowcount
        if events or ads:
            conn.execute("vacuum analyze user_event")
            conn.execute("vacuum analyze ad_performance")
    return events + ads


def main() -> None:
    """Command line: create/migrate the database and generate the data."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="server URL (any database)")
    parser.add_argument("--database", default="everreach_bench_dbt", help="database to (re)fill")
    parser.add_argument("--events", type=int, default=Shape.events)
    parser.add_argument("--ad-rows", type=int, default=Shape.ad_rows)
    parser.add_argument("--users", type=int, default=Shape.users)
    args = parser.parse_args()
    shape = Shape.scaled(args.events, args.ad_rows, args.users)
    url = database.ensure_database(args.database_url, args.database)
    migrate.upgrade(url)
    t0 = time.perf_counter()
    timings = generate(url, shape)
    total = time.perf_counter() - t0
    print(
        f"generated {shape.events:,} user_event rows and ~{shape.days * shape.rows_per_day:,} "
        f"ad_performance rows in {total:.1f}s ({shape.events / total:,.0f} events/s) {timings}"
    )


if __name__ == "__main__":
    main()
