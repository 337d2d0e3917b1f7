"""Build the demo sources derived from the Telco CSV: the billing database and simulated crowd labels.

Run from the project folder::

    python -m deep_learning_workflow.pipelines.data_acquisition.build_demo_data

``data/01_raw/telco_billing.sqlite``: the CSV's billing columns in a table ``billing`` (one row per customer;
contract and payment method as ids into the tables ``contracts`` and ``payment_methods``), standing in for a
company database. ``data/01_raw/telco_annotations.csv``: SIMULATED annotator votes, not real
annotations: for a random subset of customers, 3-5 of a pool of simulated annotators each give the true ``churn``
label with that annotator's own accuracy, or the other label otherwise. Both are reproducible (fixed seed).
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd

BILLING_COLUMNS = [
    "customer_id",
    "contract",
    "paperless_billing",
    "payment_method",
    "monthly_charges",
    "total_charges",
]
# Contracts and payment methods live in lookup tables, as in a normalised company database.
SCHEMA = """
CREATE TABLE contracts (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE payment_methods (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE billing (
    customer_id TEXT PRIMARY KEY,
    contract_id INTEGER NOT NULL REFERENCES contracts (id),
    paperless_billing INTEGER NOT NULL,
    payment_method_id INTEGER NOT NULL REFERENCES payment_methods (id),
    monthly_charges REAL NOT NULL,
    total_charges REAL
) WITHOUT ROWID;
"""

logger = logging.getLogger(__name__)


def write_billing_database(customers: pd.DataFrame, path: Path) -> None:
    """Write the billing columns into a new SQLite file at ``path`` (replaced atomically)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    contracts = {
        name: number for number, name in enumerate(sorted(customers["contract"].unique()), 1)
    }
    methods = {
        name: number for number, name in enumerate(sorted(customers["payment_method"].unique()), 1)
    }
    rows = [
        (
            row.customer_id,
            contracts[row.contract],
            int(row.paperless_billing),
            methods[row.payment_method],
            float(row.monthly_charges),
            None if pd.isna(row.total_charges) else float(row.total_charges),
        )
        for row in customers[BILLING_COLUMNS].itertuples(index=False)
    ]
    connection = sqlite3.connect(partial)
    try:
        connection.executescript(SCHEMA)
        connection.executemany(
            "INSERT INTO contracts VALUES (?, ?)", [(n, c) for c, n in contracts.items()]
        )
        connection.executemany(
            "INSERT INTO payment_methods VALUES (?, ?)", [(n, m) for m, n in methods.items()]
        )
        connection.executemany("INSERT INTO billing VALUES (?, ?, ?, ?, ?, ?)", rows)
        connection.commit()
        connection.execute("VACUUM")
    finally:
        connection.close()
    os.replace(partial, path)


def simulate_annotations(
    customers: pd.DataFrame,
    key: str = "customer_id",
    target: str = "churn",
    items: int = 1000,
    annotators: int = 12,
    seed: int = 42,
) -> pd.DataFrame:
    """Simulated votes of several noisy annotators on the target of a random subset of rows.

    Each annotator has a fixed accuracy drawn from [0.65, 0.95]; each chosen row gets 3-5 distinct annotators,
    each of whom gives the true label with their accuracy and another label otherwise.

    Returns:
        One row per (key, annotator_id) with the ``label``, sorted.
    """
    rng = np.random.default_rng(seed)
    classes = np.array(sorted(customers[target].dropna().unique()))
    accuracy = rng.uniform(0.65, 0.95, size=annotators)
    chosen = customers.iloc[np.sort(rng.choice(len(customers), size=items, replace=False))]
    records = []
    for item, truth in zip(chosen[key], chosen[target], strict=True):
        for annotator in np.sort(rng.choice(annotators, size=rng.integers(3, 6), replace=False)):
            label = truth
            if rng.random() >= accuracy[annotator]:
                label = rng.choice(classes[classes != truth])
            records.append((item, f"A{annotator + 1:02d}", str(label)))
    return pd.DataFrame.from_records(records, columns=[key, "annotator_id", "label"])


def main(argv: list[str] | None = None) -> None:
    """Build both demo sources from the Telco CSV."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=Path("data/01_raw/telco_churn.csv"))
    parser.add_argument("--output-dir", type=Path, default=Path("data/01_raw"))
    parser.add_argument("--seed", type=int, default=42)
    arguments = parser.parse_args(argv)
    customers = pd.read_csv(arguments.csv)
    arguments.output_dir.mkdir(parents=True, exist_ok=True)
    database = arguments.output_dir / "telco_billing.sqlite"
    write_billing_database(customers, database)
    annotations = arguments.output_dir / "telco_annotations.csv"
    partial = annotations.with_name(f".{annotations.name}.partial")
    simulate_annotations(customers, seed=arguments.seed).to_csv(partial, index=False)
    os.replace(partial, annotations)
    logger.info("Wrote %s and %s", database, annotations)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
