"""X.509 for OpenID4VP's ``x509_hash`` client identifiers (OpenID4VP 1.0 section 5.9.3,
HAIP 1.0 section 5; docs/PROTOCOL.md section 11).

The alliance root key is also the alliance's certificate authority: a self-signed CA
certificate of it rides in the registry (``verifier_ca``), and each member key the
registry lists gets a leaf certificate under it, naming the member's id as its URI
subject alternative name. A node signs its OpenID4VP requests with such a key and sends
the leaf in ``x5c``; a wallet checks the chain to the CA it trusts and learns which
member asks.

Over ``cryptography``'s X.509 builder and ``verify_directly_issued_by``. Its path
validation (``cryptography.x509.verification``) verifies TLS server and client
certificates only, with the Web PKI's name and usage rules, which these certificates
(URI names, request signing) are not; the rules checked here are few and written out
below. Pure: ``now`` and the serial number are parameters.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from ._errors import CertificateInvalid, CertificateUntrusted
from ._json import b64url_encode
from ._jwk import PrivateKey, PublicKey

__all__ = [
    "CertifiedKey",
    "ca_certificate",
    "leaf_certificate",
    "verify_x5c",
    "x509_hash",
]

MAX_CHAIN = 3
MAX_CERTIFICATE_BYTES = 8192


def _when(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC)


def _hash_for(key: PrivateKey) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def ca_certificate(
    key: PrivateKey, *, name: str, not_before: int, not_after: int, serial: int
) -> bytes:
    """A self-signed CA certificate (DER) of ``key``: may sign leaves, not other CAs."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64])])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(_when(not_before))
        .not_valid_after(_when(not_after))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, _hash_for(key))
    )
    return certificate.public_bytes(serialization.Encoding.DER)


def leaf_certificate(
    ca_key: PrivateKey,
    ca_der: bytes,
    subject_key: PublicKey,
    *,
    uri: str,
    name: str,
    not_before: int,
    not_after: int,
    serial: int,
) -> bytes:
    """A leaf certificate (DER) under the CA for ``subject_key``, naming ``uri`` (the
    member id) as its only subject alternative name; for signatures only."""
    ca = x509.load_der_x509_certificate(ca_der)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64])]))
        .issuer_name(ca.subject)
        .public_key(subject_key)
        .serial_number(serial)
        .not_valid_before(_when(not_before))
        .not_valid_after(_when(not_after))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, _hash_for(ca_key))
    )
    return certificate.public_bytes(serialization.Encoding.DER)


def x509_hash(der: bytes) -> str:
    """The ``x509_hash`` client identifier's value: base64url(SHA-256(DER of the leaf))."""
    return b64url_encode(hashlib.sha256(der).digest())


@dataclass(frozen=True, slots=True)
class CertifiedKey:
    """A leaf that chains to a trusted CA: its key, its URI names, its DER, and the
    seconds between which every certificate of the path is valid (so that a caller may
    keep the result that long)."""

    public_key: PublicKey
    uris: tuple[str, ...]
    der: bytes
    valid_from: int = 0
    valid_until: int = 0


def _load(der: bytes, what: str) -> x509.Certificate:
    if len(der) > MAX_CERTIFICATE_BYTES:
        raise CertificateInvalid(f"{what} is larger than {MAX_CERTIFICATE_BYTES} bytes")
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise CertificateInvalid(f"{what} is not a DER certificate") from exc


def _check_time(certificate: x509.Certificate, now: int, what: str) -> None:
    moment = _when(now)
    if not certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc:
        raise CertificateInvalid(f"{what} is not valid now (expired, or not yet valid)")


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return bool(constraints.value.ca)


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, _CryptoInvalidSignature):
        return False
    return True


def verify_x5c(chain: Sequence[bytes], anchors: Sequence[bytes], *, now: int) -> CertifiedKey:
    """The leaf ``chain[0]``, once the chain reaches one of the trusted CA certificates
    ``anchors`` (DER): each certificate issued by the next (or by an anchor), each valid
    at ``now``, every one above the leaf a CA, the leaf not a CA, at most ``MAX_CHAIN``
    long. An anchor sent in the chain is accepted and skipped. Raises
    :class:`CertificateInvalid` (malformed, expired) or :class:`CertificateUntrusted`
    (no path to an anchor)."""
    if not chain or len(chain) > MAX_CHAIN:
        raise CertificateInvalid(f"x5c must hold 1 to {MAX_CHAIN} certificates")
    certificates = [_load(der, f"x5c[{i}]") for i, der in enumerate(chain)]
    trusted = [_load(der, "a trust anchor") for der in anchors]
    leaf = certificates[0]
    if _is_ca(leaf):
        raise CertificateInvalid("x5c[0] is a CA certificate, not a leaf")
    path: list[x509.Certificate] = []
    for index, certificate in enumerate(certificates):
        _check_time(certificate, now, f"x5c[{index}]")
        path.append(certificate)
        anchor = next((a for a in trusted if _issued_by(certificate, a)), None)
        if anchor is not None:
            _check_time(anchor, now, "the trust anchor")
            path.append(anchor)
            break
        if index + 1 == len(certificates):
            raise CertificateUntrusted("the certificate chain reaches no trusted authority")
        parent = certificates[index + 1]
        if not _is_ca(parent) or not _issued_by(certificate, parent):
            raise CertificateUntrusted(f"x5c[{index}] is not issued by x5c[{index + 1}]")
    key = leaf.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey) and not isinstance(key.curve, ec.SECP256R1):
        raise CertificateInvalid("the leaf's key is an EC key on a curve other than P-256")
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise CertificateInvalid("the leaf's key is neither P-256 nor Ed25519")
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = tuple(names.get_values_for_type(x509.UniformResourceIdentifier))
    except x509.ExtensionNotFound:
        uris = ()
    valid_from = max(int(c.not_valid_before_utc.timestamp()) for c in path)
    valid_until = min(int(c.not_valid_after_utc.timestamp()) for c in path)
    return CertifiedKey(key, uris, chain[0], valid_from, valid_until)
