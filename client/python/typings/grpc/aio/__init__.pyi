from typing import (Any, AsyncIterator, Awaitable, Callable, Generator, Generic, Optional,
                    Sequence, TypeVar)

from grpc import ChannelConnectivity, ChannelCredentials, RpcError, StatusCode

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")

class AioRpcError(RpcError):
    def code(self) -> StatusCode: ...
    def details(self) -> Optional[str]: ...

class UnaryUnaryCall(Awaitable[_Resp], Generic[_Resp]):
    def __await__(self) -> Generator[Any, None, _Resp]: ...
    def cancel(self) -> bool: ...

class UnaryStreamCall(AsyncIterator[_Resp], Generic[_Resp]):
    async def __anext__(self) -> _Resp: ...
    def cancel(self) -> bool: ...

class UnaryUnaryMultiCallable(Generic[_Req, _Resp]):
    def __call__(self, request: _Req, *, timeout: Optional[float] = ...,
                 metadata: Optional[Sequence[tuple[str, str]]] = ...,
                 wait_for_ready: Optional[bool] = ...) -> UnaryUnaryCall[_Resp]: ...

class UnaryStreamMultiCallable(Generic[_Req, _Resp]):
    def __call__(self, request: _Req, *, timeout: Optional[float] = ...,
                 metadata: Optional[Sequence[tuple[str, str]]] = ...,
                 wait_for_ready: Optional[bool] = ...) -> UnaryStreamCall[_Resp]: ...

class Channel:
    def unary_unary(self, method: str, request_serializer: Optional[Callable[[Any], bytes]] = ...,
                    response_deserializer: Optional[Callable[[bytes], Any]] = ...
                    ) -> UnaryUnaryMultiCallable[Any, Any]: ...
    def unary_stream(self, method: str,
                     request_serializer: Optional[Callable[[Any], bytes]] = ...,
                     response_deserializer: Optional[Callable[[bytes], Any]] = ...
                     ) -> UnaryStreamMultiCallable[Any, Any]: ...
    async def close(self, grace: Optional[float] = ...) -> None: ...
    def get_state(self, try_to_connect: bool = ...) -> ChannelConnectivity: ...

class Server: ...
class ServicerContext(Generic[_Req, _Resp]): ...

def insecure_channel(target: str, options: Optional[Sequence[tuple[str, Any]]] = ...,
                     compression: Any = ...,
                     interceptors: Optional[Sequence[Any]] = ...) -> Channel: ...
def secure_channel(target: str, credentials: ChannelCredentials,
                   options: Optional[Sequence[tuple[str, Any]]] = ..., compression: Any = ...,
                   interceptors: Optional[Sequence[Any]] = ...) -> Channel: ...

class ClientCallDetails:
    method: str
    timeout: Optional[float]
    metadata: Optional[Sequence[tuple[str, str]]]
    credentials: Any
    wait_for_ready: Optional[bool]
    def __init__(self, method: str, timeout: Optional[float],
                 metadata: Optional[Sequence[tuple[str, str]]], credentials: Any,
                 wait_for_ready: Optional[bool]) -> None: ...

class UnaryUnaryClientInterceptor:
    async def intercept_unary_unary(self, continuation: Callable[..., Any],
                                    client_call_details: ClientCallDetails,
                                    request: Any) -> Any: ...

class UnaryStreamClientInterceptor:
    async def intercept_unary_stream(self, continuation: Callable[..., Any],
                                     client_call_details: ClientCallDetails,
                                     request: Any) -> Any: ...
