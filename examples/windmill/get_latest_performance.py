"""Latest performance of each model (reference document 002: `get_latest_performance`).

Reads the SQLite file `store_simulation_results.py` writes and answers, per job and model, its
latest stored day: portfolio value, total return since the value its first day started from,
and that day's return — the rows of AI-Trader's dashboard table. Exact decimal arithmetic
(`decimal.Decimal`); percentages are rounded half away from zero to 2 places.

    python3 get_latest_performance.py [--database simulation_results.db]

Settings: TRADELOOM_RESULTS_DB (default simulation_results.db), or `database`. Standard library
only; Python 3.10 or newer.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def main(database: str = "") -> list[dict]:
    database = database or os.environ.get("TRADELOOM_RESULTS_DB") or "simulation_results.db"
    if not os.path.exists(database):
        raise FileNotFoundError(f"no results database at {database}: store results first")
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        days = connection.execute(
            """SELECT job_id, model, date, portfolio_value, previous_value, daily_return_pct
               FROM model_days ORDER BY job_id, model, date"""
        ).fetchall()
    finally:
        connection.close()

    first: dict[tuple[str, str], Decimal] = {}
    latest: dict[tuple[str, str], tuple] = {}
    for job_id, model, date, value, previous, daily_return in days:
        first.setdefault((job_id, model), Decimal(previous))
        latest[(job_id, model)] = (date, value, daily_return)
    summary = []
    for (job_id, model), (date, value, daily_return) in latest.items():
        initial = first[(job_id, model)]
        total = (Decimal(value) - initial) / initial * 100 if initial else None
        summary.append(
            {
                "job_id": job_id,
                "model": model,
                "latest_date": date,
                "portfolio_value": value,
                "total_return_pct": None
                if total is None
                else str(total.quantize(CENT, rounding=ROUND_HALF_UP)),
                "daily_return_pct": None
                if daily_return is None
                else str(Decimal(daily_return).quantize(CENT, rounding=ROUND_HALF_UP)),
            }
        )
    return summary


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="", help="the SQLite file")
    args = parser.parse_args(argv)
    try:
        result = main(database=args.database)
    except (OSError, sqlite3.Error, ArithmeticError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
