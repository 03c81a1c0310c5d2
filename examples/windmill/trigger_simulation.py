"""Trigger a tradeloom simulation job (reference document 002, flow 1: `trigger_simulation`).

`POST /simulate/trigger` with a config file of the server's config folder (`config_path`, as
AI-Trader's script sends it) or an inline config object; the job id goes to a job file for
`poll_simulation_status.py`. A config whose model-days are all done answers `current`: nothing
runs and the result says `skipped`.

Windmill runs `main(...)`; from a shell:

    python3 trigger_simulation.py --config-path simulation.yaml
    python3 trigger_simulation.py --config-file my-config.json

Settings: API_HOST (default 127.0.0.1; 0.0.0.0 means this host), API_PORT (default 8080),
TRADELOOM_API_KEY (an `operator` key, when the server asks for one), TRADELOOM_JOB_FILE (default
/tmp/tradeloom_current_job_id.txt). A Windmill resource `tradeloom_api` ({base_url, api_key})
takes the place of the first three. Standard library only; Python 3.10 or newer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any, TypedDict

DEFAULT_JOB_FILE = "/tmp/tradeloom_current_job_id.txt"


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


def main(
    tradeloom_api: tradeloom_api | None = None,
    config_path: str = "",
    config: dict | None = None,
    job_file: str = "",
) -> dict:
    """Starts the job of `config_path` (a file of `serve --config-dir`) or of `config`."""
    base_url, key = settings(tradeloom_api)
    if bool(config_path) == bool(config):
        raise TradeloomError("give exactly one of config_path and config")
    body = {"config_path": config_path} if config_path else {"config": config}
    status, data = call("POST", base_url, "/simulate/trigger", key, body)
    if status == 404:
        raise TradeloomError(f"POST /simulate/trigger: 404 {data.get('message')}")

    if data["status"] == "current":
        print("Simulation already up-to-date", file=sys.stderr)
        return {
            "action": "skipped",
            "message": data["message"],
            "job_id": data["job_id"],
            "last_date": data.get("last_simulation_date"),
            "date_range": data["date_range"],
        }

    # The job id for the poller to pick up.
    job_file = job_file or os.environ.get("TRADELOOM_JOB_FILE") or DEFAULT_JOB_FILE
    with open(job_file, "w", encoding="utf-8") as f:
        f.write(data["job_id"])
    print(f"Simulation triggered: {data['job_id']}", file=sys.stderr)
    print(f"Date range: {', '.join(data['date_range'])}", file=sys.stderr)
    print(f"Models: {', '.join(data['models'])}", file=sys.stderr)
    return {
        "action": "triggered",
        "job_id": data["job_id"],
        "date_range": data["date_range"],
        "models": data["models"],
        "status": data["status"],
        "resumed": data["resumed"],
    }


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--config-path", help="a config file in the server's --config-dir, relative to it"
    )
    which.add_argument(
        "--config-file", help="a local JSON config file, sent inline as `config`"
    )
    parser.add_argument("--job-file", default="", help="where the job id is written")
    args = parser.parse_args(argv)
    try:
        config = None
        if args.config_file:
            with open(args.config_file, encoding="utf-8") as f:
                config = json.load(f)
        result = main(
            config_path=args.config_path or "", config=config, job_file=args.job_file
        )
    except (TradeloomError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
