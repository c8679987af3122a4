"""The alliance registry: the one signed document every node trusts (DESIGN section 7).

Signed by the alliance root key, whose public key every node pins. It lists the members
and their issuing keys, the alliance scale, the mapping tables and the policy. Versions
only go up and each names the SHA-256 of its predecessor (``prev``), so a node that
holds version n can check that version n+k continues the same history.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._errors import (
    AlgorithmKeyMismatch,
    InvalidClaim,
    IssuerNotMember,
    IssuerSuspended,
    MissingClaim,
    RegistryChainBroken,
    RegistryExpired,
    RegistryRollback,
    UnknownKid,
)
from ._json import canonical_json
from ._jwk import (
    PrivateKey,
    PublicKey,
    alg_for_key,
    jwk_thumbprint,
    public_jwk,
    public_key_from_jwk,
)
from ._jws import sign_jws, verify_with_pinned_key

__all__ = [
    "REGISTRY_TYP",
    "Member",
    "Registry",
    "registry_hash",
    "sign_registry",
    "verify_registry",
]

REGISTRY_TYP = "alliance-registry+jwt"
MEMBER_STATUSES = ("active", "suspended")
CREDIT_STANDING = "credit_standing"  # the credential type of a member listing none
CREDENTIAL_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def registry_hash(token: str) -> str:
    """Lower-case hex SHA-256 of the registry JWT's ASCII: what the next version's ``prev`` holds."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class MemberKey:
    kid: str
    alg: str
    key: PublicKey
    not_before: int | None
    expires_at: int | None


@dataclass(frozen=True, slots=True)
class Member:
    """One member node: ``id`` is its node URL, the ``iss`` of its attestations."""

    id: str
    name: str
    city: str
    status: str
    keys: Mapping[str, MemberKey]
    raw: Mapping[str, Any]
    # The credential types it issues (``credentials``, issue 18): verifiers refuse any
    # other type from it. A registry without the field lists the credit standing alone.
    credentials: tuple[str, ...] = (CREDIT_STANDING,)

    def issues(self, credential: str) -> bool:
        """Whether the registry lists ``credential`` among the types this member issues."""
        return credential in self.credentials


@dataclass(frozen=True, slots=True)
class Registry:
    """A verified registry version."""

    token: str
    sha256: str
    alliance: str
    version: int
    prev: str | None
    issued_at: int
    expires_at: int
    valid_from: int
    members: Mapping[str, Member]
    scale: Mapping[str, Any] = field(default_factory=dict)
    mapping_tables: Sequence[Mapping[str, Any]] = ()
    policy: Mapping[str, Any] = field(default_factory=dict)
    verifier_ca: bytes | None = None  # DER: the alliance CA of OpenID4VP verifiers

    def in_effect(self, now: int) -> bool:
        """Whether this version has taken effect (``valid_from`` reached) and not expired."""
        return self.valid_from <= now <= self.expires_at

    def resolve_issuer_key(self, iss: str, kid: str | None, alg: str, *, now: int) -> PublicKey:
        """The key a member signs with, only from this registry.

        Raises :class:`IssuerNotMember`, :class:`IssuerSuspended`, :class:`UnknownKid` (also
        for a key outside its validity) or :class:`AlgorithmKeyMismatch`.
        """
        member = self.members.get(iss)
        if member is None:
            raise IssuerNotMember(f"{iss!r} is not a member of alliance {self.alliance!r}")
        if member.status != "active":
            raise IssuerSuspended(
                f"member {iss!r} is {member.status} in registry version {self.version}"
            )
        entry = member.keys.get(kid) if isinstance(kid, str) else None
        if entry is None:
            raise UnknownKid(
                f"member {iss!r} has no key {kid!r} in registry version {self.version}"
            )
        if (entry.not_before is not None and now < entry.not_before) or (
            entry.expires_at is not None and now > entry.expires_at
        ):
            raise UnknownKid(f"key {kid!r} of {iss!r} is outside its validity")
        if entry.alg != alg:
            raise AlgorithmKeyMismatch(
                f"key {kid!r} is registered for {entry.alg}, token says {alg}"
            )
        return entry.key

    def certificate(self, member_id: str, kid: str) -> bytes | None:
        """The leaf certificate (DER) the alliance CA issued for a member's key, if the
        registry carries one (docs/PROTOCOL.md section 11)."""
        member = self.members.get(member_id)
        if member is None:
            return None
        found = (member.raw.get("certificates") or {}).get(kid)
        return _der(found, f"member {member_id!r} certificate {kid!r}") if found else None


