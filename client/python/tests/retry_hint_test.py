"""ckpt.Client and ckptd's retry hint: a write refused RESOURCE_EXHAUSTED because the
write queue was full carries "ckpt-retry-after-ms" in its trailing metadata; it was not
applied, so the client sends it again after at least that long, whatever the method.

The server here is a stand-in answering exactly that, because a real ckptd's queue
cannot be held full from outside (tests/engine/write_queue_test.cc shows the engine
answering it).
"""

import threading
import unittest
from concurrent import futures

import grpc

import ckpt
from ckpt import errors
from ckpt.v1 import checkpoint_pb2 as pb


class QueueFullServer:
    """Answers PutState RESOURCE_EXHAUSTED `refusals` times (with the hint if `hint`),
    then OK."""

    def __init__(self, refusals, hint):
        self.calls = 0
        self._refusals = refusals
        self._hint = hint
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handler = grpc.unary_unary_rpc_method_handler(
            self._put_state, request_deserializer=pb.PutStateRequest.FromString,
            response_serializer=pb.PutStateResponse.SerializeToString)
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "ckpt.v1.Checkpoint", {"PutState": handler}),))
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    def _put_state(self, request, context):
        with self._lock:
            self.calls += 1
            refuse = self.calls <= self._refusals
        if refuse:
            if self._hint:
                context.set_trailing_metadata(((errors.RETRY_AFTER_KEY, "20"),))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "write queue is full")
        return pb.PutStateResponse()

    def __enter__(self):
        self._server.start()
        return self

    def __exit__(self, *exc):
        self._server.stop(None)


class RetryHintTest(unittest.TestCase):

    def put_state(self, server, delays):
        policy = ckpt.RetryPolicy(initial_backoff=0.001, max_backoff=0.001)
        # Retries only (attempt >= 1), not a wait for the connection (attempt 0) that a
        # slow first connect may cause.
        client = ckpt.Client(f"127.0.0.1:{server.port}", retry=policy,
                             on_retry=lambda method, error, attempt, delay: (
                                 delays.append(delay) if method == "PutState" and attempt
                                 else None))
        try:
            # Conditional: never sent again after an ambiguous failure.
            return client.call("PutState", job_id="j", name="n", value=b"v",
                               expected_version=3)
        finally:
            client.close()

    def test_a_write_refused_with_a_hint_is_sent_again_after_the_hint(self):
        delays = []
        with QueueFullServer(refusals=2, hint=True) as server:
            self.put_state(server, delays)
            self.assertEqual(server.calls, 3)
        self.assertEqual(len(delays), 2)
        self.assertTrue(all(delay >= 0.020 for delay in delays), delays)

    def test_resource_exhausted_without_a_hint_is_not_retried(self):
        delays = []
        with QueueFullServer(refusals=1, hint=False) as server:
            with self.assertRaises(ckpt.ResourceExhaustedError):
                self.put_state(server, delays)
            self.assertEqual(server.calls, 1)
        self.assertEqual(delays, [])


if __name__ == "__main__":
    unittest.main()
