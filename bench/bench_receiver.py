"""Benchmark: the webhook receiver with durable storage + apply vs. the same server without DB.

Run by hand (not in tests)::

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/bench_receiver.py --duration 10 --connections 32 --workers 1

What it does:

1. creates a private database ``everreach_bench_<pid>`` on the server of ``DATABASE_URL``
   (else the embedded Postgres), migrates it, and drops it at the end;
2. builds realistic signed webhooks with the sandbox's emitter (every family, Meta's
   escaping) and writes them for ``wrk``;
3. serves the receiver (uvicorn, ``--workers``) and measures with ``wrk`` (Lua script
   cycling through the bodies): requests/s, p50, p99;
4. serves the *baseline* — the same uvicorn/Starlette stack, same body read, signature
   check and JSON parse, but answering 200 without touching the database — and measures it
   the same way, alternating with the receiver for ``--rounds`` rounds (the shared
   machine's load drifts); prints each round's ratio and the median (the figure);
5. count check: a count-bounded asyncio client sends exactly ``--count`` webhooks and the
   script compares rows in ``meta_webhook_event`` with the 200 answers it got.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from everreach.sandbox.core import Sandbox, SandboxConfig  # noqa: E402
from everreach.sandbox.messaging import build_burst, sign  # noqa: E402
from everreach.warehouse import database, migrate  # noqa: E402

SECRET = "bench-app-secret"
WEBHOOK = "/api/webhooks/meta"

_LUA = r"""
local bodies, sigs, n = {}, {}, 0
local i = 0
function init(args)
  for line in io.lines(args[1]) do
    local tab = line:find("\t")
    n = n + 1
    sigs[n] = line:sub(1, tab - 1)
    bodies[n] = line:sub(tab + 1)
  end
  i = math.random(n)
end
function request()
  i = (i % n) + 1
  return wrk.format("POST", "/api/webhooks/meta",
    {["Content-Type"] = "application/json", ["X-Hub-Signature-256"] = sigs[i]}, bodies[i])
end
"""


def create_baseline_app():  # noqa: ANN201 - uvicorn factory
    """The receiver's request path without the database: read, verify, parse, 200."""
    import orjson
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    from webhook_receiver.app import BodyTooLarge, read_body
    from webhook_receiver.rawlog import kept_headers
    from webhook_receiver.signature import signature_matches

    async def receive(request: Request) -> Response:
        try:
            body = await read_body(request, 4 * 1024 * 1024)
        except BodyTooLarge:
            return PlainTextResponse("payload too large", status_code=413)
        header = request.headers.get("x-hub-signature-256")
        if not header:
            return PlainTextResponse("missing", status_code=401)
        if not signature_matches(SECRET, body, header):
            return PlainTextResponse("invalid signature", status_code=403)
        # What any receiver does before storing: keep the relevant headers, parse the JSON.
        kept_headers(request.scope["headers"])
        orjson.loads(body)
        return PlainTextResponse("EVENT_RECEIVED")

    return Starlette(routes=[Route(WEBHOOK, receive, methods=["POST"])])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(target: str, port: int, workers: int, env: dict[str, str]) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
        "--app-dir",
        str(ROOT / "bench"),
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                time.sleep(0.5)  # let every worker finish its lifespan
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{target} did not start")


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def _wrk(port: int, script: Path, data: Path, duration: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}{WEBHOOK}",
            "--",
            str(data),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        value, unit = float(m[1]), m[2]
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "non_2xx": int(non2xx[1]) if non2xx else 0,
    }


