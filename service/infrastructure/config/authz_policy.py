"""The authorization policy file (gRPC's authorization-policy JSON) and principals, read with the configuration.

See service/infrastructure/authz.py for what principals are and how a policy
decides; this module parses the file (at start: a bad file is a configuration
error, exit 2; at reload, by `authz.PolicyFile`) and evaluates a parsed
policy. It imports nothing outside the standard library and this package.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from service.infrastructure.config.credentials import file_signature, read_text
from service.infrastructure.config.reader import ConfigError, Described

MAX_POLICY_BYTES = 1024 * 1024
_MAX_REMEMBERED = 4096  # decisions a policy without header rules remembers
_MAX_REMEMBERED_PATH = 256  # real method paths are about 40 characters; :path may be 8 KiB or more


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the name shown, the identities a policy matches, whether it was authenticated."""

    name: str
    identities: tuple[str, ...] = ()
    authenticated: bool = False


ANONYMOUS = Principal("anonymous")


class _Matcher:
    """A policy value: exact, `prefix*`, `*suffix`, or `*` (grpc-go's getStringMatcher / getHeaderMatcher)."""

    __slots__ = ("_kind", "_value")

    def __init__(self, value: str) -> None:
        if value == "*":
            self._kind, self._value = "any", ""
        elif value.endswith("*"):
            self._kind, self._value = "prefix", value[:-1]
        elif value.startswith("*"):
            self._kind, self._value = "suffix", value[1:]
        else:
            self._kind, self._value = "exact", value

    def __call__(self, text: str) -> bool:
        kind = self._kind
        if kind == "exact":
            return text == self._value
        if kind == "prefix":
            return text.startswith(self._value)
        if kind == "suffix":
            return text.endswith(self._value)
        return text != ""


_UNSUPPORTED_HEADER_PREFIXES = (":", "grpc-")


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    principals: tuple[_Matcher, ...]  # empty: any caller
    paths: tuple[_Matcher, ...]  # empty: any method
    headers: tuple[tuple[str, tuple[_Matcher, ...]], ...]

    def matches(self, principal: Principal, path: str, metadata: Mapping[str, str]) -> bool:
        if self.principals:
            if not principal.authenticated:
                return False
            if not any(match(identity) for match in self.principals for identity in principal.identities):
                return False
        if self.paths and not any(match(path) for match in self.paths):
            return False
        for key, values in self.headers:
            value = metadata.get(key)
            if value is None or not any(match(value) for match in values):
                return False
        return True


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    rule: str  # the rule that decided, or "" when no allow rule matched


class Policy:
    """A parsed authorization policy."""

    def __init__(self, name: str, deny: tuple[Rule, ...], allow: tuple[Rule, ...], principals: frozenset[str]) -> None:
        self.name = name
        self.deny = deny
        self.allow = allow
        self.principals = principals  # exact principal names the policy mentions (metric labels)
        self._headers = bool(any(rule.headers for rule in (*deny, *allow)))
        # Without header rules a decision depends on the identities and the path only: remembered (bounded).
        self._decided: dict[tuple[tuple[str, ...], bool, str], Decision] = {}

    def decide(self, principal: Principal, path: str, metadata: Iterable[tuple[str, str | bytes]]) -> Decision:
        if not self._headers and len(path) <= _MAX_REMEMBERED_PATH:  # a long path (any caller's) is decided, not kept
            remembered = (principal.identities, principal.authenticated, path)
            decision = self._decided.get(remembered)
            if decision is None:
                if len(self._decided) >= _MAX_REMEMBERED:
                    self._decided.clear()
                decision = self._decided[remembered] = self._decide(principal, path, {})
            return decision
        headers: dict[str, str] = {}
        for name, value in metadata:  # grpc-go joins the values of a repeated header with ","
            if isinstance(value, str):
                headers[name] = f"{headers[name]},{value}" if name in headers else value
        return self._decide(principal, path, headers)

    def _decide(self, principal: Principal, path: str, headers: Mapping[str, str]) -> Decision:
        for rule in self.deny:
            if rule.matches(principal, path, headers):
                return Decision(False, rule.name)
        for rule in self.allow:
            if rule.matches(principal, path, headers):
                return Decision(True, rule.name)
        return Decision(False, "")


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where} must be a list of strings")
    return value


