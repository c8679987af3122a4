"""OpenID4VP 1.0 for our credentials (docs/PROTOCOL.md section 11): the signed request
object a verifier node makes and a wallet checks (``typ oauth-authz-req+jwt``, client
identifier prefix ``x509_hash``, the leaf certificate in ``x5c``), the DCQL query for one
credential (the credit standing, or the domestic-service credential: issue 18, by its
``vct``), and the ``vp_token`` a wallet answers with.

Pure: keys, certificates, trust anchors and ``now`` are parameters.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._attestation import ATTESTATION_TYP, VCT
from ._domestic import DOMESTIC_VCT
from ._errors import (
    AlgorithmNotAllowed,
    ClientIdMismatch,
    ForbiddenHeader,
    InvalidClaim,
    IssuedInFuture,
    MalformedToken,
    MissingClaim,
    TokenExpired,
    UnsupportedCritical,
    WrongTyp,
)
from ._jwk import PrivateKey
from ._jws import decode_jws, sign_jws, verify_jws_signature
from ._x509 import CertifiedKey, verify_x5c, x509_hash

__all__ = [
    "CLIENT_ID_PREFIX",
    "CREDENTIAL_QUERY_ID",
    "CREDENTIAL_QUERY_IDS",
    "REQUEST_TYP",
    "RESPONSE_MODES",
    "SELF_ISSUED_AUDIENCE",
    "VerifiedRequest",
    "choose_disclosures",
    "client_id_for",
    "dcql_query",
    "disclosures_for_query",
    "requested_vct",
    "required_claims_query",
    "sign_request_object",
    "tiered_dcql_query",
    "verify_request_object",
]

REQUEST_TYP = "oauth-authz-req+jwt"  # OpenID4VP section 5 (RFC 9101)
CLIENT_ID_PREFIX = "x509_hash:"  # section 5.9.3; HAIP 1.0 section 5
SELF_ISSUED_AUDIENCE = "https://self-issued.me/v2"  # section 5.8, static discovery
CREDENTIAL_QUERY_ID = "credit_standing"
# The DCQL credential query id of each credential type, by its vct (the vp_token's key)
CREDENTIAL_QUERY_IDS = {VCT: CREDENTIAL_QUERY_ID, DOMESTIC_VCT: "domestic_service"}
RESPONSE_MODES = ("direct_post.jwt", "direct_post")
MAX_REQUEST_SIZE = 32768


def client_id_for(leaf_der: bytes) -> str:
    """The full client identifier of a verifier whose leaf certificate is ``leaf_der``."""
    return CLIENT_ID_PREFIX + x509_hash(leaf_der)


def dcql_query(paths: Sequence[Sequence[str]], *, vct: str = VCT) -> dict[str, Any]:
    """The DCQL query (section 6) for one credential of type ``vct`` (by default the
    credit standing) and the claims at ``paths`` (claims path pointers, section 7), e.g.
    ``[["score_at_least", "650"]]``. ValueError for a vct not of ours."""
    if vct not in CREDENTIAL_QUERY_IDS:
        raise ValueError(f"{vct!r} is not a credential type of ours")
    return {
        "credentials": [
            {
                "id": CREDENTIAL_QUERY_IDS[vct],
                "format": ATTESTATION_TYP,
                "meta": {"vct_values": [vct]},
                "claims": [{"path": list(path)} for path in paths],
            }
        ]
    }


def tiered_dcql_query(tiers: Sequence[str], extra: Sequence[str] = ()) -> dict[str, Any]:
    """The DCQL query of a scenario: ``tiers`` are its tiers' ``score_at_least.<t>``
    claims, lowest first; ``extra`` what it must also see (``band``). With more than one
    tier, each tier's claim but the lowest asks for the value ``true`` (section 6.3) and
    ``claim_sets`` list them highest first (section 6.4.2): a wallet discloses the one
    boolean of the highest tier its holder reaches, or the lowest tier's, which then says
    false; never all of them."""
    if len(tiers) <= 1:
        return dcql_query([name.split(".") for name in (*tiers, *extra)])
    claims: list[dict[str, Any]] = []
    for index, name in enumerate(tiers):
        claim: dict[str, Any] = {"id": f"tier{index}", "path": name.split(".")}
        if index > 0:
            claim["values"] = [True]
        claims.append(claim)
    extra_ids = [f"extra{index}" for index in range(len(extra))]
    claims += [{"id": i, "path": name.split(".")} for i, name in zip(extra_ids, extra, strict=True)]
    query = dcql_query([])
    query["credentials"][0]["claims"] = claims
    query["credentials"][0]["claim_sets"] = [
        [f"tier{index}", *extra_ids] for index in reversed(range(len(tiers)))
    ]
    return query


def required_claims_query(
    vct: str, tiers: Sequence[Sequence[str]], extra: Sequence[str] = ()
) -> dict[str, Any]:
    """The DCQL query of a scenario whose tiers each require boolean claims true (the
    domestic-service credential's, issue 18), lowest tier first, each requiring more
    than the one before; ``extra`` what it must also see. Claims only higher tiers
    require ask for the value ``true`` (section 6.3); ``claim_sets`` list each tier's
    claims with the extra ones and then without them, highest tier first (section
    6.4.2): a wallet discloses the set of the highest tier its holder meets (with the
    extra claims when she has them), or the lowest tier's (which then says what is
    false)."""
    names: list[str] = []
    for tier in tiers:
        names += [name for name in tier if name not in names]
    lowest = set(tiers[0]) if tiers else set()
    ids = {name: f"claim{index}" for index, name in enumerate([*names, *extra])}
    claims: list[dict[str, Any]] = []
    for name in names:
        claim: dict[str, Any] = {"id": ids[name], "path": name.split(".")}
        if name not in lowest:
            claim["values"] = [True]
        claims.append(claim)
    claims += [{"id": ids[name], "path": name.split(".")} for name in extra]
    query = dcql_query([], vct=vct)
    query["credentials"][0]["claims"] = claims
    # each tier with the extra claims, then without them (an extra claim she lacks, such
    # as certified_since without a certificate, must not keep her from answering)
    query["credentials"][0]["claim_sets"] = [
        [ids[name] for name in (*tier, *shown)]
        for tier in reversed(tiers)
        for shown in ((extra, ()) if extra else ((),))
    ]
    return query


def sign_request_object(claims: Mapping[str, Any], key: PrivateKey, chain: Sequence[bytes]) -> str:
    """The signed request object: ``typ`` oauth-authz-req+jwt, the certificate chain in
    ``x5c`` (standard base64 DER, RFC 7515 section 4.1.6), signed by the leaf's key."""
    header = {
        "typ": REQUEST_TYP,
        "x5c": [base64.b64encode(der).decode("ascii") for der in chain],
    }
    return sign_jws(header, json.dumps(dict(claims), separators=(",", ":")).encode(), key)


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    """A request object that holds: its claims, the verifier's certified key (its URI
    names say which member asks), and what its DCQL query asks of our credential."""

    claims: Mapping[str, Any]
    verifier: CertifiedKey
    query_id: str
    requested: tuple[str, ...]  # every claim the query names (a wallet discloses a set)

    @property
    def vct(self) -> str:
        """The credential type the query asks for: :func:`requested_vct`."""
        return requested_vct(self.claims["dcql_query"])

    def disclosures_for(self, available: Mapping[str, Any]) -> tuple[str, ...]:
        """What to disclose from a credential holding ``available`` (``band``,
        ``score_at_least.650``, ... to their values): :func:`choose_disclosures`."""
        return choose_disclosures(self.claims["dcql_query"], available)


