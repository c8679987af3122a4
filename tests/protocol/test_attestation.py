"""Behaviour of the credit-standing attestation: issuance, presentation, verification.

DESIGN section 5 is the contract. The tokens are decoded here with the standard
library (``base64``, ``json``, ``hashlib``), not with ``protocol``'s own parsers, so a
bug in those parsers cannot hide itself from these tests.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import string
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

import protocol as P
from tests.conftest import (
    ALLIANCE,
    ISSUER,
    NOW,
    STATUS_URI,
    THRESHOLDS,
    VERIFIER,
    Setup,
    counter_salt,
    ec_key,
    ed_key,
    make_setup,
    standard_claims,
)

VCT = "urn:ccx:credit-standing:1"
TOP_LEVEL_DISCLOSABLE = ("alliance_score", "band", "local_score", "local_scale", "score_date")
DISCLOSABLE_PATHS = (
    *TOP_LEVEL_DISCLOSABLE,
    *(f"score_at_least.{t}" for t in THRESHOLDS),
)
# Exactly these names are visible in the issuer-signed payload; anything else there
# would be a claim that escaped selective disclosure.
VISIBLE_NAMES = {
    "iss",
    "iat",
    "nbf",
    "exp",
    "vct",
    "cnf",
    "status",
    "alliance",
    "mapping",
    "score_at_least",
    "_sd",
    "_sd_alg",
}


# --- independent decoding ------------------------------------------------------------


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def unb64json(segment: str) -> Any:
    return json.loads(unb64(segment))


def digest_of(disclosure: str) -> str:
    raw = hashlib.sha256(disclosure.encode("ascii")).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def alg_of(key: Any) -> str:
    return "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "EdDSA"


def rfc7638_thumbprint(key: Any) -> str:
    """RFC 7638 section 3, written out by hand: required members, sorted, no whitespace."""
    public = key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        point = public.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        x = base64.urlsafe_b64encode(point[1:33]).rstrip(b"=").decode()
        y = base64.urlsafe_b64encode(point[33:]).rstrip(b"=").decode()
        text = f'{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}'
    else:
        raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        text = f'{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}'
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()


def decode_attestation(attestation: str) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(header, payload, disclosures) of an issued attestation ``<jwt>~<d1>~...~<dn>~``."""
    jwt, *disclosures, last = attestation.split("~")
    assert last == ""
    header, payload, _signature = jwt.split(".")
    return unb64json(header), unb64json(payload), disclosures


def expected_disclosed(paths: set[str] | tuple[str, ...], score: int = 672) -> dict[str, Any]:
    """What a verifier must learn from disclosing ``paths`` of the standard attestation."""
    claims = standard_claims()
    out: dict[str, Any] = {}
    for path in paths:
        if path.startswith("score_at_least."):
            threshold = path.split(".", 1)[1]
            out.setdefault("score_at_least", {})[threshold] = score >= int(threshold)
        else:
            out[path] = claims[path]
    return out


@functools.cache
def cached_setup(alg: str) -> Setup:
    """One setup per algorithm for hypothesis tests (function-scoped fixtures do not mix)."""
    return make_setup(alg)


# --- round trips ---------------------------------------------------------------------


def test_round_trip_discloses_only_the_chosen_threshold(setup: Setup) -> None:
    verified = setup.verify(setup.present(("score_at_least.650",)))

    assert dict(verified.disclosed) == {"score_at_least": {"650": True}}
    assert verified.score_at_least == {650: True}
    assert verified.alliance_score is None
    assert verified.band is None
    # Nothing about the other thresholds, the score, the band or the local score leaks.
    for hidden in ("alliance_score", "band", "local_score", "local_scale", "score_date"):
        assert hidden not in verified.disclosed


def test_round_trip_reports_issuer_key_holder_and_references(setup: Setup) -> None:
    verified = setup.verify(setup.present())

    assert verified.issuer == ISSUER
    assert verified.kid == setup.kid == rfc7638_thumbprint(setup.issuer_key)
    assert dict(verified.holder_jwk) == P.public_jwk(setup.holder_key)
    assert verified.alliance == ALLIANCE
    assert verified.status == P.StatusReference(uri=STATUS_URI, idx=4242)
    assert verified.mapping == P.MappingReference(city="xiamen", version=3, sha256="ab" * 32)
    assert verified.issued_at == NOW
    assert verified.expires_at == NOW + 30 * 86400


def test_a_false_threshold_is_disclosed_as_false_not_omitted(setup: Setup) -> None:
    verified = setup.verify(setup.present(("score_at_least.700", "score_at_least.750")))

    assert dict(verified.disclosed) == {"score_at_least": {"700": False, "750": False}}
    assert verified.score_at_least == {700: False, 750: False}


