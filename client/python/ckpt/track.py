"""ckpt.track: checkpoint any loop in one line (record mode).

    for path in ckpt.track(paths, job="curate-2025-12-14"):
        convert(path)

Each element's key is its position in the iterable (an index), or `key(element)` (an
int index or a str name). Elements whose key is already COMPLETED in ckptd are skipped;
an element is recorded as completed, with its wall time, once the loop body has
finished with it, i.e. when the loop asks for the next one. So a run that crashes or
is interrupted redoes only the element it was in, and the ones whose completion was
still buffered (at most `flush_every`, or `flush_interval` seconds' worth).

An exception in the loop body is not recorded as a failure: it ends the loop (the
pipeline crashed), and the element is redone next run. A pipeline that catches its own
failures records them with tracker.fail(error): the element is then FAILED, with the
message, instead of completed. break ends the loop like an exception: the element
being processed is not recorded.

A sized iterable with positional keys is registered up front as one range, so the
job's total, percent and ETA are right from the start; other elements are registered
as they complete.
"""

import logging
import time

from ckpt import errors

_log = logging.getLogger("ckpt")


def track(iterable, job, *, key=None, client=None, flush_every=64, flush_interval=5.0,
          seal=False):
    """Returns a Tracker: iterate it for the elements of `iterable` not yet completed in
    `job`; see the module comment.

    Args:
      iterable: what the loop goes over.
      job: a ckpt.Job, or a job id (then the job is created, or resumed, through
        `client`, default ckpt.Client() on $CKPT_SERVER or 127.0.0.1:7700).
      key: element -> int index or str name; default: the element's position.
      flush_every: completions sent per call.
      flush_interval: seconds a completion may wait before it is sent.
      seal: seal the job once the iterable is exhausted (it then completes when every
        item is done; a sealed job takes no new items).
    """
    return Tracker(iterable, job, key=key, client=client, flush_every=flush_every,
                   flush_interval=flush_interval, seal=seal)


class Tracker:
    """The loop of ckpt.track. Iterate it once, from one thread.

        tracker = ckpt.track(paths, job=job)
        for path in tracker:
            try:
                convert(path)
            except BadInput as e:
                tracker.fail(e)   # recorded FAILED (not completed); retried next run
    """

    def __init__(self, iterable, job, *, key, client, flush_every, flush_interval, seal):
        self._iterable = iterable
        self._job = job
        self._client = client
        self._key = key
        self._flush_every = flush_every
        self._flush_interval = flush_interval
        self._seal = seal
        self._handle = None
        self._current = None  # the key of the element in the loop body
        self._failed_current = False

    @property
    def job(self):
        """The ckpt.Job (once iteration has started)."""
        return self._handle

    def fail(self, error):
        """Records the element in the loop body FAILED with `error` (a message or an
        exception) instead of completed. It is done again by the next run."""
        if self._current is None or self._failed_current:
            raise RuntimeError("fail() is for the element in the loop body, once")
        self._handle.mark_failed(self._current, error)
        self._failed_current = True

    def __iter__(self):
        if self._handle is not None:
            raise RuntimeError("a Tracker is iterated once; call ckpt.track again")
        self._handle = _resolve_job(self._job, self._client)
        return self._elements()

    def _elements(self):
        handle = self._handle
        done = handle.completed_keys()
        if self._key is None:
            _register_range(handle, self._iterable)
        waiting = []
        last_flush = time.monotonic()
        finished = False
        try:
            for position, element in enumerate(self._iterable):
                item_key = position if self._key is None else self._key(element)
                if item_key in done:
                    continue
                self._current, self._failed_current = item_key, False
                started = time.monotonic()
                yield element
                self._current = None
                if not self._failed_current:
                    waiting.append((item_key, time.monotonic() - started))
                if (len(waiting) >= self._flush_every
                        or time.monotonic() - last_flush >= self._flush_interval):
                    handle.complete_many(waiting)
                    waiting = []
                    last_flush = time.monotonic()
            finished = True
        finally:
            try:
                handle.complete_many(waiting)
            except errors.CkptError as e:
                if finished:
                    raise
                # Never hide the loop body's own exception behind ours.
                _log.warning("ckpt: %d completions not recorded (redone next run): %s",
                             len(waiting), e)
        if self._seal:
            handle.seal()


def _resolve_job(job, client):
    if not isinstance(job, str):
        return job
    if client is None:
        from ckpt.client import Client
        client = Client()
    return client.create_job(job)


def _register_range(handle, iterable):
    try:
        size = len(iterable)
    except TypeError:
        return  # not sized: items are registered as they complete
    if size == 0:
        return
    try:
        handle.add_items(range(size))
    except errors.FailedPreconditionError:
        pass  # sealed, or finished: nothing may be added, and the items are known
