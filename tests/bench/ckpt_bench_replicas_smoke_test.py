"""A quick run of ckpt_bench --store=replicas: the worker loop over jobs spread over the
shards of 1, 2 and 3 real ckptd replicas (and one ckptd without --advertise) on a
PostgreSQL the bench starts itself, clients calling any replica or the owner. Every
measurement is reported as a JSON line and in the replica table.

No timing is asserted: the machine may be busy. What is asserted would break if the
bench stopped starting the replicas, lost items, routed clients wrongly, stopped
reporting a replica's or PostgreSQL's CPU, or changed its output format.
"""

import json
import os
import re
import subprocess
import unittest

BENCH = os.environ["CKPT_BENCH"]
CKPTD = os.environ["CKPTD"]

QUICK_ITEMS = 4000  # QuickConfig in tools/bench/bench_runner.cc; 8 jobs of 500
CLIENTS = 16  # 8 jobs x 2 workers, the defaults

# system -> how many ckptd processes it ran.
EXPECTED = {
    "ckpt_single": 1,
    "ckpt_1_replica_any": 1,
    "ckpt_2_replicas_any": 2,
    "ckpt_2_replicas_owner": 2,
    "ckpt_3_replicas_any": 3,
    "ckpt_3_replicas_owner": 3,
}


def run_bench(*flags, timeout=240):
    return subprocess.run(
        [BENCH, "--ckptd=" + CKPTD, "--work_dir=" + os.environ["TEST_TMPDIR"], *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)


class ReplicaBenchSmokeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bench = run_bench("--quick", "--store=replicas")
        cls.rows = {r["system"]: r for r in (
            json.loads(line) for line in cls.bench.stdout.splitlines()
            if line.startswith("{"))}

    def test_exits_zero(self):
        self.assertEqual(self.bench.returncode, 0, self.bench.stderr)

    def test_every_replica_count_and_routing_completes_every_item(self):
        self.assertEqual(set(self.rows), set(EXPECTED))
        for system, row in self.rows.items():
            self.assertEqual(row["workload"], "replicas", row)
            self.assertEqual(row["items"], QUICK_ITEMS, row)
            self.assertEqual(row["threads"], CLIENTS, row)
            self.assertGreater(row["items_per_s"], 0, row)
            self.assertLessEqual(row["p50_us"], row["p99_us"], row)

    def test_each_ckptd_and_postgres_report_their_cpu(self):
        for system, row in self.rows.items():
            each = re.search(r"ckptd cpu s ([0-9.+ ]+);", row["note"])
            self.assertIsNotNone(each, row)
            self.assertEqual(len(each.group(1).split("+")), EXPECTED[system], row)
            self.assertRegex(row["note"], r"PostgreSQL cpu s [0-9.]+;")
            self.assertRegex(row["note"], r"machine busy [0-9.]+ cores")
            self.assertIn("server_cpu_s", row)

    def test_clients_call_the_owner_or_any_replica(self):
        def forwarded(row):
            return int(re.search(r"(\d+)% of clients on a non-owner", row["note"]).group(1))
        for system, row in self.rows.items():
            if system.endswith("_owner") or EXPECTED[system] == 1:
                self.assertEqual(forwarded(row), 0, row)
            else:
                self.assertGreater(forwarded(row), 0, row)

    def test_prints_the_replica_table(self):
        out = self.bench.stdout
        self.assertIn("replicas on the bench's own PostgreSQL 15, fsync on: 8 jobs", out)
        table = out[out.index("replicas on the bench's own"):]
        for line in ("1, no --advertise", "1 replica ", "2 replicas        any",
                     "2 replicas        owner", "3 replicas        any",
                     "3 replicas        owner"):
            self.assertIn(line, table)
        self.assertIn("us/item", table)

    def test_bad_replica_flags_are_refused_before_anything_starts(self):
        for flag, named in (("--replica_clients=nearest", "--replica_clients"),
                            ("--replicas=1,x", "--replicas"),
                            ("--replica_jobs=0", "--replica_jobs"),
                            ("--replica_postgres_pids=-3", "--replica_postgres_pids")):
            run = run_bench("--store=replicas", flag, timeout=30)
            self.assertEqual(run.returncode, 2, (flag, run.stderr))
            self.assertIn(named, run.stderr, flag)
            self.assertEqual(run.stdout, "", flag)


if __name__ == "__main__":
    unittest.main()
