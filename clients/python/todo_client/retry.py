"""Which calls are retried, how often, and the gRPC service config that says so.

gRPC retries a call only when its method has a `retryPolicy` in the channel's
service config (gRFC A6). Which methods get one follows from the contract, by
one rule (`retried_by_channel`), so a new RPC needs no entry here:

- a method whose `idempotency_level` is NO_SIDE_EFFECTS or IDEMPOTENT is safe
  to repeat by contract (GetTodo, ListTodos, AddTag, RemoveTag today);
- a method whose request has a `request_id` field (an AIP-155 idempotency key)
  is safe to repeat because this client always fills it (it makes up a UUID
  when the caller gives none), so a repeated attempt returns what the first
  one did (CreateTodo today).

UpdateTodo and DeleteTodo fall under neither: without an etag a repeated
attempt could overwrite a change someone made in between (update) or delete an
entry re-created under the same id (delete). With an etag the change is
conditional, so repeating it cannot undo anyone else's change; the client
retries those calls itself (`TodoClient._conditional`) with the same policy
and a token bucket of its own that follows gRPC's throttling rule.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import MethodDescriptor

from todo.v1 import todo_service_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["TodoService"]
SERVICE_NAME = SERVICE.full_name
IDEMPOTENCY_KEY_FIELD = "request_id"
_SAFE_LEVELS = (descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS, descriptor_pb2.MethodOptions.IDEMPOTENT)


def retried_by_channel(method: MethodDescriptor) -> bool:
    """The rule: safe to repeat by its declared idempotency level, or by its idempotency key."""
    return (
        method.GetOptions().idempotency_level in _SAFE_LEVELS
        or IDEMPOTENCY_KEY_FIELD in method.input_type.fields_by_name
    )


# Methods the channel's service config retries on UNAVAILABLE, in contract order.
RETRIED_METHODS = tuple(method.name for method in SERVICE.methods if retried_by_channel(method))
RETRYABLE_STATUS_CODES = ("UNAVAILABLE",)

ChannelOption = tuple[str, str | int]


def _duration(seconds: float) -> str:
    """A google.protobuf.Duration in its JSON form, e.g. 0.1 -> "0.1s"."""
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How UNAVAILABLE calls are retried (gRFC A6 retry policy and throttling).

    Attempt n (n >= 2) starts after a random delay in
    [0, min(initial_backoff * backoff_multiplier ** (n - 2), max_backoff)).
    All attempts together stay within the call's deadline. Throttling: every
    failed attempt takes a token, every success gives back `token_ratio`;
    while half the `max_tokens` or fewer are left, nothing is retried.
    """

    max_attempts: int = 4
    initial_backoff: float = 0.1
    max_backoff: float = 1.0
    backoff_multiplier: float = 2.0
    max_tokens: int = 10
    token_ratio: float = 0.1

    def __post_init__(self) -> None:
        # gRPC rejects (or silently clamps) values outside these ranges; say so here instead.
        if not 2 <= self.max_attempts <= 5:
            raise ValueError(f"max_attempts must be 2 to 5 (gRPC caps it at 5), not {self.max_attempts}")
        if not 0.001 <= self.initial_backoff <= self.max_backoff:
            raise ValueError("need 0.001 <= initial_backoff <= max_backoff (seconds)")
        if self.backoff_multiplier < 1:
            raise ValueError("backoff_multiplier must be at least 1")
        if not 1 <= self.max_tokens <= 1000:
            raise ValueError("max_tokens must be 1 to 1000")
        if not 0.001 <= self.token_ratio <= self.max_tokens:
            raise ValueError("token_ratio must be at least 0.001 and at most max_tokens")

    def service_config(self) -> dict[str, object]:
        """The retry part of a gRPC service config (JSON-ready) that applies this policy."""
        return {
            "methodConfig": [
                {
                    "name": [{"service": SERVICE_NAME, "method": method} for method in RETRIED_METHODS],
                    "retryPolicy": {
                        "maxAttempts": self.max_attempts,
                        "initialBackoff": _duration(self.initial_backoff),
                        "maxBackoff": _duration(self.max_backoff),
                        "backoffMultiplier": self.backoff_multiplier,
                        "retryableStatusCodes": list(RETRYABLE_STATUS_CODES),
                    },
                }
            ],
            "retryThrottling": {"maxTokens": self.max_tokens, "tokenRatio": round(self.token_ratio, 3)},
        }

    def backoff(self, retry: int) -> float:
        """The random delay before retry number `retry` (1 for the second attempt)."""
        ceiling = min(self.initial_backoff * self.backoff_multiplier ** (retry - 1), self.max_backoff)
        return random.uniform(0, ceiling)  # noqa: S311 (jitter, not cryptography)


