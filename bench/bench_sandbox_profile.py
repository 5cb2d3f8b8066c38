"""Benchmark: how faithfully the sandbox's realistic profile keeps Meta's timing, per time scale.

The realistic profile promises Meta-like latency (150 ms floor, median ≈ 330 ms, a tail),
async report runs of 10–120 s, and one ``time_scale`` factor that shrinks all of it alike
(``everreach/sandbox/README.md``). A benchmark that runs at ``--time-scale 0.01`` relies on
the scaled timing still being the profile's, not the sandbox's own CPU time. For each time
scale this measures, against the figure the profile promises at that scale:

* latency: p50 / p90 / p99 of sequential small reads, beside the model's own quantiles
  (200,000 draws) times the scale;
* async runs: the real time from the POST to "Job Completed" (polled finely), beside the
  run's own duration (``time_completed - time_ref``, plus the 2 s "finishing" tail) times
  the scale;
* headroom: calls per second from 16 concurrent clients, beside 16 / (mean latency × scale)
  — what the sandbox would serve if its own CPU cost nothing. A ratio well below 1 means
  the scale is too small for this machine: the sandbox, not the profile, sets the pace.

The sandbox runs in its own process (the CLI), so the clients do not share its interpreter.

Usage: ``python bench/bench_sandbox_profile.py [--scales 1,0.1,0.01] [--calls 300]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time

import requests

from everreach.sandbox.profile import AsyncJobModel, LatencyModel

TOKEN = {"access_token": "bench-token"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_sandbox(scale: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "everreach.sandbox.cli",
        "--port",
        str(port),
        "--profile",
        "realistic",
        "--time-scale",
        repr(scale),
        "--accounts",
        "4",
        "--days",
        "120",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/_sandbox/health", timeout=1).ok:
                return proc, base
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the sandbox did not start")


def quantiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=100)
    return q[49], q[89], q[98]


def model_quantiles() -> tuple[tuple[float, float, float], float]:
    model, rng = LatencyModel(), random.Random(1)
    draws = [model.draw(rng) for _ in range(200_000)]
    return quantiles(draws), statistics.fmean(draws)


def measure_latency(base: str, acct: str, calls: int) -> list[float]:
    out = []
    with requests.Session() as http:
        http.get(f"{base}/v25.0/{acct}", params=TOKEN)
        for _ in range(calls):
            start = time.perf_counter()
            http.get(f"{base}/v25.0/{acct}", params={**TOKEN, "fields": "name"}).raise_for_status()
            out.append((time.perf_counter() - start) * 1000)
    return out


def measure_runs(base: str, acct: str, scale: float) -> list[tuple[float, float]]:
    """(observed real seconds, promised real seconds) of runs of growing size."""
    finishing = AsyncJobModel().finishing_seconds
    out = []
    with requests.Session() as http:
        for days in (1, 30, 120):
            params = {
                "level": "ad",
                "time_increment": "1",
                "time_range": json.dumps({"since": "2026-01-01", "until": "2026-12-31"})
                if days > 100
                else json.dumps({"since": "2026-01-01", "until": f"2026-01-{days:02d}"}),
            }
            start = time.perf_counter()
            run_id = http.post(f"{base}/v25.0/{acct}/insights", data={**TOKEN, **params}).json()[
                "report_run_id"
            ]
            poll = max(0.002, 10 * scale / 200)
            while True:
                status = http.get(f"{base}/v25.0/{run_id}", params=TOKEN).json()
                if status["async_status"] == "Job Completed":
                    break
                time.sleep(poll)
            observed = time.perf_counter() - start
            ran = status["time_completed"] - status["time_ref"]
            out.append((observed, (ran + finishing) * scale))
    return out


def measure_headroom(base: str, acct: str, seconds: float, clients: int = 16) -> float:
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def work(i: int) -> None:
        with requests.Session() as http:
            while time.monotonic() < stop:
                http.get(f"{base}/v25.0/{acct}", params={**TOKEN, "fields": "name"})
                counts[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="1,0.1,0.01")
    parser.add_argument("--calls", type=int, default=300, help="sequential calls per scale")
    args = parser.parse_args()
    (p50, p90, p99), mean = model_quantiles()
    print(f"load average at start: {os.getloadavg()}")
    print(f"model (unscaled ms): p50 {p50:.0f}, p90 {p90:.0f}, p99 {p99:.0f}, mean {mean:.0f}")
    for scale in (float(s) for s in args.scales.split(",")):
        proc, base = start_sandbox(scale)
        try:
            acct = requests.get(f"{base}/v25.0/me/adaccounts", params=TOKEN).json()["data"][0]["id"]
            calls = args.calls if scale < 0.5 else max(30, args.calls // 10)
            lat = measure_latency(base, acct, calls)
            o50, o90, o99 = quantiles(lat)
            print(f"\ntime scale {scale:g}  ({calls} sequential reads)")
            for name, observed, promised in (
                ("p50", o50, p50 * scale),
                ("p90", o90, p90 * scale),
                ("p99", o99, p99 * scale),
            ):
                print(
                    f"  latency {name}: {observed:8.2f} ms observed, {promised:8.2f} ms promised, "
                    f"ratio {observed / promised:.2f}"
                )
            if scale <= 0.1:
                for observed, promised in measure_runs(base, acct, scale):
                    print(
                        f"  async run: {observed:7.3f} s to 'Job Completed', {promised:7.3f} s "
                        f"promised, ratio {observed / promised:.2f}"
                    )
                rate = measure_headroom(base, acct, seconds=max(3.0, 300 * scale))
                ideal = 16 / (mean * scale / 1000)
                print(
                    f"  headroom: {rate:8.0f} calls/s from 16 clients, {ideal:8.0f} calls/s if "
                    f"the sandbox cost nothing, ratio {rate / ideal:.2f}"
                )
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"\nload average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
