"""Serving benchmark: the service against a bare FastAPI endpoint in the same run, with wrk as the load generator.

    .venv/bin/python benchmarks/serving/run.py [--bundle data/07_model_output/serving_bundle] [--seconds 10]
        [--rounds 3] [--workers 2]

Needs ``wrk`` (Debian: ``apt-get install wrk``): a C load generator, so the client is not the bottleneck.
Servers started here on 127.0.0.1, each with ``--workers`` processes (default: one per core), the same uvicorn
settings:

- bare: a FastAPI endpoint that parses the same JSON body and answers a constant (``bare_app.py``);
- the service with its prediction log on (SQLite, as deployed) and off (``--log-url null``).

Each is loaded with one record, a batch of 100 and a batch of 1,000 records (rows of ``data/01_raw/scoring_batch.csv``
as the file holds them). Every answer is checked: its status must be 200, and each /predict answer must hold the
probability the loaded model gives that record (computed here before the load), and the log-on service must have
dropped no logged record (``dlw_prediction_log_dropped_total``, read after each load). Then the log-on service is sent
SIGTERM under load: every request answered 200 must be in its log. Any failure exits non-zero.

The three endpoints are loaded in turn, ``--rounds`` times for each body size, and each row of the table sums the
rounds (requests over seconds; p50 and p99 are the rounds' medians): on a shared 2-core machine bare's rate alone
moves by a third from one load to the next, and taking turns keeps such drift from landing on one endpoint.
Targets: single record, log on: >= 50% of bare's requests/s and p99 <= 3x bare's p99; batch of 1,000 >= 200k
records/s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parents[1]
sys.path[:0] = [str(PROJECT / "src"), str(PROJECT)]
PYTHON = sys.executable
# The servers run this tree's code, as this process does (not whatever copy of the package is installed).
QUIET = {
    **os.environ,
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "KEDRO_DISABLE_TELEMETRY": "1",
    "PYTHONPATH": os.pathsep.join([str(PROJECT / "src"), os.environ.get("PYTHONPATH", "")]),
}
SIZES = (1, 100, 1000)

# wrk script: POST the body, count answers that are not 200 or lack the expected text, report as JSON.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open(os.getenv("BENCH_BODY"), "rb"):read("*a")
local expected = os.getenv("BENCH_EXPECT")
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; bad = 0; sample = "" end
function response(status, headers, body)
  if status == 200 and string.find(body, expected, 1, true) then ok = ok + 1
  else bad = bad + 1; if sample == "" then sample = status .. " " .. string.sub(body, 1, 200) end end
end
function done(summary, latency, requests)
  local okay, wrong, first = 0, 0, ""
  for _, thread in ipairs(threads) do
    okay = okay + thread:get("ok"); wrong = wrong + thread:get("bad")
    if first == "" then first = thread:get("sample") end
  end
  io.write(string.format('RESULT {"requests": %d, "seconds": %f, "ok": %d, "bad": %d, "p50_us": %d, ' ..
    '"p99_us": %d, "socket_errors": %d, "sample": %q}\\n', summary.requests, summary.duration / 1e6, okay,
    wrong, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, first))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(url: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer 200 within {timeout} s")


def post(url: str, body: bytes) -> dict:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def dropped_log_rows(url: str) -> int:
    """dlw_prediction_log_dropped_total of a service: records it answered but could not log."""
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    return int(
        sum(
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith("dlw_prediction_log_dropped_total")
        )
    )


def demo_bundle(folder: Path) -> Path:
    from tests.service.bundles import TELCO_ROLES, build_bundle, telco_frame

    return build_bundle(folder / "bundle", telco_frame(1500), TELCO_ROLES, seed=1)


def scoring_records(count: int) -> list[dict]:
    import numpy as np
    import pandas as pd

    frame = pd.read_csv(PROJECT / "data" / "01_raw" / "scoring_batch.csv")
    frame = frame.iloc[np.arange(count) % len(frame)].reset_index(drop=True)
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in rows]


def expected_text(bundle: Path, records: list[dict]) -> str:
    """The answer text of the last record's probability, from the loaded model (not from a server)."""
    import orjson
    from threadpoolctl import threadpool_limits

    from deep_learning_workflow.service.loader import load_version

    version = load_version(str(bundle))
    # With BLAS on one thread, as the service runs it (ServiceSettings.blas_threads): more threads may sum the
    # products in another order, and the answer is compared to the last digit.
    with threadpool_limits(limits=1, user_api="blas"):
        scores = version.score(version.validator.validate(records, batch=True))
    return orjson.dumps({"probability": scores.probability[-1]}).decode()[1:-1]


