"""Student-route latency on this machine: a closed-set answer from the embedded vLLM,
one request at a time, idle and beside a real training run.

    python -m bench.student_latency.run [--requests 30] [--reserved auto,0]
        [--beside none,train:0,train:10] [--adapter DIR]

For each `--reserved` value (the `DISTILL_VLLM_CPU_RESERVED_CORES` setting; `auto` leaves
vLLM's choice) a vLLM is started exactly as `distill serve` starts it (same command and
child environment), then each `--beside` condition is measured: `none` (idle), or
`train:N`, a LoRA training run of the Banking77 trainer benchmark started at niceness N
(`DISTILL_TRAIN_NICE`) and probed once its steps are running. Requests are Banking77
validation queries with the 77-label structured choice and top-5 logprobs, what the proxy
sends for a closed-set task. Prints p50/p95 per condition and the ratio to the first
condition of the same run; writes bench/student_latency/results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.banking77.data import load_categories, load_split
from bench.common.console import say
from bench.common.machine import machine_info
from bench.common.procs import REPO_ROOT, Child, child_env, free_port, start, stop, wait_http
from bench.harness.stack import ensure_base_model
from proxy.settings import Settings
from proxy.student.command import build_command, child_env_overrides, detect_device

HERE = Path(__file__).resolve().parent
TRAINER_BENCH = REPO_ROOT / "tests" / "trainer" / "bench_trainer_banking77.py"
WARMUP = 3  # the first answers compile kernels and the grammar


def start_vllm(model: Path, reserved: str, work: Path) -> tuple[Child, str]:
    cores = None if reserved == "auto" else int(reserved)
    settings = Settings(vllm_cpu_reserved_cores=cores)
    port = free_port()
    cmd = build_command(settings, model=str(model), served_name="student", port=port)
    env = child_env(child_env_overrides(settings, detect_device()))
    child = start(f"vllm-{reserved}", cmd, work / f"vllm-{reserved}.log", env)
    root = f"http://127.0.0.1:{port}"
    wait_http(f"{root}/v1/models", child, timeout=900.0)
    return child, root


def start_training(model: Path, nice: int, work: Path) -> Child:
    """A long LoRA run (stopped once measured); returns when its steps are running."""
    out = work / f"train-nice{nice}"
    cmd = ["nice", "-n", str(nice), sys.executable, str(TRAINER_BENCH), "--model", str(model),
           "--rows", "400", "--epochs", "50", "--prune", "--out", str(out)]  # fmt: skip
    child = start(f"train-nice{nice}", cmd, work / f"train-nice{nice}.log")
    progress = out / "run" / "progress.json"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and child.alive():
        try:
            if json.loads(progress.read_text()).get("step", 0) >= 2:
                return child
        except (OSError, ValueError):
            pass
        time.sleep(2)
    raise RuntimeError(f"the training run did not start its steps:\n{child.tail()}")


def probe(root: str, queries: list[str], labels: list[str], adapter: str | None) -> list[float]:
    """Seconds per closed-set answer, one request at a time (warm-up answers dropped)."""
    times = []
    with httpx.Client(timeout=120.0, trust_env=False) as http:
        for q in queries:
            body = {
                "model": adapter or "student",
                "messages": [{"role": "user", "content": q}],
                "temperature": 0,
                "max_tokens": 32,
                "structured_outputs": {"choice": labels},
                "logprobs": True,
                "top_logprobs": 5,
            }
            t0 = time.perf_counter()
            http.post(f"{root}/v1/chat/completions", json=body).raise_for_status()
            times.append(time.perf_counter() - t0)
    return times[WARMUP:]


def load_adapter(root: str, path: Path) -> str:
    body = {"lora_name": "bench-adapter", "lora_path": str(path)}
    httpx.post(f"{root}/v1/load_lora_adapter", json=body, timeout=120.0).raise_for_status()
    return "bench-adapter"


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(times),
        "p50_ms": round(1000 * statistics.median(times), 1),
        "p95_ms": round(1000 * p95, 1),
    }


def measure(args: argparse.Namespace, model: Path, work: Path) -> list[dict[str, Any]]:
    labels = load_categories()
    queries = [e.text for e in load_split().validation[: args.requests + WARMUP]]
    rows: list[dict[str, Any]] = []
    for reserved in args.reserved.split(","):
        with ExitStack() as stack:
            vllm, root = start_vllm(model, reserved, work)
            stack.callback(stop, vllm)
            adapter = load_adapter(root, args.adapter) if args.adapter else None
            for beside in args.beside.split(","):
                if beside != "none":
                    trainer = start_training(model, int(beside.split(":")[1]), work)
                try:
                    times = probe(root, queries, labels, adapter)
                finally:
                    if beside != "none":
                        stop(trainer)
                row = {"reserved_cores": reserved, "beside": beside, **summary(times)}
                say(f"reserved={reserved} beside={beside}: p50 {row['p50_ms']} ms, "
                    f"p95 {row['p95_ms']} ms")  # fmt: skip
                rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.student_latency.run")
    p.add_argument("--requests", type=int, default=30, help="timed answers per condition")
    p.add_argument("--reserved", default="auto,0", help="DISTILL_VLLM_CPU_RESERVED_CORES values")
    p.add_argument("--beside", default="none,train:0,train:10", help="none or train:NICENESS")
    p.add_argument("--adapter", type=Path, help="a LoRA adapter to serve (default: base model)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    args = p.parse_args()
    model = ensure_base_model()
    with tempfile.TemporaryDirectory(prefix="student-latency-") as tmp:
        rows = measure(args, model, Path(tmp))
    base = rows[0]["p50_ms"]
    for row in rows:
        row["p50_vs_first"] = round(row["p50_ms"] / base, 2)
    print("| reserved cores | beside | p50 ms | p95 ms | p50 vs first |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['reserved_cores']} | {r['beside']} | {r['p50_ms']} | {r['p95_ms']} | "
              f"{r['p50_vs_first']} |")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "argv": sys.argv[1:],
        "rows": rows,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
