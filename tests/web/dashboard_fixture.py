"""A job being worked by SDK workers, for the dashboard's browser test.

    dashboard_fixture --address 127.0.0.1:PORT [--token TOKEN]

Reads one JSON command per line on stdin and answers each with one JSON line on stdout
(logs go to stderr), so the test can drive real gRPC calls while a browser watches:

    {"cmd": "start", "job": J, "items": N, "workers": W, "work_ms": MS, "fail": {"7": "msg"}}
        creates J (labels, a display name, a state blob), adds items 0..N-1 and starts W
        Python SDK workers (ckpt.Worker). Each item takes about MS ms; item i fails, not
        retryably, with fail[str(m)] for the first m (in the dict's order) dividing i.
    {"cmd": "get_job", "job": J}             GetJob's answer, in protobuf's JSON mapping
    {"cmd": "complete", "job": J, "index": i}  a record-mode completion of item i
    {"cmd": "pending", "job": J}             the index of one PENDING item
    {"cmd": "failed", "job": J}              every FAILED item: [{"index", "message"}]
    {"cmd": "quit"}                          closes the workers and exits

Every answer has "ok": true, or "ok": false and "error" with the SDK's exception text.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import grpc
from google.protobuf import json_format

import ckpt
from ckpt import pb

log = logging.getLogger("dashboard_fixture")


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer TOKEN` to every call, for a ckptd with --auth_file."""

    def __init__(self, token: str) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),)

    def _with_token(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = tuple(details.metadata or ()) + self._metadata
        return details._replace(metadata=metadata) if hasattr(details, "_replace") else \
            _CallDetails(details.method, details.timeout, metadata, details.credentials,
                         details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)


@dataclass(frozen=True)
class _CallDetails(grpc.ClientCallDetails):
    method: str
    timeout: Optional[float]
    metadata: Any
    credentials: Any
    wait_for_ready: Optional[bool]
    compression: Any


@dataclass
class Fixture:
    """The client, and the workers started by "start"."""

    client: ckpt.Client
    workers: list[ckpt.Worker] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, job: str, items: int, workers: int, work_ms: int,
              fail: dict[str, str]) -> dict[str, Any]:
        handle = self.client.create_job(
            job, display_name="Nightly curation of the raw crawl", config={"input": "s3://raw"},
            labels={"team": "curation", "tier": "nightly"})
        handle.add_items(range(items))
        self.client.call("PutState", job_id=job, name="manifest", value=b'{"shards": 64}')
        rules = [(int(divisor), message) for divisor, message in fail.items()]
        for k in range(workers):
            worker = ckpt.Worker(self.client, job, lease_batch=4, retry_failures=False,
                                 hostname=f"gpu-node-{k + 1}")
            self.workers.append(worker)
            thread = threading.Thread(target=self._work, args=(worker, work_ms / 1000, rules),
                                      name=f"worker-{k}", daemon=True)
            thread.start()
            self.threads.append(thread)
        return {}

    @staticmethod
    def _work(worker: ckpt.Worker, seconds: float, rules: list[tuple[int, str]]) -> None:
        for item in worker:
            started = time.monotonic()
            time.sleep(seconds)  # the item's work
            message = next((m for d, m in rules if item.index % d == 0), None)
            if message is not None:
                item.fail(message, retryable=False)
            else:
                item.complete(output_paths=[f"s3://curated/part-{item.index:05d}.parquet"],
                              wall_time=time.monotonic() - started)

    def get_job(self, job: str) -> dict[str, Any]:
        return json_format.MessageToDict(self.client.call("GetJob", job_id=job))

    def complete(self, job: str, index: int) -> dict[str, Any]:
        answer = self.client.call("CompleteItems", job_id=job, items=[
            {"key": {"index": index},
             "result": {"output_paths": [f"s3://curated/manual-{index:05d}.parquet"]}}])
        return {"outcomes": [pb.CompletionOutcome.Name(o) for o in answer.outcomes]}

    def pending(self, job: str) -> dict[str, Any]:
        answer = self.client.call("ListItems", job_id=job, state=pb.ITEM_STATE_PENDING,
                                  limit=1, keys_only=True)
        return {"index": answer.items[0].key.index}

    def failed(self, job: str) -> dict[str, Any]:
        found, token = [], ""
        while True:
            page = self.client.call("ListItems", job_id=job, state=pb.ITEM_STATE_FAILED,
                                    limit=1000, page_token=token)
            found += [{"index": i.key.index, "message": i.last_error.message} for i in page.items]
            token = page.next_page_token
            if not token:
                return {"items": found}

    def close(self) -> None:
        for worker in self.workers:
            worker.close()


def _serve(fixture: Fixture) -> None:
    commands: dict[str, Callable[..., dict[str, Any]]] = {
        "start": fixture.start, "get_job": fixture.get_job, "complete": fixture.complete,
        "pending": fixture.pending, "failed": fixture.failed,
    }
    for line in sys.stdin:
        request = json.loads(line)
        name = request.pop("cmd")
        if name == "quit":
            break
        try:
            answer = {"ok": True, **commands[name](**request)}
        except Exception as error:  # the test reports what went wrong
            log.exception("%s failed", name)
            answer = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        print(json.dumps(answer), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description="SDK workers for the dashboard test")
    parser.add_argument("--address", required=True)
    parser.add_argument("--token", default="")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="dashboard_fixture: %(message)s")
    channel = grpc.insecure_channel(args.address)
    if args.token:
        channel = grpc.intercept_channel(channel, _BearerToken(args.token))
    fixture = Fixture(ckpt.Client(args.address, channel=channel))
    try:
        _serve(fixture)
    finally:
        fixture.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
