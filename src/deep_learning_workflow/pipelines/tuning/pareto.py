"""The Pareto front of a two-objective study (the metric against a cost) and the rule that picks one trial of it.

A trial is on the front when no other trial is at least as good on both objectives and better on one. The rule of
``params:tuning.trade_off.pick``:

- ``cheapest_within``: the cheapest trial whose metric is within ``tolerance`` of the best metric (``fastest within
  0.005`` with latency, ``smallest within 0.005`` with parameters);
- ``best_within_budget``: the best metric among the trials costing at most ``budget``.

Either pick is a trial of the front (a trial that dominated it would satisfy the rule at least as well). The same
rule is applied twice: on the study's single-seed values, to choose the trials retrained over seeds
(:func:`seed_candidates`), then on their pessimistic scores over seeds, to choose the winner
(:func:`pick_candidate`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .schema import PickParams

# Metric differences below this are rounding: 0.80 - 0.795 must count as within a tolerance of 0.005.
_SLACK = 1e-12


@dataclass(frozen=True)
class Point:
    """One trial as the rule sees it: its number, its metric and its cost."""

    key: int
    metric: float
    cost: float


def _at_least_as_good(a: Point, b: Point, greater: bool) -> bool:
    return (a.metric >= b.metric if greater else a.metric <= b.metric) and a.cost <= b.cost


def dominates(a: Point, b: Point, greater: bool) -> bool:
    """Whether ``a`` is at least as good as ``b`` on both objectives and better on one."""
    return _at_least_as_good(a, b, greater) and (a.metric != b.metric or a.cost != b.cost)


def pareto_front(points: Iterable[Point], greater: bool) -> list[Point]:
    """The points no other point dominates, cheapest first."""
    points = list(points)
    front = [p for p in points if not any(dominates(q, p, greater) for q in points)]
    return sorted(front, key=lambda p: (p.cost, -p.metric if greater else p.metric, p.key))


def best_metric(points: Sequence[Point], greater: bool) -> float:
    """The best metric of the points."""
    metrics = [p.metric for p in points]
    return max(metrics) if greater else min(metrics)


def rank_by_rule(points: Iterable[Point], pick: PickParams, greater: bool) -> list[Point]:
    """The points that satisfy the rule, the rule's preferred first (ties: better metric, lower cost, number)."""
    points = list(points)
    if not points:
        return []
    if pick.rule == "cheapest_within":
        best = best_metric(points, greater)
        margin = pick.tolerance + _SLACK
        eligible = [
            p
            for p in points
            if (p.metric >= best - margin if greater else p.metric <= best + margin)
        ]
        return sorted(eligible, key=lambda p: (p.cost, -p.metric if greater else p.metric, p.key))
    eligible = [p for p in points if p.cost <= pick.budget]
    return sorted(eligible, key=lambda p: (-p.metric if greater else p.metric, p.cost, p.key))


def trial_points(trials: Iterable[Any]) -> list[Point]:
    """The completed trials with two finite values, as points."""
    points = []
    for trial in trials:
        values = trial.values
        if getattr(trial.state, "name", None) != "COMPLETE" or values is None or len(values) != 2:
            continue
        if all(math.isfinite(v) for v in values):
            points.append(Point(trial.number, float(values[0]), float(values[1])))
    return points


def _nothing_satisfies(points: Sequence[Point], pick: PickParams, cost_name: str) -> str:
    if not points:
        return "No trial completed with two finite objective values."
    cheapest = min(p.cost for p in points)
    return (
        f"No completed trial costs at most params:tuning.trade_off.pick.budget = {pick.budget:g} {cost_name} "
        f"(the cheapest costs {cheapest:g}); raise the budget or use the rule cheapest_within."
    )


def pick_trial(
    trials: Iterable[Any], pick: PickParams, greater: bool, cost_name: str = "cost"
) -> Any:
    """The trial of the Pareto front the rule picks.

    Args:
        trials: Optuna trials (FrozenTrial); only completed ones with two finite values count.
        pick: ``params:tuning.trade_off.pick``.
        greater: whether a higher metric is better.
        cost_name: the cost's name, for the error message.

    Raises:
        ValueError: when no trial satisfies the rule (no completed trial, or none within the budget).
    """
    trials = list(trials)
    points = trial_points(trials)
    ranked = rank_by_rule(pareto_front(points, greater), pick, greater)
    if not ranked:
        raise ValueError(_nothing_satisfies(points, pick, cost_name))
    return next(t for t in trials if t.number == ranked[0].key)


def seed_candidates(
    trials: Iterable[Any], pick: PickParams, greater: bool, top_k: int, cost_name: str = "cost"
) -> list[Any]:
    """The trials to retrain over seeds: the rule's ``top_k`` preferred trials of the front.

    With ``cheapest_within`` the trial with the best metric is added when it is not among them: it is the
    reference the tolerance is measured from, so the rule can be applied again to the scores over seeds.

    Raises:
        ValueError: when no trial satisfies the rule.
    """
    trials = list(trials)
    points = trial_points(trials)
    front = pareto_front(points, greater)
    ranked = rank_by_rule(front, pick, greater)[:top_k]
    if not ranked:
        raise ValueError(_nothing_satisfies(points, pick, cost_name))
    if pick.rule == "cheapest_within":
        best = best_metric(front, greater)
        reference = min((p for p in front if p.metric == best), key=lambda p: (p.cost, p.key))
        if reference not in ranked:
            ranked.append(reference)
    by_number = {t.number: t for t in trials}
    return [by_number[p.key] for p in ranked]