def test_disclosing_everything_yields_every_disclosable_claim(setup: Setup) -> None:
    verified = setup.verify(setup.present(DISCLOSABLE_PATHS))

    assert dict(verified.disclosed) == expected_disclosed(DISCLOSABLE_PATHS)
    assert verified.alliance_score == 672
    assert verified.band == "good"
    assert verified.score_at_least == {550: True, 600: True, 650: True, 700: False, 750: False}


def test_disclosing_nothing_still_verifies_and_reveals_nothing(setup: Setup) -> None:
    verified = setup.verify(setup.present(()))

    assert dict(verified.disclosed) == {}
    assert verified.score_at_least == {}
    assert verified.issuer == ISSUER


def test_verified_disclosures_are_read_only(setup: Setup) -> None:
    verified = setup.verify(setup.present())

    with pytest.raises(TypeError):
        verified.disclosed["alliance_score"] = 1000  # type: ignore[index]


# --- the issued attestation ----------------------------------------------------------


def test_issued_attestation_header(setup: Setup) -> None:
    header, _, _ = decode_attestation(setup.attestation)

    assert header == {
        "alg": alg_of(setup.issuer_key),
        "typ": "dc+sd-jwt",
        "kid": rfc7638_thumbprint(setup.issuer_key),
    }


def test_issued_attestation_visible_claims(setup: Setup) -> None:
    _, payload, _ = decode_attestation(setup.attestation)

    assert set(payload) == VISIBLE_NAMES
    assert payload["iss"] == ISSUER
    assert payload["iat"] == NOW
    assert payload["nbf"] == NOW
    assert payload["exp"] == NOW + 30 * 86400
    assert payload["vct"] == VCT
    assert payload["cnf"] == {"jwk": P.public_jwk(setup.holder_key)}
    assert payload["status"] == {"status_list": {"idx": 4242, "uri": STATUS_URI}}
    assert payload["alliance"] == ALLIANCE
    assert payload["mapping"] == {"city": "xiamen", "version": 3, "sha256": "ab" * 32}
    assert payload["_sd_alg"] == "sha-256"
    assert set(payload["score_at_least"]) == {"_sd"}


def test_issued_payload_does_not_reveal_hidden_values(setup: Setup) -> None:
    _, payload, _ = decode_attestation(setup.attestation)
    text = json.dumps(payload)

    for leaked in ("alliance_score", "672", "band", "good", "local_score", "731", "egret"):
        assert leaked not in text


def test_every_published_threshold_is_its_own_disclosure(setup: Setup) -> None:
    _, payload, disclosures = decode_attestation(setup.attestation)
    decoded = {digest_of(d): unb64json(d) for d in disclosures}
    nested_digests = set(payload["score_at_least"]["_sd"])

    thresholds = {
        items[1]: items[2] for digest, items in decoded.items() if digest in nested_digests
    }
    assert thresholds == {str(t): t <= 672 for t in THRESHOLDS}
    assert all(len(items) == 3 for items in decoded.values())


def test_every_top_level_disclosable_claim_is_its_own_disclosure(setup: Setup) -> None:
    _, payload, disclosures = decode_attestation(setup.attestation)
    top_digests = set(payload["_sd"])
    claims = standard_claims()

    top = {unb64json(d)[1]: unb64json(d)[2] for d in disclosures if digest_of(d) in top_digests}
    assert top == {name: claims[name] for name in TOP_LEVEL_DISCLOSABLE}
    # Every disclosure is referenced from exactly one _sd array.
    nested = set(payload["score_at_least"]["_sd"])
    for disclosure in disclosures:
        assert (digest_of(disclosure) in top_digests) != (digest_of(disclosure) in nested)


@pytest.mark.parametrize("score", [0, 549, 550, 649, 650, 700, 749, 750, 1000])
def test_threshold_booleans_follow_alliance_score(score: int) -> None:
    setup = make_setup("ES256", alliance_score=score)
    paths = tuple(f"score_at_least.{t}" for t in THRESHOLDS)

    verified = setup.verify(setup.present(paths))

    assert verified.score_at_least == {t: score >= t for t in THRESHOLDS}


def test_thresholds_are_deduplicated_and_each_disclosable() -> None:
    setup = make_setup("ES256", thresholds=(700, 550, 700))
    _, payload, disclosures = decode_attestation(setup.attestation)
    nested = set(payload["score_at_least"]["_sd"])

    names = sorted(unb64json(d)[1] for d in disclosures if digest_of(d) in nested)
    assert names == ["550", "700"]
    with pytest.raises(P.DisclosureNotFound):
        setup.present(("score_at_least.650",))


