"""TLS, mutual TLS and a bearer token for ckpt.Client and ckpt.aio.Client (docs/api.md,
"Authentication, roles and TLS"): what a Client is given, else $CKPT_TLS_CA,
$CKPT_TLS_CERT, $CKPT_TLS_KEY and $CKPT_TOKEN. The token travels as
"authorization: Bearer TOKEN" with every call, streams included, through a channel
interceptor (so plaintext to a loopback or unix: ckptd works too), and never appears in
an error or a log line.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from typing import Any, Callable, Optional, Sequence

import grpc
import grpc.aio

AUTHORIZATION = "authorization"


@dataclasses.dataclass(frozen=True)
class Security:
    """Who a Client is and whom it trusts. `tls`: TLS with the system's CAs when no
    `tls_ca` is given; any file also means TLS."""
    tls: bool = False
    tls_ca: Optional[str] = None     # PEM file: the CA that signed ckptd's certificate
    tls_cert: Optional[str] = None   # PEM file: this client's certificate (mutual TLS)
    tls_key: Optional[str] = None    # PEM file: its private key
    token: Optional[str] = dataclasses.field(default=None, repr=False)

    @classmethod
    def resolve(cls, *, tls: bool, tls_ca: Optional[str], tls_cert: Optional[str],
                tls_key: Optional[str], token: Optional[str]) -> Security:
        """The arguments, each left None taken from its environment variable. ValueError
        (never showing the token) for half a certificate or a token that cannot travel
        in a header."""
        env = os.environ.get
        security = cls(tls, tls_ca or env("CKPT_TLS_CA") or None,
                       tls_cert or env("CKPT_TLS_CERT") or None,
                       tls_key or env("CKPT_TLS_KEY") or None, token or env("CKPT_TOKEN") or None)
        if (security.tls_cert is None) != (security.tls_key is None):
            raise ValueError("a client certificate needs its key and a key its certificate: "
                             "give both tls_cert and tls_key ($CKPT_TLS_CERT, $CKPT_TLS_KEY)")
        if security.token is not None and not all(" " < c <= "~" for c in security.token):
            raise ValueError("the bearer token has a character that cannot travel in a "
                             "header (only visible ASCII can)")
        return security

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.tls_ca is not None or self.tls_cert is not None

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """TLS credentials from the files (read now; OSError names a missing one)."""
        def read(path: Optional[str]) -> Optional[bytes]:
            if path is None:
                return None
            with open(path, "rb") as pem:
                return pem.read()
        return grpc.ssl_channel_credentials(root_certificates=read(self.tls_ca),
                                            private_key=read(self.tls_key),
                                            certificate_chain=read(self.tls_cert))

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata that carries the token; empty without one."""
        return ((AUTHORIZATION, f"Bearer {self.token}"),) if self.token else ()


def _with_token(metadata: Optional[Sequence[tuple[str, str]]],
                token: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    return [item for item in (metadata or ()) if item[0] != AUTHORIZATION] + list(token)


class _CallDetails(collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                         "compression")), grpc.ClientCallDetails):
    """grpc.ClientCallDetails with other metadata."""


class TokenInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds the token to every call of a sync channel."""

    def __init__(self, token: tuple[tuple[str, str], ...]) -> None:
        self._token = token

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(details.method, details.timeout,
                            _with_token(details.metadata, self._token), details.credentials,
                            details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation: Callable[..., Any],
                              client_call_details: grpc.ClientCallDetails, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation: Callable[..., Any],
                               client_call_details: grpc.ClientCallDetails,
                               request: Any) -> Any:
        return continuation(self._details(client_call_details), request)


def _aio_details(details: grpc.aio.ClientCallDetails,
                 token: tuple[tuple[str, str], ...]) -> grpc.aio.ClientCallDetails:
    metadata = list(details.metadata) if details.metadata is not None else None
    return grpc.aio.ClientCallDetails(details.method, details.timeout,
                                      _with_token(metadata, token), details.credentials,
                                      details.wait_for_ready)


class _AioUnaryToken(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, token: tuple[tuple[str, str], ...]) -> None:
        self._token = token

    async def intercept_unary_unary(self, continuation: Callable[..., Any],
                                    client_call_details: grpc.aio.ClientCallDetails,
                                    request: Any) -> Any:
        return await continuation(_aio_details(client_call_details, self._token), request)


class _AioStreamToken(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, token: tuple[tuple[str, str], ...]) -> None:
        self._token = token

    async def intercept_unary_stream(self, continuation: Callable[..., Any],
                                     client_call_details: grpc.aio.ClientCallDetails,
                                     request: Any) -> Any:
        return await continuation(_aio_details(client_call_details, self._token), request)


def aio_token_interceptors(token: tuple[tuple[str, str], ...]) -> list[Any]:
    """Interceptors that add the token to every call of an asyncio channel. One object
    per kind of call: grpc.aio files an interceptor under the first kind it is."""
    return [_AioUnaryToken(token), _AioStreamToken(token)]