def _der(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidClaim(f"registry {what} must be base64 DER")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidClaim(f"registry {what} must be base64 DER") from exc


def sign_registry(claims: Mapping[str, Any], *, root_key: PrivateKey, now: int) -> str:
    """Sign a registry version. ``claims`` must hold iss, exp, version, prev, members, ...;
    ``iat`` is set to ``now`` and ``valid_from`` defaults to it. The payload is canonical
    JSON so the same content always hashes the same.
    """
    payload = {"valid_from": now, **claims, "iat": now}
    version = payload.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError("version must be an integer >= 1")
    if (version == 1) != (payload.get("prev") is None):
        raise ValueError("version 1 has prev null; every later version names its predecessor")
    kid = jwk_thumbprint(public_jwk(root_key))
    return sign_jws({"typ": REGISTRY_TYP, "kid": kid}, canonical_json(payload), root_key)


def _int(claims: Mapping[str, Any], name: str, default: int | None = None) -> int:
    value = claims.get(name, default)
    if value is None:
        raise MissingClaim(f"registry lacks {name!r}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidClaim(f"registry {name!r} must be an integer")
    return value


def _member(raw: Any) -> Member:
    if not isinstance(raw, dict):
        raise InvalidClaim("registry member is not an object")
    for name in ("id", "name", "city", "status"):
        if not isinstance(raw.get(name), str):
            raise InvalidClaim(f"registry member lacks a string {name!r}")
    if raw["status"] not in MEMBER_STATUSES:
        raise InvalidClaim(f"member status must be one of {MEMBER_STATUSES}")
    jwks = raw.get("jwks", {}).get("keys") if isinstance(raw.get("jwks"), dict) else None
    if not isinstance(jwks, list):
        raise InvalidClaim(f"member {raw['id']!r} lacks jwks.keys")
    keys: dict[str, MemberKey] = {}
    for jwk in jwks:
        key = public_key_from_jwk(jwk)
        kid = jwk.get("kid")
        if kid != jwk_thumbprint(jwk):
            raise InvalidClaim(f"member {raw['id']!r} key kid must be its RFC 7638 thumbprint")
        alg = jwk.get("alg")
        if alg not in ("ES256", "EdDSA"):
            raise InvalidClaim(f"member {raw['id']!r} key {kid!r} needs alg ES256 or EdDSA")
        if alg != alg_for_key(key):
            raise InvalidClaim(f"member {raw['id']!r} key {kid!r} is not an {alg} key")
        nbf, exp = jwk.get("nbf"), jwk.get("exp")
        for value in (nbf, exp):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidClaim(f"member {raw['id']!r} key {kid!r} nbf/exp must be integers")
        keys[kid] = MemberKey(kid, alg, key, nbf, exp)
    credentials = raw.get("credentials", [CREDIT_STANDING])
    if (
        not isinstance(credentials, list)
        or not credentials
        or not all(isinstance(c, str) and CREDENTIAL_TYPE.fullmatch(c) for c in credentials)
        or len(set(credentials)) != len(credentials)
    ):
        raise InvalidClaim(
            f"member {raw['id']!r} credentials must be a non-empty array of distinct type names"
        )
    return Member(
        raw["id"],
        raw["name"],
        raw["city"],
        raw["status"],
        MappingProxyType(keys),
        MappingProxyType(raw),
        tuple(credentials),
    )


def verify_registry(
    token: str,
    *,
    root_key: PublicKey,
    now: int,
    previous: Registry | None = None,
    intermediates: Sequence[str] = (),
    allowed_algs: Collection[str] = ("ES256", "EdDSA"),
    leeway: int = 30,
    check_expiry: bool = True,
) -> Registry:
    """Verify a registry version against the pinned ``root_key`` and the last accepted one.

    With ``previous``, the new version must be higher (else :class:`RegistryRollback`) and
    its ``prev`` chain must lead back to ``previous`` through ``intermediates`` (the tokens
    of the versions in between, oldest first), else :class:`RegistryChainBroken`.
    Raises :class:`RegistryExpired` for an expired version.
    """
    what = "alliance registry"
    if previous is not None and intermediates:
        for older in intermediates:
            previous = verify_registry(
                older,
                root_key=root_key,
                now=now,
                previous=previous,
                allowed_algs=allowed_algs,
                check_expiry=False,
            )
    claims = verify_with_pinned_key(
        token, typ=REGISTRY_TYP, key=root_key, what=what, allowed_algs=allowed_algs
    )
    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss:
        raise MissingClaim("registry lacks a string iss")
    version, iat, exp = _int(claims, "version"), _int(claims, "iat"), _int(claims, "exp")
    valid_from = _int(claims, "valid_from", iat)
    prev = claims.get("prev")
    if prev is not None and not isinstance(prev, str):
        raise InvalidClaim("registry prev must be a hex string or null")
    if check_expiry and now > exp + leeway:
        raise RegistryExpired(f"registry version {version} expired at {exp}")
    if previous is not None:
        if iss != previous.alliance:
            raise RegistryChainBroken(
                f"registry of alliance {iss!r} does not continue {previous.alliance!r}"
            )
        if version <= previous.version:
            raise RegistryRollback(
                f"registry version {version} is not newer than {previous.version}"
            )
        if version != previous.version + 1:
            raise RegistryChainBroken(
                f"registry jumps from version {previous.version} to {version}; the versions in between are needed"
            )
        if prev != previous.sha256:
            raise RegistryChainBroken(
                f"registry version {version} does not continue version {previous.version}"
            )
    members_raw = claims.get("members", [])
    if not isinstance(members_raw, list):
        raise InvalidClaim("registry members must be an array")
    members: dict[str, Member] = {}
    for raw in members_raw:
        member = _member(raw)
        if member.id in members:
            raise InvalidClaim(f"registry lists member {member.id!r} twice")
        members[member.id] = member
    tables = claims.get("mapping_tables", [])
    scale, policy = claims.get("scale", {}), claims.get("policy", {})
    if not isinstance(tables, list) or not isinstance(scale, dict) or not isinstance(policy, dict):
        raise InvalidClaim("registry scale/policy must be objects and mapping_tables an array")
    for member in members.values():
        certificates = member.raw.get("certificates", {})
        if not isinstance(certificates, dict):
            raise InvalidClaim(f"member {member.id!r} certificates must be an object")
        for kid, value in certificates.items():
            _der(value, f"member {member.id!r} certificate {kid!r}")
    verifier_ca = claims.get("verifier_ca")
    return Registry(
        token=token,
        sha256=registry_hash(token),
        alliance=iss,
        version=version,
        prev=prev,
        issued_at=iat,
        expires_at=exp,
        valid_from=valid_from,
        members=MappingProxyType(members),
        scale=MappingProxyType(scale),
        mapping_tables=tuple(tables),
        policy=MappingProxyType(policy),
        verifier_ca=_der(verifier_ca, "verifier_ca") if verifier_ca is not None else None,
    )
