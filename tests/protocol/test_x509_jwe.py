"""The X.509 chains of OpenID4VP's x509_hash client identifiers and the ECDH-ES JWE of
encrypted responses (protocol/_x509.py, protocol/_jwe.py): what each accepts and each
thing each refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import protocol as P
from protocol._json import b64url_decode, b64url_encode
from protocol._jwe import concat_kdf, decrypt_ecdh_es, encrypt_ecdh_es
from protocol._x509 import ca_certificate, leaf_certificate, verify_x5c, x509_hash
from tests.conftest import NOW, ec_key, ed_key

VECTORS = Path(__file__).parents[1] / "vectors" / "rfc7518"
DAY = 86400


def ca(key: P.PrivateKey | None = None, *, days: int = 365) -> tuple[P.PrivateKey, bytes]:
    key = key or ec_key(90)
    der = ca_certificate(key, name="alliance CA", not_before=NOW - DAY,
                         not_after=NOW + days * DAY, serial=1)  # fmt: skip
    return key, der


def leaf(ca_key: P.PrivateKey, ca_der: bytes, subject: P.PrivateKey, **changes: int) -> bytes:
    window = {"not_before": NOW - DAY, "not_after": NOW + 30 * DAY, **changes}
    return leaf_certificate(
        ca_key, ca_der, subject.public_key(), uri="https://fuzhou.ccx.example",
        name="fuzhou", serial=2, **window,
    )  # fmt: skip


# --- X.509 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("root", [ec_key(91), ed_key(91)], ids=["P-256 CA", "Ed25519 CA"])
def test_a_leaf_under_the_alliance_ca_is_trusted_with_its_uri(root: P.PrivateKey) -> None:
    ca_key, ca_der = ca(root)
    subject = ec_key(92)
    der = leaf(ca_key, ca_der, subject)
    for chain in ([der], [der, ca_der]):  # the CA itself may ride along (x5c)
        certified = verify_x5c(chain, [ca_der], now=NOW)
        assert certified.uris == ("https://fuzhou.ccx.example",)
        assert P.public_jwk(certified.public_key) == P.public_jwk(subject)


def test_a_certified_key_says_how_long_its_whole_path_is_valid() -> None:
    ca_key, ca_der = ca(days=10)  # the CA ends before the leaf does
    certified = verify_x5c([leaf(ca_key, ca_der, ec_key(92), not_before=NOW - 60)], [ca_der],
                           now=NOW)  # fmt: skip
    assert (certified.valid_from, certified.valid_until) == (NOW - 60, NOW + 10 * DAY)


def test_the_client_id_is_the_hash_of_the_leaf() -> None:
    ca_key, ca_der = ca()
    der = leaf(ca_key, ca_der, ec_key(93))
    import hashlib

    assert b64url_decode(x509_hash(der)) == hashlib.sha256(der).digest()
    assert len(x509_hash(der)) == 43


def test_a_leaf_under_another_ca_is_untrusted() -> None:
    _ca_key, ca_der = ca()
    other_key, other_der = ca(ec_key(94))
    der = leaf(other_key, other_der, ec_key(95))
    with pytest.raises(P.CertificateUntrusted):
        verify_x5c([der], [ca_der], now=NOW)
    with pytest.raises(P.CertificateUntrusted):  # its own CA sent along does not help
        verify_x5c([der, other_der], [ca_der], now=NOW)


@pytest.mark.parametrize(
    ("moment", "changes"),
    [(NOW + 31 * DAY, {}), (NOW, {"not_before": NOW + DAY})],
    ids=["expired", "not_yet_valid"],
)
def test_a_leaf_out_of_its_validity_is_refused(moment: int, changes: dict[str, int]) -> None:
    ca_key, ca_der = ca()
    der = leaf(ca_key, ca_der, ec_key(96), **changes)
    with pytest.raises(P.CertificateInvalid):
        verify_x5c([der], [ca_der], now=moment)


def test_an_expired_ca_is_refused() -> None:
    ca_key, ca_der = ca(days=1)
    der = leaf(ca_key, ca_der, ec_key(97), not_after=NOW + 10 * DAY)
    with pytest.raises(P.CertificateInvalid):
        verify_x5c([der], [ca_der], now=NOW + 5 * DAY)


def test_a_ca_certificate_is_not_a_leaf() -> None:
    _, ca_der = ca()
    with pytest.raises(P.CertificateInvalid):
        verify_x5c([ca_der], [ca_der], now=NOW)


@pytest.mark.parametrize(
    "chain", [[], [b"not a certificate"], [b"x"] * 4], ids=["empty", "junk", "long"]
)
def test_a_malformed_chain_is_refused(chain: list[bytes]) -> None:
    _, ca_der = ca()
    with pytest.raises(P.CertificateInvalid):
        verify_x5c(chain, [ca_der], now=NOW)


def test_a_leaf_whose_signature_was_tampered_with_is_untrusted() -> None:
    ca_key, ca_der = ca()
    der = bytearray(leaf(ca_key, ca_der, ec_key(98)))
    der[-5] ^= 0x01  # inside the signature
    with pytest.raises((P.CertificateUntrusted, P.CertificateInvalid)):
        verify_x5c([bytes(der)], [ca_der], now=NOW)


# --- JWE ---------------------------------------------------------------------------------------


def _private(jwk: dict[str, str]) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(b64url_decode(jwk["d"]), "big"), ec.SECP256R1())


def test_concat_kdf_derives_the_rfc_7518_appendix_c_key() -> None:
    vector = json.loads((VECTORS / "ecdh_es_appendix_c.json").read_text())
    alice, bob = _private(vector["alice_ephemeral"]), _private(vector["bob"])
    shared = alice.exchange(ec.ECDH(), bob.public_key())
    derived = concat_kdf(
        shared, vector["enc"], b64url_decode(vector["apu"]), b64url_decode(vector["apv"])
    )
    assert b64url_encode(derived) == vector["derived_key"]


@pytest.mark.parametrize("enc", ["A128GCM", "A256GCM"])
def test_a_response_encrypted_to_the_key_decrypts(enc: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    token = encrypt_ecdh_es(b'{"vp_token": {}}', key.public_key(), enc=enc, kid="k1",
                            apu=b"wallet", apv=b"nonce")  # fmt: skip
    header, plaintext = decrypt_ecdh_es(token, key, kid="k1")
    assert plaintext == b'{"vp_token": {}}'
    assert header["enc"] == enc
    assert header["kid"] == "k1"


def _reheader(token: str, **changes: object) -> str:
    parts = token.split(".")
    header = json.loads(b64url_decode(parts[0]))
    header.update(changes)
    header = {k: v for k, v in header.items() if v is not None}
    parts[0] = b64url_encode(json.dumps(header).encode())
    return ".".join(parts)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: _reheader(t, alg="RSA-OAEP"),
        lambda t: _reheader(t, enc="A192GCM"),
        lambda t: _reheader(t, zip="DEF"),
        lambda t: _reheader(t, kid="another-key"),
        lambda t: _reheader(t, epk={"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
        lambda t: _reheader(t, apv=b64url_encode(b"another nonce")),  # the KDF input changed
        lambda t: t.replace(".", ".x", 1),  # an encrypted key where there is none
        lambda t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"),  # the tag
        lambda t: ".".join(t.split(".")[:4]),
        lambda t: "x" * 70000,
    ],
    ids=[
        "alg",
        "enc",
        "zip",
        "kid",
        "epk_off_curve",
        "apv",
        "encrypted_key",
        "tag",
        "four_parts",
        "oversized",
    ],
)
def test_a_jwe_that_breaks_a_rule_is_refused(mutate: object) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    token = encrypt_ecdh_es(b"{}", key.public_key(), kid="k1", apv=b"nonce")
    with pytest.raises(P.JweInvalid):
        decrypt_ecdh_es(mutate(token), key, kid="k1")  # type: ignore[operator]


def test_a_jwe_for_another_key_does_not_decrypt() -> None:
    key, other = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
    with pytest.raises(P.JweInvalid):
        decrypt_ecdh_es(encrypt_ecdh_es(b"{}", other.public_key()), key)


def test_an_enc_not_offered_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    token = encrypt_ecdh_es(b"{}", key.public_key(), enc="A128GCM")
    with pytest.raises(P.JweInvalid):
        decrypt_ecdh_es(token, key, allowed_enc=("A256GCM",))
