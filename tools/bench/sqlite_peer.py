"""The SQLite peer as a Python pipeline runs it: Python's sqlite3 module (Debian's
libsqlite3), WAL, synchronous=FULL, physicsnemo-curator's completed_indices table,
N worker processes each on its own connection, `per_txn` rows per transaction.

ckpt_bench runs this with /usr/bin/python3 and reads the last line:
  RESULT <items> <seconds> <p50_us> <p99_us> <max_us>

Usage: sqlite_peer.py --dir=DIR --threads=N --items=N --per_txn=N
"""

import argparse
import json
import multiprocessing
import os
import sqlite3
import time

SCHEMA = """
CREATE TABLE IF NOT EXISTS pipeline_runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT, config_hash TEXT NOT NULL,
    config_json TEXT NOT NULL, started_at TEXT NOT NULL, UNIQUE(config_hash));
CREATE TABLE IF NOT EXISTS completed_indices (
    idx INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES pipeline_runs(run_id),
    output_paths TEXT NOT NULL, completed_at TEXT NOT NULL, elapsed_ns INTEGER, error TEXT);
INSERT OR IGNORE INTO pipeline_runs(config_hash, config_json, started_at)
    VALUES ('sha256:bench', '{}', '2025-12-14T20:43:00');
"""

INSERT = ("INSERT OR REPLACE INTO completed_indices"
          "(idx, run_id, output_paths, completed_at, elapsed_ns, error)"
          " VALUES (?, 1, ?, ?, ?, NULL)")


def connect(path):
    conn = sqlite3.connect(path, timeout=600, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def row(i):
    paths = json.dumps(["/data/out/shard-%04d/item-%08d.parquet" % (i % 1000, i)])
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    return (i, paths, when, (1 + i % 3) * 1000000000 + (i % 1000) * 1000)


def work(path, begin, end, per_txn, ready, out):
    conn = connect(path)
    ready.wait()  # every worker connected: the clock starts
    latencies = []
    for i in range(begin, end, per_txn):
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT, [row(j) for j in range(i, min(end, i + per_txn))])
        conn.execute("COMMIT")
        latencies.append((time.perf_counter() - t0) * 1e6)
    out.put((end - begin, time.perf_counter(), latencies))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--per_txn", type=int, default=1)
    args = parser.parse_args()
    path = os.path.join(args.dir, "checkpoint.db")
    setup = connect(path)
    setup.executescript(SCHEMA)
    setup.close()

    ctx = multiprocessing.get_context("fork")
    ready = ctx.Barrier(args.threads + 1)
    out = ctx.Queue()
    per = args.items // args.threads
    procs = []
    for t in range(args.threads):
        begin = per * t
        end = args.items if t == args.threads - 1 else begin + per
        p = ctx.Process(target=work, args=(path, begin, end, args.per_txn, ready, out))
        p.start()
        procs.append(p)
    ready.wait()
    t_start = time.perf_counter()
    items, t_end, latencies = 0, t_start, []
    for _ in procs:
        n, t, lat = out.get()
        items += n
        t_end = max(t_end, t)
        latencies += lat
    for p in procs:
        p.join()
    latencies.sort()
    q = lambda f: latencies[round(f * (len(latencies) - 1))] if latencies else 0
    print("RESULT %d %.6f %.1f %.1f %.1f" % (items, t_end - t_start, q(0.5), q(0.99), q(1.0)))


if __name__ == "__main__":
    main()