def _chain(header: Mapping[str, Any]) -> list[bytes]:
    x5c = header.get("x5c")
    if not isinstance(x5c, list) or not x5c or not all(isinstance(c, str) for c in x5c):
        raise MissingClaim("the request object's header carries no x5c chain")
    try:
        return [base64.b64decode(c, validate=True) for c in x5c]
    except (binascii.Error, ValueError) as exc:
        raise MalformedToken("x5c holds something that is not base64 DER") from exc


def verify_request_object(
    token: str,
    *,
    client_id: str,
    anchors: Sequence[bytes],
    now: int,
    allowed_algs: Collection[str] = ("ES256", "EdDSA"),
    leeway: int = 30,
) -> VerifiedRequest:
    """What a wallet checks of a request object fetched for the link's ``client_id``
    (sections 5, 5.9.3, 5.10): the ``typ``; the ``x5c`` chain up to one of ``anchors``
    (HAIP 1.0 section 5: the wallet MUST validate the trust chain); that the client
    identifier is ``x509_hash`` of that very leaf; the leaf key's signature; that the
    object names the same ``client_id``; its times; the response parameters; and a DCQL
    query for the credit standing. Raises a :class:`ProtocolError` subclass."""
    jws = decode_jws(token, what="request object", max_size=MAX_REQUEST_SIZE)
    header = jws.header
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in allowed_algs:
        raise AlgorithmNotAllowed(f"request object alg {alg!r} is not allowed")
    if header.get("typ") != REQUEST_TYP:
        raise WrongTyp(f"request object typ must be {REQUEST_TYP!r}, got {header.get('typ')!r}")
    for name in ("jku", "x5u", "jwk"):
        if name in header:
            raise ForbiddenHeader(f"request object header carries {name!r}")
    if "crit" in header:
        raise UnsupportedCritical("request object header lists crit extensions")
    if not client_id.startswith(CLIENT_ID_PREFIX):
        raise ClientIdMismatch(
            f"only {CLIENT_ID_PREFIX[:-1]} client identifiers are accepted, not {client_id[:40]!r}"
        )
    certified = verify_x5c(_chain(header), anchors, now=now)
    if client_id_for(certified.der) != client_id:
        raise ClientIdMismatch("the client identifier is not the hash of the request's leaf")
    verify_jws_signature(alg, certified.public_key, jws.signing_input, jws.signature,
                         what="request object")  # fmt: skip
    claims = jws.payload
    if claims.get("client_id") != client_id:
        raise ClientIdMismatch("the request object names another client than its link")
    exp, iat = claims.get("exp"), claims.get("iat")
    if isinstance(exp, int) and now > exp + leeway:
        raise TokenExpired("the request object has expired")
    if isinstance(iat, int) and iat > now + leeway:
        raise IssuedInFuture("the request object was issued in the future")
    if claims.get("response_type") != "vp_token":
        raise InvalidClaim("response_type must be vp_token")
    if claims.get("response_mode") not in RESPONSE_MODES:
        raise InvalidClaim(f"response_mode must be one of {list(RESPONSE_MODES)}")
    for name in ("response_uri", "nonce"):
        if not isinstance(claims.get(name), str) or not claims[name]:
            raise MissingClaim(f"the request object lacks {name}")
    if "transaction_data" in claims:  # section 5.1: a wallet without support MUST refuse
        raise InvalidClaim("transaction_data is not supported by this wallet")
    query_id, requested = disclosures_for_query(claims.get("dcql_query"))
    return VerifiedRequest(claims, certified, query_id, requested)