def run_wrk(url: str, body: Path, expect: str, seconds: float, connections: int) -> dict:
    script = body.with_suffix(".lua")
    script.write_text(WRK_SCRIPT)
    command = [
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    env = {**os.environ, "BENCH_BODY": str(body), "BENCH_EXPECT": expect}
    output = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def start_service(
    bundle: Path, port: int, log_url: str | None, workers: int, extra: list[str] = ()
) -> subprocess.Popen:
    command = [PYTHON, "-m", "deep_learning_workflow.service", "--bundle", str(bundle)]
    command += [
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--log-url",
        log_url or "null",
        *extra,
    ]
    return subprocess.Popen(command, env=QUIET, cwd=PROJECT)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def sigterm_under_load(
    bundle: Path, work: Path, seconds: float, connections: int, workers: int
) -> tuple[int, int]:
    """(requests answered 200, records in the log) for a service sent SIGTERM halfway through a load (one record
    per request)."""
    from deep_learning_workflow.service.prediction_log import read_logged_records

    port, log_url = free_port(), f"sqlite:///{work / 'sigterm.sqlite'}"
    process = start_service(bundle, port, log_url, workers, ["--drain-seconds", "1"])
    body = work / "body_sigterm.json"
    records = scoring_records(1)
    body.write_bytes(json.dumps(records[0]).encode())
    try:
        wait_until(f"http://127.0.0.1:{port}/readyz")
        timer = threading.Timer(seconds / 2, process.send_signal, [signal.SIGTERM])
        timer.start()
        result = run_wrk(
            f"http://127.0.0.1:{port}/predict", body, '"probability":', seconds, connections
        )
        if process.wait(60) != 0:
            raise RuntimeError("the service did not exit 0 after SIGTERM")
    finally:
        stop(process)
    return result["ok"], len(read_logged_records(log_url, expand=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bundle", default=str(PROJECT / "data" / "07_model_output" / "serving_bundle")
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--rounds", type=int, default=3, help="turns of the three endpoints per size"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="processes of each server (default: one per core)",
    )
    args = parser.parse_args()
    for name in ("rounds", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    bundle = Path(args.bundle)
    if not (bundle / "bundle.json").is_file():
        print(f"No bundle at {bundle}: training a small demo model first.")  # noqa: T201
        bundle = demo_bundle(work)
    ports = {name: free_port() for name in ("bare", "log on", "log off")}
    servers = {
        "bare": subprocess.Popen(
            [
                PYTHON,
                "-m",
                "uvicorn",
                "bare_app:app",
                "--app-dir",
                str(HERE),
                "--port",
                str(ports["bare"]),
                "--workers",
                str(args.workers),
            ]
            + ["--log-level", "warning", "--no-access-log"],
            env=QUIET,
        ),
        "log on": start_service(
            bundle, ports["log on"], f"sqlite:///{work / 'log.sqlite'}", args.workers
        ),
        "log off": start_service(bundle, ports["log off"], None, args.workers),
    }
    failures: list[str] = []
    table: list[tuple[str, str, dict]] = []
    try:
        wait_until(f"http://127.0.0.1:{ports['bare']}/docs")
        for name in ("log on", "log off"):
            wait_until(f"http://127.0.0.1:{ports[name]}/readyz")
        for size in SIZES:
            records = scoring_records(size)
            body = work / f"body_{size}.json"
            body.write_bytes(json.dumps(records[0] if size == 1 else records).encode())
            expect = expected_text(bundle, records)
            endpoints = (("bare", "/bare"), ("log on", "/predict"), ("log off", "/predict"))
            rounds: dict[str, list[dict]] = {name: [] for name, _ in endpoints}
            for name, path in endpoints:
                # One answer checked in full first: the same probability as the model in this process.
                answer = post(f"http://127.0.0.1:{ports[name]}{path}", body.read_bytes())
                if name != "bare" and expect not in json.dumps(answer, separators=(",", ":")):
                    failures.append(
                        f"{name}, {size} records: wrong probability in {str(answer)[:200]}"
                    )
            for _ in range(args.rounds):
                for name, path in endpoints:
                    check = f'"records":{size}' if name == "bare" else expect
                    rounds[name].append(
                        run_wrk(
                            f"http://127.0.0.1:{ports[name]}{path}",
                            body,
                            check,
                            args.seconds,
                            args.connections,
                        )
                    )
            for name, _ in endpoints:
                result = merge_rounds(rounds[name])
                table.append((f"{size}", name, result))
                if name == "log on":
                    result["dropped"] = dropped_log_rows(f"http://127.0.0.1:{ports[name]}/metrics")
                    if result["dropped"]:
                        failures.append(
                            f"log on, {size} records: the log dropped {result['dropped']} records so far"
                        )
                if result["bad"] or result["socket_errors"] or not result["ok"]:
                    failures.append(
                        f"{name}, {size} records: {result['bad']} wrong answers, {result['socket_errors']} socket "
                        f"errors (first: {result['sample']})"
                    )
    finally:
        for process in servers.values():
            stop(process)
    answered, logged = sigterm_under_load(
        bundle, work, args.seconds, args.connections, args.workers
    )
    if answered != logged:
        failures.append(f"SIGTERM under load: {answered} answered 200 but {logged} logged records")
    print_table(table, answered, logged, args.workers)
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))  # noqa: T201
        sys.exit(1)


def merge_rounds(rounds: list[dict]) -> dict:
    """One endpoint's rounds as one result: counts summed, p50 and p99 the rounds' medians, each round's rate kept."""
    merged = {
        key: sum(r[key] for r in rounds)
        for key in ("requests", "seconds", "ok", "bad", "socket_errors")
    }
    for key in ("p50_us", "p99_us"):
        merged[key] = statistics.median(r[key] for r in rounds)
    merged["sample"] = next((r["sample"] for r in rounds if r["sample"]), "")
    merged["rates"] = [r["requests"] / r["seconds"] for r in rounds]
    return merged


def print_table(
    table: list[tuple[str, str, dict]], answered: int, logged: int, workers: int
) -> None:
    bare = {size: result for size, name, result in table if name == "bare"}
    lines = [
        f"workers per server: {workers}; "
        f"load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        "",
        "| records/request | endpoint | req/s | records/s | p50 ms | p99 ms | req/s vs bare | p99 vs bare "
        "| logged records dropped |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, name, result in table:
        rate = result["requests"] / result["seconds"]
        base = bare[size]
        base_rate = base["requests"] / base["seconds"]
        lines.append(
            f"| {size} | {name} | {rate:,.0f} | {rate * int(size):,.0f} | {result['p50_us'] / 1000:.2f} | "
            f"{result['p99_us'] / 1000:.2f} | {rate / base_rate:.2f} | {result['p99_us'] / base['p99_us']:.2f} | "
            f"{result.get('dropped', '')} |"
        )
    single = {name: result for size, name, result in table if size == "1"}
    batch = next(result for size, name, result in table if size == "1000" and name == "log on")
    rate_ratio = (single["log on"]["requests"] / single["log on"]["seconds"]) / (
        single["bare"]["requests"] / single["bare"]["seconds"]
    )
    p99_ratio = single["log on"]["p99_us"] / single["bare"]["p99_us"]
    batch_rate = 1000 * batch["requests"] / batch["seconds"]
    per_round = ", ".join(
        f"{on / base:.2f}"
        for on, base in zip(single["log on"]["rates"], single["bare"]["rates"], strict=True)
    )
    lines += [
        "",
        f"single record, log on: req/s {rate_ratio:.2f} x bare (target >= 0.50; rounds {per_round}), "
        f"p99 {p99_ratio:.2f} x bare (target <= 3.00)",
        f"batch of 1,000, log on: {batch_rate:,.0f} records/s (target >= 200,000)",
        f"SIGTERM under load: {answered} answered 200, {logged} logged records, {answered - logged} lost",
    ]
    print("\n".join(lines))  # noqa: T201


if __name__ == "__main__":
    main()
