"""Serving benchmark: HTTP throughput/latency and in-process forward costs. Prints tables; run on demand:

    .venv/bin/python benchmarks/serving/run.py [--bundle data/07_model_output/serving_bundle] [--requests 20000]

HTTP (8 concurrent keep-alive clients on 127.0.0.1, a bounded number of requests, servers started here):
  - bare: a FastAPI endpoint that does nothing;
  - /predict: the service, one raw Telco record per request (prediction log on, as deployed; and off);
  - naive: a pandas frame and model.predict per request, for reference (fewer requests).
In-process: single-row forward cost of model.predict, model(x), tf.function and the NumPy fast path; batch scoring
of 1,024 raw records by the fast path against one tf.function call on the already-built input arrays.

Without a bundle at --bundle, a small one is trained on the demo data first (tests/service/bundles.py).
Targets: /predict >= 50% of bare's requests/s and p99 <= 3x bare's p99; batch 1,024 >= 0.5x tf.function.
"""

from __future__ import annotations

import argparse
import gc
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import orjson

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parents[1]
sys.path[:0] = [str(HERE), str(PROJECT)]

from loadgen import LoadResult, encode_request, run_load  # noqa: E402

PYTHON = sys.executable
QUIET = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KEDRO_DISABLE_TELEMETRY": "1"}


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