@dataclass(frozen=True, slots=True)
class _Claim:
    id: str | None
    name: str
    values: tuple[Any, ...] | None


def _credential_query(query: Any) -> Mapping[str, Any]:
    if not isinstance(query, Mapping):
        raise InvalidClaim("the request has no dcql_query object")
    credentials = query.get("credentials")
    if not isinstance(credentials, list) or len(credentials) != 1:
        raise InvalidClaim("the DCQL query must ask for exactly one credential")
    wanted = credentials[0]
    if not isinstance(wanted, Mapping) or wanted.get("format") != ATTESTATION_TYP:
        raise InvalidClaim(f"the DCQL query asks for a format other than {ATTESTATION_TYP}")
    vct_values = (wanted.get("meta") or {}).get("vct_values")
    if not isinstance(vct_values, list) or not any(v in CREDENTIAL_QUERY_IDS for v in vct_values):
        raise InvalidClaim(f"the DCQL query asks for none of {sorted(CREDENTIAL_QUERY_IDS)}")
    if not isinstance(wanted.get("id"), str) or not wanted["id"]:
        raise InvalidClaim("the DCQL credential query has no id")
    return wanted


def _claims(wanted: Mapping[str, Any]) -> list[_Claim]:
    claims = wanted.get("claims")
    if not isinstance(claims, list) or not claims:
        raise InvalidClaim("the DCQL query names no claims: this wallet discloses none blindly")
    parsed: list[_Claim] = []
    for claim in claims:
        path = claim.get("path") if isinstance(claim, Mapping) else None
        if (
            not isinstance(path, list)
            or not 1 <= len(path) <= 2
            or not all(isinstance(p, str) and p and "." not in p for p in path)
        ):
            raise InvalidClaim(f"claims path {path!r} is not one this credential has")
        values = claim.get("values")
        if values is not None and (not isinstance(values, list) or not values):
            raise InvalidClaim("a claim's values must be a non-empty array")
        claim_id = claim.get("id")
        parsed.append(_Claim(claim_id if isinstance(claim_id, str) else None, ".".join(path),
                             tuple(values) if values is not None else None))  # fmt: skip
    return parsed


