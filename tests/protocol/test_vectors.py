"""The standards' own examples, run through protocol/.

Vectors live in tests/vectors/ with their source written beside them (RFC 9901 as
draft-ietf-oauth-selective-disclosure-jwt-22; draft-ietf-oauth-status-list-18).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import pytest

import protocol as P

VECTORS = Path(__file__).parent.parent / "vectors"


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


KEYS = load("rfc9901/keys.json")
ISSUER_PUBLIC = P.public_key_from_jwk(KEYS["issuer_key"]["public_jwk"])


def resolve_rfc_issuer(iss: str, kid: str | None, alg: str) -> P.PublicKey:
    return ISSUER_PUBLIC


# --- RFC 9901 -----------------------------------------------------------------------


def test_rfc9901_object_property_disclosure_digest() -> None:
    example = load("rfc9901/disclosures.json")["object_property_example"]
    assert P.disclosure_digest(example["disclosure"]) == example["digest_sha256"]
    decoded = json.loads(P.b64url_decode(example["disclosure"]))
    assert decoded == [example["salt"], example["claim_name"], example["claim_value"]]


def test_rfc9901_array_element_disclosure_digest() -> None:
    example = load("rfc9901/disclosures.json")["array_element_example"]
    assert P.disclosure_digest(example["disclosure"]) == example["digest_sha256"]


@pytest.mark.parametrize("section", ["section_5_1_disclosures", "section_6_disclosures"])
def test_rfc9901_example_disclosures_hash_to_their_printed_digests(section: str) -> None:
    entries = load("rfc9901/disclosures.json")[section]
    entries = (
        entries if isinstance(entries, list) else [e for group in entries.values() for e in group]
    )
    assert entries
    for entry in entries:
        assert P.disclosure_digest(entry["disclosure"]) == entry["digest_sha256"]


def _verify_rfc_example(example: dict[str, Any], typ: str) -> P.VerifiedSdJwt:
    return P.verify_sd_jwt(
        example["sd_jwt_kb_presentation"],
        typ=typ,
        resolve_issuer_key=resolve_rfc_issuer,
        aud=example["kb_aud"],
        nonce=example["kb_nonce"],
        now=example["kb_iat"] + 5,
        require_kid=False,
    )


def test_rfc9901_section5_presentation_verifies_to_the_printed_payload() -> None:
    example = load("rfc9901/presentation.json")
    verified = _verify_rfc_example(example, "example+sd-jwt")
    assert verified.claims == example["expected_processed_payload"]
    assert verified.kb_claims["sd_hash"] == example["sd_hash"]


def test_rfc9901_sd_jwt_vc_example_with_nested_disclosures_verifies() -> None:
    example = load("rfc9901/sd_jwt_vc_pid_example.json")
    verified = _verify_rfc_example(example, "dc+sd-jwt")
    assert verified.claims == example["expected_processed_payload"]


def test_rfc9901_presentation_is_refused_for_another_nonce() -> None:
    example = load("rfc9901/presentation.json")
    with pytest.raises(P.NonceMismatch):
        P.verify_sd_jwt(
            example["sd_jwt_kb_presentation"],
            typ="example+sd-jwt",
            resolve_issuer_key=resolve_rfc_issuer,
            aud=example["kb_aud"],
            nonce="another-nonce",
            now=example["kb_iat"],
            require_kid=False,
        )


def test_rfc9901_presentation_is_refused_with_our_attestation_typ() -> None:
    example = load("rfc9901/presentation.json")
    with pytest.raises(P.WrongTyp):
        _verify_rfc_example(example, "dc+sd-jwt")


# --- draft-ietf-oauth-status-list ---------------------------------------------------

STATUS = load("status_list/examples.json")


@pytest.mark.parametrize("name", ["bits1_example", "bits2_example"])
def test_status_list_examples_decode_to_their_printed_statuses(name: str) -> None:
    example = STATUS[name]
    decoded = P.decode_status_list(example["json"])
    assert decoded.to_bytes() == bytes.fromhex(example["byte_array_hex"])
    assert [decoded[i] for i in range(len(example["statuses"]))] == example["statuses"]


@pytest.mark.parametrize("name", ["bits1_example", "bits2_example"])
def test_status_list_examples_encode_to_their_printed_bytes(name: str) -> None:
    example = STATUS[name]
    status_list = P.StatusList(len(example["statuses"]), example["bits"])
    for idx, value in enumerate(example["statuses"]):
        status_list[idx] = value
    assert status_list.to_bytes() == bytes.fromhex(example["byte_array_hex"])
    encoded = P.encode_status_list(status_list)
    assert zlib.decompress(P.b64url_decode(encoded["lst"])) == bytes.fromhex(
        example["byte_array_hex"]
    )


def test_status_list_bits1_example_starts_b9_a3() -> None:
    assert P.decode_status_list({"bits": 1, "lst": "eNrbuRgAAhcBXQ"}).to_bytes()[:2] == b"\xb9\xa3"


@pytest.mark.parametrize("name", ["C.1", "C.2", "C.3"])
def test_status_list_appendix_c_vectors_round_trip(name: str) -> None:
    vector = STATUS["appendix_c_test_vectors"][name]
    size = int(STATUS["appendix_c_test_vectors"]["size"])
    decoded = P.decode_status_list({"bits": vector["bits"], "lst": vector["lst"]})
    assert len(decoded) == size
    ours = P.StatusList(size, vector["bits"])
    for idx, value in vector["statuses"].items():
        assert decoded[int(idx)] == value
        ours[int(idx)] = value
    assert ours == decoded
    assert P.decode_status_list(P.encode_status_list(ours)) == decoded


def test_status_list_token_example_verifies() -> None:
    example = STATUS["status_list_token_jwt_compact_example"]
    key = P.public_key_from_jwk(
        {
            k: v
            for k, v in example["verification_key_public_jwk"].items()
            if k in ("kty", "crv", "x", "y")
        }
    )
    payload = example["payload"]
    verified = P.verify_status_list(
        example["jwt"],
        uri=payload["sub"],
        issuer=payload["iss"],
        resolve_issuer_key=lambda iss, kid, alg: key,
        now=payload["iat"] + 60,
    )
    assert verified.ttl == payload.get("ttl")
    assert verified.status_list == P.decode_status_list(payload["status_list"])
    with pytest.raises(P.StatusListSubjectMismatch):
        P.verify_status_list(
            example["jwt"],
            uri="https://example.com/statuslists/2",
            issuer=payload["iss"],
            resolve_issuer_key=lambda iss, kid, alg: key,
            now=payload["iat"] + 60,
        )