def _only(mapping: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise ConfigError(f"{where} has unknown field(s) {', '.join(unknown)}")


def _rule(raw: Any, where: str, mentioned: set[str]) -> Rule:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be an object")
    _only(raw, {"name", "source", "request"}, where)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f'{where} needs a "name"')
    source = raw.get("source", {})
    request = raw.get("request", {})
    if not isinstance(source, dict) or not isinstance(request, dict):
        raise ConfigError(f"{where}: source and request must be objects")
    _only(source, {"principals"}, f"{where}.source")
    _only(request, {"paths", "headers"}, f"{where}.request")
    principals = _strings(source.get("principals", []), f"{where}.source.principals")
    mentioned.update(value for value in principals if "*" not in value)
    paths = _strings(request.get("paths", []), f"{where}.request.paths")
    headers: list[tuple[str, tuple[_Matcher, ...]]] = []
    raw_headers = request.get("headers", [])
    if not isinstance(raw_headers, list):
        raise ConfigError(f"{where}.request.headers must be a list")
    for number, header in enumerate(raw_headers):
        at = f"{where}.request.headers[{number}]"
        if not isinstance(header, dict):
            raise ConfigError(f"{at} must be an object")
        _only(header, {"key", "values"}, at)
        key = header.get("key")
        if not isinstance(key, str) or not key:
            raise ConfigError(f'{at} needs a "key"')
        key = key.lower()
        if key.startswith(_UNSUPPORTED_HEADER_PREFIXES) or key == "host":
            raise ConfigError(f"{at}: the header {key!r} cannot be matched (grpc-go refuses it too)")
        values = _strings(header.get("values"), f"{at}.values")
        if not values:
            raise ConfigError(f"{at}.values must not be empty")
        headers.append((key, tuple(_Matcher(value) for value in values)))
    return Rule(
        name=name,
        principals=tuple(_Matcher(value) for value in principals),
        paths=tuple(_Matcher(value) for value in paths),
        headers=tuple(headers),
    )


def parse_policy(text: str) -> Policy:
    """A policy from its JSON text; ConfigError saying what is wrong."""
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as error:  # RecursionError: nested too deeply for the parser
        raise ConfigError(f"is not valid JSON: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError("must hold a JSON object")
    _only(raw, {"name", "deny_rules", "allow_rules", "audit_logging_options"}, "the policy")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError('needs a "name"')
    mentioned: set[str] = set()
    deny_raw, allow_raw = raw.get("deny_rules", []), raw.get("allow_rules")
    if not isinstance(allow_raw, list) or not allow_raw:
        raise ConfigError('needs "allow_rules" (a non-empty list)')
    if not isinstance(deny_raw, list):
        raise ConfigError('"deny_rules" must be a list')
    deny = tuple(_rule(rule, f"deny_rules[{number}]", mentioned) for number, rule in enumerate(deny_raw))
    allow = tuple(_rule(rule, f"allow_rules[{number}]", mentioned) for number, rule in enumerate(allow_raw))
    return Policy(name, deny, allow, frozenset(mentioned))


def read_policy(path: str) -> tuple[Policy, tuple[int, int, int]]:
    """The policy in the file at `path` and the file's signature; ConfigError when it cannot be used."""
    try:
        signature = file_signature(os.stat(path))
    except OSError as error:
        raise ConfigError(f"cannot be read: {error.strerror}") from None
    return parse_policy(read_text(path, MAX_POLICY_BYTES)), signature


@dataclass(frozen=True, slots=True)
class PolicySource:
    """A policy file as read at start: its path, the policy, and what identifies this version of the file."""

    path: str
    policy: Policy = field(repr=False)
    signature: tuple[int, int, int]


def _policy_source(path: str) -> PolicySource:
    policy, signature = read_policy(path)
    return PolicySource(path, policy, signature)


AUTHZ_POLICY_FILE = Described(_policy_source, "path of a gRPC authorization policy (JSON)")
