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
pipeline crashed), and the element is redone next run. Record failures yourself with
job.mark_failed() where the pipeline catches them. break ends the loop the same way:
the element being processed is not recorded.

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
    """Yields the elements of `iterable` not yet completed in `job`; see the module.

    Args:
      iterable: what the loop goes over.
      job: a ckpt.Job, or a job id (then the job is created, or resumed, through
        `client`, default ckpt.Client() on $CKPT_ADDRESS or 127.0.0.1:7700).
      key: element -> int index or str name; default: the element's position.
      flush_every: completions sent per call.
      flush_interval: seconds a completion may wait before it is sent.
      seal: seal the job once the iterable is exhausted (it then completes when every
        item is done; a sealed job takes no new items).
    """
    handle = _resolve_job(job, client)
    done = handle.completed_keys()
    if key is None:
        _register_range(handle, iterable)
    waiting = []
    last_flush = time.monotonic()
    finished = False
    try:
        for position, element in enumerate(iterable):
            item_key = position if key is None else key(element)
            if item_key in done:
                continue
            started = time.monotonic()
            yield element
            waiting.append((item_key, time.monotonic() - started))
            if len(waiting) >= flush_every or time.monotonic() - last_flush >= flush_interval:
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
    if seal:
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
