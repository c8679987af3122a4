"""The CCX credit-standing attestation: an SD-JWT VC (draft-ietf-oauth-sd-jwt-vc).

What is always visible and what is selectively disclosable is fixed here (DESIGN
section 5, docs/PROTOCOL.md): a verifier learns only the claims the holder chose to
disclose, plus who issued the attestation, the holder key, the status reference and
the mapping table the score was computed with. An attestation may name its recipients
(``aud``, the member ids the holder's consent names): any other verifier refuses it.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NotRequired, TypedDict

from ._errors import InvalidClaim, MissingClaim
from ._jwk import PrivateKey, public_key_from_jwk
from ._jws import VerifiedSignatures
from ._sd_jwt import (
    IssuerKeyResolver,
    SaltSource,
    SdJwtBuilder,
    check_recipient,
    present_sd_jwt,
    sign_sd_jwt,
    verify_sd_jwt,
)

__all__ = [
    "ATTESTATION_TYP",
    "DISCLOSABLE_CLAIMS",
    "MAX_ATTESTATION_LIFETIME",
    "MAX_AUDIENCE",
    "VCT",
    "AttestationClaims",
    "MappingReference",
    "StatusReference",
    "VerifiedPresentation",
    "check_recipient",
    "issue_attestation",
    "present",
    "verify_presentation",
]

ATTESTATION_TYP = "dc+sd-jwt"
VCT = "urn:ccx:credit-standing:1"
MAX_ATTESTATION_LIFETIME = 35 * 24 * 3600
DISCLOSABLE_CLAIMS = (
    "alliance_score",
    "band",
    "score_at_least",
    "local_score",
    "local_scale",
    "score_date",
)
# Claims every attestation carries visibly, and that must never arrive through a
# disclosure (draft-ietf-oauth-sd-jwt-vc section 3.2.2.2 for iss/nbf/exp/cnf/vct/status;
# the rest are ours).
_REQUIRED_VISIBLE = (
    "iss",
    "iat",
    "nbf",
    "exp",
    "vct",
    "cnf",
    "status",
    "alliance",
    "mapping",
    "_sd_alg",
)
# ``aud`` is optional (an attestation for every member carries none) but, when present,
# always visible: a holder could otherwise drop the issuer's restriction of recipients.
_ALWAYS_VISIBLE = frozenset((*_REQUIRED_VISIBLE, "aud"))
MAX_AUDIENCE = 64  # recipients named in one attestation


class AttestationClaims(TypedDict):
    """What the issuing node decides; the rest (iat, cnf, _sd) issue_attestation adds."""

    iss: str
    exp: int
    alliance: str
    mapping: Mapping[str, Any]  # {"city": str, "version": int, "sha256": str}
    status: Mapping[str, Any]  # {"idx": int, "uri": str}
    alliance_score: int
    band: str
    thresholds: Sequence[int]  # every published threshold; score_at_least gets one entry each
    local_score: int | float
    local_scale: Any
    score_date: str  # ISO 8601 date of the score snapshot
    nbf: NotRequired[int]
    # The member ids (registry ``members[].id``) the holder's consent names: only they may
    # accept it. Absent: every member of the alliance may (the consent says "alliance").
    aud: NotRequired[Sequence[str]]


@dataclass(frozen=True, slots=True)
class StatusReference:
    """Where a verifier looks up the attestation's status (draft-ietf-oauth-status-list)."""

    uri: str
    idx: int


@dataclass(frozen=True, slots=True)
class MappingReference:
    """The mapping table the alliance score was computed with."""

    city: str
    version: int
    sha256: str


@dataclass(frozen=True, slots=True)
class VerifiedPresentation:
    """A verified presentation: only what was disclosed, plus the references to check.

    ``disclosed`` is read-only and holds exactly the disclosed claims; the properties are
    shortcuts into it and are ``None`` for a claim the holder did not disclose.
    ``audience`` is the issuer-signed ``aud`` (the recipients it names, this verifier
    among them), or ``None`` when the attestation names none (every member may accept it).
    """

    issuer: str
    kid: str
    alliance: str
    holder_jwk: Mapping[str, str]
    status: StatusReference
    mapping: MappingReference
    issued_at: int
    expires_at: int
    disclosed: Mapping[str, Any]
    audience: tuple[str, ...] | None = None

    @property
    def alliance_score(self) -> int | None:
        return self.disclosed.get("alliance_score")

    @property
    def band(self) -> str | None:
        return self.disclosed.get("band")

    @property
    def score_at_least(self) -> Mapping[int, bool]:
        """Disclosed threshold booleans, keyed by the threshold as an int."""
        return {int(k): v for k, v in self.disclosed.get("score_at_least", {}).items()}


