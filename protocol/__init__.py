"""ccx wire protocol: attestations (SD-JWT VC), presentations, status lists, the registry.

Pure: no I/O, no clock, no hidden randomness. ``now``, salts and key look-ups are
parameters, so a kiosk, another city's node or a port to another language can use it
alone. See docs/PROTOCOL.md for the formats and the verification order.
"""

from ._attestation import (
    ATTESTATION_TYP,
    DISCLOSABLE_CLAIMS,
    MAX_ATTESTATION_LIFETIME,
    MAX_AUDIENCE,
    VCT,
    AttestationClaims,
    MappingReference,
    StatusReference,
    VerifiedPresentation,
    issue_attestation,
    present,
    verify_presentation,
)
from ._dpop import DPOP_TYP, DpopProof, access_token_hash, verify_dpop_proof
from ._errors import *  # noqa: F403  (the error tree is part of the public surface)
from ._errors import __all__ as _error_names
from ._json import b64url_decode, b64url_encode, canonical_json, strict_json_loads
from ._jwk import (
    PrivateKey,
    PublicKey,
    alg_for_key,
    jwk_thumbprint,
    public_jwk,
    public_key_from_jwk,
)
from ._mapping_table import (
    MAPPING_TABLE_TYP,
    mapping_table_hash,
    sign_mapping_table,
    verify_mapping_table,
)
from ._oid4vci import MAX_KEY_PROOF_SIZE, PROOF_TYP, KeyProof, verify_key_proof
from ._registry import REGISTRY_TYP, Member, Registry, registry_hash, sign_registry, verify_registry
from ._sd_jwt import (
    KB_JWT_TYP,
    IssuerKeyResolver,
    SaltSource,
    VerifiedSdJwt,
    disclosure_digest,
    encode_disclosure,
    verify_sd_jwt,
)
from ._status_list import (
    STATUS_LIST_TYP,
    STATUS_REVOKED,
    STATUS_SUSPENDED,
    STATUS_VALID,
    StatusList,
    VerifiedStatusList,
    decode_status_list,
    encode_status_list,
    sign_status_list,
    status_at,
    verify_status_list,
)

__all__ = [
    "ATTESTATION_TYP",
    "DISCLOSABLE_CLAIMS",
    "DPOP_TYP",
    "KB_JWT_TYP",
    "MAPPING_TABLE_TYP",
    "MAX_ATTESTATION_LIFETIME",
    "MAX_AUDIENCE",
    "MAX_KEY_PROOF_SIZE",
    "PROOF_TYP",
    "REGISTRY_TYP",
    "STATUS_LIST_TYP",
    "STATUS_REVOKED",
    "STATUS_SUSPENDED",
    "STATUS_VALID",
    "VCT",
    "AttestationClaims",
    "DpopProof",
    "IssuerKeyResolver",
    "KeyProof",
    "MappingReference",
    "Member",
    "PrivateKey",
    "PublicKey",
    "Registry",
    "SaltSource",
    "StatusList",
    "StatusReference",
    "VerifiedPresentation",
    "VerifiedSdJwt",
    "VerifiedStatusList",
    "access_token_hash",
    "alg_for_key",
    "b64url_decode",
    "b64url_encode",
    "canonical_json",
    "decode_status_list",
    "disclosure_digest",
    "encode_disclosure",
    "encode_status_list",
    "issue_attestation",
    "jwk_thumbprint",
    "mapping_table_hash",
    "present",
    "public_jwk",
    "public_key_from_jwk",
    "registry_hash",
    "sign_mapping_table",
    "sign_registry",
    "sign_status_list",
    "status_at",
    "strict_json_loads",
    "verify_dpop_proof",
    "verify_key_proof",
    "verify_mapping_table",
    "verify_presentation",
    "verify_registry",
    "verify_sd_jwt",
    "verify_status_list",
    *_error_names,
]
