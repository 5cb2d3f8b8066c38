"""`everreach.parallel`: several accounts' work at once, each account in one thread."""

from __future__ import annotations

import threading
import time

import pytest

from everreach.meta.settings import FanOutSettings
from everreach.parallel import map_each
from everreach.settings import SettingError


def test_map_each_keeps_order_and_runs_in_parallel():
    active = 0
    peak = 0
    lock = threading.Lock()

    def work(n: int) -> int:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.02)
        with lock:
            active -= 1
        return n * n

    assert map_each(work, list(range(8)), workers=4) == [n * n for n in range(8)]
    assert peak == 4


def test_map_each_raises_the_first_error_and_skips_work_not_started():
    started = []

    def work(n: int) -> int:
        started.append(n)
        if n == 1:
            raise ValueError("bad token for account 1")
        time.sleep(0.05)
        return n

    with pytest.raises(ValueError, match="account 1"):
        map_each(work, list(range(20)), workers=2)
    assert len(started) < 20


def test_parallel_accounts_setting_names_the_variable():
    assert FanOutSettings.from_env({}).parallel_accounts == 8
    assert (
        FanOutSettings.from_env({"EVERREACH_META_PARALLEL_ACCOUNTS": " 3 "}).parallel_accounts == 3
    )
    for bad in ("0", "65", "many"):
        with pytest.raises(SettingError, match="EVERREACH_META_PARALLEL_ACCOUNTS"):
            FanOutSettings.from_env({"EVERREACH_META_PARALLEL_ACCOUNTS": bad})


def test_execution_settings_name_the_variable_and_hide_the_broker_password():
    from everreach.warehouse.settings import ExecutionSettings

    assert ExecutionSettings.from_env({}).executor == "multiprocess"
    with pytest.raises(SettingError, match="EVERREACH_DAGSTER_EXECUTOR"):
        ExecutionSettings.from_env({"EVERREACH_DAGSTER_EXECUTOR": "k8s"})
    with pytest.raises(SettingError, match="EVERREACH_CELERY_QUEUE"):
        ExecutionSettings.from_env({"EVERREACH_CELERY_QUEUE": "two words"})
    url = "amqp://everreach:hunter2@broker:5672//"
    settings = ExecutionSettings.from_env({"EVERREACH_CELERY_BROKER_URL": url})
    assert settings.broker == url and "hunter2" not in repr(settings)