def test_decoy_digests_hide_the_number_of_claims(setup: Setup) -> None:
    _, payload, disclosures = decode_attestation(setup.attestation)
    real = {digest_of(d) for d in disclosures}

    for sd in (payload["_sd"], payload["score_at_least"]["_sd"]):
        decoys = set(sd) - real
        assert len(sd) > len(set(sd) & real)
        assert len(decoys) == 3  # the default
        assert all(len(unb64(d)) == 32 for d in decoys)  # shaped like real SHA-256 digests


@pytest.mark.parametrize("decoys", [0, 1, 7])
def test_decoy_count_is_the_callers_choice(decoys: int) -> None:
    key, holder = ec_key(1), ec_key(2)
    attestation = P.issue_attestation(
        standard_claims(),
        issuer_key=key,
        kid=rfc7638_thumbprint(key),
        holder_jwk=P.public_jwk(holder),
        now=NOW,
        salt=counter_salt(),
        decoys=decoys,
    )
    _, payload, _ = decode_attestation(attestation)

    assert len(payload["_sd"]) == len(TOP_LEVEL_DISCLOSABLE) + decoys
    assert len(payload["score_at_least"]["_sd"]) == len(THRESHOLDS) + decoys


def test_sd_arrays_are_sorted(setup: Setup) -> None:
    _, payload, _ = decode_attestation(setup.attestation)

    for sd in (payload["_sd"], payload["score_at_least"]["_sd"]):
        assert sd == sorted(sd)
        assert len(set(sd)) == len(sd)


@pytest.mark.parametrize("source", ["counter", "default"])
def test_salts_carry_at_least_128_bits_and_are_unique(source: str) -> None:
    key, holder = ed_key(1), ed_key(2)
    kwargs: dict[str, Any] = {"salt": counter_salt()} if source == "counter" else {}
    attestations = [
        P.issue_attestation(
            standard_claims(),
            issuer_key=key,
            kid=rfc7638_thumbprint(key),
            holder_jwk=P.public_jwk(holder),
            now=NOW,
            **kwargs,
        )
        for _ in range(2 if source == "default" else 1)
    ]
    salts = [unb64json(d)[0] for a in attestations for d in decode_attestation(a)[2]]

    assert len(salts) == 10 * len(attestations)
    assert all(len(unb64(salt)) >= 16 for salt in salts)
    assert len(set(salts)) == len(salts)


# --- every subset of disclosures -----------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    alg=st.sampled_from(["ES256", "EdDSA"]),
    chosen=st.sets(st.sampled_from(DISCLOSABLE_PATHS)),
)
def test_any_subset_of_paths_discloses_exactly_that_subset(alg: str, chosen: set[str]) -> None:
    setup = cached_setup(alg)
    presentation = setup.present(tuple(sorted(chosen)))

    # One disclosure per chosen path, none more: <jwt>~<d1>~...~<dn>~<kb>.
    assert presentation.count("~") == len(chosen) + 1
    verified = setup.verify(presentation)
    assert dict(verified.disclosed) == expected_disclosed(chosen)


# --- tampering: one character anywhere ----------------------------------------------

_BASE64URL = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


def _replacements(original: str, position: int) -> tuple[str, ...]:
    """Characters other than ``original`` to put at ``position``.

    The neighbour differs in the lowest bit only: at the end of a segment that is an
    unused bit, so it spells the same bytes non-canonically; elsewhere it changes one bit.
    Then another base64url character, and a separator.
    """
    others = [c for c in _BASE64URL if c != original]
    separator = "~" if original != "~" and (position % 2 or original == ".") else "."
    if original in _BASE64URL:
        neighbour = _BASE64URL[_BASE64URL.index(original) ^ 1]
        return neighbour, others[position % len(others)], separator
    return others[position % len(others)], separator


def _outcome(setup: Setup, presentation: str) -> str | None:
    """None when refused with a ProtocolError; otherwise what went wrong."""
    try:
        setup.verify(presentation)
    except P.ProtocolError:
        return None
    except Exception as exc:  # the finding we are looking for
        return f"{type(exc).__name__}: {exc}"
    return "accepted"


