"""What the sync and the asyncio transports share: the channel settings, the stubs, the deadline of a step, and how a
call of clients/calls.py becomes a client method with the call's name, parameters and docstring."""

from __future__ import annotations

import functools
import inspect
import ipaddress
import os
import socket
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc

from .steps import ClientTimeout, Timeout

DEFAULT_TARGET = os.environ.get("MUNET_SERVE_SERVER", "127.0.0.1:50051")
TOKEN_ENV = "MUNET_SERVE_TOKEN"  # the bearer token a client sends when it is given none
TLS_CA_ENV = "MUNET_SERVE_TLS_CA"  # the CA file a client trusts when it is given none (set: the channel uses TLS)
TLS_CERT_ENV, TLS_KEY_ENV = "MUNET_SERVE_TLS_CERT", "MUNET_SERVE_TLS_KEY"  # the client certificate for mutual TLS
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]

F = TypeVar("F", bound=Callable[..., Any])


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The call metadata that carries a token: `token`, else $MUNET_SERVE_TOKEN, else none."""
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None
    return (("authorization", f"Bearer {token}"),) if token else ()


BALANCED = ("grpc.lb_policy_name", "round_robin")
SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:")  # gRPC's own target names, passed through


def channel_target(target: str) -> tuple[str, list[tuple[str, Any]]]:
    """The gRPC target and channel options for `target`. It may be one address HOST:PORT, or several separated by
    commas (replicas: each call goes to the next ready one, gRPC's round_robin over their addresses; a host name is
    resolved once, here), or a gRPC name such as dns:///replicas.example:50051 (round_robin over what it resolves
    to)."""
    parts = [p.strip() for p in target.split(",") if p.strip()]
    if not parts:
        raise ValueError("no server address given")
    if len(parts) == 1:
        balanced = parts[0].startswith(SCHEMES)
        return parts[0], [*CHANNEL_OPTIONS, *([BALANCED] if balanced else [])]
    addresses = [_address(part) for part in parts]
    if len({ip.version for ip, _ in addresses}) > 1:
        raise ValueError(f"server addresses {target!r} mix IPv4 and IPv6; give addresses of one family")
    scheme = f"ipv{addresses[0][0].version}"
    joined = ",".join(f"{ip}:{port}" if ip.version == 4 else f"[{ip}]:{port}" for ip, port in addresses)
    return f"{scheme}:{joined}", [*CHANNEL_OPTIONS, BALANCED]


def _address(part: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    host, colon, port = part.rpartition(":")
    if not colon or not host or not port.isdigit():
        raise ValueError(f"server address {part!r} is not HOST:PORT")
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host), int(port)
    except ValueError:
        pass
    try:
        found = [ipaddress.ip_address(info[4][0]) for info in socket.getaddrinfo(host, int(port),
                                                                                 type=socket.SOCK_STREAM)]
    except OSError as e:
        raise ValueError(f"server address {part!r}: {host!r} does not resolve: {e}") from e
    return next((ip for ip in found if ip.version == 4), found[0]), int(port)  # IPv4 first, as for localhost


def channel_credentials(tls_ca: str | Path | None = None, tls_cert: str | Path | None = None,
                        tls_key: str | Path | None = None) -> grpc.ChannelCredentials | None:
    """TLS credentials trusting `tls_ca` (else $MUNET_SERVE_TLS_CA), with a client certificate for mutual TLS if
    `tls_cert` and `tls_key` are given (else $MUNET_SERVE_TLS_CERT and $MUNET_SERVE_TLS_KEY); None for a plaintext
    channel."""
    ca = tls_ca if tls_ca is not None else os.environ.get(TLS_CA_ENV) or None
    tls_cert = tls_cert if tls_cert is not None else os.environ.get(TLS_CERT_ENV) or None
    tls_key = tls_key if tls_key is not None else os.environ.get(TLS_KEY_ENV) or None
    if ca is None and tls_cert is None and tls_key is None:
        return None
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("a client certificate needs both tls_cert and tls_key")
    return grpc.ssl_channel_credentials(
        root_certificates=Path(ca).read_bytes() if ca is not None else None,
        private_key=Path(tls_key).read_bytes() if tls_key is not None else None,
        certificate_chain=Path(tls_cert).read_bytes() if tls_cert is not None else None,
    )


def open_channel(grpc_module: Any, target: str, tls_ca: str | Path | None = None, tls_cert: str | Path | None = None,
                 tls_key: str | Path | None = None) -> Any:
    """A channel of `grpc_module` (grpc, or grpc.aio) to `target` (channel_target), with TLS if credentials are
    given or set in the environment (channel_credentials), else plaintext."""
    credentials = channel_credentials(tls_ca, tls_cert, tls_key)
    name, options = channel_target(target)
    if credentials is None:
        return grpc_module.insecure_channel(name, options=options)
    return grpc_module.secure_channel(name, credentials, options=options)


class Transport:
    """A channel to one server and the stubs on it (made on first use); `timeout` is the default deadline, and every
    call carries the bearer token, if there is one."""

    def __init__(self, channel: Any, target: str, timeout: float | None, token: str | None = None) -> None:
        self.target = target
        self.timeout = timeout
        self._channel = channel
        self._stubs: dict[type, Any] = {}
        self._metadata = bearer_metadata(token)

    def _method(self, stub: type, method: str) -> Any:
        if stub not in self._stubs:
            self._stubs[stub] = stub(self._channel)
        call = getattr(self._stubs[stub], method)
        return functools.partial(call, metadata=self._metadata) if self._metadata else call

    def _deadline(self, timeout: Timeout) -> float | None:
        return self.timeout if timeout is ClientTimeout.CLIENT else timeout


def as_method(method: F, call: Callable[..., Any], returns: Callable[[Any], Any]) -> F:
    """`method` (taking self and the call's arguments) named and documented as `call`, with the call's signature:
    `self` in place of its first parameter (the session) and `returns(<the call's return type>)` as return type."""
    method.__name__ = call.__name__
    method.__qualname__ = call.__name__
    method.__module__ = call.__module__
    method.__doc__ = call.__doc__
    signature = inspect.signature(call)
    hints = typing.get_type_hints(call)
    self = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    parameters = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()]
    return_type = returns(hints["return"])
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[self, *parameters[1:]], return_annotation=return_type
    )
    method.__annotations__ = {p.name: p.annotation for p in parameters[1:] if p.annotation is not p.empty}
    method.__annotations__["return"] = return_type
    return method


def step_result(steps_type: Any) -> Any:
    """R of Steps[R] (Generator[Step, Any, R])."""
    return typing.get_args(steps_type)[2]


def watch_item(watch_type: Any) -> Any:
    """T of Watch[T]."""
    return typing.get_args(watch_type)[0]