def issue_attestation(
    claims: AttestationClaims,
    *,
    issuer_key: PrivateKey,
    kid: str,
    holder_jwk: Mapping[str, Any],
    now: int,
    salt: SaltSource = secrets.token_bytes,
    decoys: int = 3,
    x5c: Sequence[bytes] = (),
) -> str:
    """Issue a credit-standing SD-JWT VC; the result ends with ``~`` (no KB-JWT).

    ``salt(n)`` supplies n random bytes for salts and decoys (>= 16 bytes each).
    ``decoys`` decoy digests are added to each ``_sd`` array. ``claims["aud"]``, when
    given, limits the attestation to those recipients (a visible ``aud`` array, RFC 7519
    section 4.1.3): every verifier not named refuses it (:class:`RecipientNotNamed`).
    Raises ``ValueError`` for claims the node should never have produced (an inconsistent
    or over-long attestation, an empty or repeated audience) and :class:`InvalidKey` for
    a holder key we cannot bind to. ``x5c``: the alliance CA's certificate of the issuer
    key (DER, leaf first), for verifiers outside the alliance (HAIP 1.0 section 6.1.1).
    """
    public_key_from_jwk(holder_jwk)  # refuses private members and unsupported keys
    audience = _audience(claims)
    nbf = claims.get("nbf", now)
    exp = claims["exp"]
    if not now <= exp or exp - nbf > MAX_ATTESTATION_LIFETIME:
        raise ValueError(f"attestation lifetime must be within {MAX_ATTESTATION_LIFETIME} s")
    score = claims["alliance_score"]
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 1000:
        raise ValueError("alliance_score must be an integer 0..1000")
    thresholds = sorted(set(claims["thresholds"]))
    if not thresholds:
        raise ValueError("at least one published threshold is needed")
    builder = SdJwtBuilder(salt, decoys=decoys)
    # Every threshold is present, true or false, each disclosable on its own, so that
    # disclosing "score_at_least.650" reveals one boolean and nothing about the others.
    score_at_least = builder.object({}, {str(t): score >= t for t in thresholds})
    payload = builder.object(
        {
            "iss": claims["iss"],
            "iat": now,
            "nbf": nbf,
            "exp": exp,
            "vct": VCT,
            "cnf": {"jwk": dict(holder_jwk)},
            "status": {
                "status_list": {"idx": claims["status"]["idx"], "uri": claims["status"]["uri"]}
            },
            "alliance": claims["alliance"],
            "mapping": dict(claims["mapping"]),
            "score_at_least": score_at_least,
        },
        {
            "alliance_score": score,
            "band": claims["band"],
            "local_score": claims["local_score"],
            "local_scale": claims["local_scale"],
            "score_date": claims["score_date"],
        },
    )
    if audience is not None:
        payload["aud"] = audience
    payload["_sd_alg"] = "sha-256"
    return sign_sd_jwt(
        payload, builder.disclosures, issuer_key=issuer_key, typ=ATTESTATION_TYP, kid=kid,
        x5c=x5c,
    )  # fmt: skip


def _audience(claims: AttestationClaims) -> list[str] | None:
    if "aud" not in claims:
        return None
    audience = claims["aud"]
    if isinstance(audience, str) or not isinstance(audience, Sequence):
        raise ValueError("aud must be a sequence of recipient ids")
    names = list(audience)
    if not 0 < len(names) <= MAX_AUDIENCE:
        raise ValueError(f"aud must name 1..{MAX_AUDIENCE} recipients")
    if not all(isinstance(name, str) and name for name in names):
        raise ValueError("every recipient in aud must be a non-empty string")
    if len(set(names)) != len(names):
        raise ValueError("aud names a recipient twice")
    return names


def present(
    attestation: str,
    *,
    disclose: Collection[str],
    holder_key: PrivateKey,
    aud: str,
    nonce: str,
    now: int,
    recipient: str | None = None,
) -> str:
    """Make a presentation disclosing only the ``disclose`` paths, bound to aud and nonce.

    Paths: ``"alliance_score"``, ``"band"``, ``"score_at_least.650"``, ``"local_score"``,
    ``"local_scale"``, ``"score_date"``. Raises :class:`DisclosureNotFound` for others.
    A wallet gives ``recipient``, the verifier's member id (the KB-JWT's ``aud`` in the
    ccx dialect; the request certificate's member id in OpenID4VP): an attestation whose
    recipients don't include it raises :class:`RecipientNotNamed` before anything is
    made, as :func:`verify_presentation` at that verifier would (PROTOCOL.md section 5).
    """
    return present_sd_jwt(
        attestation, disclose=disclose, holder_key=holder_key, aud=aud, nonce=nonce, now=now,
        recipient=recipient,
    )  # fmt: skip


