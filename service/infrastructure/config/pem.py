"""PEM files of the TLS settings, checked with the standard library's `ssl` module.

gRPC reads these files only when the port is bound and then reports any
problem as "Failed to bind"; these checks run while the configuration is read
instead, so a garbage key, a key that does not match its certificate or a CA
bundle that does not parse stops the start with one line naming the file.

OpenSSL (through `ssl.SSLContext`) does the parsing and the key/certificate
match. The validity dates, for a warning only, are read from the DER of the
first certificate by a small walk over its fixed leading fields: the
`cryptography` package would do it too, but would add a compiled runtime
dependency to the image for one warning.
"""

from __future__ import annotations

import os
import re
import ssl
import stat
from datetime import UTC, datetime

from service.infrastructure.config.reader import ConfigError

_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----\s+([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----")


def _reason(error: ssl.SSLError) -> str:
    """OpenSSL's reason without the source location: "key values mismatch", "no certificate or crl found"."""
    if error.reason:
        return str(error.reason).replace("_", " ").lower()
    text = str(error.strerror or error).split(" (_ssl.c")[0].removeprefix("[SSL] ")
    return "no PEM block OpenSSL can read" if text == "PEM lib" else text


def check_certificates(path: str, what: str) -> None:
    """`path` holds at least one PEM certificate that OpenSSL parses; else ConfigError naming `what`."""
    with open(path, "rb") as file:
        data = file.read()
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ConfigError(f"{what} {path!r} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cadata=data.decode("ascii", "replace"))
    except (ssl.SSLError, ValueError) as error:
        reason = _reason(error) if isinstance(error, ssl.SSLError) else str(error)
        raise ConfigError(f"{what} {path!r} is not a valid PEM certificate bundle: {reason}") from None


def check_key_pair(cert_path: str, key_path: str) -> None:
    """The key parses and belongs to the first certificate of the chain; else ConfigError naming the file."""
    check_certificates(cert_path, "TODO_TLS_CERT_FILE")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # A password callback that gives none: an encrypted key fails here
        # instead of OpenSSL prompting on the terminal (gRPC cannot use one either).
        context.load_cert_chain(cert_path, key_path, password=lambda: b"")
    except ssl.SSLError as error:
        reason = _reason(error)
        if "mismatch" in reason:
            raise ConfigError(
                f"TODO_TLS_KEY_FILE {key_path!r} does not match the certificate in TODO_TLS_CERT_FILE {cert_path!r}"
            ) from None
        raise ConfigError(
            f"TODO_TLS_KEY_FILE {key_path!r} is not a usable PEM private key (unencrypted): {reason}"
        ) from None


def readable_by_others(path: str) -> bool:
    """Whether anyone but this process's user and groups may read the file.

    A key should be 0400 or 0600. Group access is accepted when the group is
    one of the process's own: Kubernetes gives secret files the pod's fsGroup
    (0440 or 0640 with `fsGroup`, whatever defaultMode asks), and that group
    is the service's.
    """
    info = os.stat(path)
    if info.st_mode & stat.S_IRWXO:
        return True
    own_groups = {os.getgid(), os.getegid(), *os.getgroups()}
    return bool(info.st_mode & stat.S_IRWXG) and info.st_gid not in own_groups


def validity(cert_path: str) -> tuple[datetime, datetime] | None:
    """notBefore and notAfter of the first certificate in the file (None when they cannot be read)."""
    with open(cert_path, "rb") as file:
        match = _PEM_CERTIFICATE.search(file.read())
    if match is None:
        return None
    try:
        der = ssl.PEM_cert_to_DER_cert(match.group(0).decode("ascii"))
        return _validity(der)
    except (ValueError, IndexError):
        return None


def validity_warnings(cert_path: str, now: datetime | None = None) -> list[str]:
    """A warning when the server certificate is expired or not yet valid."""
    dates = validity(cert_path)
    if dates is None:
        return []
    not_before, not_after = dates
    now = now or datetime.now(UTC)
    if now > not_after:
        return [f"TODO_TLS_CERT_FILE {cert_path!r}: the certificate expired on {not_after:%Y-%m-%d %H:%M:%S} UTC"]
    if now < not_before:
        return [
            f"TODO_TLS_CERT_FILE {cert_path!r}: the certificate is not valid before {not_before:%Y-%m-%d %H:%M:%S} UTC"
        ]
    return []


def _tlv(der: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the DER element at `offset`."""
    tag = der[offset]
    length = der[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(der[start : start + count], "big")
        start += count
    end = start + length
    if end > len(der):
        raise ValueError("truncated DER")
    return tag, start, end


def _validity(der: bytes) -> tuple[datetime, datetime]:
    """Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
    signature, issuer, validity SEQUENCE { notBefore, notAfter }, ... }, ... } (RFC 5280)."""
    _, certificate, _ = _tlv(der, 0)
    _, offset, _ = _tlv(der, certificate)  # into tbsCertificate
    tag, _, end = _tlv(der, offset)
    if tag == 0xA0:  # explicit version
        offset = end
    for _field in ("serialNumber", "signature", "issuer"):
        _, _, offset = _tlv(der, offset)
    tag, start, _ = _tlv(der, offset)
    if tag != 0x30:
        raise ValueError("no validity sequence")
    first_tag, first_start, first_end = _tlv(der, start)
    second_tag, second_start, second_end = _tlv(der, first_end)
    return (
        _time(first_tag, der[first_start:first_end]),
        _time(second_tag, der[second_start:second_end]),
    )


def _time(tag: int, value: bytes) -> datetime:
    text = value.decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ: 50-99 -> 19xx (RFC 5280 4.1.2.5.1)
        parsed = datetime.strptime(text, "%y%m%d%H%M%SZ")
        if parsed.year >= 2050:
            parsed = parsed.replace(year=parsed.year - 100)
    elif tag == 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        parsed = datetime.strptime(text, "%Y%m%d%H%M%SZ")
    else:
        raise ValueError("not a time")
    return parsed.replace(tzinfo=UTC)
