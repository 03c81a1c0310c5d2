"""Poll a tradeloom simulation job (reference document 002, flow 2: `poll_simulation_status`).

`GET /simulate/status/{job_id}` for the job given, or the one `trigger_simulation.py` wrote to
the job file. While it runs, the answer is its progress; once it is `completed` or `partial`,
every completed model-day comes with it, grouped by date as AI-Trader's poller returned them
(`GET /results?job_id=…&date=…&detail=full`: `positions` with `CASH`, and `daily_pnl`), and the
job file is removed. `store_simulation_results.py` takes that answer.

Windmill runs `main(...)` on a schedule (each run one poll); from a shell `--wait` polls until
the job is no longer pending or running:

    python3 poll_simulation_status.py --wait > job_results.json

Settings: API_HOST (default 127.0.0.1; 0.0.0.0 means this host), API_PORT (default 8080),
TRADELOOM_API_KEY (a `viewer` key is enough, when the server asks for one), TRADELOOM_JOB_FILE
(default /tmp/tradeloom_current_job_id.txt). A Windmill resource `tradeloom_api` ({base_url,
api_key}) takes the place of the first three. Standard library only; Python 3.10 or newer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, TypedDict

DEFAULT_JOB_FILE = "/tmp/tradeloom_current_job_id.txt"

# What a poll returns of each model-day: the fields AI-Trader's store script reads, and the
# day's identity. `detail=full` also sends trades, reasoning and tool calls, left out here.
RESULT_FIELDS = (
    "job_id",
    "model",
    "date",
    "cash",
    "holdings",
    "portfolio_value",
    "positions",
    "daily_pnl",
)
# Job statuses after which nothing more happens without a user (a re-trigger or a resume).
RUNNING = ("pending", "running")


# Windmill passes a resource to a parameter typed with a TypedDict named after the resource type.
class tradeloom_api(TypedDict, total=False):  # noqa: N801
    """A Windmill resource: where the tradeloom API is and the key it takes."""

    base_url: str
    api_key: str


class TradeloomError(RuntimeError):
    """A request that failed: what was asked, and what the server or the network said."""


def settings(resource: tradeloom_api | None) -> tuple[str, str | None]:
    """The API's base URL and key: from the resource, else from the environment."""
    if resource and resource.get("base_url"):
        return resource["base_url"].rstrip("/"), resource.get("api_key") or None
    host = os.environ.get("API_HOST", "").strip() or "127.0.0.1"
    if host in ("0.0.0.0", "::"):  # the server's bind-all address: reach it on this host
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = os.environ.get("API_PORT", "").strip() or "8080"
    if not port.isdigit():
        raise TradeloomError(f"API_PORT `{port}` is not a port number")
    return f"http://{host}:{port}", os.environ.get("TRADELOOM_API_KEY") or None


def call(
    method: str, base_url: str, path: str, key: str | None, body: Any = None
) -> tuple[int, Any]:
    """One request; returns (status, JSON body) for 2xx and 404, raises TradeloomError else."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{base_url}{path}", data=data, method=method)
    request.add_header("accept", "application/json")
    if data is not None:
        request.add_header("content-type", "application/json")
    if key:
        request.add_header("authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        text = e.read().decode(errors="replace")
        try:
            answer = json.loads(text)
        except ValueError:
            answer = {"error": "not_json", "message": text[:200]}
        if e.code == 404:
            return e.code, answer
        hint = ""
        if e.code == 401:
            hint = " (set TRADELOOM_API_KEY to an API key of this server)"
        elif e.code == 403:
            hint = " (the key's role is too low: triggering needs `operator`, reading `viewer`)"
        raise TradeloomError(
            f"{method} {path}: {e.code} {answer.get('error')}: {answer.get('message')}{hint}"
        ) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise TradeloomError(
            f"cannot reach tradeloom at {base_url} (API_HOST, API_PORT): {reason}"
        ) from None


def read_job_file(job_file: str) -> str | None:
    try:
        with open(job_file, encoding="utf-8") as f:
            return f.read().strip() or None
    except FileNotFoundError:
        return None


def results_by_date(
    base_url: str, key: str | None, job_id: str, dates: list[str]
) -> list[dict]:
    """Every completed model-day of the job, as `[{date, results: [...]}]` in date order."""
    grouped = []
    for date in dates:
        day: list[dict] = []
        offset: int | None = 0
        while offset is not None:
            query = urllib.parse.urlencode(
                {"job_id": job_id, "date": date, "detail": "full", "limit": 1000, "offset": offset}
            )
            status, page = call("GET", base_url, f"/results?{query}", key)
            if status == 404:
                raise TradeloomError(f"GET /results: 404 {page.get('message')}")
            day.extend({k: item.get(k) for k in RESULT_FIELDS} for item in page["results"])
            offset = page.get("next_offset")
        grouped.append({"date": date, "results": day})
    return grouped


def main(
    tradeloom_api: tradeloom_api | None = None,
    job_id: str = "",
    job_file: str = "",
    wait: bool = False,
    interval_seconds: float = 5.0,
    timeout_seconds: float = 3600.0,
) -> dict:
    """One poll of the job (with `wait`, polls until it is no longer pending or running)."""
    base_url, key = settings(tradeloom_api)
    job_file = job_file or os.environ.get("TRADELOOM_JOB_FILE") or DEFAULT_JOB_FILE
    job_id = job_id or read_job_file(job_file) or ""
    if not job_id:
        return {"status": "no_job", "message": "No active simulation job"}

    deadline = time.monotonic() + timeout_seconds
    path = f"/simulate/status/{urllib.parse.quote(job_id, safe='')}?details_limit=1"
    while True:
        status, data = call("GET", base_url, path, key)
        if status == 404:
            return {"status": "not_found", "message": "Job not found", "job_id": job_id}
        progress = data["progress"]
        print(
            f"Job {job_id}: {data['status']}, "
            f"{progress['completed']}/{progress['total_model_days']} model-days completed",
            file=sys.stderr,
        )
        if not wait or data["status"] not in RUNNING:
            break
        if time.monotonic() > deadline:
            raise TradeloomError(
                f"job {job_id} is still {data['status']} after {timeout_seconds:g} s"
            )
        time.sleep(interval_seconds)

    if data["status"] in ("completed", "partial"):
        results = results_by_date(base_url, key, job_id, data["date_range"])
        if read_job_file(job_file) == job_id:
            os.remove(job_file)
        return {
            "status": data["status"],
            "job_id": job_id,
            "models": data["models"],
            "date_range": data["date_range"],
            "last_simulation_date": data["last_simulation_date"],
            "progress": progress,
            "completed_at": data["completed_at"],
            "duration_seconds": data["total_duration_seconds"],
            "results": results,
        }
    return {
        "status": data["status"],
        "job_id": job_id,
        "progress": progress,
        "error": data.get("error"),
        "started_at": data["created_at"],
    }


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--job-id", default="", help="default: the job file's")
    parser.add_argument("--job-file", default="", help="where trigger_simulation.py wrote it")
    parser.add_argument("--wait", action="store_true", help="poll until it is done")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between polls")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait at most")
    args = parser.parse_args(argv)
    try:
        result = main(
            job_id=args.job_id,
            job_file=args.job_file,
            wait=args.wait,
            interval_seconds=args.interval,
            timeout_seconds=args.timeout,
        )
    except (TradeloomError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
