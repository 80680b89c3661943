"""The fault suite (issue 18, item 4): 8 Python SDK workers run one job of tens of
thousands of items against the real 3-replica cluster of tools/cluster/cluster.sh (3
etcd, 3 PostgreSQL under Patroni in synchronous mode, 3 ckptd) while, in turn:

  1. the PostgreSQL primary is killed with -9 (Patroni and its postgres);
  2. the ckptd owning the job's shard is killed with -9;
  3. the ckptd owning it then is frozen with SIGSTOP until another replica has taken
     the shard (past its lease), then
  4. continued;
  5. the ckptd killed in 2 is restarted and rejoins (takes its share of shards back);
  6. the PostgreSQL node killed in 1 is restarted and rejoins (streams again).

Then it asserts that the workers finished the job by themselves, that no item was
completed by two lease holders, that every acknowledged completion is in the store byte
for byte, and that the job's counters equal a recount (fault_checks.py), and prints the
time from each fault to the next successful completion of the job: the first
acknowledged completion that the workers made after the fault.

Every wait is for something observable (a log line, a row, Patroni's view, a process's
end), with a deadline that only guards against a hang; no time is asserted.

    fault_suite --cluster_script=tools/cluster/cluster.sh --ckptd=bazel-bin/.../ckptd \
                --out=DIR [--long]

--long runs the cycle 3 times over 300 000 items. The cluster runs as an unprivileged
user in a fresh directory under /tmp, on free loopback ports; every process the suite
starts is stopped when it ends, however it ends. Logs stay in --out.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import ckpt
from ckpt import pb
import fault_checks
from fault_cluster import Cluster, ClusterOptions, await_condition, free_base_port, shard_of_job
from fault_worker import PATIENT, Ack

log = logging.getLogger("faults")

WORKERS = 8
FAULTS_PER_ROUND = 6  # kill PostgreSQL, kill ckptd, freeze, continue, 2 restarts
HANG_GUARD = 300.0  # seconds any one wait may take before the suite gives up


class AckWatcher:
    """Reads the workers' ack logs as they grow."""

    def __init__(self, paths: list[Path]) -> None:
        self._paths = paths
        self._offsets = {path: 0 for path in paths}
        self._partial = {path: "" for path in paths}
        self.acks: list[Ack] = []

    def poll(self) -> None:
        for path in self._paths:
            try:
                with open(path, encoding="ascii") as f:
                    f.seek(self._offsets[path])
                    text = f.read()
                    self._offsets[path] = f.tell()
            except FileNotFoundError:
                continue
            lines = (self._partial[path] + text).split("\n")
            self._partial[path] = lines.pop()
            self.acks.extend(Ack.parse(line) for line in lines if line)

    def next_completion(self, after: float) -> Optional[Ack]:
        """The first acknowledged completion made after `after` (time.monotonic())."""
        self.poll()
        made_after = [ack for ack in self.acks if ack.completed_at > after]
        return min(made_after, key=lambda ack: ack.acked_at) if made_after else None


@dataclass
class Measured:
    """One fault and what followed it."""
    fault: str
    seconds_to_completion: float
    note: str = ""

    def line(self) -> str:
        note = f"; {self.note}" if self.note else ""
        return f"{self.fault}: next completion {self.seconds_to_completion:.2f} s after{note}"


