"""The CCX domestic-service (家政) attestation: a second SD-JWT VC type (issue 18).

A housekeeper's home node issues it from its departments' records: whether her
background check passed and when, since when she holds a training certificate, how many
she holds, whether her service ratings reach each published threshold, and whether any
complaint against her was upheld in the last twelve months. Each of those is selectively
disclosable on its own, as the credit standing's claims are (docs/CREDENTIALS.md).

It is a credential of its own: its own ``vct``, no score, no mapping table. A verifier
asking for the credit standing refuses it (``invalid_claim``: the vct), and one asking for
this refuses a credit standing, so a presentation of one never tells anything of the
other. Binding (``cnf``), status (``status.status_list``), recipients (``aud``) and the
verification order are the credit standing's (the shared SD-JWT core, ``_sd_jwt``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NotRequired, TypedDict

from ._attestation import ATTESTATION_TYP, MAX_ATTESTATION_LIFETIME, StatusReference
from ._errors import InvalidClaim
from ._jwk import PrivateKey, public_key_from_jwk
from ._jws import VerifiedSignatures
from ._sd_jwt import IssuerKeyResolver, SaltSource, SdJwtBuilder, sign_sd_jwt, verify_sd_jwt

__all__ = [
    "DOMESTIC_DISCLOSABLE_CLAIMS",
    "DOMESTIC_VCT",
    "DomesticServiceClaims",
    "VerifiedDomesticPresentation",
    "issue_domestic_attestation",
    "verify_domestic_presentation",
]

DOMESTIC_VCT = "urn:ccx:domestic-service:1"
DOMESTIC_DISCLOSABLE_CLAIMS = (
    "background_check_passed",
    "background_check_date",
    "certified_since",
    "training_certificates",
    "rating_at_least",
    "rating_count",
    "no_upheld_complaints_12m",
)
_REQUIRED_VISIBLE = ("iss", "iat", "nbf", "exp", "vct", "cnf", "status", "alliance", "_sd_alg")
_ALWAYS_VISIBLE = frozenset((*_REQUIRED_VISIBLE, "aud"))
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class DomesticServiceClaims(TypedDict):
    """What the issuing node decides from her records; ``issue_domestic_attestation``
    adds iat, cnf, vct and the ``_sd`` digests."""

    iss: str
    exp: int
    alliance: str
    status: Mapping[str, Any]  # {"idx": int, "uri": str}
    background_check_passed: bool
    background_check_date: NotRequired[str]  # ISO date of her latest check; none: never checked
    certified_since: NotRequired[str]  # ISO date of her first training certificate
    training_certificates: int
    rating_thresholds: Sequence[int]  # rating_at_least gets one entry each
    rating: float | None  # her average rating (stars); None: too few ratings to say
    rating_count: int
    no_upheld_complaints_12m: bool
    nbf: NotRequired[int]
    aud: NotRequired[Sequence[str]]


def issue_domestic_attestation(
    claims: DomesticServiceClaims,
    *,
    issuer_key: PrivateKey,
    kid: str,
    holder_jwk: Mapping[str, Any],
    now: int,
    salt: SaltSource = secrets.token_bytes,
    decoys: int = 3,
    x5c: Sequence[bytes] = (),
) -> str:
    """Issue a domestic-service SD-JWT VC bound to ``holder_jwk``; ends with ``~``.

    Every ``rating_at_least.<t>`` of ``claims["rating_thresholds"]`` is present, true or
    false (false for all when ``rating`` is None), each disclosable on its own. The
    other arguments are :func:`protocol.issue_attestation`'s. Raises ``ValueError`` for
    claims the node should never have produced, :class:`InvalidKey` for a holder key we
    cannot bind to.
    """
    public_key_from_jwk(holder_jwk)
    nbf = claims.get("nbf", now)
    exp = claims["exp"]
    if not now <= exp or exp - nbf > MAX_ATTESTATION_LIFETIME:
        raise ValueError(f"attestation lifetime must be within {MAX_ATTESTATION_LIFETIME} s")
    thresholds = sorted(set(claims["rating_thresholds"]))
    if not thresholds or not all(
        isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in thresholds
    ):
        raise ValueError("rating_thresholds must be one or more non-negative integers")
    for name in ("background_check_date", "certified_since"):
        if name in claims and not _DATE.fullmatch(str(claims[name])):
            raise ValueError(f"{name} must be an ISO date")
    rating = claims["rating"]
    builder = SdJwtBuilder(salt, decoys=decoys)
    rating_at_least = builder.object(
        {}, {str(t): rating is not None and rating >= t for t in thresholds}
    )
    disclosable: dict[str, Any] = {
        "background_check_passed": bool(claims["background_check_passed"]),
        "training_certificates": int(claims["training_certificates"]),
        "rating_count": int(claims["rating_count"]),
        "no_upheld_complaints_12m": bool(claims["no_upheld_complaints_12m"]),
    }
    if "background_check_date" in claims:
        disclosable["background_check_date"] = claims["background_check_date"]
    if "certified_since" in claims:
        disclosable["certified_since"] = claims["certified_since"]
    payload = builder.object(
        {
            "iss": claims["iss"],
            "iat": now,
            "nbf": nbf,
            "exp": exp,
            "vct": DOMESTIC_VCT,
            "cnf": {"jwk": dict(holder_jwk)},
            "status": {
                "status_list": {"idx": claims["status"]["idx"], "uri": claims["status"]["uri"]}
            },
            "alliance": claims["alliance"],
            "rating_at_least": rating_at_least,
        },
        disclosable,
    )
    if "aud" in claims:
        audience = list(claims["aud"])
        if not audience or len(set(audience)) != len(audience):
            raise ValueError("aud must name distinct recipients, at least one")
        payload["aud"] = audience
    payload["_sd_alg"] = "sha-256"
    return sign_sd_jwt(
        payload, builder.disclosures, issuer_key=issuer_key, typ=ATTESTATION_TYP, kid=kid,
        x5c=x5c,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class VerifiedDomesticPresentation:
    """A verified domestic-service presentation: only what was disclosed, plus the
    references to check. ``claim(path)`` reads a disclosed claim by its path
    (``"rating_at_least.4"``), None when it was not disclosed."""

    issuer: str
    kid: str
    alliance: str
    holder_jwk: Mapping[str, str]
    status: StatusReference
    issued_at: int
    expires_at: int
    disclosed: Mapping[str, Any]
    audience: tuple[str, ...] | None = None

    def claim(self, path: str) -> Any:
        head, _, rest = path.partition(".")
        value = self.disclosed.get(head)
        if rest:
            return value.get(rest) if isinstance(value, Mapping) else None
        return value


def _require(obj: Any, name: str, kind: type, where: str) -> Any:
    if (
        not isinstance(obj, dict)
        or not isinstance(obj.get(name), kind)
        or (isinstance(obj.get(name), bool) and kind is not bool)
    ):
        raise InvalidClaim(f"{where}.{name} is missing or of the wrong type")
    return obj[name]


def _check_visible(claims: Mapping[str, Any]) -> None:
    if claims["vct"] != DOMESTIC_VCT:
        raise InvalidClaim(f"vct must be {DOMESTIC_VCT!r}, got {claims['vct']!r}")
    status_list = _require(_require(claims, "status", dict, "attestation"), "status_list", dict,
                           "status")  # fmt: skip
    if _require(status_list, "idx", int, "status.status_list") < 0:
        raise InvalidClaim("status.status_list.idx must not be negative")
    _require(status_list, "uri", str, "status.status_list")
    _require(claims, "alliance", str, "attestation")
    _require(claims, "rating_at_least", dict, "attestation")
    for name in ("nbf", "exp"):
        _require(claims, name, int, "attestation")


def _check_disclosed(disclosed: Mapping[str, Any]) -> None:
    for name in ("background_check_passed", "no_upheld_complaints_12m"):
        if name in disclosed and not isinstance(disclosed[name], bool):
            raise InvalidClaim(f"{name} must be a boolean")
    for name in ("training_certificates", "rating_count"):
        value = disclosed.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidClaim(f"{name} must be a non-negative integer")
    for name in ("background_check_date", "certified_since"):
        if name in disclosed and not (
            isinstance(disclosed[name], str) and _DATE.fullmatch(disclosed[name])
        ):
            raise InvalidClaim(f"{name} must be an ISO date")
    entries = disclosed.get("rating_at_least", {})
    if not isinstance(entries, dict) or not all(
        k.isascii() and k.isdigit() and isinstance(v, bool) for k, v in entries.items()
    ):
        raise InvalidClaim("rating_at_least entries must map integer thresholds to booleans")


def verify_domestic_presentation(
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
) -> VerifiedDomesticPresentation:
    """Verify a domestic-service presentation end to end, in the order and with the
    arguments of :func:`protocol.verify_presentation` (docs/PROTOCOL.md section 5); a
    credit standing (another ``vct``) is refused :class:`InvalidClaim`. Status is not
    checked here: the result carries the reference. Raises a :class:`ProtocolError`
    subclass with a stable ``code`` for every failure."""
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
    disclosed = {
        name: claims[name]
        for name in DOMESTIC_DISCLOSABLE_CLAIMS
        if name in claims and claims[name] != {}
    }
    _check_disclosed(disclosed)
    status_list = claims["status"]["status_list"]
    audience = claims.get("aud")
    return VerifiedDomesticPresentation(
        issuer=claims["iss"],
        kid=verified.header["kid"],
        alliance=claims["alliance"],
        holder_jwk=MappingProxyType(claims["cnf"]["jwk"]),
        status=StatusReference(uri=status_list["uri"], idx=status_list["idx"]),
        issued_at=int(claims["iat"]),
        expires_at=int(claims["exp"]),
        disclosed=MappingProxyType(disclosed),
        audience=None
        if audience is None
        else ((audience,) if isinstance(audience, str) else tuple(audience)),
    )
