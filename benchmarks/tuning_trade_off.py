"""Tuning with a second objective on Telco: how steady the latency measure is, and one two-objective study.
Prints two tables.

    .venv/bin/python benchmarks/tuning_trade_off.py                          # about 10-15 minutes on 2 cores
    .venv/bin/python benchmarks/tuning_trade_off.py --trials 6 --seeds 1     # a quicker look
    .venv/bin/python benchmarks/tuning_trade_off.py --plot front.json   # also save the front (plotly JSON)
    .venv/bin/python benchmarks/tuning_trade_off.py --quick    # 3 trials of 2 epochs, 1 seed: shows it runs

Needs the splits (``kedro run --pipelines data_acquisition,data_processing,splitting``). Uses conf/base parameters
(``tuning.pruner.name`` forced to none, as a two-objective study requires); the study goes to a journal file in a
temporary folder, so the project's study is not touched. The test split is not read.

1. Latency noise: three architectures (small to large) trained for one epoch; each one's latency measured
   ``--repeats`` times in turn, as a trial measures it (``tuning.trade_off.latency``). Columns: the weight count,
   the smallest / median / largest of the measures, and largest / smallest. A measure is usable to rank two
   trials when their latencies differ by more than that spread.
2. A study of ``--trials`` unpruned trials of the metric against ``--objective``; its trials (front marked), then
   the pick of ``tuning.trade_off.pick`` after the judgement over ``--seeds`` seeds (``--top-k`` candidates).

Every answer is checked (positive finite latencies, every trial complete with finite objectives, a non-empty
front, candidates judged with finite figures, a pick among them); the script exits 1 when one is wrong.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from typing import Any

import pandas as pd
from common import Checks, saved_splits
from common import parameters as project_parameters

ARCHITECTURES = {
    "2 x 32": {"hidden_layers": 2, "units": 32},
    "3 x 128": {"hidden_layers": 3, "units": 128},
    "4 x 256": {"hidden_layers": 4, "units": 256},
}


def latency_noise(
    params: dict[str, Any], frames: dict[str, pd.DataFrame], repeats: int, checks: Checks
) -> None:
    """Each architecture's single-record latency measured ``repeats`` times in turn; prints the spread."""
    from deep_learning_workflow.inference import (
        engine_for_rows,
        single_records,
        time_single_records,
    )
    from deep_learning_workflow.models.fitting import train_model
    from deep_learning_workflow.parameters import parse
    from deep_learning_workflow.pipelines.tuning.objectives import (
        count_parameters,
    )
    from deep_learning_workflow.pipelines.tuning.schema import TuningParams

    settings = parse(TuningParams, params["tuning"], "tuning").trade_off.latency
    prepared = {}
    for name, overrides in ARCHITECTURES.items():
        result = train_model(
            frames["train"],
            frames["val"],
            params["columns"],
            {**params["modelling"], **overrides, "epochs": 1},
            params["seed"],
            fit_on=frames["train_balanced"],
        )
        engine = engine_for_rows(
            result.model, frames["val"], result.roles, label="Latency objective"
        )
        records = single_records(frames["val"], result.roles)
        prepared[name] = (engine.forward, records, count_parameters(result.model), engine.name)
    measures: dict[str, list[float]] = {name: [] for name in ARCHITECTURES}
    for _ in range(repeats):  # in turn, so a busy spell hits every architecture alike
        for name, (forward, records, _, _) in prepared.items():
            latency = time_single_records(
                forward, records, blocks=settings.repeats, calls=settings.calls
            )
            measures[name].append(latency.best_block_ms)
            checks.within(f"latency of {name}", latency.best_block_ms, 1e-9, float("inf"))
    print(f"\nLatency per single record (ms), {repeats} measures each, engine and weights:")
    print(
        f"{'architecture':<12} {'engine':<8} {'weights':>8} {'min':>8} {'median':>8} {'max':>8} {'max/min':>8}"
    )
    for name, values in measures.items():
        _, _, weights, engine = prepared[name]
        checks.count(f"latency measures of {name}", len(values), repeats)
        if not values or weights <= 0:
            checks.fail(f"{name}: {weights} weights, {len(values)} measures")
            continue
        print(
            f"{name:<12} {engine:<8} {weights:>8.0f} {min(values):>8.4f} {statistics.median(values):>8.4f} "
            f"{max(values):>8.4f} {max(values) / min(values):>8.2f}"
        )


