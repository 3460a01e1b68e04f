"""Memory over time: the scheduler's and the keeper's RSS while a real ``conductor up`` runs many jobs.

A node declared with 32 CPUs (WORKER_CONCURRENCY=32) runs trivial one-CPU jobs, batch-submitted
1,000 at a time whenever fewer than 2,000 wait, until ``--jobs`` have ended.  At every
``--every`` ended jobs it prints the resident memory of the scheduler actor's process and of the
node's keeper (the owner of the job tasks, where Ray keeps its per-task state), and at the end the
ratio of the last sample to the one at ``--reference`` jobs (the issue: RSS after 20,000 jobs <=
1.25 x after 5,000).  The processes are the ones that appeared with this ``conductor up``.

Run:  .venv/bin/python bench/memory_over_time.py [--jobs 20000] [--every 2500] [--reference 5000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import burst  # noqa: E402 - the same conductor up, job body and batch submit as the burst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--every", type=int, default=2_500)
    parser.add_argument("--reference", type=int, default=5_000)
    options = parser.parse_args()
    print(f"# bench/memory_over_time.py: {options.jobs} jobs; load before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="memory-") as directory:
        work = Path(directory)
        marks = work / "marks"
        marks.mkdir()
        before = burst.processes()
        with burst.conductor_up(str(Path(sys.executable).with_name("conductor")), work) as url, \
                httpx.Client(base_url=url, timeout=120) as client:
            new = {pid: args for pid, args in burst.processes().items() if pid not in before}
            scheduler = next(pid for pid, args in new.items() if args.startswith("ray::Scheduler"))
            keeper = next(pid for pid, args in new.items() if args.startswith("ray::Keeper"))
            submitted, samples, next_sample = 0, [], options.every
            started = time.monotonic()
            print(f"{'ended':>7s} {'scheduler MB':>13s} {'keeper MB':>10s} {'elapsed s':>10s}")
            while True:
                ended = sum(1 for _ in marks.iterdir())
                if submitted - ended < 2_000 and submitted < options.jobs:
                    count = min(1_000, options.jobs - submitted)
                    burst._submit_batch(client, [burst._job(marks, work, submitted + i) for i in range(count)])
                    submitted += count
                if ended >= next_sample:
                    samples.append((ended, burst.rss_mb(scheduler), burst.rss_mb(keeper)))
                    print(f"{ended:7d} {samples[-1][1]:13.1f} {samples[-1][2]:10.1f} "
                          f"{time.monotonic() - started:10.1f}", flush=True)
                    next_sample += options.every
                if ended >= options.jobs:
                    break
                time.sleep(0.2)
    reference = min(samples, key=lambda s: abs(s[0] - options.reference))
    last = samples[-1]
    print(f"scheduler RSS at {last[0]} / at {reference[0]} jobs: {last[1] / reference[1]:.2f}x  "
          f"(keeper {last[2] / reference[2]:.2f}x)")
    print(f"# load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
