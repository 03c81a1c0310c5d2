"""The FastAPI + uvicorn peer of `tradeloom bench api`.

Our own small app (not copied from anywhere): it reads the same rows from the same SQLite file
as `tradeloom serve` and answers `GET /results?detail=minimal` and `GET /simulate/status/{id}`
with the same JSON, behind the same API-key check (`Authorization: Bearer <key>`, the key's
sha256 looked up in `api_keys`, revoked keys refused). One uvicorn worker, access log off.

    python fastapi_results.py --db PATH --port PORT
"""

import argparse
import hashlib
import json
import sqlite3
from datetime import datetime

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()
DB = None  # the sqlite3 connection, opened in main()


def body(obj, status=200):
    return Response(
        content=json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode(),
        status_code=status,
        media_type="application/json",
    )


def error(status, code, message, details=None):
    return body({"error": code, "message": message, "details": details or {}}, status)


def authenticated(request: Request):
    """None when the bearer key is a valid, unrevoked key; else the 401 answer."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return error(401, "unauthorized", "send `Authorization: Bearer <key>`",
                     {"reason": "missing_key"})
    digest = hashlib.sha256(key.encode()).hexdigest()
    row = DB.execute(
        "SELECT id, role FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL", (digest,)
    ).fetchone()
    if row is None:
        return error(401, "unauthorized", "the API key is unknown or revoked",
                     {"reason": "invalid_key"})
    return None


def money(text, precision):
    """A stored decimal as tradeloom prints money: at least the currency's decimals."""
    if text is None:
        return None
    if precision == 0:
        return text
    whole, _, frac = text.partition(".")
    return whole + "." + frac.ljust(precision, "0")


def timestamp(text):
    """A stored UTC timestamp as chrono serializes it (`...Z`)."""
    if text is None:
        return None
    return text.replace(" ", "T").replace("+00:00", "Z")


def parse_time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@app.get("/results")
async def results(request: Request, detail: str = "minimal", limit: int = 100, offset: int = 0):
    refused = authenticated(request)
    if refused is not None:
        return refused
    if detail != "minimal":
        return error(400, "invalid_query", "this peer answers detail=minimal only",
                     {"param": "detail"})
    rows = DB.execute(
        "WITH p AS (SELECT d.job_id, d.model, d.date, d.cash, d.portfolio_value, "
        "j.currency_precision FROM job_details d JOIN jobs j ON j.id = d.job_id "
        "WHERE d.status = 'completed' ORDER BY d.date, d.model, d.job_id LIMIT ? OFFSET ?) "
        "SELECT p.*, h.symbol, h.quantity FROM p LEFT JOIN holdings h ON h.job_id = p.job_id "
        "AND h.model = p.model AND h.date = p.date ORDER BY p.date, p.model, p.job_id, h.seq",
        (limit, offset),
    ).fetchall()
    items = []
    last = None
    for job_id, model, date, cash, value, precision, symbol, quantity in rows:
        if (job_id, model, date) != last:
            last = (job_id, model, date)
            items.append({
                "job_id": job_id,
                "model": model,
                "date": date,
                "cash": money(cash, precision) or "",
                "holdings": {},
                "portfolio_value": money(value, precision) or "",
            })
        if symbol is not None:
            items[-1]["holdings"][symbol] = quantity
    for item in items:
        item["holdings"] = dict(sorted(item["holdings"].items()))
    if offset == 0 and len(items) < limit:
        total = len(items)
    else:
        total = DB.execute(
            "SELECT COUNT(*) FROM job_details WHERE status = 'completed'"
        ).fetchone()[0]
    following = offset + len(items)
    return body({
        "results": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": following if following < total else None,
    })


@app.get("/simulate/status/{job_id}")
async def status(request: Request, job_id: str, details_offset: int = 0,
                 details_limit: int = 100):
    refused = authenticated(request)
    if refused is not None:
        return refused
    if not 1 <= details_limit <= 10_000:
        return error(400, "invalid_query",
                     f"details_limit: {details_limit} is not between 1 and 10000",
                     {"param": "details_limit"})
    job = DB.execute(
        "SELECT id, status, config, created_at, started_at, finished_at, error, config_hash, "
        "currency_precision FROM jobs WHERE id = ?",
        (job_id,),
    ).fetchone()
    if job is None:
        return error(404, "job_not_found", f"no job with id `{job_id}`", {"job_id": job_id})
    jid, jstatus, config, created, started, finished, jerror, chash, precision = job
    config = json.loads(config)
    progress = {"total_model_days": 0, "completed": 0, "failed": 0, "refused": 0,
                "pending": 0, "running": 0}
    for dstatus, count in DB.execute(
        "SELECT status, COUNT(*) FROM job_details WHERE job_id = ? GROUP BY status", (job_id,)
    ):
        progress["total_model_days"] += count
        progress[dstatus] += count
    # One page of the model-days, as tradeloom answers it.
    days = DB.execute(
        "SELECT model, date, status, error, attempts, started_at, finished_at, duration_ms, "
        "steps, tool_calls, tool_errors, portfolio_value FROM job_details WHERE job_id = ? "
        "ORDER BY date, model LIMIT ? OFFSET ?",
        (job_id, details_limit, details_offset),
    ).fetchall()
    details = []
    for model, date, dstatus, derror, attempts, dstart, dfinish, ms, steps, calls, errs, value \
            in days:
        details.append({
            "model": model, "date": date, "status": dstatus, "error": derror,
            "attempts": attempts, "started_at": timestamp(dstart),
            "finished_at": timestamp(dfinish), "duration_ms": ms, "steps": steps,
            "tool_calls": calls, "tool_errors": errs,
            "portfolio_value": money(value, precision),
        })
    duration = None
    if started is not None:
        end = parse_time(finished) if finished is not None else datetime.now().astimezone()
        delta = end - parse_time(started)
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        millis = int(micros / 1000)  # toward zero, as chrono's num_milliseconds
        duration = millis / 1000.0
    date_range = [d for d in (config.get("start_date"), config.get("end_date"))
                  if isinstance(d, str)]
    models = [m["name"] for m in config.get("models", []) if isinstance(m.get("name"), str)]
    return body({
        "job_id": jid, "status": jstatus, "date_range": date_range, "models": models,
        "progress": progress, "created_at": timestamp(created),
        "started_at": timestamp(started), "completed_at": timestamp(finished),
        "total_duration_seconds": duration, "error": jerror, "config_hash": chash,
        "details": details, "details_total": progress["total_model_days"],
        "details_offset": details_offset,
        "details_next_offset": following if (following := details_offset + details_limit)
        < progress["total_model_days"] else None,
    })


def main():
    global DB
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    DB = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True, check_same_thread=False)
    uvicorn.run(app, host="127.0.0.1", port=args.port, workers=1, access_log=False,
                log_level="warning")


if __name__ == "__main__":
    main()
