"""examples/pipeline.py runs end to end against a real ckptd, in both modes."""

import unittest

import pipeline
from ckptd_process import CkptdTestCase


class ExampleTest(CkptdTestCase):

    def run_pipeline(self, *args):
        return pipeline.main(["--address", self.ckptd.address, "--job", self.job_id(),
                              "--items", "20", "--fail-every", "5", *args])

    def test_workers_mode(self):
        summary = self.run_pipeline("--workers", "3")
        self.assertEqual((summary["completed"], summary["failed"], summary["remaining"]),
                         (16, 4, 0))
        self.assertEqual(summary["status"], "FAILED")  # sealed, with failed items
        self.assertEqual(sum(summary["errors"].values()), 4)
        # Run again: nothing is redone.
        self.assertEqual(self.run_pipeline("--workers", "3")["completed"], 16)

    def test_track_mode(self):
        summary = self.run_pipeline("--mode", "track")
        self.assertEqual((summary["completed"], summary["failed"], summary["remaining"]),
                         (16, 4, 0))
        self.assertIn("ValueError: corrupt header in part-00004", summary["errors"])


if __name__ == "__main__":
    unittest.main()
