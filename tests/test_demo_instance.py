"""What demo stages share: the partition range they materialize and their quiet output."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path

import pytest
from dagster import DailyPartitionsDefinition

from everreach_pipelines.demo.instance import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    partition_range,
    range_tags,
    run_output_to,
)

DAILY = DailyPartitionsDefinition(start_date="2024-01-01", timezone="UTC")


def test_partition_range_is_cut_to_existing_partitions() -> None:
    last = date.fromisoformat(DAILY.get_last_partition_key())
    assert partition_range(DAILY, date(2023, 12, 1), date(2024, 1, 5)) == (
        "2024-01-01",
        "2024-01-05",
    )
    assert partition_range(DAILY, last - timedelta(days=2), last + timedelta(days=9)) == (
        (last - timedelta(days=2)).isoformat(),
        last.isoformat(),
    )
    # a start after the end collapses to the end
    assert partition_range(DAILY, date(2024, 3, 9), date(2024, 3, 2)) == (
        "2024-03-02",
        "2024-03-02",
    )
    assert range_tags(DAILY, date(2024, 3, 1), date(2024, 3, 2)) == {
        RANGE_START_TAG: "2024-03-01",
        RANGE_END_TAG: "2024-03-02",
    }


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(f"{record.name}:{record.levelname}")


@pytest.fixture
def root_handler():
    handler = _Collect()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_run_output_goes_to_the_file_and_dagster_info_stays_off_the_terminal(
    tmp_path: Path, root_handler: _Collect, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run.log"
    with run_output_to(out):
        print("12 of 73 OK created sql view model")
        logging.getLogger("dagster.builtin").info("Running dbt command")
        logging.getLogger("dagster.builtin").warning("a check failed")
        logging.getLogger("everreach.demo").info("ours")
    assert "12 of 73 OK created" in out.read_text()
    assert "12 of 73" not in capsys.readouterr().out
    assert root_handler.seen == ["dagster.builtin:WARNING", "everreach.demo:INFO"]
    # afterwards everything reaches the terminal again
    print("after")
    logging.getLogger("dagster.builtin").info("later")
    assert "after" in capsys.readouterr().out
    assert root_handler.seen[-1] == "dagster.builtin:INFO"
