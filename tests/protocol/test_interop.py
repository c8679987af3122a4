"""Interoperability with the IETF reference implementation of SD-JWT.

The peer is PyPI ``sd-jwt`` 0.10.4 (module ``sd_jwt``, over jwcrypto), from
openwallet-foundation-labs/sd-jwt-python, the program that generated RFC 9901's examples.
Both directions are checked: our presentations through its verifier, its SD-JWTs through
ours, and the disclosure digest (RFC 9901 section 4.2.3) computed by both sides.

Where 0.10.4 differs from what our API expects, the test adapts and says why:

* its holder reads the wall clock for the KB-JWT ``iat`` (holder.py: ``int(time())``)
  while our verifier takes ``now`` as a parameter, so the tests fix its clock;
* its issuer JWT ``typ`` defaults to ``example+sd-jwt`` (env ``SD_JWT_HEADER``), the
  explicit type of the RFC's examples (RFC 9901 section 9.11), and it sets no ``kid``;
* its verifier checks the KB-JWT with ES256 only and checks no ``iat``/``exp``/``nbf``
  and no issuer ``typ`` (its own TODOs), so only our side tests those.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

# The whole module skips, cleanly, where the reference implementation is not installed.
pytest.importorskip("sd_jwt")

import sd_jwt.holder
from jwcrypto.jwk import JWK
from sd_jwt.common import SDJWTCommon, SDObj
from sd_jwt.holder import SDJWTHolder
from sd_jwt.issuer import SDJWTIssuer
from sd_jwt.verifier import SDJWTVerifier

import protocol as P
from tests.conftest import (
    ALLIANCE,
    ISSUER,
    NOW,
    STATUS_URI,
    THRESHOLDS,
    VERIFIER,
    Setup,
    ec_key,
    make_setup,
)
from tests.protocol.test_domestic import HOLDER_KEY, ISSUER_KEY, issue, resolve

KB_IAT = NOW + 10  # when the holder signs the KB-JWT
VERIFY_AT = NOW + 11  # when the verifier checks it


@pytest.fixture
def reference_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fix the reference holder's clock, which stamps the KB-JWT ``iat`` (holder.py)."""
    monkeypatch.setattr(sd_jwt.holder, "time", lambda: KB_IAT)


def reference_resolver(issuer_key: Any) -> Any:
    """The reference's ``cb_get_issuer_key(iss, header)``: the issuer's public key as a JWK."""
    public = JWK.from_pyca(issuer_key.public_key())

    def resolve(iss: str, header: dict[str, Any]) -> JWK:
        if iss != ISSUER:
            raise ValueError(f"unknown issuer {iss!r}")
        return public

    return resolve


def reference_verify(presentation: str, issuer_key: Any, *, nonce: str, aud: str) -> Any:
    """The reference verifier with key binding checked: signature, typ, aud, nonce, sd_hash."""
    verifier = SDJWTVerifier(
        presentation, reference_resolver(issuer_key), expected_aud=aud, expected_nonce=nonce
    )
    return verifier.get_verified_payload()


# --- ours -> reference ------------------------------------------------------------------


def processed_payload(verified: P.VerifiedPresentation) -> dict[str, Any]:
    """The processed payload (RFC 9901 section 7.1) that ``verified`` stands for."""
    return {
        "iss": verified.issuer,
        "iat": verified.issued_at,
        "nbf": verified.issued_at,  # make_setup issues with nbf = iat
        "exp": verified.expires_at,
        "vct": P.VCT,
        "cnf": {"jwk": dict(verified.holder_jwk)},
        "status": {"status_list": {"idx": verified.status.idx, "uri": verified.status.uri}},
        "alliance": verified.alliance,
        "mapping": {
            "city": verified.mapping.city,
            "version": verified.mapping.version,
            "sha256": verified.mapping.sha256,
        },
        # score_at_least is a visible container: present even when no entry is disclosed.
        "score_at_least": {},
        **({} if verified.audience is None else {"aud": list(verified.audience)}),
        **verified.disclosed,
    }


