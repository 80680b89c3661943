"""A small resumable pipeline on ckpt: process N file indices with a few workers.

    python3 examples/pipeline.py --address local:./ckpt-data   # nothing else to start
    python3 examples/pipeline.py --address 127.0.0.1:7700       # a served ckptd

Interrupt it (Ctrl-C) and run it again: only what was left is processed. Options:
--mode track (record mode: a plain loop wrapped in ckpt.track), --fail-every K (every
K-th index raises, to see failures recorded and listed), --reset (start over).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import threading
import time
from typing import Optional, Sequence

import ckpt


def process(index: int, fail_every: int) -> str:
    """Stands for real work on one input file."""
    if fail_every and index % fail_every == fail_every - 1:
        raise ValueError(f"corrupt header in part-{index:05d}")
    digest = hashlib.sha256(str(index).encode())
    for _ in range(2000):
        digest = hashlib.sha256(digest.digest())
    return digest.hexdigest()


def run_workers(job: ckpt.Job, workers: int, fail_every: int) -> None:
    """`workers` threads, each with its own ckpt.Worker, share the job's items."""

    def work() -> None:
        with job.worker(lease_batch=4) as worker:
            for item in worker:
                with item:  # completes the item, or fails it with the exception's text
                    process(int(item.key), fail_every)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run_track(job: ckpt.Job, items: int, fail_every: int) -> None:
    """Record mode: the loop is the pipeline's own; ckpt skips what is done."""
    tracker = ckpt.track(range(items), job=job)
    for index in tracker:
        try:
            process(index, fail_every)
        except ValueError as e:
            tracker.fail(e)  # recorded FAILED instead of completed


def main(argv: Optional[Sequence[str]] = None) -> ckpt.Summary:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--address", default=None, help="ckptd host:port, unix:PATH or "
                        "local:DIR (default $CKPT_SERVER or 127.0.0.1:7700)")
    parser.add_argument("--tls-ca", default=None,
                        help="PEM file of ckptd's CA: use TLS (default $CKPT_TLS_CA)")
    parser.add_argument("--tls-cert", default=None,
                        help="this client's PEM certificate, for mutual TLS ($CKPT_TLS_CERT)")
    parser.add_argument("--tls-key", default=None, help="its PEM key ($CKPT_TLS_KEY)")
    parser.add_argument("--token", default=None,
                        help="bearer token (default $CKPT_TOKEN, which others cannot see)")
    parser.add_argument("--job", default="example-pipeline", help="the job id")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--mode", choices=["worker", "track"], default="worker")
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument("--reset", action="store_true", help="clear all progress first")
    args = parser.parse_args(argv)

    with ckpt.Client(args.address, tls_ca=args.tls_ca, tls_cert=args.tls_cert,
                     tls_key=args.tls_key, token=args.token) as client:
        job = client.create_job(args.job, config={"items": args.items, "mode": args.mode},
                                max_attempts=1 if args.fail_every else 3)
        print(f"job {job.job_id}: {'created' if job.created else 'resumed'}")
        if args.reset:
            job.reset()
        if args.mode == "worker" and not job.info().sealed:
            job.add_items(range(args.items), seal=True)

        started = time.monotonic()
        if args.mode == "worker":
            run_workers(job, args.workers, args.fail_every)
        else:
            run_track(job, args.items, args.fail_every)

        summary = job.summary()
        print(f"done in {time.monotonic() - started:.1f}s: {summary['completed']} completed, "
              f"{summary['failed']} failed, {summary['remaining']} remaining of "
              f"{summary['total']}; avg {summary['avg_time_ms']:.1f} ms per item")
        for message, count in summary["errors"].items():
            print(f"  {count} x {message}")
        if summary["failed"]:
            print("  retry them: job.reset_failed(), then run again")
        return summary


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted: run again to resume")
    except ckpt.UnavailableError as e:
        sys.exit(f"{e}\nis ckptd running? ./tools/serve.sh, or use --address local:./ckpt-data")
