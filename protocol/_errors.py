"""The error tree of the protocol.

One root, :class:`ProtocolError`; one subclass per way a token can fail. Every class
carries a stable machine-readable ``code`` (part of the wire contract: nodes put it in
their JSON error bodies, other implementations may match on it) and an
``http_status`` hint so the HTTP layer maps errors in one place.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AlgorithmKeyMismatch",
    "AlgorithmNotAllowed",
    "AudienceMismatch",
    "AudienceNotString",
    "CertificateInvalid",
    "CertificateUntrusted",
    "ClaimNameCollision",
    "ClientIdMismatch",
    "DisclosureNotFound",
    "DpopBindingMismatch",
    "DuplicateDigest",
    "DuplicateDisclosure",
    "DuplicateJsonKey",
    "ForbiddenClaimName",
    "ForbiddenHeader",
    "InvalidClaim",
    "InvalidKey",
    "InvalidKid",
    "InvalidSignature",
    "IssuedInFuture",
    "IssuerNotMember",
    "IssuerSuspended",
    "JweInvalid",
    "KeyBindingIatOutOfWindow",
    "KeyBindingInvalidSignature",
    "KeyBindingMissing",
    "MalformedDisclosure",
    "MalformedToken",
    "MissingClaim",
    "NonceMismatch",
    "ProofIatOutOfWindow",
    "ProtectedClaimDisclosed",
    "ProtocolError",
    "RecipientNotNamed",
    "RegistryChainBroken",
    "RegistryExpired",
    "RegistryRollback",
    "SdHashMismatch",
    "StatusIndexOutOfRange",
    "StatusListExpired",
    "StatusListMalformed",
    "StatusListSubjectMismatch",
    "StatusListTooLarge",
    "TokenExpired",
    "TokenNotYetValid",
    "TokenTooLarge",
    "UnknownKid",
    "UnreferencedDisclosure",
    "UnsupportedCritical",
    "UnsupportedSdAlg",
    "WrongTyp",
]


class ProtocolError(Exception):
    """Root of every protocol failure. ``code`` is stable; the message is for people."""

    code: ClassVar[str] = "protocol_error"
    http_status: ClassVar[int] = 400

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)

    @property
    def message(self) -> str:
        return str(self.args[0])


# --- size, shape, encoding ---------------------------------------------------------


class MalformedToken(ProtocolError):
    """The token is not well-formed (separators, base64url, JSON, or types)."""

    code = "malformed_token"


class TokenTooLarge(MalformedToken):
    """The token is larger than the verifier accepts."""

    code = "token_too_large"
    http_status = 413


class DuplicateJsonKey(MalformedToken):
    """A JSON object in the token repeats a member name."""

    code = "duplicate_json_key"


# --- JOSE header -------------------------------------------------------------------


class AlgorithmNotAllowed(ProtocolError):
    """The ``alg`` header is not in the verifier's allow-list."""

    code = "alg_not_allowed"
    http_status = 401


class AlgorithmKeyMismatch(ProtocolError):
    """The ``alg`` header does not match the type of the verification key."""

    code = "alg_key_mismatch"
    http_status = 401


class InvalidKid(ProtocolError):
    """The ``kid`` header is missing or not a short string."""

    code = "invalid_kid"


class UnknownKid(ProtocolError):
    """No trusted key has this ``kid`` for this issuer."""

    code = "unknown_kid"
    http_status = 401


class ForbiddenHeader(ProtocolError):
    """The header carries a key reference we never follow (jku, x5u, jwk, x5c)."""

    code = "forbidden_header"
    http_status = 401


class UnsupportedCritical(ProtocolError):
    """The ``crit`` header names an extension this verifier does not understand."""

    code = "unsupported_crit"


class WrongTyp(ProtocolError):
    """The ``typ`` header is missing or not the one this kind of token must carry."""

    code = "wrong_typ"


class InvalidKey(ProtocolError):
    """A JWK is malformed, of an unsupported type, or carries private members."""

    code = "invalid_key"


class InvalidSignature(ProtocolError):
    """The signature does not verify with the trusted key."""

    code = "invalid_signature"
    http_status = 401


# --- claims --------------------------------------------------------------------------


class TokenExpired(ProtocolError):
    """The token's ``exp`` has passed."""

    code = "expired"
    http_status = 401


class TokenNotYetValid(ProtocolError):
    """The token's ``nbf`` lies in the future."""

    code = "not_yet_valid"
    http_status = 401


class IssuedInFuture(ProtocolError):
    """The token's ``iat`` lies in the future."""

    code = "issued_in_future"
    http_status = 401


class MissingClaim(ProtocolError):
    """A required claim is absent."""

    code = "missing_claim"


class InvalidClaim(ProtocolError):
    """A claim has the wrong type or value."""

    code = "invalid_claim"


class RecipientNotNamed(ProtocolError):
    """The token's ``aud`` names its recipients, and this verifier is not one of them.

    RFC 7519 section 4.1.3: a party processing a JWT whose ``aud`` is present and does
    not name it must reject the JWT. The token is genuine; it is not for this verifier.
    """

    code = "recipient_not_named"
    http_status = 403


class UnsupportedSdAlg(ProtocolError):
    """The ``_sd_alg`` names a hash function this verifier does not support."""

    code = "unsupported_sd_alg"


# --- disclosures ---------------------------------------------------------------------