def pick_candidate(
    candidates: Sequence[Mapping[str, Any]], pick: PickParams, greater: bool
) -> Mapping[str, Any] | None:
    """The retrained candidate the rule picks on its pessimistic score over seeds (None: no finite score).

    Each candidate holds ``trial``, ``score`` (mean - sd, or mean + sd for a loss; None when every seed diverged)
    and ``cost`` (the study's measure of that trial: the hyperparameters, not the seed, set it).
    """
    points = [
        Point(c["trial"], float(c["score"]), float(c["cost"]))
        for c in candidates
        if c["score"] is not None and c.get("cost") is not None
    ]
    ranked = rank_by_rule(points, pick, greater)
    if not ranked:
        return None
    return next(c for c in candidates if c["trial"] == ranked[0].key)


def describe_rule(pick: PickParams, cost_name: str) -> str:
    """The rule in words, for best_params.json and the plot."""
    if pick.rule == "cheapest_within":
        return f"lowest {cost_name} within {pick.tolerance:g} of the best metric"
    return f"best metric with {cost_name} at most {pick.budget:g}"


def _hover_texts(
    subset: Sequence[Point], params: dict[int, dict[str, Any]], metric: str, cost_label: str
) -> list[str]:
    """Each point's trial, metric, cost and hyperparameters, one line each."""
    return [
        f"trial {p.key}<br>{metric} {p.metric:.4f}<br>{cost_label} {p.cost:.4g}<br>"
        + "<br>".join(
            f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}"
            for k, v in params[p.key].items()
        )
        for p in subset
    ]


def _draw_rule(
    figure: Any, points: list[Point], pick: PickParams, greater: bool, metric: str
) -> None:
    """The pick rule's bound: the tolerance below the best metric, or the cost budget."""
    if points and pick.rule == "cheapest_within":
        bound = best_metric(points, greater) + (-pick.tolerance if greater else pick.tolerance)
        figure.add_hline(
            y=bound,
            line_dash="dash",
            line_color="#7f7f7f",
            annotation_text=f"best {metric} {'-' if greater else '+'} {pick.tolerance:g}",
            annotation_position="bottom right",
        )
    elif points:
        figure.add_vline(
            x=pick.budget,
            line_dash="dash",
            line_color="#7f7f7f",
            annotation_text=f"budget {pick.budget:g}",
        )


def plot_front(
    trials: Iterable[Any],
    metric: str,
    cost_label: str,
    greater: bool,
    pick: PickParams,
    picked: int | None,
) -> Any:
    """Every completed trial, the Pareto front, the rule's bound and the picked trial, as a plotly figure."""
    import plotly.graph_objects as go

    trials = list(trials)
    points = trial_points(trials)
    params = {t.number: t.params for t in trials}
    figure = go.Figure()
    for name, subset, style in _front_layers(points, greater, picked):
        figure.add_trace(
            go.Scatter(
                x=[p.cost for p in subset],
                y=[p.metric for p in subset],
                name=name,
                text=_hover_texts(subset, params, metric, cost_label),
                hoverinfo="text",
                **style,
            )
        )
    _draw_rule(figure, points, pick, greater, metric)
    costs = [p.cost for p in points]
    figure.update_layout(
        title=(
            f"Pareto front: validation {metric} against {cost_label}"
            f"<br><sup>pick: {describe_rule(pick, cost_label)}</sup>"
        ),
        xaxis_title=cost_label,
        # Weight counts span orders of magnitude: a log axis keeps the small models apart.
        xaxis_type="log"
        if costs and min(costs) > 0 and max(costs) >= 10 * min(costs)
        else "linear",
        yaxis_title=f"validation {metric}",
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


def _front_layers(
    points: list[Point], greater: bool, picked: int | None
) -> list[tuple[str, list[Point], dict[str, Any]]]:
    """The traces' names, points and styles: dominated trials, the Pareto front, and the picked trial if any."""
    front = pareto_front(points, greater)
    on_front = {p.key for p in front}
    layers = [
        (
            "dominated trials",
            [p for p in points if p.key not in on_front],
            {"mode": "markers", "marker": {"color": "#b0b0b0", "size": 8}},
        ),
        (
            "Pareto front",
            front,
            {
                "mode": "lines+markers",
                "marker": {"color": "#1f77b4", "size": 10},
                "line": {"shape": "hv"},
            },
        ),
    ]
    chosen = [p for p in points if p.key == picked]
    if chosen:
        star = {"mode": "markers", "marker": {"symbol": "star", "size": 18, "color": "#d62728"}}
        layers.append((f"picked: trial {picked}", chosen, star))
    return layers
