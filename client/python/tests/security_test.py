"""ckpt.Client and ckpt.aio.Client against a ckptd with mutual TLS and an auth file:
TLS files and a token from arguments or $CKPT_*, the token on every call and stream,
and refusals that say why without showing the token. The certificates are made at test
time by tests/testing/make_test_pki.sh (Debian's openssl)."""

import asyncio
import hashlib
import os
import secrets
import subprocess
import tempfile
import unittest
from unittest import mock

import ckpt
import ckpt.aio
from ckptd_process import Ckptd, new_data_dir

MARKER = "ckpt-test-secret-"  # every test token starts so (tools/test.sh greps logs)


def new_token(who):
    return f"{MARKER}{who}-{secrets.token_hex(16)}"


def auth_line(name, role, token, extra=""):
    digest = hashlib.sha256(token.encode()).hexdigest()
    return f"{name} {role} token_sha256={digest} {extra}\n"


class SecurityTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = tempfile.mkdtemp(prefix="pki-", dir=os.environ.get("TEST_TMPDIR"))
        subprocess.run(["/bin/bash", os.environ["PKI_SCRIPT"], cls.pki], check=True)
        cls.admin, cls.reader = new_token("admin"), new_token("reader")
        auth = os.path.join(cls.pki, "auth")
        with open(auth, "w") as out:
            out.write(auth_line("ops", "admin", cls.admin) +
                      auth_line("dashboard", "reader", cls.reader) +
                      "etl-node-7 worker cert=etl-node-7.example.com job_prefix=etl-\n")
        cls.ckptd = Ckptd(new_data_dir())
        cls.ckptd.start(flags=[f"--tls_cert={cls.path('server.crt')}",
                               f"--tls_key={cls.path('server.key')}",
                               f"--tls_client_ca={cls.path('ca.crt')}", f"--auth_file={auth}"])

    @classmethod
    def tearDownClass(cls):
        cls.ckptd.stop()
        log = "".join(cls.ckptd.log)
        assert MARKER not in log, "a test token reached ckptd's log"

    @classmethod
    def path(cls, name):
        return os.path.join(cls.pki, name)

    def client(self, token=None, **options):
        return ckpt.Client(self.ckptd.address, tls_ca=self.path("ca.crt"),
                           tls_cert=self.path("client.crt"), tls_key=self.path("client.key"),
                           token=token, retry=ckpt.NO_RETRY, **options)

    def test_the_certificate_alone_is_its_principal(self):
        with self.client() as node:
            job = node.create_job("etl-py-nightly")
            job.add_items(range(5), seal=True)
            for item in job.worker():
                with item:
                    pass
            self.assertEqual(job.info().status, ckpt.pb.JOB_STATUS_COMPLETED)
            with self.assertRaises(ckpt.PermissionDeniedError) as refused:
                job.delete()
            self.assertIn("DeleteJob needs the admin role", refused.exception.message)
            with self.assertRaises(ckpt.PermissionDeniedError):
                node.create_job("ml-py-nightly")

    def test_the_token_travels_with_calls_and_streams(self):
        with self.client(self.admin) as admin, self.client(self.reader) as reader:
            admin.create_job("reports-py")
            stream = reader.watch_job("reports-py")
            self.assertEqual(next(stream).job_id, "reports-py")
            stream.close()
            with self.assertRaises(ckpt.PermissionDeniedError):
                reader.call("DeleteJob", job_id="reports-py")
            admin.call("DeleteJob", job_id="reports-py")

    def test_the_environment_supplies_what_arguments_leave_out(self):
        env = {"CKPT_TLS_CA": self.path("ca.crt"), "CKPT_TLS_CERT": self.path("client.crt"),
               "CKPT_TLS_KEY": self.path("client.key"), "CKPT_TOKEN": self.admin}
        with mock.patch.dict(os.environ, env):
            with ckpt.Client(self.ckptd.address, retry=ckpt.NO_RETRY) as client:
                client.create_job("from-env-py")
                client.call("DeleteJob", job_id="from-env-py")  # the admin token spoke

    def test_refusals_say_why_without_the_token(self):
        wrong = new_token("wrong")
        with self.client(wrong) as client:
            with self.assertRaises(ckpt.UnauthenticatedError) as refused:
                client.call("GetJob", job_id="etl-x")
        self.assertIn("bearer token matches no principal", refused.exception.message)
        self.assertNotIn(wrong, str(refused.exception))
        with self.assertRaisesRegex(ValueError, "give both"):
            ckpt.Client(self.ckptd.address, tls_cert=self.path("client.crt"))
        with self.assertRaisesRegex(ValueError, "cannot travel in a header") as bad:
            ckpt.Client(self.ckptd.address, token="two\nlines")
        self.assertNotIn("two", str(bad.exception))

    def test_asyncio_client(self):
        async def run():
            client = ckpt.aio.Client(self.ckptd.address, tls_ca=self.path("ca.crt"),
                                     tls_cert=self.path("client.crt"),
                                     tls_key=self.path("client.key"), token=self.admin,
                                     retry=ckpt.NO_RETRY)
            try:
                await client.create_job("aio-py")
                async for job in client.watch_job("aio-py"):
                    self.assertEqual(job.job_id, "aio-py")
                    break
                await client.call("DeleteJob", job_id="aio-py")
            finally:
                await client.close()
        asyncio.run(run())


if __name__ == "__main__":
    unittest.main()