def test_altering_any_single_character_is_refused(setup: Setup) -> None:
    # Exhaustive: every position of the ~2.3 KB presentation, each replaced by two
    # base64url characters and a separator (about 6,800 variants). Runs in about a second
    # per algorithm, so no sampling is needed.
    presentation = setup.present(("score_at_least.650", "band"))
    setup.verify(presentation)  # the untouched presentation is valid

    failures = []
    for position, original in enumerate(presentation):
        for replacement in _replacements(original, position):
            altered = presentation[:position] + replacement + presentation[position + 1 :]
            assert altered != presentation
            outcome = _outcome(setup, altered)
            if outcome is not None:
                failures.append((position, original, replacement, outcome))
    assert failures == []


@settings(max_examples=300, deadline=None)
@given(
    alg=st.sampled_from(["ES256", "EdDSA"]),
    fraction=st.floats(min_value=0, max_value=1, exclude_max=True),
    replacement=st.sampled_from(_BASE64URL + "~.=+/ "),
)
def test_altering_a_random_character_is_refused(
    alg: str, fraction: float, replacement: str
) -> None:
    setup = cached_setup(alg)
    presentation = setup.present()
    position = int(fraction * len(presentation))
    original = presentation[position]
    if replacement == original:
        replacement = "A" if original != "A" else "B"
    altered = presentation[:position] + replacement + presentation[position + 1 :]

    assert _outcome(setup, altered) is None


# --- issue_attestation refuses what a node should never produce ---------------------


def _issue(setup: Setup, *, salt: Any = None, holder_jwk: Any = None, **overrides: Any) -> str:
    return P.issue_attestation(
        standard_claims(**overrides),
        issuer_key=setup.issuer_key,
        kid=setup.kid,
        holder_jwk=P.public_jwk(setup.holder_key) if holder_jwk is None else holder_jwk,
        now=NOW,
        salt=salt or counter_salt(),
    )


def test_lifetime_of_exactly_35_days_is_accepted(es256: Setup) -> None:
    _, payload, _ = decode_attestation(_issue(es256, exp=NOW + 35 * 86400))

    assert payload["exp"] - payload["nbf"] == 35 * 86400


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": NOW + 35 * 86400 + 1},
        {"exp": NOW + 365 * 86400},
        {"exp": NOW - 1},
        {"nbf": NOW - 10 * 86400, "exp": NOW + 30 * 86400},
    ],
    ids=["35-days-plus-1s", "a-year", "already-expired", "backdated-nbf"],
)
def test_issue_refuses_a_lifetime_over_35_days(es256: Setup, overrides: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="lifetime"):
        _issue(es256, **overrides)


@pytest.mark.parametrize("score", [-1, 1001, 10**6, True, 650.0, "650"])
def test_issue_refuses_a_score_outside_0_to_1000(es256: Setup, score: Any) -> None:
    with pytest.raises(ValueError, match="alliance_score"):
        _issue(es256, alliance_score=score)


@pytest.mark.parametrize("score", [0, 1000])
def test_issue_accepts_the_ends_of_the_scale(es256: Setup, score: int) -> None:
    setup = Setup(
        es256.issuer_key, es256.holder_key, es256.kid, _issue(es256, alliance_score=score)
    )

    assert setup.verify(setup.present(("alliance_score",))).alliance_score == score


def test_issue_refuses_no_thresholds(es256: Setup) -> None:
    with pytest.raises(ValueError, match="threshold"):
        _issue(es256, thresholds=())


# --- recipients (aud) ------------------------------------------------------------------

OTHER_MEMBER = "https://quanzhou.ccx.example"


def _for(setup: Setup, aud: Any) -> Setup:
    return Setup(setup.issuer_key, setup.holder_key, setup.kid, _issue(setup, aud=aud))


def test_an_attestation_without_recipients_has_no_aud(setup: Setup) -> None:
    _, payload, _ = decode_attestation(setup.attestation)

    assert "aud" not in payload
    assert setup.verify(setup.present()).audience is None


def test_issue_puts_the_named_recipients_in_a_visible_aud_array(setup: Setup) -> None:
    named = _for(setup, [OTHER_MEMBER, VERIFIER])
    _, payload, disclosures = decode_attestation(named.attestation)

    assert payload["aud"] == [OTHER_MEMBER, VERIFIER]
    assert set(payload) == VISIBLE_NAMES | {"aud"}
    assert not any("aud" in unb64json(d) for d in disclosures)
    assert named.verify(named.present()).audience == (OTHER_MEMBER, VERIFIER)


def test_a_named_recipient_verifies_and_any_other_verifier_refuses(setup: Setup) -> None:
    named = _for(setup, [VERIFIER])
    assert named.verify(named.present()).audience == (VERIFIER,)

    with pytest.raises(P.RecipientNotNamed) as info:
        named.verify(named.present(aud=OTHER_MEMBER), aud=OTHER_MEMBER)
    assert (info.value.code, info.value.http_status) == ("recipient_not_named", 403)


