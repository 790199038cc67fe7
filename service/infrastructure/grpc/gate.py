"""Who is calling and whether they may: the principal, the authorization policy, the principal's quota.

Built by the composition root only when callers can be told apart (tokens or
mTLS) or a policy is configured; without it the per-RPC path does what it did
before (a token check when tokens are on), at no added cost. In order: the
bearer token (UNAUTHENTICATED), the principal (the token's name, else the
client certificate's), the policy (PERMISSION_DENIED, POLICY_DENIED), the
principal's quota (RESOURCE_EXHAUSTED, QUOTA_EXCEEDED). The admission cap of
the whole server comes after, in the handler, so that a call refused here
never takes a server-wide slot.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Protocol

import grpc

from service.infrastructure.auth import TokenAuthenticator, TokenCheck
from service.infrastructure.authz import ANONYMOUS, PolicyFile, Principal, certificate_principal
from service.infrastructure.grpc.errors import ErrorReason, rich_status
from service.infrastructure.grpc.observer import Context, Metadata
from service.infrastructure.grpc.quota import Quotas

TOKEN_STATUS = {
    TokenCheck.MISSING: rich_status(
        ErrorReason.BEARER_TOKEN_MISSING, "a bearer token is required (authorization: Bearer <token>)"
    ),
    TokenCheck.INVALID: rich_status(
        ErrorReason.BEARER_TOKEN_INVALID, "the bearer token is not valid (authorization: Bearer <token>)"
    ),
}
OTHER = "other"


class DenialCounter(Protocol):
    def authz_denied(self, principal: str) -> None: ...


def policy_denied_status(principal: str, path: str) -> grpc.Status:
    return _policy_denied(principal[:128], path[:128])


@functools.lru_cache(maxsize=1024)  # keyed by what is shown: a long path is not kept whole
def _policy_denied(shown: str, path: str) -> grpc.Status:
    return rich_status(
        ErrorReason.POLICY_DENIED,
        f"the authorization policy does not let {shown!r} call {path}",
        metadata={"principal": shown, "method": path},
    )


class PrincipalLabels:
    """The metric label of a principal: its name when configuration names it, else `other` (bounded cardinality)."""

    __slots__ = ("_named",)

    def __init__(self, named: Iterable[str]) -> None:
        self._named = frozenset(named)

    def __call__(self, principal: str) -> str:
        return principal if principal in self._named else OTHER


class CallGate:
    """The principal of a call and whether it may run (see the module's docstring)."""

    __slots__ = ("_authenticator", "_certificates", "_counter", "_policy", "_quotas", "labels")

    def __init__(
        self,
        *,
        authenticator: TokenAuthenticator | None = None,
        certificates: bool = False,
        policy: PolicyFile | None = None,
        quotas: Quotas | None = None,
        labels: PrincipalLabels | None = None,
        counter: DenialCounter | None = None,
    ) -> None:
        self._authenticator = authenticator
        self._certificates = certificates
        self._policy = policy
        self._quotas = quotas
        self._counter = counter
        self.labels = labels or PrincipalLabels(())

    @property
    def authenticator(self) -> TokenAuthenticator | None:
        return self._authenticator

    @property
    def has_policy(self) -> bool:
        return self._policy is not None

    def principal(self, metadata: Metadata, context: Context) -> Principal | grpc.Status:
        """Who is calling, or the UNAUTHENTICATED status of a call without a valid token."""
        token_name = ""
        if self._authenticator is not None:
            verdict, token_name = self._authenticator.identify(metadata)
            if verdict is not TokenCheck.VALID:
                return TOKEN_STATUS[verdict]
        certificate = certificate_principal(context.auth_context()) if self._certificates else None
        if token_name:
            identities = (token_name, *certificate.identities) if certificate is not None else (token_name,)
            return Principal(token_name, identities, authenticated=True)
        return certificate or ANONYMOUS

    def enter(
        self, metadata: Metadata, context: Context, path: str, *, quota: bool = True
    ) -> tuple[Principal, grpc.Status | None]:
        """The principal and None when the call may run (holding a quota slot: `leave` it), else the refusal."""
        principal = self.principal(metadata, context)
        if not isinstance(principal, Principal):
            return ANONYMOUS, principal
        if self._policy is not None:
            decision = self._policy.current().decide(principal, path, metadata)
            if not decision.allowed:
                if self._counter is not None:
                    self._counter.authz_denied(self.labels(principal.name))
                return principal, policy_denied_status(principal.name, path)
        if quota and self._quotas is not None and principal.authenticated:
            refusal = self._quotas.try_enter(principal.name)
            if refusal is not None:
                return principal, refusal
        return principal, None

    def leave(self, principal: Principal) -> None:
        """Give back the quota slot that a successful `enter` took."""
        if self._quotas is not None and principal.authenticated:
            self._quotas.leave(principal.name)