class MalformedDisclosure(ProtocolError):
    """A disclosure is not base64url JSON of the form [salt, name, value] or [salt, value]."""

    code = "malformed_disclosure"


class DuplicateDisclosure(ProtocolError):
    """The same disclosure is presented twice."""

    code = "duplicate_disclosure"


class UnreferencedDisclosure(ProtocolError):
    """A disclosure's digest appears nowhere in the signed payload."""

    code = "unreferenced_disclosure"


class DuplicateDigest(ProtocolError):
    """A digest appears more than once in the signed payload and disclosures."""

    code = "duplicate_digest"


class ForbiddenClaimName(ProtocolError):
    """A disclosure names a claim ``_sd`` or ``...``."""

    code = "forbidden_claim_name"


class ClaimNameCollision(ProtocolError):
    """A disclosed claim name already exists at the same level of the payload."""

    code = "claim_collision"


class ProtectedClaimDisclosed(ProtocolError):
    """A claim that must always be visible (exp, cnf, status, ...) came in a disclosure."""

    code = "protected_claim_in_disclosure"


class DisclosureNotFound(ProtocolError):
    """The holder asked to disclose a claim path the attestation does not have."""

    code = "disclosure_not_found"


# --- key binding ---------------------------------------------------------------------


class KeyBindingMissing(ProtocolError):
    """The presentation carries no Key Binding JWT."""

    code = "kb_missing"
    http_status = 401


class KeyBindingInvalidSignature(ProtocolError):
    """The Key Binding JWT is not signed by the holder key in ``cnf.jwk``."""

    code = "kb_invalid_signature"
    http_status = 401


class KeyBindingIatOutOfWindow(ProtocolError):
    """The Key Binding JWT's ``iat`` is too old or in the future."""

    code = "kb_iat_out_of_window"
    http_status = 401


class AudienceNotString(ProtocolError):
    """The Key Binding JWT's ``aud`` is not a single string."""

    code = "aud_not_string"
    http_status = 401


class AudienceMismatch(ProtocolError):
    """The Key Binding JWT is meant for another verifier."""

    code = "aud_mismatch"
    http_status = 401


class NonceMismatch(ProtocolError):
    """The Key Binding JWT's nonce is not the one this verifier's challenge issued."""

    code = "nonce_mismatch"
    http_status = 401


class SdHashMismatch(ProtocolError):
    """The Key Binding JWT's ``sd_hash`` does not cover the presented disclosures."""

    code = "sd_hash_mismatch"
    http_status = 401


# --- status lists ------------------------------------------------------------------


class StatusListMalformed(ProtocolError):
    """The status list is not valid (bits, encoding, compression)."""

    code = "status_list_malformed"


class StatusListTooLarge(StatusListMalformed):
    """The status list decompresses to more than the allowed size."""

    code = "status_list_too_large"
    http_status = 413


class StatusListSubjectMismatch(ProtocolError):
    """The status list token's ``sub`` is not the URI it was fetched for."""

    code = "status_list_sub_mismatch"
    http_status = 401


class StatusListExpired(ProtocolError):
    """The status list token's ``exp`` has passed."""

    code = "status_list_expired"
    http_status = 401


class StatusIndexOutOfRange(ProtocolError):
    """The referenced status index lies outside the status list."""

    code = "status_index_out_of_range"


# --- alliance registry -------------------------------------------------------------


class RegistryRollback(ProtocolError):
    """The registry version is not newer than the one already accepted."""

    code = "registry_rollback"
    http_status = 409


class RegistryChainBroken(ProtocolError):
    """The registry's ``prev`` hash does not match the previously accepted registry."""

    code = "registry_chain_broken"
    http_status = 409


class RegistryExpired(ProtocolError):
    """The registry's ``exp`` has passed."""

    code = "registry_expired"
    http_status = 503


class IssuerNotMember(ProtocolError):
    """The issuer is not a member of the alliance registry."""

    code = "issuer_not_member"
    http_status = 401


class IssuerSuspended(ProtocolError):
    """The issuer is a suspended member of the alliance."""

    code = "issuer_suspended"
    http_status = 401


# --- OpenID4VCI key proofs and DPoP proofs -------------------------------------------------


class ProofIatOutOfWindow(ProtocolError):
    """A key proof's or DPoP proof's ``iat`` is too old or in the future."""

    code = "proof_iat_out_of_window"
    http_status = 400


class DpopBindingMismatch(ProtocolError):
    """A DPoP proof is for another request (``htm``, ``htu``) or another access token
    (``ath``) than the one it comes with."""

    code = "dpop_binding_mismatch"
    http_status = 401


# --- OpenID4VP: certificates, request objects, encrypted responses ---------------------------


class CertificateInvalid(ProtocolError):
    """A certificate is malformed, expired or not yet valid, or not fit for its place in
    the chain (a CA as the leaf, a key we can't use)."""

    code = "certificate_invalid"
    http_status = 401


class CertificateUntrusted(ProtocolError):
    """A certificate chain reaches no trusted authority (x5c)."""

    code = "certificate_untrusted"
    http_status = 401


class ClientIdMismatch(ProtocolError):
    """An OpenID4VP request's client identifier does not match its certificate, or the
    request object names another client than the link it came with."""

    code = "client_id_mismatch"
    http_status = 401


class JweInvalid(ProtocolError):
    """An encrypted response (JWE) is malformed, uses what we did not offer, or does not
    decrypt with the key it was meant for."""

    code = "jwe_invalid"
    http_status = 400