def requested_vct(query: Any) -> str:
    """The type of credential (its ``vct``) a DCQL query asks for: the first of its
    ``vct_values`` that is one of ours. Raises :class:`InvalidClaim` as
    :func:`disclosures_for_query` does."""
    values = _credential_query(query)["meta"]["vct_values"]
    return str(next(v for v in values if v in CREDENTIAL_QUERY_IDS))


def disclosures_for_query(query: Any) -> tuple[str, tuple[str, ...]]:
    """The credential query for the credit standing in a DCQL ``query`` and every claim
    it names, as :func:`protocol.present` names them (``band``, ``score_at_least.650``).
    Raises :class:`InvalidClaim` for a query that asks for nothing we hold, for several
    credentials, or with claim sets naming unknown claims."""
    wanted = _credential_query(query)
    claims = _claims(wanted)
    sets = wanted.get("claim_sets")
    if sets is not None:
        ids = {c.id for c in claims if c.id is not None}
        if (
            not isinstance(sets, list)
            or not sets
            or not all(isinstance(s, list) and s and set(s) <= ids for s in sets)
        ):
            raise InvalidClaim("claim_sets must be non-empty arrays of the claims' ids")
    return str(wanted["id"]), tuple(c.name for c in claims)


def choose_disclosures(query: Any, available: Mapping[str, Any]) -> tuple[str, ...]:
    """What a wallet discloses for ``query`` from a credential whose disclosable claims
    are ``available`` (section 6.4): every claim named, when there are no claim sets;
    else the first claim set (in the verifier's order of preference) whose every claim
    the credential has, with a value among ``values`` where the claim names some; never
    more. Raises :class:`InvalidClaim` when the credential can meet no set."""
    wanted = _credential_query(query)
    claims = _claims(wanted)

    def met(claim: _Claim) -> bool:
        if claim.name not in available:
            return False
        return claim.values is None or any(
            type(v) is type(available[claim.name]) and v == available[claim.name]
            for v in claim.values
        )

    sets = wanted.get("claim_sets")
    if sets is None:
        missing = [c.name for c in claims if not met(c)]
        if missing:
            raise InvalidClaim(f"the credential can't disclose {', '.join(missing)}")
        return tuple(c.name for c in claims)
    by_id = {c.id: c for c in claims if c.id is not None}
    for option in sets:
        chosen = [by_id[i] for i in option if i in by_id]
        if len(chosen) == len(option) and all(met(c) for c in chosen):
            return tuple(c.name for c in chosen)
    raise InvalidClaim("the credential meets none of the query's claim sets")
