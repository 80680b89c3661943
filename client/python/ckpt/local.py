"""local: mode: a ckptd for one data directory, started on demand, shared by every
process and thread of the machine that opens the same directory.

    client = ckpt.Client("local:./ckpt-data")    # or CKPT_SERVER=local:./ckpt-data

The client connects to the ckptd serving that directory on a Unix socket, and starts
one if none does (and again whenever it finds it gone: crashed, killed, or exited
after `idle_exit` seconds without calls). Files, all in the data directory (ckptd's
store ignores names "ckptd.*"):

    ckptd.sock   the Unix socket (mode 0600). If the directory's path is too long for a
                 socket (107 bytes), the socket is in a private directory instead:
                 $XDG_RUNTIME_DIR/ckpt or /tmp/ckpt-UID, named by a hash of the path.
    ckptd.lock   an flock: whoever holds it is starting ckptd; the others wait for it.
    ckptd.log    what the started ckptd wrote (its start, stop and errors).

Whether a ckptd serves is decided by connecting to the socket (nothing listening: a
stale socket from a killed ckptd), never by a timeout. A ckptd whose socket was
removed (by hand, or a /tmp cleaner) creates it again within a second; meanwhile the
ckptd a client starts finds the store in use and exits, and the client looks again.
The ckptd binary is `ckptd=`, else $CKPTD, else the one inside this package (the
Bazel-built wheel carries it), else the first on the PATH.

Thread-safe: any number of threads and processes may call ensure() at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import os
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import threading
import time
from typing import Iterator, Optional, Sequence

import grpc

from ckpt import errors

SOCKET_NAME = "ckptd.sock"
LOCK_NAME = "ckptd.lock"
LOG_NAME = "ckptd.log"
_MAX_SOCKET_PATH = 107  # sockaddr_un.sun_path, less its NUL
_BUNDLED_CKPTD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bin", "ckptd")
# ckptd refuses to open a store another ckptd still holds; one that is exiting (idle)
# holds it for a moment after it stopped listening.
_STORE_HELD = "in use by another ckptd"


@dataclasses.dataclass(frozen=True)
class LocalOptions:
    """How a local: client starts ckptd.

    Attributes:
      idle_exit: seconds without any call after which the ckptd it starts exits by
        itself (the next call starts another).
      start_timeout: seconds to wait for a started ckptd to serve (opening a big store
        takes a while).
      ckptd: the ckptd binary (default: $CKPTD, this package's, the PATH's).
      sync: ckptd's --sync (False: faster, a power failure may lose recent writes).
      args: more ckptd flags, e.g. ("--max_batch=16384",).
    """
    idle_exit: float = 300.0
    start_timeout: float = 60.0
    ckptd: Optional[str] = None
    sync: bool = True
    args: Sequence[str] = ()


class LocalServer:
    """The ckptd of one data directory, reached through a Unix socket."""

    def __init__(self, data_dir: str, options: LocalOptions = LocalOptions()) -> None:
        if not data_dir:
            raise ValueError("local: needs a data directory, e.g. local:./ckpt-data")
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
        self.data_dir = os.path.realpath(data_dir)
        self.options = options
        self.socket_path = socket_path(self.data_dir)
        self.target = f"unix:{self.socket_path}"

    def __repr__(self) -> str:
        return f"ckpt.local.LocalServer({self.data_dir!r})"

    def ensure(self) -> None:
        """Returns once a ckptd serves the directory, starting one if none does.
        Raises UnavailableError if it cannot (its log's last line says why)."""
        if self.pid() is not None:
            return
        with self._start_lock():
            if self.pid() is None:
                self._start()

    def pid(self) -> Optional[int]:
        """The pid of the process listening on the socket, or None if none is."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(self.socket_path)
            except (ConnectionRefusedError, FileNotFoundError):
                return None  # no socket, or a stale one
            except OSError as e:
                raise errors.UnavailableError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"cannot connect to {self.socket_path}: {e.strerror}") from None
            credentials = probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                           struct.calcsize("3i"))
        pid: int = struct.unpack("3i", credentials)[0]
        return pid

    def stop(self, timeout: float = 30.0) -> bool:
        """Stops the ckptd serving the directory (SIGTERM: calls in flight finish) and
        waits up to `timeout` for it to exit. False if none was running."""
        pid = self.pid()
        if pid is None:
            return False
        with _pidfd(pid) as fd:
            os.kill(pid, signal.SIGTERM)
            if fd is not None:
                select.select([fd], [], [], timeout)
        return True

    # ------------------------------------------------------------------ starting

    @contextlib.contextmanager
    def _start_lock(self) -> Iterator[None]:
        fd = os.open(os.path.join(self.data_dir, LOCK_NAME),
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held only while starting: bounded
            yield
        finally:
            os.close(fd)

    def _start(self) -> None:
        deadline = time.monotonic() + self.options.start_timeout
        delay = 0.05
        while True:
            failure = self._start_once(deadline)
            if failure is None:
                return
            if _STORE_HELD not in failure or time.monotonic() + delay >= deadline:
                raise errors.UnavailableError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"could not start ckptd for local:{self.data_dir}: {failure}")
            # The store's ckptd is closing it (idle), or still serves but its socket was
            # removed (it creates the socket again within a second): wait, then look.
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
            if self.pid() is not None:
                return

    def _start_once(self, deadline: float) -> Optional[str]:
        """Starts ckptd and waits until it serves (None) or exits (its last log line)."""
        binary = find_ckptd(self.options.ckptd)
        read_end, write_end = os.pipe()
        log_path = os.path.join(self.data_dir, LOG_NAME)
        log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            process = subprocess.Popen(
                [binary, f"--listen=unix:{self.socket_path}", f"--data_dir={self.data_dir}",
                 f"--idle_exit={self.options.idle_exit:g}s", f"--notify_fd={write_end}",
                 f"--sync={'true' if self.options.sync else 'false'}",
                 "--http_listen=",  # no dashboard port: many local ckptd may run at once
                 *self.options.args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(write_end,),
                # Its own session: Ctrl-C in the pipeline's terminal must not stop it.
                start_new_session=True, cwd=self.data_dir)
        finally:
            os.close(write_end)
            os.close(log)
        try:
            ready = _read_line(read_end, deadline)
        finally:
            os.close(read_end)
        if ready.startswith("serving on "):
            # Reap it when it exits, however long this process lives.
            threading.Thread(target=process.wait, name="ckpt-local-reaper",
                             daemon=True).start()
            return None
        try:
            # Its pipe closed (it is exiting: wait for it, it may not have exited yet),
            # or the deadline passed.
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return f"ckptd did not serve within {self.options.start_timeout:g}s (see {log_path})"
        return _last_line(log_path) or f"ckptd exited with code {process.returncode}"


def socket_path(data_dir: str) -> str:
    """Where the ckptd of `data_dir` (a real path) listens: see the module comment."""
    inside = os.path.join(data_dir, SOCKET_NAME)
    if len(os.fsencode(inside)) <= _MAX_SOCKET_PATH:
        return inside
    name = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:24] + ".sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    for base in ([os.path.join(runtime, "ckpt")] if runtime else []) + [
            f"/tmp/ckpt-{os.getuid()}"]:
        path = os.path.join(base, name)
        if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
            _private_dir(base)
            return path
    raise ValueError(f"no socket path short enough for local:{data_dir}")


def _private_dir(path: str) -> None:
    """Creates `path` 0700, or checks that it is a directory only we can enter (anyone
    could create /tmp/ckpt-UID first to intercept the socket)."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if (not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid()
            or info.st_mode & 0o077):
        raise PermissionError(f"{path} must be a directory of yours with mode 0700")