@pytest.mark.parametrize(
    ("overrides", "disclose"),
    [
        pytest.param({}, ("score_at_least.650",), id="one-threshold"),
        pytest.param({}, (), id="nothing-disclosed"),
        pytest.param(
            {}, ("alliance_score", "score_at_least.600", "score_at_least.700"), id="three-claims"
        ),
        pytest.param(
            {},
            (
                "alliance_score",
                "band",
                *(f"score_at_least.{t}" for t in THRESHOLDS),
                "local_score",
                "local_scale",
                "score_date",
            ),
            id="every-claim",
        ),
        pytest.param({"band": "良好"}, ("band",), id="non-ascii-value"),
    ],
)
def test_our_presentation_verifies_with_the_reference_verifier(
    overrides: dict[str, Any], disclose: tuple[str, ...]
) -> None:
    setup = make_setup("ES256", **overrides)
    presentation = setup.present(disclose, nonce="nonce-interop", now=KB_IAT)
    ours = setup.verify(presentation, nonce="nonce-interop", now=VERIFY_AT)

    theirs = reference_verify(presentation, setup.issuer_key, nonce="nonce-interop", aud=VERIFIER)

    assert theirs == processed_payload(ours)
    assert {
        name: theirs[name] for name in P.DISCLOSABLE_CLAIMS if theirs.get(name, {}) != {}
    } == dict(ours.disclosed)


@pytest.mark.parametrize(
    ("nonce", "aud", "message"),
    [
        pytest.param("nonce-other", VERIFIER, "nonce", id="replayed-to-another-nonce"),
        pytest.param("nonce-interop", "https://other.ccx.example", "audience", id="wrong-aud"),
    ],
)
def test_reference_verifier_checks_our_key_binding(
    es256: Setup, nonce: str, aud: str, message: str
) -> None:
    # The control for the test above: the reference does read our KB-JWT's nonce and aud.
    presentation = es256.present(nonce="nonce-interop", now=KB_IAT)
    with pytest.raises(ValueError, match=message):
        reference_verify(presentation, es256.issuer_key, nonce=nonce, aud=aud)


# An attestation that names its recipients (the holder's consent names members: issue 19,
# item 4) carries a visible issuer-signed aud array. The reference verifier is told the
# audience only for the KB-JWT (expected_aud) and does not read the issuer JWT's aud
# (verifier.py checks no registered claim of it), so it shows that the claim costs
# interoperability nothing; PyJWT, a generic JWT library, shows that the claim means what
# RFC 7519 section 4.1.3 says: accepted by a party it names, refused by any other.
OTHER_MEMBER = "https://quanzhou.ccx.example"
NOT_NAMED = "https://putian.ccx.example"


@pytest.mark.parametrize(
    "aud", [[VERIFIER], [OTHER_MEMBER, VERIFIER]], ids=["one-recipient", "two-recipients"]
)
def test_our_attestation_naming_recipients_verifies_with_the_reference_verifier(
    aud: list[str],
) -> None:
    setup = make_setup("ES256", aud=aud)
    presentation = setup.present(("score_at_least.650",), nonce="nonce-interop", now=KB_IAT)
    ours = setup.verify(presentation, nonce="nonce-interop", now=VERIFY_AT)

    theirs = reference_verify(presentation, setup.issuer_key, nonce="nonce-interop", aud=VERIFIER)

    assert ours.audience == tuple(aud)
    assert theirs == processed_payload(ours)
    assert theirs["aud"] == aud


def test_a_generic_jwt_library_reads_our_aud_as_rfc_7519_says() -> None:
    import jwt as pyjwt  # PyJWT, the node's library for residents' bearer tokens

    setup = make_setup("ES256", aud=[OTHER_MEMBER, VERIFIER])
    issuer_jwt = setup.attestation.split("~", 1)[0]
    # Times are ours to check (and PyJWT's checks would read the wall clock): off.
    untimed = {"verify_exp": False, "verify_nbf": False, "verify_iat": False}

    def decode(audience: str) -> dict[str, Any]:
        claims: dict[str, Any] = pyjwt.decode(
            issuer_jwt,
            setup.issuer_key.public_key(),
            algorithms=["ES256"],
            audience=audience,
            options=untimed,
        )
        return claims

    assert decode(VERIFIER)["aud"] == [OTHER_MEMBER, VERIFIER]
    assert decode(OTHER_MEMBER)["iss"] == ISSUER
    with pytest.raises(pyjwt.InvalidAudienceError):
        decode(NOT_NAMED)
    with pytest.raises(P.RecipientNotNamed):
        setup.verify(setup.present(aud=NOT_NAMED), aud=NOT_NAMED)