def start(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        command, cwd=PROJECT, env=env or QUIET, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def row(name: str, result: LoadResult) -> str:
    bad = sum(n for status, n in result.statuses.items() if status != 200)
    return (
        f"| {name:44} | {result.rate:10.0f} | {result.percentile(50):8.2f} | {result.percentile(99):8.2f} "
        f"| {bad:7d} |"
    )


def demo_bundle(folder: Path) -> Path:
    from tests.service.bundles import TELCO_ROLES, build_bundle, telco_frame

    print("No bundle given: training a small demo model on the Telco data ...", flush=True)
    return build_bundle(folder / "bundle", telco_frame(1500), TELCO_ROLES, seed=0)


def records(count: int) -> list[dict]:
    from tests.service.bundles import TELCO_ROLES, raw_records, telco_frame

    return raw_records(telco_frame(count, seed=1), TELCO_ROLES)


def http_benchmarks(
    bundle: Path, total: int, naive_total: int, rounds: int, work: Path
) -> list[str]:
    bodies = [orjson.dumps(record) for record in records(1000)]
    ports = {name: free_port() for name in ("bare", "log_on", "log_off", "naive")}

    def service(port: int, log_url: str) -> subprocess.Popen:
        command = [
            "-m",
            "deep_learning_workflow.service",
            "--bundle",
            str(bundle),
            "--port",
            str(port),
        ]
        return start([PYTHON, *command, "--log-url", log_url, "--log-level", "warning"])

    def uvicorn_app(name: str, port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
        command = ["-m", "uvicorn", f"{name}:app", "--app-dir", str(HERE), "--port", str(port)]
        return start([PYTHON, *command, "--no-access-log", "--log-level", "warning"], env=env)

    servers = {
        "bare": uvicorn_app("bare_app", ports["bare"]),
        "log_on": service(ports["log_on"], f"sqlite:///{work / 'log.sqlite'}"),
        "log_off": service(ports["log_off"], "null"),
    }
    requests = {
        "bare": [encode_request("POST", "/bare", b"", ports["bare"])],
        "log_on": [encode_request("POST", "/predict", body, ports["log_on"]) for body in bodies],
        "log_off": [encode_request("POST", "/predict", body, ports["log_off"]) for body in bodies],
    }
    results: dict[str, list[LoadResult]] = {name: [] for name in servers}
    try:
        wait_until(f"http://127.0.0.1:{ports['bare']}/docs")
        wait_until(f"http://127.0.0.1:{ports['log_on']}/readyz")
        wait_until(f"http://127.0.0.1:{ports['log_off']}/readyz")
        for name in servers:
            run_load(ports[name], requests[name], 2000)  # warm-up
        # Alternate the endpoints so that each round compares them under the same machine load.
        for _ in range(rounds):
            for name in servers:
                results[name].append(run_load(ports[name], requests[name], total))
    finally:
        for process in servers.values():
            stop(process)
    naive = uvicorn_app("naive_app", ports["naive"], env={**QUIET, "BENCH_BUNDLE": str(bundle)})
    try:
        wait_until(f"http://127.0.0.1:{ports['naive']}/docs")
        naive_requests = [
            encode_request("POST", "/predict", body, ports["naive"]) for body in bodies
        ]
        run_load(ports["naive"], naive_requests, 16)
        naive_result = run_load(ports["naive"], naive_requests, naive_total)
    finally:
        stop(naive)

    def median(name: str) -> LoadResult:
        return sorted(results[name], key=lambda r: r.rate)[len(results[name]) // 2]

    rate_ratios = [
        on.rate / bare.rate for on, bare in zip(results["log_on"], results["bare"], strict=True)
    ]
    p99_ratios = [
        on.percentile(99) / bare.percentile(99)
        for on, bare in zip(results["log_on"], results["bare"], strict=True)
    ]
    rate_ratio = float(np.median(rate_ratios))
    p99_ratio = float(np.median(p99_ratios))
    lines = [
        f"HTTP, 8 concurrent clients, 127.0.0.1, {total} requests per run, {rounds} rounds alternating the endpoints "
        "(median run shown)",
        "",
        f"| {'endpoint':44} | {'req/s':>10} | {'p50 ms':>8} | {'p99 ms':>8} | {'non-200':>7} |",
        f"|{'-' * 46}|{'-' * 12}|{'-' * 10}|{'-' * 10}|{'-' * 9}|",
        row("bare FastAPI endpoint", median("bare")),
        row("/predict, 1 raw record (prediction log on)", median("log_on")),
        row("/predict, 1 raw record (prediction log off)", median("log_off")),
        row(f"naive: DataFrame + model.predict ({naive_total} requests)", naive_result),
        "",
        "per round, /predict (log on) / bare: requests/s "
        + ", ".join(f"{r:.2f}" for r in rate_ratios)
        + "; p99 "
        + ", ".join(f"{r:.2f}" for r in p99_ratios),
        f"median /predict / bare requests/s: {rate_ratio:.2f} (target >= 0.50)  {'OK' if rate_ratio >= 0.5 else 'MISSED'}",
        f"median /predict p99 / bare p99:     {p99_ratio:.2f} (target <= 3.00)  {'OK' if p99_ratio <= 3 else 'MISSED'}",
    ]
    return lines


def timed(function, repeat: int, blocks: int = 5) -> float:
    """Seconds per call: the best of ``blocks`` runs of ``repeat`` calls (the least disturbed by other load)."""
    function()
    best = float("inf")
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(repeat):
            function()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best


def in_process_benchmarks(bundle: Path) -> list[str]:
    import numpy as np
    import tensorflow as tf

    from deep_learning_workflow.service.app import limit_blas_threads
    from deep_learning_workflow.service.loader import load_version

    version = load_version(bundle)
    model = read_model(bundle)
    validator = version.validator
    sample = records(1024)
    kinds = {name: kind for name, kind in validator.kinds.items()}

    def arrays(rows: list[dict]) -> dict[str, np.ndarray]:
        columns = validator.validate(rows, batch=True).values
        return {
            name: np.asarray(
                columns[name], dtype=np.float32 if kind == "numeric" else object
            ).reshape(-1, 1)
            for name, kind in kinds.items()
        }

    one, many = arrays(sample[:1]), arrays(sample)
    one_tensors = {k: tf.constant(v) for k, v in one.items()}
    many_tensors = {k: tf.constant(v) for k, v in many.items()}
    function = tf.function(lambda x: model(x, training=False))
    one_columns = validator.validate(sample[:1], batch=False).values
    many_columns = validator.validate(sample, batch=True).values

    def fast_single() -> None:
        version.score(validator.validate(sample[:1], batch=False))

    def fast_batch() -> None:
        version.score(validator.validate(sample, batch=True))

    # The service caps NumPy's BLAS at one thread (ServiceSettings.blas_threads); measure the fast path the same
    # way, and before TensorFlow runs (its thread pools keep spinning for a while after each call).
    limit_blas_threads(1)
    gc.freeze()  # as the service does once loaded
    fast = {
        "single": timed(lambda: version.forward(one_columns), 3000),
        "single_raw": timed(fast_single, 3000),
        "batch": timed(lambda: version.forward(many_columns), 50),
        "batch_raw": timed(fast_batch, 50),
    }
    predict_inputs = {k: v.reshape(-1) for k, v in one.items()}
    single = [
        ("model.predict(x)", timed(lambda: model.predict(predict_inputs, verbose=0), 10, blocks=1)),
        ("model(x)", timed(lambda: model(one, training=False), 20, blocks=3)),
        ("tf.function(model)(x) on tensors", timed(lambda: function(one_tensors), 300, blocks=3)),
        ("fast path: forward on input columns", fast["single"]),
        ("fast path: raw record -> validate -> label", fast["single_raw"]),
    ]
    tf_batch = timed(lambda: function(many_tensors), 50)
    batch = [
        ("tf.function(model)(x), 1,024 rows on tensors", tf_batch),
        ("fast path: forward on input columns", fast["batch"]),
        ("fast path: raw records -> validate -> labels", fast["batch_raw"]),
    ]
    lines = [
        f"In-process forward cost (engine: {version.engine})",
        "",
        f"| {'single row':46} | {'time':>12} |",
        f"|{'-' * 48}|{'-' * 14}|",
        *[f"| {name:46} | {seconds * 1e6:9.1f} µs |" for name, seconds in single],
        "",
        f"| {'batch of 1,024 records':46} | {'time':>12} | {'records/s':>12} | {'vs tf.function':>14} |",
        f"|{'-' * 48}|{'-' * 14}|{'-' * 14}|{'-' * 16}|",
        *[
            f"| {name:46} | {seconds * 1e3:9.2f} ms | {1024 / seconds:12.0f} | {tf_batch / seconds:13.2f}x |"
            for name, seconds in batch
        ],
        "",
    ]
    ratio = tf_batch / batch[-1][1]
    lines.append(
        f"batch 1,024 raw records vs tf.function on arrays: {ratio:.2f}x (target >= 0.50)  {'OK' if ratio >= 0.5 else 'MISSED'}"
    )
    return lines


def read_model(bundle: Path):
    from deep_learning_workflow.bundle import read_bundle

    return read_bundle(bundle).model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--bundle", type=Path, default=PROJECT / "data/07_model_output/serving_bundle"
    )
    parser.add_argument("--requests", type=int, default=20_000, help="requests per HTTP run")
    parser.add_argument("--naive-requests", type=int, default=200)
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds alternating the endpoints (median reported)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        bundle = args.bundle if (args.bundle / "manifest.json").is_file() else demo_bundle(work)
        print(f"bundle: {bundle}\n", flush=True)
        lines = http_benchmarks(bundle, args.requests, args.naive_requests, args.rounds, work)
        print("\n".join(lines), "\n", flush=True)
        print("\n".join(in_process_benchmarks(bundle)), flush=True)


if __name__ == "__main__":
    main()
