"""Store a finished job's results (reference document 002, flow 3: `store_simulation_results`).

Takes what `poll_simulation_status.py` returned for a `completed` or `partial` job and writes
every model-day once into a local SQLite file: table `model_days`, one row per (job, model,
date), and table `simulation_jobs`, one row per job with its `date_range` and
`last_simulation_date`. Storing the same results again stores nothing twice (a model-day
already there is counted in `already_stored` and left as it was). Money and quantities stay the
exact decimal strings tradeloom sends; nothing goes through a float.

Windmill runs `main(job_results)`; from a shell, the poll's JSON from a file or stdin:

    python3 poll_simulation_status.py --wait | python3 store_simulation_results.py -

Settings: TRADELOOM_RESULTS_DB (default simulation_results.db), or `database`. Standard library
only; Python 3.10 or newer.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from datetime import datetime, timezone

SCHEMA = """
CREATE TABLE IF NOT EXISTS simulation_jobs (
    job_id               TEXT PRIMARY KEY,
    status               TEXT NOT NULL,
    models               TEXT NOT NULL,     -- JSON array of model names
    date_range           TEXT NOT NULL,     -- JSON array of every trading date of the job
    last_simulation_date TEXT,              -- the latest date a model-day completed on
    completed_at         TEXT,
    stored_at            TEXT NOT NULL      -- when it was first stored
);
CREATE TABLE IF NOT EXISTS model_days (
    job_id           TEXT NOT NULL,
    model            TEXT NOT NULL,
    date             TEXT NOT NULL,
    cash             TEXT NOT NULL,         -- exact decimal strings, as tradeloom sends them
    portfolio_value  TEXT NOT NULL,
    previous_value   TEXT NOT NULL,
    daily_profit     TEXT NOT NULL,
    daily_return_pct TEXT,
    positions        TEXT NOT NULL,         -- JSON object: symbol -> quantity, and CASH -> cash
    stored_at        TEXT NOT NULL,
    PRIMARY KEY (job_id, model, date)
);
"""


class ResultsError(ValueError):
    """`job_results` is not what the poll returns: names the place and what is missing."""


def field(record: dict, name: str, where: str):
    if not isinstance(record, dict) or record.get(name) is None:
        raise ResultsError(
            f"{where}: `{name}` is missing (store the output of poll_simulation_status.py, "
            "which asks GET /results with detail=full)"
        )
    return record[name]


def rows(job_results: dict, stored_at: str) -> list[tuple]:
    """One row per model-day, checked before anything is written."""
    job_id = field(job_results, "job_id", "job_results")
    out = []
    for i, date_result in enumerate(field(job_results, "results", "job_results")):
        where = f"job_results.results[{i}]"
        date = field(date_result, "date", where)
        for j, model_result in enumerate(field(date_result, "results", where)):
            at = f"{where}.results[{j}]"
            positions = field(model_result, "positions", at)
            pnl = field(model_result, "daily_pnl", at)
            if field(model_result, "date", at) != date:
                raise ResultsError(f"{at}: date {model_result['date']} under {date}")
            out.append(
                (
                    job_id,
                    field(model_result, "model", at),
                    date,
                    field(positions, "CASH", f"{at}.positions"),
                    field(pnl, "portfolio_value", f"{at}.daily_pnl"),
                    field(pnl, "previous_value", f"{at}.daily_pnl"),
                    field(pnl, "profit", f"{at}.daily_pnl"),
                    pnl.get("return_pct"),
                    json.dumps(positions, sort_keys=True),
                    stored_at,
                )
            )
    return out


def main(job_results: dict, database: str = "") -> dict:
    """Writes each model-day of `job_results` not stored yet; returns how many it wrote."""
    if job_results.get("status") not in ("completed", "partial"):
        return {"message": "Job not complete, skipping storage", "stored_count": 0}
    database = database or os.environ.get("TRADELOOM_RESULTS_DB") or "simulation_results.db"
    stored_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    model_days = rows(job_results, stored_at)
    job_id = job_results["job_id"]
    job = (
        job_id,
        job_results["status"],
        json.dumps(field(job_results, "models", "job_results")),
        json.dumps(field(job_results, "date_range", "job_results")),
        job_results.get("last_simulation_date"),
        job_results.get("completed_at"),
        stored_at,
    )

    connection = sqlite3.connect(database)
    try:
        with connection:  # one transaction: all of it or nothing
            connection.executescript(SCHEMA)
            # A job polled again after a re-trigger finished more of it: its status and dates
            # move on, its first stored_at stays.
            connection.execute(
                """INSERT INTO simulation_jobs VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (job_id) DO UPDATE SET status = excluded.status,
                       models = excluded.models, date_range = excluded.date_range,
                       last_simulation_date = excluded.last_simulation_date,
                       completed_at = excluded.completed_at""",
                job,
            )
            stored = 0
            for row in model_days:
                cursor = connection.execute(
                    """INSERT INTO model_days VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (job_id, model, date) DO NOTHING""",
                    row,
                )
                stored += cursor.rowcount
    finally:
        connection.close()

    return {
        "stored_count": stored,
        "already_stored": len(model_days) - stored,
        "job_id": job_id,
        "database": database,
        "message": f"Stored {stored} model-day results",
    }


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("job_results", help="the poll's JSON: a file, or - for stdin")
    parser.add_argument("--database", default="", help="the SQLite file")
    args = parser.parse_args(argv)
    try:
        if args.job_results == "-":
            job_results = json.load(sys.stdin)
        else:
            with open(args.job_results, encoding="utf-8") as f:
                job_results = json.load(f)
        if not isinstance(job_results, dict):
            raise ResultsError("job_results: expected a JSON object")
        result = main(job_results, database=args.database)
    except (OSError, ValueError, sqlite3.Error) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