# --- reference -> ours ------------------------------------------------------------------


def rfc_style_user_claims() -> dict[Any, Any]:
    """Claims in the shape of RFC 9901 section 5's example, with nested and array disclosures."""
    return {
        "iss": ISSUER,
        "iat": NOW,
        "exp": NOW + 86400,
        "sub": "user_42",
        SDObj("given_name"): "John",
        SDObj("family_name"): "Möbius",  # non-ASCII, as in RFC 9901 section 4.2.1
        SDObj("email"): "johndoe@example.com",
        # A recursive disclosure: address is disclosable, and so is each of its members.
        SDObj("address"): {
            SDObj("street_address"): "123 Main St",
            SDObj("locality"): "Anytown",
            "country": "US",
        },
        "nationalities": [SDObj("US"), SDObj("DE"), "FR"],
        "score_at_least": {SDObj(str(t)): t <= 672 for t in THRESHOLDS},
    }


def reference_issue(
    user_claims: dict[Any, Any],
    *,
    extra_header: dict[str, str] | None = None,
    decoys: bool = True,
) -> str:
    issuer = SDJWTIssuer(
        user_claims,
        JWK.from_pyca(ec_key(1)),
        holder_key=JWK.from_pyca(ec_key(2).public_key()),
        sign_alg="ES256",
        add_decoy_claims=decoys,
        extra_header_parameters=extra_header or {},
    )
    return issuer.sd_jwt_issuance


def reference_present(issuance: str, claims_to_disclose: dict[str, Any], *, nonce: str) -> str:
    holder = SDJWTHolder(issuance)
    holder.create_presentation(
        claims_to_disclose,
        nonce=nonce,
        aud=VERIFIER,
        holder_key=JWK.from_pyca(ec_key(2)),
        sign_alg="ES256",
    )
    return holder.sd_jwt_presentation


def resolve_reference_issuer(iss: str, kid: str | None, alg: str) -> P.PublicKey:
    if iss != ISSUER or alg != "ES256":
        raise P.UnknownKid(f"no key for {iss!r} ({alg})")
    return ec_key(1).public_key()


@pytest.mark.usefixtures("reference_clock")
@pytest.mark.parametrize(
    ("claims_to_disclose", "disclosed_paths"),
    [
        pytest.param({}, set(), id="nothing-disclosed"),
        pytest.param({"given_name": True}, {"given_name"}, id="one-claim"),
        pytest.param({"score_at_least": {"650": True}}, {"score_at_least.650"}, id="nested-entry"),
        pytest.param(
            {"address": {"locality": True}}, {"address", "address.locality"}, id="recursive"
        ),
        # Array elements have no name, so no path: only their values show.
        pytest.param({"nationalities": [False, True]}, set(), id="array-element"),
        pytest.param(
            {
                "given_name": True,
                "family_name": True,
                "email": True,
                "address": {"street_address": True, "locality": True},
                "nationalities": [True, True],
                "score_at_least": {str(t): True for t in THRESHOLDS},
            },
            {
                "given_name",
                "family_name",
                "email",
                "address",
                "address.street_address",
                "address.locality",
                *(f"score_at_least.{t}" for t in THRESHOLDS),
            },
            id="everything",
        ),
    ],
)
def test_reference_presentation_verifies_with_our_generic_verifier(
    claims_to_disclose: dict[str, Any], disclosed_paths: set[str]
) -> None:
    issuance = reference_issue(rfc_style_user_claims())
    presentation = reference_present(issuance, claims_to_disclose, nonce="nonce-interop")
    header = json.loads(P.b64url_decode(presentation.split(".", 1)[0]))
    assert "kid" not in header  # hence require_kid=False below

    ours = P.verify_sd_jwt(
        presentation,
        typ=SDJWTCommon.SD_JWT_HEADER,
        resolve_issuer_key=resolve_reference_issuer,
        aud=VERIFIER,
        nonce="nonce-interop",
        now=VERIFY_AT,
        require_kid=False,
        required_claims=("iss", "iat", "exp"),  # the reference adds none; these we gave it
    )

    theirs = reference_verify(presentation, ec_key(1), nonce="nonce-interop", aud=VERIFIER)
    assert ours.claims == theirs
    assert ours.disclosed == disclosed_paths
    assert ours.kb_claims["iat"] == KB_IAT


