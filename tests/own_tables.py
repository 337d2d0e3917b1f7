"""Generated tables for the bring-your-own-table tests: shapes and names a user's table may have."""

from __future__ import annotations

import numpy as np
import pandas as pd

CLASSES = ["high", "low", "normal"]
WORDS = {
    "high": ["outage", "urgent", "crash", "data loss", "cannot log in"],
    "normal": ["slow", "error message", "bug", "broken link"],
    "low": ["question", "how do i", "feature idea", "thanks"],
}
FILLER = ["the", "app", "page", "when", "after", "update", "report", "export", "please", "our"]
# Column names with spaces, punctuation and non-ASCII letters, as a spreadsheet export has them.
ODD_NAMES = {
    "ticket_id": "Ticket №",
    "plan": "Plan (tier)",
    "hours_open": "Hours open (Ø)",
    "messages": "Messages",
    "channel": "Canal de contact",
    "description": "Description du problème",
    "priority": "Priorité",
}


def make_tickets(rows: int, seed: int) -> pd.DataFrame:
    """Support tickets whose priority shows in the description's words, the plan and the hours open; missing
    values in the channel and the hours."""
    rng = np.random.default_rng(seed)
    priority = rng.choice(["low", "normal", "high"], size=rows, p=[0.4, 0.35, 0.25])
    descriptions = []
    for label in priority:
        words = [str(word) for word in rng.choice(FILLER, size=int(rng.integers(3, 9)))]
        source = label if rng.random() < 0.85 else str(rng.choice(CLASSES))
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(WORDS[source])))
        descriptions.append(" ".join(words).capitalize() + ".<br />")
    plans = rng.choice(["free", "pro", "enterprise"], size=rows)
    plans = np.where(priority == "high", rng.choice(["pro", "enterprise"], size=rows), plans)
    channel = rng.choice(["email", "phone", "chat"], size=rows).astype(object)
    channel[rng.random(rows) < 0.1] = None
    hours = np.round(rng.gamma(2.0, 5.0, size=rows) * np.where(priority == "low", 2.0, 1.0), 1)
    hours[rng.random(rows) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "ticket_id": [f"T{index:05d}" for index in range(rows)],
            "plan": plans,
            "hours_open": hours,
            "messages": rng.poisson(3, size=rows),
            "channel": channel,
            "description": descriptions,
            "priority": priority,
        }
    )
