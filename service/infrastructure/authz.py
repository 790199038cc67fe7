"""Who is calling (principals) and what they may call (gRPC's authorization policy, deny before allow).

Principals. Over mTLS a caller's identities are its client certificate's URI
SANs (a SPIFFE id, say) when it has any, else its DNS SANs, else its subject
as an RFC 2253 string (grpc-go's order, gRFC A41); its principal name (what
logs, traces, errors and metrics show) is the first of them. With bearer tokens, the tokens file may give a token a
principal name (`reporter <token>`); a line that holds only a token gets a
name derived from its digest (`token:` and 12 hex digits). The token's name
is then the principal's name and one more identity.

Policy. `TODO_AUTHZ_POLICY_FILE` holds a gRPC authorization policy, the JSON
that grpc-go's `authz` package and gRPC C++ read: `name`, `deny_rules`,
`allow_rules`, each rule with a `name`, `source.principals` and
`request.paths` / `request.headers`. Matching follows grpc-go's translation
of the policy into RBAC: a value is exact, `prefix*`, `*suffix`, or `*`
(anything non-empty; for a header, present). A rule matches when each of its
parts does: one of its principals matches one of the caller's identities (and
the caller is authenticated), one of its paths matches the method's full path
(`/todo.v1.TodoService/GetTodo`), and every header key matches one of its
values. A call matched by a deny rule is refused; otherwise one matched by an
allow rule runs; otherwise it is refused. Without the file every
authenticated caller may call every method (the behaviour before policies).
The health service is never subject to the policy.

Extension over grpc-go, which knows certificates only: a principal in a rule
also matches the token's principal name.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping
from typing import Protocol

from service.infrastructure.config import ConfigError, file_signature
from service.infrastructure.config.authz_policy import ANONYMOUS, Policy, Principal, read_policy

_log = logging.getLogger("service.authz")
__all__ = ["ANONYMOUS", "Policy", "PolicyFile", "Principal", "certificate_principal", "read_policy"]


def _first(values: Iterable[bytes] | None) -> list[str]:
    return [value.decode("utf-8", "replace") for value in values or ()]


def certificate_principal(auth_context: Mapping[str, Iterable[bytes]]) -> Principal | None:
    """The principal of a TLS peer's client certificate (grpc's auth context), or None without one."""
    if not auth_context.get("transport_security_type"):
        return None
    uris = _first(auth_context.get("peer_uri"))
    dns = _first(auth_context.get("peer_dns"))
    subject = _first(auth_context.get("x509_subject"))
    # grpc-go (internal/xds/rbac, gRFC A41): the first non-empty source, in order: the URI SANs, else the
    # DNS SANs, else the subject. A DNS SAN of a certificate that has a URI SAN is never matched.
    identities = tuple(uris or dns or subject[:1])
    if not identities:
        return Principal("", ("",), authenticated=True)  # TLS without a client certificate (grpc-go: "")
    return Principal(identities[0], identities, authenticated=True)


class PolicyObserver(Protocol):
    def policy_loaded(self, loaded_at: float) -> None: ...

    def policy_reload_failed(self) -> None: ...


class PolicyFile:
    """The policy in effect, re-read when its file changes; a bad file keeps the last good policy, loudly.

    As grpc-go's file watcher does: one broken ConfigMap must not take every
    replica down at once. A reload that fails logs an ERROR line (once per
    change of the file) and is counted; `loaded_at` stays the time the policy
    in effect was read, so its age can be alerted on.
    """

    def __init__(self, path: str, policy: Policy, signature: tuple[int, int, int], reload_seconds: float) -> None:
        self.path = path
        self.policy = policy
        self.loaded_at = time.time()
        self._signature: tuple[int, int, int] | None = signature
        self._failed: tuple[int, int, int] | None = None
        self._reload_seconds = reload_seconds
        self._next_check = time.monotonic() + reload_seconds
        self._observer: PolicyObserver | None = None

    def report_to(self, observer: PolicyObserver) -> None:
        self._observer = observer
        observer.policy_loaded(self.loaded_at)

    def current(self) -> Policy:
        """The policy in effect (the file is looked at, at most every `reload_seconds`)."""
        if time.monotonic() >= self._next_check:
            self.refresh()
        return self.policy

    def refresh(self) -> None:
        self._next_check = time.monotonic() + self._reload_seconds
        try:
            signature = file_signature(os.stat(self.path))
        except OSError as error:
            self._fail(None, f"cannot be read: {error.strerror}")
            return
        if signature in (self._signature, self._failed):
            return
        try:
            policy, signature = read_policy(self.path)
        except ConfigError as error:
            self._fail(signature, str(error))
            return
        self.policy, self._signature, self._failed = policy, signature, None
        self.loaded_at = time.time()
        _log.info(
            "authorization policy reloaded: %r, %d deny and %d allow rules",
            policy.name,
            len(policy.deny),
            len(policy.allow),
        )
        if self._observer is not None:
            self._observer.policy_loaded(self.loaded_at)

    def _fail(self, signature: tuple[int, int, int] | None, reason: str) -> None:
        if self._failed is not None and signature == self._failed:
            return
        self._failed = signature or (0, 0, 0)
        _log.error(
            "authorization policy file %r %s: keeping the policy %r loaded at %s until the file is fixed",
            self.path,
            reason,
            self.policy.name,
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.loaded_at)),
        )
        if self._observer is not None:
            self._observer.policy_reload_failed()