@pytest.mark.usefixtures("reference_clock")
def test_reference_issued_attestation_verifies_as_a_credit_standing_presentation() -> None:
    # The same claim layout as issue_attestation, built by the reference issuer, accepted
    # by verify_presentation: the format is not private to our issuer.
    kid = P.jwk_thumbprint(P.public_jwk(ec_key(1)))
    issuance = reference_issue(
        {
            "iss": ISSUER,
            "iat": NOW,
            "nbf": NOW,
            "exp": NOW + 30 * 86400,
            "vct": P.VCT,
            "status": {"status_list": {"idx": 7, "uri": STATUS_URI}},
            "alliance": ALLIANCE,
            "mapping": {"city": "xiamen", "version": 3, "sha256": "ab" * 32},
            SDObj("alliance_score"): 672,
            SDObj("band"): "good",
            "score_at_least": {SDObj(str(t)): t <= 672 for t in THRESHOLDS},
            SDObj("local_score"): 731,
            SDObj("local_scale"): {"name": "egret", "min": 0, "max": 1000, "step": 1},
            SDObj("score_date"): "2026-12-31",
        },
        extra_header={"typ": P.ATTESTATION_TYP, "kid": kid},
        decoys=False,  # it would also put decoys under status and mapping; ours does not
    )
    presentation = reference_present(
        issuance, {"score_at_least": {"650": True}}, nonce="nonce-interop"
    )

    verified = P.verify_presentation(
        presentation,
        resolve_issuer_key=resolve_reference_issuer,
        aud=VERIFIER,
        nonce="nonce-interop",
        now=VERIFY_AT,
    )

    assert verified.kid == kid
    assert dict(verified.disclosed) == {"score_at_least": {"650": True}}
    assert verified.status == P.StatusReference(uri=STATUS_URI, idx=7)


# --- disclosure digests -------------------------------------------------------------------


@pytest.mark.parametrize(
    "user_claims",
    [
        pytest.param({SDObj("given_name"): "John"}, id="object-property"),
        pytest.param({SDObj("family_name"): "Möbius"}, id="non-ascii-value"),
        pytest.param({"nationalities": [SDObj("DE")]}, id="array-element"),
        pytest.param({SDObj("address"): {"locality": "Anytown"}}, id="object-value"),
        pytest.param({SDObj("650"): True}, id="boolean-value"),
    ],
)
def test_reference_disclosure_digest_matches_ours(user_claims: dict[Any, Any]) -> None:
    issuer = SDJWTIssuer(user_claims, JWK.from_pyca(ec_key(1)), sign_alg="ES256")
    [disclosure] = issuer.ii_disclosures

    assert P.disclosure_digest(disclosure.b64) == disclosure.hash
    # Our strict decoders read its encoding (json.dumps with ", " and \u escapes, which
    # RFC 9901 section 4.2.1 allows: the digest is over the string as sent, not re-encoded).
    assert P.strict_json_loads(P.b64url_decode(disclosure.b64)) == json.loads(disclosure.json)


@pytest.mark.parametrize(
    "disclose",
    [
        pytest.param(("background_check_passed",), id="one-claim"),
        pytest.param(("rating_at_least.4", "no_upheld_complaints_12m"), id="threshold-and-flag"),
    ],
)
def test_our_domestic_presentation_verifies_with_the_reference_verifier(
    disclose: tuple[str, ...],
) -> None:
    """Issue 18: the second credential type is an SD-JWT VC the reference reads alike."""
    presentation = P.present(issue(), disclose=disclose, holder_key=HOLDER_KEY, aud=VERIFIER,
                             nonce="nonce-interop", now=KB_IAT)  # fmt: skip
    ours = P.verify_domestic_presentation(presentation, resolve_issuer_key=resolve,
                                          aud=VERIFIER, nonce="nonce-interop", now=VERIFY_AT)  # fmt: skip
    theirs = reference_verify(presentation, ISSUER_KEY, nonce="nonce-interop", aud=VERIFIER)
    assert theirs["vct"] == P.DOMESTIC_VCT
    assert {
        name: theirs[name] for name in P.DOMESTIC_DISCLOSABLE_CLAIMS if theirs.get(name, {}) != {}
    } == dict(ours.disclosed)
    assert "score_at_least" not in theirs
