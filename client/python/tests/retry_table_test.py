"""ckpt/retry.py's table against docs/api.md's "Retrying a write": the doc is the one
source, and the C++ SDK is checked against the same rows (tests/client), so changing
one SDK's table, or the doc, without the other fails a test."""

import os
import unittest

import grpc

import ckpt
from ckpt import retry as retry_lib
from ckpt.v1 import checkpoint_pb2 as pb

_SERVICE = pb.DESCRIPTOR.services_by_name["Checkpoint"]


def _default(method):
    return getattr(pb, _SERVICE.methods_by_name[method].input_type.name)()


def _each(*methods):
    return [(method, _default(method)) for method in methods]


# Requests that each row of the doc's table is about, by the row's first cell.
SAMPLES = {
    "GetJob, ListJobs, GetItem, ListItems, FindOutput, ListWorkers, GetState, ListStates, "
    "WatchJob, ListLogs": _each("GetJob", "ListJobs", "GetItem", "ListItems", "FindOutput",
                                "ListWorkers", "GetState", "ListStates", "WatchJob", "ListLogs"),
    "CreateJob with `job_id`": [("CreateJob", pb.CreateJobRequest(job_id="j"))],
    "CreateJob without `job_id`": [("CreateJob", pb.CreateJobRequest())],
    "UpdateJob, PauseJob, ResumeJob, StopJob, FinishJob (same status), UnregisterWorker":
        _each("UpdateJob", "PauseJob", "ResumeJob", "StopJob", "FinishJob", "UnregisterWorker"),
    "Heartbeat": _each("Heartbeat"),
    "WriteLogs": _each("WriteLogs"),
    "AddItems, sealing or not": [
        ("AddItems", pb.AddItemsRequest(indices=[1])),
        ("AddItems", pb.AddItemsRequest(indices=[1], seal=True)),
        ("AddItems", pb.AddItemsRequest(seal=True))],
    "CompleteItems": [("CompleteItems", pb.CompleteItemsRequest(
        items=[pb.Completion(lease_token=0), pb.Completion(lease_token=7)]))],
    "CompleteItems with `lease_next`": [("CompleteItems", pb.CompleteItemsRequest(
        worker_id="w-1", items=[pb.Completion(lease_token=7)],
        lease_next=pb.LeaseNext(max_items=100)))],
    "FailItems, every item with a token": [("FailItems", pb.FailItemsRequest(
        items=[pb.Failure(lease_token=7), pb.Failure(lease_token=8)]))],
    "FailItems with a token-0 item": [("FailItems", pb.FailItemsRequest(
        items=[pb.Failure(lease_token=7), pb.Failure(lease_token=0)]))],
    "LeaseItems": [("LeaseItems", pb.LeaseItemsRequest(worker_id="w-1", max_items=1))],
    "RegisterWorker": _each("RegisterWorker"),
    "ResetItems with `dry_run`": [("ResetItems", pb.ResetItemsRequest(dry_run=True))],
    "ResetItems": [("ResetItems", pb.ResetItemsRequest(state=pb.ITEM_STATE_FAILED))],
    "ResetJob": _each("ResetJob"),
    "DeleteJob": _each("DeleteJob"),
    "BackupStore": _each("BackupStore"),
    "DeleteJobs with `dry_run`": [("DeleteJobs", pb.DeleteJobsRequest(dry_run=True))],
    "DeleteJobs": [("DeleteJobs", pb.DeleteJobsRequest())],
    "PutState without `expected_version`": [("PutState", pb.PutStateRequest(name="n"))],
    "PutState with `expected_version`": [
        ("PutState", pb.PutStateRequest(name="n", expected_version=0)),
        ("PutState", pb.PutStateRequest(name="n", expected_version=3))],
}


def api_md_path():
    """docs/api.md: from the test's runfiles under Bazel, else from the source tree."""
    runfiles = os.environ.get("TEST_SRCDIR")
    if runfiles:
        return os.path.join(runfiles, "ckpt", "docs", "api.md")
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, "..", "..", "..", "docs", "api.md")


def doc_table():
    """{first cell: True (re-sent) / False} of the table under "## Retrying a write"."""
    with open(api_md_path(), encoding="utf-8") as doc:
        text = doc.read()
    section = text.split("## Retrying a write", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[2] not in ("yes", "no"):
            continue
        rows[cells[0]] = cells[2] == "yes"
    return rows


class RetryTableTest(unittest.TestCase):

    def test_every_row_of_the_doc_has_samples_and_every_sample_a_row(self):
        self.assertEqual(sorted(doc_table()), sorted(SAMPLES))

    def test_the_sdk_resends_exactly_what_the_doc_says(self):
        for row, resend in doc_table().items():
            for method, request in SAMPLES[row]:
                self.assertEqual(retry_lib.is_idempotent(method, request), resend,
                                 f"{row}: {method}({request})")

    def test_every_rpc_is_in_the_doc_and_in_the_sdk(self):
        sampled = {method for samples in SAMPLES.values() for method, _ in samples}
        self.assertEqual(sampled, set(_SERVICE.methods_by_name))
        self.assertEqual(set(retry_lib.RESEND_AFTER_LOST_ANSWER), set(_SERVICE.methods_by_name))

    def test_only_lost_answers_are_retried(self):
        self.assertEqual(retry_lib.RETRYABLE_CODES,
                         {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

    def test_backoff_grows_exponentially_with_bounded_jitter(self):
        policy = ckpt.RetryPolicy(initial_backoff=0.1, max_backoff=5.0, multiplier=2.0)

        class Edge:  # a random source that always answers one end of the range
            def __init__(self, top):
                self.top = top

            def uniform(self, low, high):
                return high if self.top else low
        self.assertAlmostEqual(policy.backoff(0, Edge(False)), 0.05)
        self.assertAlmostEqual(policy.backoff(0, Edge(True)), 0.1)
        self.assertAlmostEqual(policy.backoff(3, Edge(True)), 0.8)
        self.assertAlmostEqual(policy.backoff(30, Edge(False)), 2.5)
        self.assertAlmostEqual(policy.backoff(30, Edge(True)), 5.0)


if __name__ == "__main__":
    unittest.main()