def study(
    params: dict[str, Any],
    frames: dict[str, pd.DataFrame],
    args: argparse.Namespace,
    checks: Checks,
) -> None:
    """A two-objective study through the tuning pipeline's nodes; prints its trials and the pick."""
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.runner import SequentialRunner
    from kedro_datasets.json import JSONDataset

    from deep_learning_workflow.datasets.optuna_storage import OptunaStorageDataset
    from deep_learning_workflow.pipelines.tuning.pareto import pareto_front, trial_points
    from deep_learning_workflow.pipelines.tuning.pipeline import create_search_pipeline

    tuning = dict(params["tuning"])
    tuning.update(
        study_name=f"trade-off-{args.objective}",
        n_trials=args.trials,
        pruner={**tuning["pruner"], "name": "none"},
        selection={"top_k": args.top_k, "seeds": args.seeds},
        trade_off={**tuning["trade_off"], "enabled": True, "objective": args.objective},
    )
    if args.epochs is not None:
        tuning["epochs"] = args.epochs
    with tempfile.TemporaryDirectory() as folder:
        storage = OptunaStorageDataset(
            credentials={"con": f"journal:///{folder}/study.journal"}, heartbeat_interval=10
        )
        catalog = DataCatalog(
            {
                "tuning_storage": storage,
                "tuning_study": MemoryDataset(copy_mode="assign"),
                "best_params": JSONDataset(filepath=f"{folder}/best_params.json"),
                "tuning_pareto_front_plot": MemoryDataset(copy_mode="assign"),
                **{name: MemoryDataset(frame) for name, frame in frames.items()},
                **{
                    f"params:{key}": MemoryDataset(params[key])
                    for key in ("columns", "modelling", "problem", "seed")
                },
                "params:tuning": MemoryDataset(tuning),
            }
        )
        start = time.perf_counter()
        pipe = create_search_pipeline().only_nodes(
            "gather_tuning_data",
            "run_study",
            "retrain_top_trials",
            "select_best_params",
            "plot_pareto_front",
        )
        SequentialRunner().run(pipe, catalog)
        elapsed = time.perf_counter() - start
        best = catalog.load("best_params")
        figure = catalog.load("tuning_pareto_front_plot")
        import optuna

        trials = optuna.load_study(
            storage=storage.load().storage, study_name=tuning["study_name"]
        ).trials
    metric = params["problem"]["primary_metric"]
    points = trial_points(trials)
    front = {p.key for p in pareto_front(points, greater=True)}
    _check_study(trials, front, best, args, checks)
    print(
        f"\nStudy: {args.trials} trials, {metric} against {args.objective}, {elapsed / 60:.1f} min"
    )
    print(f"{'trial':>5} {metric:>8} {args.objective:>10} {'front':>6}  hyperparameters")
    for point in sorted(points, key=lambda p: p.cost):
        shown = {
            k: round(v, 5) if isinstance(v, float) else v
            for k, v in trials[point.key].params.items()
        }
        mark = "yes" if point.key in front else ""
        print(f"{point.key:>5} {point.metric:>8.4f} {point.cost:>10.4g} {mark:>6}  {shown}")
    print(f"\nPicked: trial {best['trial']} ({best['ranking']})")
    for candidate in best["candidates"]:
        print(
            f"  candidate trial {candidate['trial']}: {metric} over seeds {candidate['mean']:.4f} "
            f"± {candidate['sd']:.4f}, {args.objective} {candidate['cost']:.4g}"
        )
    if args.plot:
        figure.write_json(args.plot)
        print(f"Front saved to {args.plot}")


def _check_study(
    trials: list[Any],
    front: set[int],
    best: dict[str, Any],
    args: argparse.Namespace,
    checks: Checks,
) -> None:
    """Every trial complete with two finite objectives; candidates from the front judged over the seeds (the
    rule's ``--top-k``, plus the best-metric trial for ``cheapest_within``); the pick one of them."""
    states = [trial.state.name for trial in trials]
    checks.count("complete trials", states.count("COMPLETE"), args.trials)
    checks.count("failed trials", states.count("FAIL"), 0)
    for trial in trials:
        if trial.state.name == "COMPLETE":
            values = trial.values or []
            checks.count(f"objectives of trial {trial.number}", len(values), 2)
            checks.finite(
                f"trial {trial.number}", dict(zip(("metric", "cost"), values, strict=False))
            )
    if not front:
        checks.fail("the Pareto front is empty")
    candidates = best.get("candidates") or []
    numbers = [candidate["trial"] for candidate in candidates]
    if not 1 <= len(numbers) <= args.top_k + 1 or len(set(numbers)) < len(numbers):
        checks.fail(f"candidates {numbers}: expected 1 to {args.top_k + 1} distinct trials")
    if not set(numbers) <= front:
        checks.fail(
            f"candidates {sorted(set(numbers) - front)} are not on the Pareto front {sorted(front)}"
        )
    for candidate in candidates:
        checks.finite(
            f"candidate trial {candidate['trial']}",
            {k: candidate[k] for k in ("mean", "sd", "cost")},
        )
    if best.get("trial") not in {candidate["trial"] for candidate in candidates}:
        checks.fail(f"picked trial {best.get('trial')} is not one of the candidates")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objective", choices=["parameters", "latency"], default="parameters")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=8, help="latency measures per architecture")
    parser.add_argument("--plot", help="save the Pareto front figure (plotly JSON)")
    parser.add_argument("--skip-noise", action="store_true")
    parser.add_argument("--epochs", type=int, help="most epochs of a trial (params:tuning.epochs)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3 trials of 2 epochs, top 2 judged over 1 seed, 2 latency measures: shows it runs",
    )
    args = parser.parse_args()
    if args.quick:
        args.trials, args.seeds, args.top_k, args.repeats, args.epochs = 3, 1, 2, 2, 2
    checks = Checks()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    params, frames = project_parameters(), saved_splits(("train", "train_balanced", "val"))
    if not args.skip_noise:
        latency_noise(params, frames, args.repeats, checks)
    study(params, frames, args, checks)
    return checks.exit_code()


if __name__ == "__main__":
    sys.exit(main())