DEFAULT_RETRY_POLICY = RetryPolicy()

# Largest ListTodos response: 500 entries x (4,096 characters of up to 4 UTF-8
# bytes + 32 tags of 64 bytes + ids, etag, timestamps) is about 9.4 MiB, over
# gRPC's default 4 MiB receive limit.
MAX_RECEIVE_MESSAGE_BYTES = 16 * 1024 * 1024


# The health service name a replica reports SERVING under only while it takes
# traffic: it turns NOT_SERVING when its database is unreachable and the moment
# a drain begins (SIGTERM), before the listener closes.
HEALTH_CHECK_SERVICE_NAME = "readiness"


def service_config(retry: RetryPolicy | None = DEFAULT_RETRY_POLICY) -> dict[str, object]:
    """The channel's gRPC service config: per-RPC balancing that follows health, and retries.

    - `round_robin` (gRFC A61's policy over every address the target resolves
      to: the A-records of a headless Service's `dns:///` name, or each address
      of an `ipv4:a,b,c` target) spreads RPCs over the replicas; the default,
      pick_first, would put every RPC of a channel on one replica.
    - `healthCheckConfig` (gRFC A17, client-side health checking): the channel
      watches each replica's `readiness` status and sends new RPCs only to
      replicas that are SERVING, so a draining replica gets none.
    - the retry policy and throttling (gRFC A6) of `retry`, for the methods the
      contract makes safe to repeat (see the module doc).

    This dict is also written to clients/service_config.json for callers in
    other languages (`make generate`).
    """
    config: dict[str, object] = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": HEALTH_CHECK_SERVICE_NAME},
    }
    if retry is not None:
        config.update(retry.service_config())
    return config


def channel_options(
    retry: RetryPolicy | None = DEFAULT_RETRY_POLICY, extra: Sequence[ChannelOption] = ()
) -> list[ChannelOption]:
    """Channel options for a channel to todo.v1.TodoService.

    Balancing per RPC over healthy replicas always; `retry=None` turns gRPC
    retries off. Options in `extra` win over these (a `grpc.service_config`
    there replaces the whole service config).
    """
    options: dict[str, str | int] = {
        "grpc.max_receive_message_length": MAX_RECEIVE_MESSAGE_BYTES,
        "grpc.enable_retries": 0 if retry is None else 1,
        "grpc.service_config": json.dumps(service_config(retry), separators=(",", ":")),
    }
    options.update(dict(extra))
    return list(options.items())


class RetryThrottle:
    """gRPC's retry throttling rule (gRFC A6), for the retries the client makes itself."""

    __slots__ = ("_half", "_max", "_ratio", "_tokens")

    def __init__(self, policy: RetryPolicy) -> None:
        self._max = float(policy.max_tokens)
        self._half = self._max / 2
        self._ratio = policy.token_ratio
        self._tokens = self._max

    def failed(self) -> bool:
        """Count a failed attempt; True when a retry is still allowed."""
        self._tokens = max(0.0, self._tokens - 1)
        return self._tokens > self._half

    def succeeded(self) -> None:
        self._tokens = min(self._max, self._tokens + self._ratio)
