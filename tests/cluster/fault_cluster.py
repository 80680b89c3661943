"""The 3-node cluster of tools/cluster/cluster.sh, driven from a test: start it, kill,
freeze and restart its processes, and read what each part says about itself (Patroni's
roles, the shard owners in PostgreSQL, the ckptd logs).

Every query here answers None (or an empty answer) when the part asked is down, so
callers wait on it with `await_condition` and a deadline instead of sleeping.

Thread-compatible: one thread drives a Cluster.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, TypeVar

log = logging.getLogger("faults")

T = TypeVar("T")
NODES = (1, 2, 3)
# Ports of node n: base + 10 (n - 1) + offset (cluster.sh).
CKPTD_PORT, PG_PORT, PATRONI_PORT = 0, 2, 3
POLL_SECONDS = 0.05  # how often a condition is looked at again; not a wait for anything


class ClusterError(Exception):
    """A part of the cluster did not do what it must (start, stop, become ready)."""


def await_condition(what: str, check: Callable[[], Optional[T]], deadline_s: float) -> T:
    """Returns check()'s first answer that is not None or False, looking again every
    POLL_SECONDS; raises ClusterError naming `what` after `deadline_s` seconds."""
    deadline = time.monotonic() + deadline_s
    while True:
        answer = check()
        if answer is not None and answer is not False:
            return answer
        if time.monotonic() >= deadline:
            raise ClusterError(f"{what}: not so after {deadline_s:.0f} s")
        time.sleep(POLL_SECONDS)


def free_base_port() -> int:
    """A base port whose 26 ports (3 nodes, 6 each, 10 apart) are all free now."""
    for base in range(21000, 60000, 100):
        if all(_port_free(base + 10 * (n - 1) + offset) for n in NODES for offset in range(6)):
            return base
    raise ClusterError("no free block of loopback ports between 21000 and 60000")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class ClusterOptions:
    script: Path      # tools/cluster/cluster.sh
    directory: Path   # the cluster's DIR (must not exist yet)
    ckptd: Path       # a ckptd binary the cluster's user can run
    base_port: int
    ttl: int = 10     # Patroni's leader lease, seconds
    loop_wait: int = 1
    retry_timeout: int = 4
    store_lease: str = "4s"  # ckptd --store_lease


class Cluster:
    """3 etcd, 3 PostgreSQL under Patroni and 3 ckptd replicas (cluster.sh)."""

    def __init__(self, options: ClusterOptions) -> None:
        self.options = options
        self.dir = options.directory
        self.started = False

    # ------------------------------------------------------------ processes

    def _script(self, *args: str, timeout: float = 300) -> str:
        """Runs cluster.sh with `args`; its output (also logged)."""
        command = [str(self.options.script), *args]
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout, check=False)
        for line in done.stdout.splitlines():
            log.info("%s", line)
        if done.returncode != 0:
            raise ClusterError(f"{' '.join(command)} exited {done.returncode}")
        return done.stdout

    def start(self) -> None:
        """Writes the config and starts everything; returns once every ckptd serves."""
        o = self.options
        self.started = True  # from here on, stop() has something to stop
        self._script("start", str(self.dir), f"--base-port={o.base_port}",
                     f"--ckptd={o.ckptd}", f"--ttl={o.ttl}", f"--loop-wait={o.loop_wait}",
                     f"--retry-timeout={o.retry_timeout}",
                     f"--ckptd-flag=--store_lease={o.store_lease}")

    def start_one(self, proc: str) -> None:
        """Starts `proc` ("ckptd2", "pg1") again; it rejoins by itself."""
        self._script("start", str(self.dir), proc)

    def stop(self) -> None:
        """Stops every process of the cluster (a frozen one is continued first)."""
        if not self.started:
            return
        for n in NODES:
            self.signal(f"ckptd{n}", signal.SIGCONT)
        self._script("stop", str(self.dir), timeout=600)

    def pid(self, proc: str) -> Optional[int]:
        """The pid of `proc` if it runs (a zombie, killed but not yet reaped, does not)."""
        try:
            pid = int((self.dir / "run" / f"{proc}.pid").read_text().strip())
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (OSError, ValueError):
            return None
        # "PID (COMM) STATE ...": COMM may hold spaces and parentheses, STATE follows the last ")".
        return None if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X") else pid

    def signal(self, proc: str, signum: int) -> bool:
        """Sends `signum` to `proc` (a pg node is more than one process: see node_pids)."""
        pid = self.pid(proc)
        if pid is None:
            return False
        os.kill(pid, signum)
        return True

    def freeze(self, proc: str, deadline_s: float = 60) -> None:
        """SIGSTOP, and returns once every thread of `proc` is stopped (kill() returns
        before they are, and one busy in the kernel may still answer a call)."""
        pid = self.pid(proc)
        if pid is None:
            raise ClusterError(f"{proc} does not run")
        os.kill(pid, signal.SIGSTOP)

        def all_stopped() -> bool:
            try:
                states = [Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1]
                          .split()[0] for tid in os.listdir(f"/proc/{pid}/task")]
            except OSError:
                return False
            return bool(states) and all(state == "T" for state in states)

        await_condition(f"{proc} stopped", all_stopped, deadline_s)

    def node_pids(self, proc: str) -> list[int]:
        """The pids a fault on `proc` kills (cluster.sh pids): for pgN, Patroni, its
        postmaster and every postgres process under it."""
        output = self._script("pids", str(self.dir), proc)
        return [int(line) for line in output.split() if line.isdigit()]

    @staticmethod
    def kill_all(pids: list[int]) -> None:
        """SIGKILL to every pid, one after the other without a pause (as cluster.sh kill
        does, but at a time the caller knows; the script itself takes a while to start)."""
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def await_exit(self, proc: str, deadline_s: float = 60) -> None:
        """Returns once `proc` no longer runs (after a SIGKILL: as soon as it is reaped)."""
        await_condition(f"{proc} exited", lambda: self.pid(proc) is None, deadline_s)

    # ------------------------------------------------------------ addresses

    def port(self, node: int, offset: int) -> int:
        return self.options.base_port + 10 * (node - 1) + offset

    def ckptd_address(self, node: int) -> str:
        return f"127.0.0.1:{self.port(node, CKPTD_PORT)}"

    def ckptd_addresses(self) -> list[str]:
        return [self.ckptd_address(n) for n in NODES]

    def ckptd_of(self, address: str) -> str:
        """"ckptdN" for the replica advertising `address`."""
        for n in NODES:
            if self.ckptd_address(n) == address:
                return f"ckptd{n}"
        raise ClusterError(f"{address} is no ckptd of this cluster")

    # ------------------------------------------------------------ Patroni

    def patroni_members(self) -> Optional[list[dict]]:
        """Patroni's members (name, role, state, ...), from any node that answers."""
        for n in NODES:
            url = f"http://127.0.0.1:{self.port(n, PATRONI_PORT)}/cluster"
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    return list(json.load(answer).get("members", []))
            except (OSError, ValueError):
                continue
        return None

    def pg_leader(self) -> Optional[str]:
        """"pgN" of the running primary, if Patroni knows one."""
        for member in self.patroni_members() or []:
            if member.get("role") == "leader" and member.get("state") == "running":
                return str(member["name"])
        return None

    def pg_streaming(self, name: str) -> bool:
        """True once `name` is a standby on the primary's timeline, its lag known."""
        members = self.patroni_members() or []
        timelines = [m.get("timeline") for m in members
                     if m.get("role") == "leader" and m.get("state") == "running"]
        for member in members:
            if member.get("name") == name:
                return (member.get("role") in ("replica", "sync_standby")
                        and member.get("state") in ("running", "streaming")
                        and isinstance(member.get("lag"), int)
                        and bool(timelines) and member.get("timeline") == timelines[0])
        return False

    # ------------------------------------------------------------ the shard table

    def sql(self, query: str) -> Optional[list[list[str]]]:
        """Rows of `query` on the writable PostgreSQL (psql, unaligned), or None."""
        hosts = ",".join(f"127.0.0.1:{self.port(n, PG_PORT)}" for n in NODES)
        env = dict(os.environ, PGPASSFILE=str(self.dir / "secrets" / "pgpass"),
                   PGCONNECT_TIMEOUT="3")
        try:
            done = subprocess.run(
                ["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                 f"postgresql://ckpt@{hosts}/ckpt?target_session_attrs=read-write",
                 "-c", query], env=env, capture_output=True, text=True, timeout=20,
                check=False)
        except subprocess.TimeoutExpired:
            return None
        if done.returncode != 0:
            return None
        return [line.split("\t") for line in done.stdout.splitlines() if line]

    def shard_owner(self, shard: int) -> Optional[tuple[str, int]]:
        """(address, epoch) of the live lease on `shard`, or None."""
        rows = self.sql(f"SELECT address, epoch FROM ckpt_owners "
                        f"WHERE shard = {int(shard)} AND expires > now()")
        if not rows:
            return None
        return rows[0][0], int(rows[0][1])

    def shards_held(self) -> Optional[dict[str, int]]:
        """Live shard leases per address, or None."""
        rows = self.sql("SELECT address, count(*) FROM ckpt_owners "
                        "WHERE expires > now() GROUP BY address")
        if rows is None:
            return None
        return {address: int(count) for address, count in rows}

    def shard_count(self) -> Optional[int]:
        """The store's number of shards, as a replica said when it joined."""
        for n in NODES:
            try:
                text = (self.dir / "log" / f"ckptd{n}.log").read_text(errors="replace")
            except OSError:
                continue
            found = re.search(r"joined the cluster on .* \((\d+) shards\)", text)
            if found:
                return int(found.group(1))
        return None


def fnv1a64(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value ^= byte
        value = (value * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def shard_of_job(job_id: str, shards: int) -> int:
    """service/cluster/shard_map.h's ShardOfJob: MurmurHash3's finaliser of FNV-1a-64."""
    if shards <= 1:
        return 0
    mask = 0xFFFFFFFFFFFFFFFF
    h = fnv1a64(job_id.encode())
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & mask
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & mask
    h ^= h >> 33
    return h % shards