def _require(obj: Any, name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or name not in obj:
        raise MissingClaim(f"{where} lacks {name!r}")
    value = obj[name]
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise InvalidClaim(f"{where}.{name} has the wrong type")
    return value


def _check_visible(claims: Mapping[str, Any]) -> None:
    """Step 6 of docs/PROTOCOL.md section 5: the always-visible claims, before disclosures."""
    if claims["vct"] != VCT:
        raise InvalidClaim(f"vct must be {VCT!r}, got {claims['vct']!r}")
    status_list = _require(
        _require(claims, "status", dict, "attestation"), "status_list", dict, "status"
    )
    if _require(status_list, "idx", int, "status.status_list") < 0:
        raise InvalidClaim("status.status_list.idx must not be negative")
    _require(status_list, "uri", str, "status.status_list")
    for name, kind in (("city", str), ("version", int), ("sha256", str)):
        _require(claims["mapping"], name, kind, "mapping")
    _require(claims, "alliance", str, "attestation")
    _require(claims, "score_at_least", dict, "attestation")
    for name in ("nbf", "exp"):
        _require(claims, name, int, "attestation")


def _check_disclosed(disclosed: dict[str, Any]) -> None:
    score = disclosed.get("alliance_score")
    if "alliance_score" in disclosed and (
        isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 1000
    ):
        raise InvalidClaim("alliance_score must be an integer 0..1000")
    if "band" in disclosed and not isinstance(disclosed["band"], str):
        raise InvalidClaim("band must be a string")
    entries = disclosed.get("score_at_least", {})
    if not isinstance(entries, dict) or not all(
        k.isascii() and k.isdigit() and isinstance(v, bool) for k, v in entries.items()
    ):
        raise InvalidClaim("score_at_least entries must map integer thresholds to booleans")
    if "score_date" in disclosed and not isinstance(disclosed["score_date"], str):
        raise InvalidClaim("score_date must be a string")


def verify_presentation(
    presentation: str,
    *,
    resolve_issuer_key: IssuerKeyResolver,
    aud: str,
    nonce: str,
    now: int,
    allowed_algs: Collection[str] = ("ES256", "EdDSA"),
    leeway: int = 30,
    kb_max_age: int = 300,
    max_size: int = 16384,
    recipient: str | None = None,
    signatures: VerifiedSignatures | None = None,
) -> VerifiedPresentation:
    """Verify a credit-standing presentation end to end, in the order of docs/PROTOCOL.md.
    ``signatures``: issuer signatures verified before (a verifier's memo, see
    :class:`VerifiedSignatures`).

    ``resolve_issuer_key(iss, kid, alg)`` must return the issuer's key from the alliance
    registry or raise. ``aud`` is this verifier's id (the KB-JWT must be made for it and,
    when the attestation names recipients, it must be one of them:
    :class:`RecipientNotNamed`), ``nonce`` the single-use nonce of its challenge. Status
    (revocation) is not checked here: the result carries the reference. Over OpenID4VP
    the KB-JWT's ``aud`` is the verifier's client identifier and ``recipient`` its member
    id, which the attestation's recipients must name (PROTOCOL.md section 11).
    Raises a :class:`ProtocolError` subclass with a stable ``code`` for every failure.
    """
    verified = verify_sd_jwt(
        presentation,
        typ=ATTESTATION_TYP,
        resolve_issuer_key=resolve_issuer_key,
        aud=aud,
        nonce=nonce,
        now=now,
        allowed_algs=allowed_algs,
        leeway=leeway,
        kb_max_age=kb_max_age,
        require_kid=True,
        required_claims=_REQUIRED_VISIBLE,
        never_disclosed=_ALWAYS_VISIBLE,
        check_visible=_check_visible,
        max_size=max_size,
        recipient=recipient,
        signatures=signatures,
    )
    claims = verified.claims
    status_list = claims["status"]["status_list"]
    mapping = claims["mapping"]
    # score_at_least is a visible container whose entries are each disclosable; it
    # counts as disclosed only when at least one entry was.
    disclosed = {
        name: claims[name] for name in DISCLOSABLE_CLAIMS if name in claims and claims[name] != {}
    }
    _check_disclosed(disclosed)
    return VerifiedPresentation(
        issuer=claims["iss"],
        kid=verified.header["kid"],
        alliance=claims["alliance"],
        holder_jwk=MappingProxyType(claims["cnf"]["jwk"]),
        status=StatusReference(uri=status_list["uri"], idx=status_list["idx"]),
        mapping=MappingReference(
            city=mapping["city"], version=mapping["version"], sha256=mapping["sha256"]
        ),
        issued_at=int(claims["iat"]),
        expires_at=int(claims["exp"]),
        disclosed=MappingProxyType(disclosed),
        audience=_verified_audience(claims),
    )


def _verified_audience(claims: Mapping[str, Any]) -> tuple[str, ...] | None:
    # verify_sd_jwt has checked its shape (a string or a non-empty array of strings) and
    # that it names this verifier.
    audience = claims.get("aud")
    if audience is None:
        return None
    return (audience,) if isinstance(audience, str) else tuple(audience)