def find_ckptd(explicit: Optional[str] = None) -> str:
    """The ckptd binary: `explicit`, $CKPTD, this package's, or the PATH's."""
    for candidate in (explicit, os.environ.get("CKPTD")):
        if candidate:
            return os.path.abspath(candidate)  # ckptd runs in the data dir
    if os.access(_BUNDLED_CKPTD, os.X_OK):
        return _BUNDLED_CKPTD
    found = shutil.which("ckptd")
    if found is None:
        raise errors.UnavailableError(
            grpc.StatusCode.UNAVAILABLE,
            "local: needs the ckptd binary: set $CKPTD, put ckptd on the PATH, or install "
            "the wheel that carries it (bazel build //client/python:wheel)")
    return found


def _read_line(fd: int, deadline: float) -> str:
    """The first line written to the pipe `fd` before EOF or `deadline` ("" if none)."""
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace").split("\n", 1)[0]


def _last_line(path: str) -> str:
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 4096))
            lines = log.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


@contextlib.contextmanager
def _pidfd(pid: int) -> Iterator[Optional[int]]:
    """A pidfd for `pid` (readable once it exits), or None if the kernel has none."""
    try:
        fd = os.pidfd_open(pid)
    except OSError as e:
        if e.errno not in (errno.ENOSYS, errno.ESRCH):
            raise
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)
