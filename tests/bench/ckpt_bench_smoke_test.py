"""A quick run of ckpt_bench on both stores: every workload is measured against every
system and reported twice, as a table row and as one JSON object per line. The
PostgreSQL rows run on a cluster the bench starts itself (as an unprivileged user when
run as root).

No timing is asserted: the machine may be busy. What is asserted would break if the
bench stopped driving a system, lost items, or changed its output format.
"""

import json
import os
import subprocess
import unittest

BENCH = os.environ["CKPT_BENCH"]
CKPTD = os.environ["CKPTD"]

QUICK_ITEMS = 4000  # QuickConfig in tools/bench/bench_runner.cc
QUICK_RECORD_ITEMS = 400
QUICK_JSON_ITEMS = 40
QUICK_PY_RECORD_ITEMS = 200
QUICK_PY_SDK_ITEMS = 2000

# (workload, system, durable) -> items every such row must report.
EXPECTED = {}
for durable in (True, False):
    EXPECTED[("worker_loop", "ckpt", durable)] = QUICK_ITEMS
    EXPECTED[("worker_loop", "bare_writebatch", durable)] = QUICK_ITEMS
    EXPECTED[("record_mode", "ckpt", durable)] = QUICK_RECORD_ITEMS
    EXPECTED[("record_mode", "bare_writebatch", durable)] = QUICK_RECORD_ITEMS
    EXPECTED[("worker_loop_with_readers", "ckpt", durable)] = QUICK_ITEMS
EXPECTED[("worker_loop", "ckpt_tls", True)] = QUICK_ITEMS
EXPECTED[("record_mode", "ckpt_tls", True)] = QUICK_RECORD_ITEMS
EXPECTED[("worker_loop", "grpc_echo", True)] = QUICK_ITEMS
EXPECTED[("record_mode", "grpc_echo", True)] = QUICK_RECORD_ITEMS
EXPECTED[("worker_loop", "sqlite_full_batch100", True)] = QUICK_ITEMS
EXPECTED[("record_mode", "sqlite_full_txn_per_item", True)] = QUICK_RECORD_ITEMS
EXPECTED[("worker_loop", "sqlite_py_full_batch100", True)] = QUICK_ITEMS
EXPECTED[("record_mode", "sqlite_py_full_txn_per_item", True)] = QUICK_PY_RECORD_ITEMS
EXPECTED[("record_mode", "json_rewrite_fsync", True)] = QUICK_JSON_ITEMS
EXPECTED[("range_job", "ckpt fill: record mode, 8192/call", True)] = 50000
# The Python SDK through 8 processes (tools/bench/python_sdk_peer.py).
for suffix in ("", "_aio"):
    EXPECTED[("worker_loop", "python_sdk_worker" + suffix, True)] = QUICK_PY_SDK_ITEMS
    EXPECTED[("record_mode_batched", "python_sdk_track" + suffix, True)] = QUICK_PY_SDK_ITEMS
    EXPECTED[("record_mode", "python_sdk_record" + suffix, True)] = QUICK_PY_RECORD_ITEMS
# On PostgreSQL (durable only).
for system in ("ckpt", "bare_postgres"):
    EXPECTED[("worker_loop_pg", system, True)] = QUICK_ITEMS
    EXPECTED[("record_mode_pg", system, True)] = QUICK_RECORD_ITEMS
EXPECTED[("worker_loop_pg", "postgres_skip_locked", True)] = QUICK_ITEMS
PG_SERVERS = ("ckpt", "bare_postgres")

TARGETS = [
    "worker loop: ckpt / bare synced WriteBatch server",
    "worker loop: ckpt / SQLite FULL, 100 per transaction (C)",
    "worker loop: ckpt / SQLite FULL, 100 per transaction (Python)",
    "record mode: ckpt / gRPC echo",
    "worker loop: ckpt over TLS with a token / plaintext",
    "record mode: ckpt / SQLite FULL, one transaction per item (C)",
    "record mode: ckpt / SQLite FULL, one transaction per item (Python)",
    "GetJob p50: range job half done / 100-item job",
    "ckptd peak RSS (MiB) while the range job is half done",
    "python: Worker() / C++ worker loop",
    "python: aio Worker() / C++ worker loop",
    "python: mark_completed per item / Python SQLite per item",
    "python: mark_completed per item, max latency ms",
    "worker loop on PostgreSQL: ckpt / bare PostgreSQL server",
    "worker loop on PostgreSQL: ckpt / SKIP LOCKED queue in SQL",
]


class CkptBenchSmokeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        run = subprocess.run(
            [BENCH, "--quick", "--store=rocksdb,postgres", "--ckptd=" + CKPTD,
             "--work_dir=" + os.environ["TEST_TMPDIR"]],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=240)
        cls.bench = run
        cls.rows = [json.loads(line) for line in run.stdout.splitlines()
                    if line.startswith("{")]

    def test_exits_zero(self):
        self.assertEqual(self.bench.returncode, 0, self.bench.stderr)

    def test_every_system_and_workload_is_measured_with_all_its_items(self):
        got = {(r["workload"], r["system"], r["durable"]): r for r in self.rows}
        for key, items in EXPECTED.items():
            self.assertIn(key, got, "missing row %s" % (key,))
            self.assertEqual(got[key]["items"], items, key)

    def test_rows_are_complete_and_consistent(self):
        self.assertGreater(len(self.rows), len(EXPECTED))
        for r in self.rows:
            for key in ("workload", "system", "items_per_s", "p50_us", "p99_us"):
                self.assertIn(key, r)
            self.assertGreater(r["items_per_s"], 0, r)
            self.assertLessEqual(r["p50_us"], r["p99_us"], r)
            self.assertLessEqual(r["p99_us"], r["max_us"], r)

    def test_servers_report_their_own_cpu_and_memory(self):
        for r in self.rows:
            if r["system"] in ("ckpt", "bare_writebatch", "grpc_echo") or (
                    r["system"].startswith("python_sdk_")):
                self.assertIn("server_cpu_s", r, r)
                self.assertGreater(r["peak_rss_mib"], 0, r)

    def test_postgres_rows_report_the_database_cpu(self):
        # PostgreSQL's own work is in no CPU column: each row's note says it.
        for r in self.rows:
            if r["workload"].endswith("_pg"):
                self.assertIn("PostgreSQL cpu", r.get("note", ""), r)
                if r["system"] in PG_SERVERS:
                    self.assertIn("server_cpu_s", r, r)

    def test_range_job_measures_both_jobs(self):
        systems = {r["system"] for r in self.rows if r["workload"] == "range_job"}
        for name in ("ckpt GetJob, 100-item job", "ckpt GetJob, range job half done",
                     "ckpt LeaseItems(10), 100-item job",
                     "ckpt LeaseItems(10), range job half done"):
            self.assertIn(name, systems)

    def test_reads_ran_while_the_worker_loop_ran(self):
        readers = {(r["system"], r["durable"]): r for r in self.rows
                   if r["workload"] == "worker_loop_with_readers"}
        for durable in (True, False):
            self.assertGreater(readers[("ckpt GetJob (1 client)", durable)]["items"], 0)
            # The first snapshot at once, and the last when the job completes.
            self.assertGreaterEqual(
                readers[("ckpt WatchJob (1 stream)", durable)]["items"], 2)

    def test_table_names_every_target(self):
        for target in TARGETS:
            self.assertIn(target, self.bench.stdout)


if __name__ == "__main__":
    unittest.main()