class FaultSuite:
    """One run: the cluster, the job, its workers, the faults and the checks."""

    def __init__(self, cluster: Cluster, out: Path, items: int, rounds: int) -> None:
        self.cluster = cluster
        self.out = out
        self.items = items
        self.rounds = rounds
        self.job_id = f"faults-{os.getpid()}-{int(time.time())}"
        self.shard = 0
        self.workers: list[subprocess.Popen[bytes]] = []
        self.ack_paths = [out / "acks" / f"worker-{i}.log" for i in range(WORKERS)]
        self.watcher = AckWatcher(self.ack_paths)
        self.down: set[str] = set()  # addresses of ckptd killed or frozen
        self.added = 0
        # Items added before and after each of the 6 faults of a round, and at the end.
        self.chunk = items // (2 * FAULTS_PER_ROUND * rounds + 1)
        self._adder: Optional[threading.Thread] = None
        self.measured: list[Measured] = []
        self._clients: dict[str, ckpt.Client] = {}

    # ------------------------------------------------------------ clients and workers

    def target(self, first: int, addresses: Optional[list[str]] = None) -> str:
        """A gRPC target listing the replicas from the `first`-th on: the client's own
        failover list (gRPC's pick_first goes down it when a replica dies)."""
        addresses = addresses or self.cluster.ckptd_addresses()
        rotated = addresses[first % len(addresses):] + addresses[:first % len(addresses)]
        return "ipv4:" + ",".join(rotated)

    def client(self) -> ckpt.Client:
        """A client of the replicas that are neither killed nor frozen now."""
        live = [a for a in self.cluster.ckptd_addresses() if a not in self.down]
        target = self.target(0, live)
        if target not in self._clients:
            self._clients[target] = ckpt.Client(target, retry=PATIENT)
        return self._clients[target]

    def start_workers(self) -> None:
        (self.out / "acks").mkdir(parents=True, exist_ok=True)
        (self.out / "workers").mkdir(parents=True, exist_ok=True)
        script = Path(__file__).resolve().parent / "fault_worker.py"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        for i in range(WORKERS):
            with open(self.out / "workers" / f"worker-{i}.log", "w") as output:
                self.workers.append(subprocess.Popen(
                    [sys.executable, str(script), self.target(i), self.job_id,
                     str(self.ack_paths[i]), f"worker-{i}"],
                    stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                    env=env))

    def stop_workers(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()

    def add_items(self, count: int, seal: bool = False) -> Callable[[], None]:
        """The AddItems call of the next `count` items (all the rest if sealing)."""
        begin = self.added
        self.added = self.items if seal else min(self.items, begin + count)
        end, client = self.added, self.client()
        return lambda: client.call("AddItems", job_id=self.job_id, seal=seal,
                                   ranges=[pb.IndexRange(begin=begin, end=end)])

    def strike(self, inject: Callable[[], object]) -> float:
        """Adds a chunk of items, runs `inject` (the fault) and returns when it struck
        (time.monotonic()). Another chunk is added meanwhile (the call waits out the
        fault), so that the workers have work after the fault, whatever they finished
        before it; settle() waits for that call."""
        self.add_items(self.chunk)()
        add_after = self.add_items(self.chunk)
        at = time.monotonic()
        inject()
        self._adder = threading.Thread(target=add_after, name="add-after-fault")
        self._adder.start()
        return at

    def settle(self) -> None:
        if self._adder is not None:
            self._adder.join()
            self._adder = None

    # ------------------------------------------------------------ waiting

    def await_completion(self, fault: str, at: float, note: str = "") -> None:
        """Waits for the first completion made after `at` and records the time to it."""
        ack = await_condition(f"a completion after: {fault}",
                              lambda: self.watcher.next_completion(at), HANG_GUARD)
        measured = Measured(fault, ack.acked_at - at, note)
        self.measured.append(measured)
        log.info("%s (struck at %.3f; item %d completed by %s at %.3f, acknowledged at "
                 "%.3f: time.monotonic())", measured.line(), at, ack.index, ack.worker_id,
                 ack.completed_at, ack.acked_at)

    def owner(self) -> str:
        """The address of the replica serving the job's shard now: the lease row shows
        the same owner and epoch before and after a write to the job commits (epochs
        only grow, and a write commits only at its shard's current epoch), and that
        replica's process runs."""

        def stable_owner() -> Optional[str]:
            before = self.cluster.shard_owner(self.shard)
            if before is None:
                return None
            self.client().call("PutState", job_id=self.job_id, name="fault-probe",
                               value=str(time.monotonic()).encode())
            after = self.cluster.shard_owner(self.shard)
            live = self.cluster.pid(self.cluster.ckptd_of(before[0])) is not None
            return before[0] if after == before and live else None

        return await_condition(f"a stable owner of shard {self.shard}", stable_owner,
                               HANG_GUARD)

    # ------------------------------------------------------------ the faults

    def kill_pg_primary(self) -> str:
        leader = await_condition("a PostgreSQL primary", self.cluster.pg_leader, HANG_GUARD)
        pids = self.cluster.node_pids(leader)
        log.info("PostgreSQL primary %s: Patroni and postgres pids %s", leader, pids)
        at = self.strike(lambda: self.cluster.kill_all(pids))
        self.await_completion(f"kill -9 PostgreSQL primary {leader}", at)
        self.settle()
        return leader

    def kill_owner(self) -> str:
        address = self.owner()
        proc = self.cluster.ckptd_of(address)
        log.info("the job's shard %d is served by %s (pid %s)", self.shard, proc,
                 self.cluster.pid(proc))
        self.down.add(address)  # the chunk added after the kill goes elsewhere
        at = self.strike(lambda: self.cluster.signal(proc, signal.SIGKILL))
        self.cluster.await_exit(proc)
        self.await_completion(f"kill -9 {proc}, owner of the job's shard {self.shard}", at)
        self.settle()
        return proc

    def freeze_owner(self) -> None:
        address = self.owner()
        proc = self.cluster.ckptd_of(address)
        self.down.add(address)
        at = self.strike(lambda: self.cluster.freeze(proc))

        def taken() -> Optional[float]:
            owner = self.cluster.shard_owner(self.shard)
            return time.monotonic() if owner is not None and owner[0] != address else None

        taken_at = await_condition(f"shard {self.shard} taken from frozen {proc}", taken,
                                   HANG_GUARD)
        self.await_completion(f"SIGSTOP {proc}, owner of the job's shard", at,
                              f"shard taken by another replica {taken_at - at:.2f} s after")
        self.settle()
        at = self.strike(lambda: self.cluster.signal(proc, signal.SIGCONT))
        ckpt.Client(address, retry=PATIENT).call("GetJob", job_id=self.job_id)
        self.down.discard(address)  # it answers again
        self.await_completion(f"SIGCONT {proc}", at)
        self.settle()

    def restart_ckptd(self, proc: str) -> None:
        address = self.cluster.ckptd_address(int(proc[-1]))
        share = (self.cluster.shard_count() or 0) // 3
        at = self.strike(lambda: self.cluster.start_one(proc))

        def rejoined() -> bool:
            return (self.cluster.shards_held() or {}).get(address, 0) >= share

        await_condition(f"{proc} holding its share of shards", rejoined, HANG_GUARD)
        self.down.discard(address)
        self.await_completion(f"restart {proc} (rejoined with its share)", at)
        self.settle()

    def restart_pg(self, proc: str) -> None:
        at = self.strike(lambda: self.cluster.start_one(proc))
        await_condition(f"{proc} streaming again", lambda: self.cluster.pg_streaming(proc),
                        HANG_GUARD)
        self.await_completion(f"restart PostgreSQL {proc} (streaming again)", at)
        self.settle()

    def one_round(self) -> None:
        pg = self.kill_pg_primary()
        ckptd = self.kill_owner()
        self.freeze_owner()
        self.restart_ckptd(ckptd)
        self.restart_pg(pg)

    # ------------------------------------------------------------ the run

    def run(self) -> bool:
        started = time.monotonic()
        self.cluster.start()
        shards = await_condition("the number of shards", self.cluster.shard_count, HANG_GUARD)
        self.shard = shard_of_job(self.job_id, shards)
        log.info("job %s is in shard %d of %d", self.job_id, self.shard, shards)
        self.client().call("CreateJob", job_id=self.job_id)
        self.start_workers()
        for _ in range(self.rounds):
            self.one_round()
        self.add_items(0, seal=True)()
        exits = self.await_workers()
        elapsed = time.monotonic() - started
        return self.report(exits, elapsed)

    def await_workers(self) -> list[int]:
        deadline = time.monotonic() + HANG_GUARD
        for worker in self.workers:
            try:
                worker.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        return [-1 if code is None else code for code in (w.poll() for w in self.workers)]

    def report(self, exits: list[int], elapsed: float) -> bool:
        problems = [f"worker {i} exited {code} (see workers/worker-{i}.log)"
                    for i, code in enumerate(exits) if code != 0]
        client = self.client()
        job = client.call("GetJob", job_id=self.job_id).job
        if job.status != pb.JOB_STATUS_COMPLETED:
            problems.append(f"job is {pb.JobStatus.Name(job.status)}, not COMPLETED")
        acked, holders = fault_checks.single_holders(
            fault_checks.read_acks(self.ack_paths))
        counted = fault_checks.recount(client, self.job_id)
        problems += holders
        problems += fault_checks.stored_as_acknowledged(self.job_id, acked, counted)
        problems += fault_checks.counters_match(client, self.job_id, counted)
        if len(counted.items) != self.items:
            problems.append(f"{len(counted.items)} items in the job, {self.items} added")
        for measured in self.measured:
            print(f"faults: {measured.line()}")
        print(f"faults: {self.items} items, {WORKERS} workers, {self.rounds} round(s) of "
              f"faults, {elapsed:.1f} s; {len(acked)} completions acknowledged")
        for problem in fault_checks.summarize(problems):
            print(f"faults: FAILED: {problem}")
        if not problems:
            print("faults: every acknowledged completion stored byte for byte, no item "
                  "completed by two lease holders, counters equal a recount, the workers "
                  "finished the job by themselves")
        return not problems


def prepare_ckptd(ckptd: Path, base: Path) -> Path:
    """A copy of ckptd the cluster's unprivileged user can run."""
    (base / "bin").mkdir(mode=0o755)
    copy = base / "bin" / "ckptd"
    shutil.copyfile(ckptd, copy)
    copy.chmod(0o755)
    return copy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cluster_script", type=Path, required=True)
    parser.add_argument("--ckptd", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="logs go here")
    parser.add_argument("--long", action="store_true", help="3 rounds, 300 000 items")
    parser.add_argument("--items", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        handlers=[logging.FileHandler(args.out / "suite.log"),
                                  logging.StreamHandler(sys.stdout)])
    logging.getLogger("ckpt").setLevel(logging.WARNING)
    rounds = 3 if args.long else 1
    items = args.items or (300_000 if args.long else 30_000)
    # Everything the cluster's user reads lives under a directory it can enter.
    base = Path(tempfile.mkdtemp(prefix="ckpt-faults-"))
    base.chmod(0o755)
    cluster = Cluster(ClusterOptions(script=args.cluster_script.resolve(),
                                     directory=base / "cluster",
                                     ckptd=prepare_ckptd(args.ckptd, base),
                                     base_port=free_base_port()))
    # SIGTERM (a CI timeout) and SIGINT end the run through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    suite = FaultSuite(cluster, args.out, items, rounds)
    passed = False
    try:
        passed = suite.run()
    except Exception:
        log.exception("faults: the run broke off")
    finally:
        suite.stop_workers()
        cluster.stop()
        if (base / "cluster" / "log").is_dir():
            shutil.copytree(base / "cluster" / "log", args.out / "cluster-logs",
                            dirs_exist_ok=True)
        shutil.rmtree(base, ignore_errors=True)
    print(f"faults: {'PASSED' if passed else 'FAILED'} (logs in {args.out})")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
