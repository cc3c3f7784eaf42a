"""``python -m bench``: credential_process latency, warm and cold, relative to bare Python.

Three commands are timed side by side, interleaved round by round so that machine
noise hits all of them alike:

* ``baseline``: ``python -c pass`` (what starting the interpreter costs);
* ``warm``: ``python -m provisioner credentials`` with a fresh cache (no network);
* ``cold``: the same with ``--refresh-margin 43200``, so every call takes the lock,
  does the mutual-TLS fetch from the stand-in and rewrites the cache.

Reported: median and p90 wall time in ms, and each median as a ratio to the baseline
median. Results go to bench/results/latest.json (gitignored) and a table on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.standin_device import REPO, enroll_device, start_standin

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def time_once(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    completed = subprocess.run(argv, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    elapsed = (time.perf_counter() - started) * 1000
    if completed.returncode != 0:
        raise RuntimeError(f"{argv[2:]} failed ({completed.returncode}): {completed.stderr.decode()[-500:]}")
    return elapsed


def summarize(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 2),
        "min_ms": round(ordered[0], 2),
        "runs": len(ordered),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="device-trust-bench-") as tmp:
        tmp_path = Path(tmp)
        standin = start_standin(tmp_path / "standin")
        try:
            profile_dir = enroll_device(standin, tmp_path / "profile")
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update(standin.env)
            python = sys.executable
            commands = {
                "baseline": [python, "-c", "pass"],
                "warm": [python, "-m", "provisioner", "credentials", "--profile-dir", str(profile_dir)],
                "cold": [python, "-m", "provisioner", "credentials", "--profile-dir", str(profile_dir),
                         "--refresh-margin", "43200"],
            }
            # the cold command refreshes the cache each time; warm always finds it fresh
            for _ in range(args.warmup):
                for name in ("cold", "warm", "baseline"):
                    time_once(commands[name], env)
            requests_before = standin.credentials_requests()
            samples: dict[str, list[float]] = {name: [] for name in commands}
            for round_number in range(args.rounds):
                order = list(commands)
                order = order[round_number % 3:] + order[:round_number % 3]  # rotate who goes first
                for name in order:
                    samples[name].append(time_once(commands[name], env))
            time.sleep(0.2)
            fetches = standin.credentials_requests() - requests_before
        finally:
            standin.stop()

    summary = {name: summarize(values) for name, values in samples.items()}
    base = summary["baseline"]["median_ms"]
    for name in ("warm", "cold"):
        summary[name]["ratio_to_baseline"] = round(summary[name]["median_ms"] / base, 2)
    result = {
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": sys.version.split()[0],
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "rounds": args.rounds,
        "credentials_requests_during_timed_rounds": fetches,
        "expected_requests": args.rounds,  # one per cold call, none for warm calls
        "results": summary,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")

    print(f"credential_process latency, {args.rounds} interleaved rounds, {result['machine']}, Python {result['python']}")
    print(f"{'command':<10}{'median ms':>11}{'p90 ms':>9}{'min ms':>9}{'x python -c pass':>18}")
    for name in ("baseline", "warm", "cold"):
        row = summary[name]
        ratio = f"{row.get('ratio_to_baseline', 1.0):.2f}"
        print(f"{name:<10}{row['median_ms']:>11.1f}{row['p90_ms']:>9.1f}{row['min_ms']:>9.1f}{ratio:>18}")
    print(f"credentials endpoint requests during timed rounds: {fetches} (cold calls: {args.rounds})")
    print(f"written: {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
