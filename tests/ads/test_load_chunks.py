"""`replace_ad_performance` in several stage chunks inside one transaction (real Postgres)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import psycopg
import pytest
from ads_helpers import snapshot

from everreach.ads.load import AccountWindow, replace_ad_performance
from everreach.ads.transform import AccountContext, ConversionRule, copy_line, to_record

ACCOUNT = "9001"
SINCE, UNTIL = date(2026, 3, 1), date(2026, 3, 4)
CTX = AccountContext(ACCOUNT, "EUR", "Europe/Berlin")
RULE = ConversionRule.of(["omni_purchase"], ["7d_click"])


def _records(spend: str) -> list[list]:
    """`_rows` as `to_record` records (the loader formats them itself)."""
    return [line.rstrip("\n").split("\t") for line in _rows(spend)]


def _rows(spend: str) -> list[str]:
    """Account, campaign and ad rows for two campaigns over four days; campaign `c2` is
    not in the listing (created on Meta after it), and only appears after the first rows."""
    out = []
    day = SINCE
    while day <= UNTIL:
        common = {"date_start": day.isoformat(), "date_stop": day.isoformat(), "spend": spend}
        out.append(("account", {**common, "account_name": "Acme"}))
        for campaign in ("c1", "c2"):
            out.append(("campaign", {**common, "campaign_id": campaign, "campaign_name": campaign}))
            out.append(
                (
                    "ad",
                    {**common, "campaign_id": campaign, "adset_id": "s", "ad_id": campaign + "a"},
                )
            )
        day += timedelta(days=1)
    out.sort(key=lambda item: item[1]["campaign_id"] == "c2" if "campaign_id" in item[1] else 0)
    return [copy_line(to_record(row, level, CTX, RULE, SINCE, UNTIL)) for level, row in out]


def _load(db: psycopg.Connection, lines: Iterator[str] | list[str], chunk_rows: int):
    stats = replace_ad_performance(
        db,
        [AccountWindow(ACCOUNT, SINCE, UNTIL)],
        lines,
        {},
        campaigns=[("c1", ACCOUNT, "c1")],
        text=True,
        chunk_rows=chunk_rows,
    )
    db.commit()
    return stats


def test_chunked_load_equals_one_chunk_and_creates_late_campaigns(db: psycopg.Connection) -> None:
    whole = _load(db, _rows("1.00"), chunk_rows=10_000)
    assert whole.chunks == 1 and whole.rows == 20
    one_chunk = snapshot(db)
    chunked = _load(db, _rows("1.00"), chunk_rows=3)
    assert chunked.chunks == 7 and chunked.rows == 20 and chunked.deleted == 20
    assert snapshot(db) == one_chunk
    assert chunked.rows_by_level == {"account": 4, "campaign": 8, "ad": 8}
    assert chunked.spend_by_currency == {"EUR": 4}
    late = db.execute("select name, source from campaign where meta_campaign_id = 'c2'").fetchone()
    assert late == ("c2", "meta")
    # Every row's campaign uuid resolves, the late campaign's included.
    assert (
        db.execute(
            "select count(*) from ad_performance where level <> 'account' "
            "and parent_campaign_id is null"
        ).fetchone()[0]
        == 0
    )


def test_failure_after_inserted_chunks_rolls_everything_back(db: psycopg.Connection) -> None:
    _load(db, _rows("1.00"), chunk_rows=100)
    # A smaller table than the load would write: any leftover of the failed load would show.
    db.execute("delete from ad_performance where level = 'ad'")
    db.execute("delete from ad_performance where meta_campaign_id = 'c2'")
    db.execute("delete from campaign where meta_campaign_id = 'c2'")
    db.commit()
    before = snapshot(db)
    campaigns_before = db.execute("select count(*) from campaign").fetchone()[0]

    def failing() -> Iterator[str]:
        for n, line in enumerate(_rows("2.00")):
            if n == 17:  # after five chunks of 3 were inserted, c2's rows among them
                raise RuntimeError("the API went away")
            yield line

    with pytest.raises(RuntimeError, match="went away"):
        _load(db, failing(), chunk_rows=3)
    db.rollback()
    assert snapshot(db) == before
    assert db.execute("select count(*) from campaign").fetchone()[0] == campaigns_before


def test_records_load_like_copy_lines(db: psycopg.Connection) -> None:
    _load(db, _rows("1.00"), chunk_rows=4)
    as_lines = snapshot(db)
    stats = replace_ad_performance(
        db,
        [AccountWindow(ACCOUNT, SINCE, UNTIL)],
        [[None if v == "\\N" else v for v in rec] for rec in _records("1.00")],
        {},
        campaigns=[("c1", ACCOUNT, "c1")],
        chunk_rows=4,
    )
    db.commit()
    assert stats.rows == 20 and snapshot(db) == as_lines


def test_chunk_rows_must_be_positive(db: psycopg.Connection) -> None:
    with pytest.raises(ValueError, match="chunk_rows"):
        _load(db, [], chunk_rows=0)