async def _bounded(port: int, bodies: list[bytes], count: int, concurrency: int) -> dict[int, int]:
    statuses: dict[int, int] = {}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(bodies[n % len(bodies)])
    url = f"http://127.0.0.1:{port}{WEBHOOK}"

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            raw = queue.get_nowait()
            r = await client.post(
                url,
                content=raw,
                headers={
                    "x-hub-signature-256": sign(SECRET, raw),
                    "content-type": "application/json",
                },
            )
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return statuses


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--bodies", type=int, default=2000, help="distinct webhooks")
    parser.add_argument("--count", type=int, default=3000, help="bounded-run requests")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="baseline/inline measurements, alternated (the machine's load drifts)",
    )
    parser.add_argument(
        "--writers",
        type=int,
        default=None,
        help="EVERREACH_RECEIVER_WRITERS (default: the receiver's default)",
    )
    parser.add_argument(
        "--skip-deferred",
        action="store_true",
        help="measure only the baseline and the default (inline) mode",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is required (Debian: apt-get install wrk)")

    server = os.environ.get("DATABASE_URL") or database.start_embedded()
    name = f"everreach_bench_{os.getpid()}"
    url = database.ensure_database(database.with_database(server, "postgres"), name)
    migrate.upgrade(url)
    tmp = Path(tempfile.mkdtemp(prefix="bench_receiver_"))
    try:
        sandbox = Sandbox(
            SandboxConfig(app_secret=SECRET, accounts=1, days=1, extra={"messaging_contacts": 400})
        )
        sandbox.load_domains()
        bodies = build_burst(sandbox, args.bodies, seed=1)
        data = tmp / "bodies.tsv"
        data.write_text("".join(f"{sign(SECRET, b)}\t{b.decode()}\n" for b in bodies))
        script = tmp / "cycle.lua"
        script.write_text(_LUA)
        sizes = sorted(len(b) for b in bodies)
        print(
            f"{len(bodies)} distinct signed webhooks, median {sizes[len(sizes) // 2]} B; "
            f"wrk -t2 -c{args.connections} -d{args.duration}s; uvicorn workers="
            f"{args.workers}; writers={args.writers or 'default'}; {os.cpu_count()} cores "
            f"(shared); load average at start {os.getloadavg()}"
        )
        env = {
            **os.environ,
            "META_APP_SECRET": SECRET,
            "DATABASE_URL": url,
            "PYTHONPATH": str(ROOT),
        }
        if args.writers is not None:
            env["EVERREACH_RECEIVER_WRITERS"] = str(args.writers)

        deferred = {
            "rps": float("nan"),
            "p50_ms": float("nan"),
            "p99_ms": float("nan"),
            "non_2xx": 0,
        }
        stored, drained = 0, float("nan")
        if not args.skip_deferred:
            port = _free_port()
            proc = _serve(
                "webhook_receiver.app:create_app",
                port,
                args.workers,
                {**env, "EVERREACH_RECEIVER_APPLY_MODE": "deferred"},
            )
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    started = time.perf_counter()
                    deferred = _wrk(port, script, data, args.duration, args.connections)
                    stored = conn.execute("select count(*) from meta_webhook_event").fetchone()[0]
                    while conn.execute(
                        "select count(*) from meta_webhook_event where status = 'pending'"
                    ).fetchone()[0]:
                        time.sleep(0.1)
                    drained = time.perf_counter() - started
                    conn.execute(
                        "truncate meta_webhook_event, conversation_thread, "
                        "conversation_message, message_delivery_event, "
                        "messaging_policy_window, user_event, messaging_observed_event, "
                        "messaging_user_ref cascade"
                    )
            finally:
                _stop(proc)

        # Both servers stay up; their measurements alternate, so a change in the shared
        # machine's load hits both sides of each ratio alike.
        base_port, full_port = _free_port(), _free_port()
        base_proc = _serve("bench_receiver:create_baseline_app", base_port, args.workers, env)
        full_proc = _serve(
            "webhook_receiver.app:create_app",
            full_port,
            args.workers,
            {**env, "EVERREACH_RECEIVER_APPLY_MODE": "inline"},
        )
        rounds: list[tuple[dict[str, float], dict[str, float], tuple[float, ...]]] = []
        try:
            for _ in range(args.rounds):
                base = _wrk(base_port, script, data, args.duration, args.connections)
                full = _wrk(full_port, script, data, args.duration, args.connections)
                rounds.append((base, full, os.getloadavg()))
            with psycopg.connect(url, autocommit=True) as conn:
                # wrk stops with requests in flight: wait until the log stops growing.
                before, previous = -1, -2
                while before != previous:
                    previous = before
                    time.sleep(1)
                    before = conn.execute("select count(*) from meta_webhook_event").fetchone()[0]
                started = time.perf_counter()
                statuses = asyncio.run(_bounded(full_port, bodies, args.count, args.connections))
                elapsed = time.perf_counter() - started
                after = conn.execute("select count(*) from meta_webhook_event").fetchone()[0]
                failed = conn.execute(
                    "select count(*) from meta_webhook_event where status <> 'applied'"
                ).fetchone()[0]
                msgs = conn.execute("select count(*) from conversation_message").fetchone()[0]
                errors = conn.execute(
                    "select status, left(error, 80), count(*) from "
                    "meta_webhook_event where status <> 'applied' "
                    "group by 1, 2"
                ).fetchall()
        finally:
            _stop(base_proc)
            _stop(full_proc)

        print(f"{'':34}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'ratio':>7}")
        for n, (base, full, load) in enumerate(rounds, 1):
            for label, r in (
                (f"round {n}: baseline (no database)", base),
                (f"round {n}: store + apply inline", full),
            ):
                ratio = f"{full['rps'] / base['rps']:>7.2f}" if r is full else ""
                print(
                    f"{label:34}{r['rps']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
                    f"{r['non_2xx']:>9}{ratio}"
                )
            print(f"{'':34}load average after round {n}: {tuple(round(x, 2) for x in load)}")
        if not args.skip_deferred:
            r = deferred
            print(
                f"{'durable store, apply deferred':34}{r['rps']:>10.0f}{r['p50_ms']:>9.2f}"
                f"{r['p99_ms']:>9.2f}{r['non_2xx']:>9}"
            )
        ratios = [full["rps"] / base["rps"] for base, full, _ in rounds]
        print(
            f"ratio durable+apply (inline) / baseline: median {_median(ratios):.2f} "
            f"(rounds {', '.join(f'{x:.2f}' for x in ratios)}); inline p99 median "
            f"{_median([full['p99_ms'] for _, full, _ in rounds]):.1f} ms"
        )
        if not args.skip_deferred:
            print(
                f"deferred mode: {deferred['rps'] / rounds[0][0]['rps']:.2f} of round 1's "
                f"baseline; {stored} stored during the run, all applied "
                f"{drained - args.duration:.1f} s after wrk stopped -> sustained store+apply "
                f"{stored / drained:.0f} events/s"
            )
        ok = statuses.get(200, 0)
        print(
            f"count check: {args.count} sent by a bounded client in {elapsed:.1f} s, "
            f"{ok} answered 200, {after - before} rows added to meta_webhook_event -> "
            f"{'OK' if ok == after - before else 'MISMATCH'}; rows not applied: {failed}; "
            f"messages stored: {msgs}; load average at the end {os.getloadavg()}"
        )
        for status, error, n in errors:
            print(f"  not applied: {n} x {status}: {error}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        with psycopg.connect(database.with_database(server, "postgres"), autocommit=True) as c:
            c.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity "
                "where datname = %s and pid <> pg_backend_pid()",
                (name,),
            )
            c.execute(f'drop database if exists "{name}"')


if __name__ == "__main__":
    main()