@pytest.mark.parametrize(
    "aud",
    [[], [VERIFIER, VERIFIER], [""], [VERIFIER, 7], VERIFIER, None, [f"m{i}" for i in range(65)]],
    ids=["empty", "repeated", "empty-name", "non-string", "a-string", "none", "over-64"],
)
def test_issue_refuses_an_unusable_audience(es256: Setup, aud: Any) -> None:
    with pytest.raises(ValueError, match="aud"):
        _issue(es256, aud=aud)


def test_issue_accepts_64_recipients(es256: Setup) -> None:
    aud = [VERIFIER, *(f"https://m{i}.ccx.example" for i in range(P.MAX_AUDIENCE - 1))]
    named = _for(es256, aud)

    assert named.verify(named.present()).audience == tuple(aud)


@pytest.mark.parametrize("size", [0, 8, 15])
def test_issue_refuses_a_salt_source_returning_fewer_than_16_bytes(es256: Setup, size: int) -> None:
    with pytest.raises(ValueError, match="salt"):
        _issue(es256, salt=lambda n: bytes(size))


def test_issue_refuses_a_salt_source_returning_text(es256: Setup) -> None:
    with pytest.raises(ValueError, match="salt"):
        _issue(es256, salt=lambda n: "x" * 32)


@pytest.mark.parametrize("member", ["d", "p", "k"])
def test_issue_refuses_a_holder_jwk_with_a_private_member(setup: Setup, member: str) -> None:
    holder_jwk = {**P.public_jwk(setup.holder_key), member: "AAAA"}

    with pytest.raises(P.InvalidKey) as info:
        _issue(setup, holder_jwk=holder_jwk)
    assert info.value.code == "invalid_key"


@pytest.mark.parametrize(
    "holder_jwk",
    [
        {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
        {"kty": "EC", "crv": "P-384", "x": "AAAA", "y": "AAAA"},
        {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
        {"kty": "oct", "k": "c2VjcmV0"},
        "not a jwk",
    ],
    ids=["rsa", "p-384", "short-coordinates", "symmetric", "string"],
)
def test_issue_refuses_an_unusable_holder_jwk(es256: Setup, holder_jwk: Any) -> None:
    with pytest.raises(P.InvalidKey) as info:
        _issue(es256, holder_jwk=holder_jwk)
    assert info.value.code == "invalid_key"


# --- present() -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "score_at_least.651",
        "score_at_least.500",
        "score_at_least",
        "credit_limit",
        "iss",
        "cnf.jwk",
        "status",
        "",
    ],
)
def test_present_refuses_an_unknown_path(setup: Setup, path: str) -> None:
    with pytest.raises(P.DisclosureNotFound) as info:
        setup.present(("band", path))
    assert info.value.code == "disclosure_not_found"


def test_present_refuses_an_already_presented_token(setup: Setup) -> None:
    presentation = setup.present()

    with pytest.raises(P.MalformedToken) as info:
        P.present(
            presentation,
            disclose=("score_at_least.650",),
            holder_key=setup.holder_key,
            aud=VERIFIER,
            nonce="nonce-2",
            now=NOW + 20,
        )
    assert info.value.code == "malformed_token"


def test_present_binds_to_aud_nonce_time_and_the_exact_disclosures(setup: Setup) -> None:
    presentation = setup.present(("band", "score_at_least.600"), nonce="n-42", now=NOW + 7)
    prefix, kb_jwt = presentation.rsplit("~", 1)
    prefix += "~"
    header, payload, _ = kb_jwt.split(".")

    assert unb64json(header) == {"alg": alg_of(setup.holder_key), "typ": "kb+jwt"}
    sd_hash = base64.urlsafe_b64encode(hashlib.sha256(prefix.encode()).digest()).rstrip(b"=")
    assert unb64json(payload) == {
        "iat": NOW + 7,
        "aud": VERIFIER,
        "nonce": "n-42",
        "sd_hash": sd_hash.decode(),
    }


def test_present_keeps_only_the_chosen_disclosures(setup: Setup) -> None:
    _, _, issued = decode_attestation(setup.attestation)
    presentation = setup.present(("band",))
    presented = presentation.split("~")[1:-1]

    assert len(presented) == 1
    assert presented[0] in issued
    assert unb64json(presented[0])[1:] == ["band", "good"]


def test_presenting_the_same_path_twice_discloses_it_once(setup: Setup) -> None:
    presentation = setup.present(("band", "band"))

    assert presentation.count("~") == 2
    assert dict(setup.verify(presentation).disclosed) == {"band": "good"}
