"""`ccx demo`: a walk through the protocol, printed for a person to read.

Until the node and the simulator exist (issues 4 to 6), this is the main job: one
issuer, one holder, one verifier in one process, with real keys and real signatures.
"""

from __future__ import annotations

import json
import secrets
import textwrap
import time
from typing import Any

import protocol as P
from keys import Keyring, generate_key

ISSUER = "https://xiamen.ccx.example"
VERIFIER = "https://fuzhou.ccx.example"
ALLIANCE = "https://alliance.ccx.example"
STATUS_URI = f"{ISSUER}/v1/status-lists/1"
THRESHOLDS = (550, 600, 650, 700, 750)


def _step(number: int, title: str) -> None:
    print(f"\n{number}. {title}")


def _show(label: str, value: Any) -> None:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    wrapped = textwrap.fill(text, width=96, initial_indent="     ", subsequent_indent="     ")
    print(f"   {label}:\n{wrapped}")


def _short(token: str, keep: int = 60) -> str:
    return token if len(token) <= keep else f"{token[:keep]}... ({len(token)} characters)"


def _decoded_disclosures(sd_jwt: str) -> list[Any]:
    return [json.loads(P.b64url_decode(d)) for d in sd_jwt.split("~")[1:-1] if d]


def _refused(label: str, attempt: Any) -> None:
    try:
        attempt()
    except P.ProtocolError as exc:
        print(f"   {label}: refused, code {exc.code!r} ({exc.message})")
    else:  # pragma: no cover - the demo's own check
        raise SystemExit(f"   {label}: ACCEPTED, which is a bug")


def run() -> None:
    """Print the walk-through; exit non-zero if any step behaves unexpectedly."""
    now = int(time.time())
    print("City Credit Exchange: the protocol in one process (issuer Xiamen, verifier Fuzhou)")

    _step(1, "Keys")
    ring = Keyring.create(now=now)
    holder_key = generate_key("ES256")
    holder_jwk = P.public_jwk(holder_key)
    print(f"   issuer signing key (active): kid {ring.active.kid}")
    print(
        f"   issuer next key (published ahead of rotation): kid {ring.next.kid if ring.next else '-'}"
    )
    print(f"   holder key (lives in the resident's wallet): kid {P.jwk_thumbprint(holder_jwk)}")

    _step(2, "Xiamen issues an attestation (SD-JWT VC) to the resident, with her consent")
    status_idx = secrets.randbelow(2**17)
    attestation = P.issue_attestation(
        {
            "iss": ISSUER,
            "exp": now + 30 * 86400,
            "alliance": ALLIANCE,
            "mapping": {"city": "xiamen", "version": 1, "sha256": "0" * 64},
            "status": {"idx": status_idx, "uri": STATUS_URI},
            "alliance_score": 672,
            "band": "good",
            "thresholds": THRESHOLDS,
            "local_score": 731,
            "local_scale": {"name": "白鹭分", "min": 0, "max": 1000, "step": 1},
            "score_date": time.strftime("%Y-%m-%d", time.gmtime(now)),
        },
        issuer_key=ring.active.private_key,
        kid=ring.active.kid,
        holder_jwk=holder_jwk,
        now=now,
    )
    _show("attestation", _short(attestation))
    print("   selectively disclosable claims, each hidden behind a salted digest:")
    for _salt, name, value in _decoded_disclosures(attestation):
        print(f"     - {name} = {json.dumps(value, ensure_ascii=False)}")

    _step(
        3, "Fuzhou's library asks for a challenge; the resident discloses only score_at_least.650"
    )
    nonce = secrets.token_urlsafe(16)
    presentation = P.present(
        attestation,
        disclose=["score_at_least.650"],
        holder_key=holder_key,
        aud=VERIFIER,
        nonce=nonce,
        now=now,
    )
    print(f"   verifier nonce: {nonce}")
    print(f"   disclosures sent: {[d[1:] for d in _decoded_disclosures(presentation)]}")
    _show("presentation", _short(presentation))

    _step(4, "Fuzhou verifies: issuer key from the registry, signature, disclosures, key binding")
    issuer_keys = {ring.active.kid: ring.active.public_key}

    def resolve(iss: str, kid: str | None, alg: str) -> P.PublicKey:
        if iss != ISSUER or kid not in issuer_keys:
            raise P.UnknownKid(f"{iss} {kid} is not in the registry")
        return issuer_keys[kid]

    verified = P.verify_presentation(
        presentation, resolve_issuer_key=resolve, aud=VERIFIER, nonce=nonce, now=now
    )
    print(f"   verified: issuer {verified.issuer}, alliance {verified.alliance}")
    print(f"   what the verifier learns: {dict(verified.disclosed)}")
    print(f"   status reference: {verified.status.uri} #{verified.status.idx}")

    _step(5, "What an attacker tries")
    # Swap the one disclosure for a forged one that claims a higher threshold.
    issuer_jwt, _disclosure, kb_jwt = presentation.split("~")
    forged = P.encode_disclosure(secrets.token_urlsafe(16), "750", True)
    tampered = f"{issuer_jwt}~{forged}~{kb_jwt}"
    _refused(
        "a forged disclosure claiming score_at_least.750 = true",
        lambda: P.verify_presentation(
            tampered, resolve_issuer_key=resolve, aud=VERIFIER, nonce=nonce, now=now
        ),
    )
    at = len(issuer_jwt) - 10  # inside the issuer's signature
    flipped = presentation[:at] + ("A" if presentation[at] != "A" else "B") + presentation[at + 1 :]
    _refused(
        "one character changed in the issuer's signature",
        lambda: P.verify_presentation(
            flipped, resolve_issuer_key=resolve, aud=VERIFIER, nonce=nonce, now=now
        ),
    )
    next_nonce = secrets.token_urlsafe(16)
    _refused(
        "the same presentation replayed to the next challenge",
        lambda: P.verify_presentation(
            presentation, resolve_issuer_key=resolve, aud=VERIFIER, nonce=next_nonce, now=now
        ),
    )
    _refused(
        "the presentation shown to another city",
        lambda: P.verify_presentation(
            presentation,
            resolve_issuer_key=resolve,
            aud="https://quanzhou.ccx.example",
            nonce=nonce,
            now=now,
        ),
    )

    _step(6, "The resident withdraws consent: Xiamen revokes through its status list")
    status_list = P.StatusList(2**17, bits=2)
    status_list[status_idx] = P.STATUS_REVOKED
    token = P.sign_status_list(
        status_list,
        uri=STATUS_URI,
        issuer=ISSUER,
        issuer_key=ring.active.private_key,
        kid=ring.active.kid,
        now=now,
        exp=now + 3600,
        ttl=300,
    )
    fetched = P.verify_status_list(
        token, uri=STATUS_URI, issuer=ISSUER, resolve_issuer_key=resolve, now=now
    )
    value = P.status_at(fetched.status_list, verified.status.idx)
    print(f"   status list of {len(fetched.status_list)} entries, {len(token)} characters signed")
    print(
        f"   entry #{verified.status.idx}: {value} ({'revoked' if value == P.STATUS_REVOKED else 'valid'})"
    )
    if value != P.STATUS_REVOKED:  # pragma: no cover
        raise SystemExit("revocation did not show in the status list")
    print("\nDone: every step behaved as the protocol requires.")


if __name__ == "__main__":
    run()
