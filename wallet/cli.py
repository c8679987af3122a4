"""`ccx wallet`: a resident's wallet on the command line (issue 5; docs/WALLET.md).

Makes the holder key, fetches attestations from the home node (docs/ISSUING.md, "A
resident gets an attestation"), lists them, and makes presentations (PROTOCOL.md
section 4), as text or as a QR code. The wallet is one JSON file, written atomically
with mode 0600; its private key is an encrypted PKCS#8 PEM, the passphrase stretched
with scrypt as the node's keyring does. Every failure the user can fix prints one line
``error [code] field: message`` to stderr and exits with status 2; the wallet file is
then unchanged.
"""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import EXIT_BAD_INPUT, InputError, columns, format_time, reports_errors, write_atomically
from wallet._defaults import DEFAULT_WALLET, PASSPHRASE_ENV, WALLET_ENV

if TYPE_CHECKING:  # the rest is imported by the command that uses it: `ccx` starts at once
    import httpx

    import protocol as P
    from wallet._oid4vp import Asked
    from wallet._wallet import HeldAttestation, Wallet

__all__ = [
    "EXIT_BAD_INPUT",
    "NOW_ENV",
    "PASSPHRASE_ENV",
    "QR_MAX_BYTES",
    "WALLET_ENV",
    "wallet_app",
]

NOW_ENV = "CCX_WALLET_NOW"
# A version 40 QR code at error level L holds 2,953 bytes (ISO/IEC 18004 table 7).
QR_MAX_BYTES = 2953

wallet_app = typer.Typer(
    name="wallet",
    help=(
        "A resident's wallet: make the holder key, fetch attestations of your credit "
        "standing from your home node, and present them to a verifier (as text or as a "
        "QR code), disclosing only what the verifier asks for."
    ),
    no_args_is_help=True,
    add_completion=False,
)


# --- the wallet file and the passphrase (as the command line finds them) --------------------


def _wallet_path(path: Path | None) -> Path:
    if path is not None:
        return path.expanduser()
    return Path(os.environ.get(WALLET_ENV) or DEFAULT_WALLET).expanduser()


def _open_wallet(path: Path | None) -> tuple[Path, Wallet]:
    """The wallet file and what it holds; one named by --wallet must exist (issue 20:
    a mistyped path is not an empty wallet). keygen makes it."""
    from wallet._wallet import load_wallet

    if path is not None and not path.expanduser().exists():
        raise InputError(
            "wallet_not_found", "--wallet", f"no such file: {path} (`ccx wallet keygen` makes one)"
        )
    found = _wallet_path(path)
    return found, load_wallet(found)


def _passphrase(*, confirm: bool) -> bytes:
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if passphrase is None:
        passphrase = typer.prompt(
            "Wallet passphrase", hide_input=True, confirmation_prompt=confirm, err=True
        )
    return passphrase.encode("utf-8")


def _require_key(wallet: Wallet, path: Path) -> dict[str, Any]:
    if wallet.key is None:
        raise InputError(
            "no_holder_key", "--wallet", f"{path} has no holder key; run `ccx wallet keygen`"
        )
    return wallet.key


def _unseal(sealed: dict[str, Any]) -> P.PrivateKey:
    from wallet._wallet import unseal_key

    return unseal_key(sealed, _passphrase(confirm=False))


# --- choosing and presenting ----------------------------------------------------------------


def _choose(wallet: Wallet, number: int | None, now: int) -> HeldAttestation:
    """Attestation ``number`` as ``list`` numbers them; by default the newest unexpired."""
    if not wallet.attestations:
        raise InputError(
            "no_attestation", "--wallet", "holds no attestation; run `ccx wallet fetch`"
        )
    if number is not None:
        if not 1 <= number <= len(wallet.attestations):
            raise InputError(
                "no_attestation",
                "--attestation",
                f"no attestation {number}; the wallet holds 1..{len(wallet.attestations)}",
            )
        held = wallet.attestations[number - 1]
        if held.expires_at <= now:
            typer.echo(
                f"warning: attestation {number} expired at {format_time(held.expires_at)}; "
                "a verifier will refuse it",
                err=True,
            )
        return held
    valid = [held for held in wallet.attestations if held.expires_at > now]
    if not valid:
        raise InputError(
            "attestation_expired",
            "--wallet",
            "every attestation has expired; run `ccx wallet fetch`",
        )
    return max(valid, key=lambda held: held.fetched_at)


def _choose_type(wallet: Wallet, vct: str, now: int) -> HeldAttestation:
    """The newest unexpired credential of type ``vct`` (a credit standing, a
    domestic-service credential: docs/CREDENTIALS.md), or InputError ``no_attestation``."""
    from wallet._oid4vp import credential_vct

    valid = [
        h for h in wallet.attestations if h.expires_at > now and credential_vct(h.token) == vct
    ]
    if not valid:
        raise InputError(
            "no_attestation",
            "--wallet",
            f"holds no unexpired {vct} credential: accept an offer of one from your home node "
            "(ccx wallet accept-offer)",
        )
    return max(valid, key=lambda held: held.fetched_at)


def _make_presentation(
    wallet_path: Path | None,
    attestation: int | None,
    aud: str | None,
    nonce: str | None,
    disclose: list[str] | None,
    now: int | None,
) -> str:
    import protocol as P

    if aud is None:
        raise InputError("missing_option", "--aud", "is required: the verifier's node id")
    if nonce is None:
        raise InputError("missing_option", "--nonce", "is required: the verifier's challenge")
    if not disclose:
        raise InputError(
            "missing_option", "--disclose", "name at least one claim, e.g. score_at_least.650"
        )
    path, wallet = _open_wallet(wallet_path)
    sealed = _require_key(wallet, path)
    moment = _now(now)
    held = _choose(wallet, attestation, moment)
    # in the ccx dialect the verifier's node id is both the KB-JWT's aud and the member
    # id the attestation's recipients must name: never show it to a verifier that will
    # refuse it (docs/SECURITY.md section 17)
    from wallet._oid4vp import check_named

    check_named(held.token, aud, field="--aud")
    key = _unseal(sealed)
    try:
        return P.present(
            held.token, disclose=disclose, holder_key=key, aud=aud, nonce=nonce, now=moment,
            recipient=aud,
        )  # fmt: skip
    except P.ProtocolError as exc:
        raise InputError(exc.code, "--disclose", exc.message) from exc


def _now(now: int | None) -> int:
    return int(time.time()) if now is None else now


# --- options --------------------------------------------------------------------------------

WalletOption = Annotated[
    Path | None,
    typer.Option(
        "--wallet",
        metavar="PATH",
        help=f"The wallet file (default: ${WALLET_ENV}, else {DEFAULT_WALLET}).",
        show_default=False,
    ),
]
NowOption = Annotated[
    int | None,
    typer.Option(
        "--now",
        envvar=NOW_ENV,
        hidden=True,
        help="The current time as a NumericDate (tests: the node's clock).",
    ),
]
AttestationOption = Annotated[
    int | None,
    typer.Option(
        "--attestation",
        metavar="N",
        help="Which attestation, numbered as `ccx wallet list` shows them "
        "(default: the newest that has not expired).",
        show_default=False,
    ),
]
AudOption = Annotated[
    str | None,
    typer.Option(
        "--aud",
        metavar="VERIFIER",
        help="The verifier's node id, from its challenge (the Key Binding JWT's aud).",
        show_default=False,
    ),
]
NonceOption = Annotated[
    str | None,
    typer.Option(
        "--nonce",
        metavar="NONCE",
        help="The verifier's single-use nonce, from its challenge.",
        show_default=False,
    ),
]
DiscloseOption = Annotated[
    list[str] | None,
    typer.Option(
        "--disclose",
        metavar="CLAIM",
        help="A claim to reveal; repeat for more. One of alliance_score, band, "
        "score_at_least.<threshold> (e.g. score_at_least.650), local_score, local_scale, "
        "score_date. Everything else stays hidden.",
        show_default=False,
    ),
]


# --- commands -------------------------------------------------------------------------------


@wallet_app.command()
@reports_errors
def keygen(
    alg: Annotated[
        str,
        typer.Option(
            "--alg", metavar="ES256|EdDSA", help="The key type: ES256 (P-256) or EdDSA (Ed25519)."
        ),
    ] = "ES256",
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace an existing key. The attestations bound to it are dropped: "
            "nobody can present them without the old key.",
        ),
    ] = False,
    wallet_path: WalletOption = None,
) -> None:
    """Make the holder key that attestations are bound to, and print its thumbprint.

    The private key is stored encrypted with a passphrase (at least 12 bytes), read
    from $CCX_WALLET_PASSPHRASE or asked for. Refuses to replace a key without --force.
    """
    from keys import generate_key
    from wallet._wallet import Wallet, load_wallet, save_wallet, seal_key

    if alg not in ("ES256", "EdDSA"):
        raise InputError("unsupported_alg", "--alg", f"{alg!r}; use ES256 or EdDSA")
    path = _wallet_path(wallet_path)
    wallet = load_wallet(path)
    if wallet.key is not None and not force:
        raise InputError(
            "key_exists",
            "--wallet",
            f"{path} already holds key {wallet.key.get('thumbprint')}; "
            "pass --force to replace it (its attestations are dropped)",
        )
    dropped = len(wallet.attestations)
    sealed = seal_key(generate_key(alg), _passphrase(confirm=True))
    save_wallet(path, Wallet(key=sealed, attestations=[]))
    if dropped:
        typer.echo(f"dropped {dropped} attestation(s) bound to the old key", err=True)
    typer.echo(sealed["thumbprint"])


@wallet_app.command()
@reports_errors
def fetch(
    node: Annotated[
        str,
        typer.Option(
            "--node",
            metavar="URL",
            help="Your home node's base URL, e.g. https://xiamen.ccx.example.",
        ),
    ],
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            metavar="TOKEN",
            envvar="CCX_WALLET_TOKEN",
            help="A bearer token from your city's identity provider (or $CCX_WALLET_TOKEN).",
            show_default=False,
            show_envvar=False,
        ),
    ] = None,
    dev_subject: Annotated[
        str | None,
        typer.Option(
            "--dev-subject",
            metavar="RESIDENT_ID",
            help="Development only: log in as this resident through the node's development "
            "identity provider (CCX_DEV_IDP=true) instead of giving --token.",
            show_default=False,
        ),
    ] = None,
    wallet_path: WalletOption = None,
    now: NowOption = None,
) -> None:
    """Get an attestation of your credit standing from your home node and keep it.

    Asks the node for a nonce, proves possession of the holder key, and stores the
    attestation it issues. The node needs both of your consents (open_score,
    share_alliance) and a score.
    """
    from wallet._wallet import Wallet, save_wallet

    if (token is None) == (dev_subject is None):
        raise InputError("missing_option", "--token", "give --token or --dev-subject (one of them)")
    path, wallet = _open_wallet(wallet_path)
    sealed = _require_key(wallet, path)
    key = _unseal(sealed)
    moment = _now(now)
    from wallet._home import fetch_attestation

    answer = fetch_attestation(node, token, dev_subject, key, moment)
    try:
        attestation = answer["attestation"]
    except (KeyError, TypeError) as exc:
        raise InputError("invalid_response", "--node", f"the answer lacks {exc}") from exc
    held = _held(attestation, sealed, node=node, now=moment)
    save_wallet(path, Wallet(key=wallet.key, attestations=[*wallet.attestations, held]))
    typer.echo(
        f"attestation {len(wallet.attestations) + 1}: {held.issuer}, band {held.band}, "
        f"expires {format_time(held.expires_at)}"
    )


@wallet_app.command("accept-offer")
@reports_errors
def accept_offer_command(
    offer: Annotated[
        str,
        typer.Argument(
            metavar="OFFER",
            help="The credential offer: an openid-credential-offer:// link (from a QR code) "
            "or the offer's https URL.",
            show_default=False,
        ),
    ],
    tx_code: Annotated[
        str | None,
        typer.Option(
            "--tx-code",
            metavar="CODE",
            help="The transaction code shown beside the QR code, when the offer asks for "
            "one (else a prompt).",
            show_default=False,
        ),
    ] = None,
    wallet_path: WalletOption = None,
    now: NowOption = None,
) -> None:
    """Take a credential offer (OpenID4VCI 1.0, pre-authorized code) and keep the credential.

    Your city's page shows the offer once you have given both consents; the wallet
    fetches it, gets an access token bound to a fresh DPoP key, proves the holder key
    and stores the attestation it receives.
    """
    from wallet._wallet import Wallet, issuer_claims, save_wallet

    path, wallet = _open_wallet(wallet_path)
    sealed = _require_key(wallet, path)
    key = _unseal(sealed)
    moment = _now(now)

    def ask(description: dict[str, Any]) -> str:
        hint = description.get("description") or "the code shown beside the QR code"
        answer = typer.prompt(
            f"Transaction code ({hint})", default="", show_default=False, err=True
        )
        return str(answer).strip()

    from wallet._oid4vci import accept_offer

    credential = accept_offer(offer, holder_key=key, now=moment, tx_code=tx_code, ask_tx_code=ask)
    held = _held(credential, sealed, node=issuer_claims(credential).get("iss", ""), now=moment)
    save_wallet(path, Wallet(key=wallet.key, attestations=[*wallet.attestations, held]))
    typer.echo(
        f"attestation {len(wallet.attestations) + 1}: {held.issuer}, band {held.band}, "
        f"expires {format_time(held.expires_at)}"
    )


@wallet_app.command("authorize")
@reports_errors
def authorize_command(
    issuer: Annotated[
        str,
        typer.Argument(
            metavar="ISSUER",
            help="Your home node's credential issuer identifier, e.g. https://xiamen.ccx.example.",
            show_default=False,
        ),
    ],
    dev_login_as: Annotated[
        str | None,
        typer.Option(
            "--dev-login",
            metavar="RESIDENT",
            help="Walk the development identity provider's login pages as RESIDENT and "
            "allow the wallet, without a browser (a node with CCX_DEV_IDP=true only).",
            show_default=False,
        ),
    ] = None,
    wallet_path: WalletOption = None,
    now: NowOption = None,
) -> None:
    """Get the credential by logging in at your city (OpenID4VCI 1.0, authorization code).

    The wallet pushes its request to the node (PKCE, a DPoP key), opens the node's login
    page in your browser, and waits on 127.0.0.1 for the answer: log in at the city's
    identity provider and allow the wallet. It then proves the holder key and stores
    the attestation. The node needs both of your consents and a score.
    """
    import httpx

    from wallet._oid4vci import LoopbackRedirect, authorize, dev_login
    from wallet._wallet import Wallet, save_wallet

    path, wallet = _open_wallet(wallet_path)
    sealed = _require_key(wallet, path)
    key = _unseal(sealed)
    moment = _now(now)
    issuer = issuer.rstrip("/")
    if dev_login_as is not None:
        with httpx.Client(timeout=10.0) as http:
            credential = authorize(
                issuer, holder_key=key, now=moment, log_in=dev_login(http, dev_login_as),
                redirect_uri="http://127.0.0.1/callback", client=http,
            )  # fmt: skip
    else:
        loopback = LoopbackRedirect(say=lambda line: typer.echo(line, err=True))
        credential = authorize(
            issuer, holder_key=key, now=moment, log_in=loopback.log_in,
            redirect_uri=loopback.redirect_uri,
        )  # fmt: skip
    held = _held(credential, sealed, node=issuer, now=moment)
    save_wallet(path, Wallet(key=wallet.key, attestations=[*wallet.attestations, held]))
    typer.echo(
        f"attestation {len(wallet.attestations) + 1}: {held.issuer}, band {held.band}, "
        f"expires {format_time(held.expires_at)}"
    )


def _read_qr(image: Path) -> str:
    """The text of the QR code in ``image`` (PNG, JPEG, ...), read with zxing-cpp."""
    import zxingcpp
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(image) as picture:
            found = zxingcpp.read_barcodes(picture.convert("L"))
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError("unreadable_image", "--qr", f"{image}: {exc}") from exc
    texts = [code.text for code in found if code.text]
    if len(texts) != 1:
        raise InputError(
            "no_qr_code", "--qr", f"{image} holds {len(texts)} readable QR codes, not 1"
        )
    return texts[0]


def _describe(asked: Asked, disclose: tuple[str, ...]) -> list[str]:
    who = asked.verifier_name or asked.verifier
    lines = [f"{who} ({asked.verifier}) asks to see:"]
    lines += [f"  {claim}" for claim in disclose]
    lines.append("Nothing else of your attestation is disclosed.")
    return lines


@wallet_app.command("answer")
@reports_errors
def answer_command(
    request: Annotated[
        str | None,
        typer.Argument(
            metavar="[REQUEST]",
            help="The verifier's request: an openid4vp:// link (or give --qr).",
            show_default=False,
        ),
    ] = None,
    qr_image: Annotated[
        Path | None,
        typer.Option(
            "--qr", metavar="IMAGE", help="A photo or screenshot of the request's QR code."
        ),
    ] = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes", help="Disclose without asking (scripts: you have read what it asks)."
        ),
    ] = False,
    trust: Annotated[
        list[Path] | None,
        typer.Option(
            "--trust-anchor",
            metavar="CERT",
            help="Also trust verifiers certified by this CA (PEM or DER), besides the "
            "alliance CA your home node's registry names; repeat for more.",
            show_default=False,
        ),
    ] = None,
    attestation: AttestationOption = None,
    wallet_path: WalletOption = None,
    now: NowOption = None,
) -> None:
    """Answer a verifier's request (OpenID4VP 1.0): check who asks, show what it asks
    for, and disclose exactly that once you agree.

    The request must be signed by a verifier certified under the alliance CA (from the
    registry your home node follows) or under a --trust-anchor. The answer is encrypted
    to the verifier when it asks for that (direct_post.jwt).
    """
    import httpx

    from wallet._oid4vp import alliance_anchors, answer_request, read_request

    if (request is None) == (qr_image is None):
        raise InputError("missing_option", "REQUEST", "give the request link or --qr IMAGE (one)")
    text = request if request is not None else _read_qr(qr_image)  # type: ignore[arg-type]
    path, wallet = _open_wallet(wallet_path)
    sealed = _require_key(wallet, path)
    moment = _now(now)
    held = _choose(wallet, attestation, moment)
    extra = [_certificate(anchor) for anchor in trust or []]
    with httpx.Client(timeout=10.0) as http:
        anchors, members = alliance_anchors(held.node or held.issuer, http)
        asked = read_request(text, anchors=[*anchors, *extra], members=members, now=moment,
                             client=http)  # fmt: skip
        if attestation is None:  # the newest of the type the verifier asks for (issue 18)
            held = _choose_type(wallet, asked.request.vct, moment)
        disclose = asked.disclosures_for(held.token)
        for line in _describe(asked, disclose):
            typer.echo(line, err=True)
        if not yes and not typer.confirm("Disclose this?", default=False, err=True):
            raise InputError("declined", "REQUEST", "you declined: nothing was disclosed")
        answer_request(asked, held.token, holder_key=_unseal(sealed), now=moment, client=http)
    typer.echo(f"answered {asked.verifier_name or asked.verifier}: " + ", ".join(disclose))


def _certificate(path: Path) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        data = path.read_bytes()
        certificate = (
            x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data
            else x509.load_der_x509_certificate(data)
        )  # fmt: skip
    except (OSError, ValueError) as exc:
        raise InputError("invalid_certificate", "--trust-anchor", f"{path}: {exc}") from exc
    return certificate.public_bytes(Encoding.DER)


def _held(credential: str, sealed: dict[str, Any], *, node: Any, now: int) -> HeldAttestation:
    """The credential as the wallet keeps it, once it is sure the key is its own."""
    import protocol as P
    from wallet._wallet import HeldAttestation, disclosed_claims, issuer_claims

    claims = issuer_claims(credential)
    bound = claims.get("cnf", {}).get("jwk") if isinstance(claims.get("cnf"), dict) else None
    if not isinstance(bound, dict) or P.jwk_thumbprint(bound) != sealed["thumbprint"]:
        raise InputError(
            "key_mismatch", "--node", "the attestation is not bound to this wallet's key"
        )
    exp = claims.get("exp")
    return HeldAttestation(
        token=credential,
        issuer=str(claims.get("iss")),
        node=str(node),
        band=str(
            disclosed_claims(credential).get(
                "band", "domestic service" if claims.get("vct") == P.DOMESTIC_VCT else "?"
            )
        ),
        expires_at=int(exp) if isinstance(exp, int | float) else 0,
        fetched_at=now,
    )


@wallet_app.command("list")
@reports_errors
def list_attestations(wallet_path: WalletOption = None, now: NowOption = None) -> None:
    """Show the attestations held: number, issuer, band, expiry, and whether expired."""
    path, wallet = _open_wallet(wallet_path)
    if not path.exists():
        typer.echo(f"no wallet yet at {path}: ccx wallet keygen", err=True)
        return
    if not wallet.attestations:
        typer.echo(f"no attestations in {path}", err=True)
        return
    moment = _now(now)
    rows = [["#", "issuer", "band", "expires", "state"]]
    for number, held in enumerate(wallet.attestations, start=1):
        state = "expired" if held.expires_at <= moment else "valid"
        rows.append([str(number), held.issuer, held.band, format_time(held.expires_at), state])
    for line in columns(rows, left=(1, 2, 3, 4)):
        typer.echo(line)


@wallet_app.command()
@reports_errors
def present(
    aud: AudOption = None,
    nonce: NonceOption = None,
    disclose: DiscloseOption = None,
    attestation: AttestationOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", metavar="FILE", help="Write the presentation here instead of printing it."
        ),
    ] = None,
    wallet_path: WalletOption = None,
    now: NowOption = None,
) -> None:
    """Make a presentation for a verifier: the attestation, only the claims you disclose,
    and a Key Binding JWT over its aud and nonce.

    Example: ccx wallet present --aud https://fuzhou.ccx.example --nonce N
    --disclose score_at_least.650
    """
    presentation = _make_presentation(wallet_path, attestation, aud, nonce, disclose, now)
    if out is None:
        typer.echo(presentation)
        return
    _write_out(out, (presentation + "\n").encode("ascii"))
    typer.echo(f"wrote {out}", err=True)


@wallet_app.command()
@reports_errors
def qr(
    aud: AudOption = None,
    nonce: NonceOption = None,
    disclose: DiscloseOption = None,
    attestation: AttestationOption = None,
    presentation_path: Annotated[
        Path | None,
        typer.Option(
            "--presentation",
            metavar="FILE",
            help="Render this presentation (from `present --out`) instead of making one.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE.png|FILE.svg",
            help="Write the QR code as PNG or SVG (by the file's suffix).",
            show_default=False,
        ),
    ] = None,
    terminal: Annotated[
        bool,
        typer.Option(
            "--terminal", help="Draw the QR code in the terminal (the default without --out)."
        ),
    ] = False,
    wallet_path: WalletOption = None,
    now: NowOption = None,
) -> None:
    """Show a presentation as a QR code, for a verifier's scanner.

    Takes the same options as `present`, or --presentation FILE. Presentations are
    large: one disclosed claim makes about 2.3 KB, a version 36 code (161 modules a side)
    at error level L; every claim makes about 2.9 KB, close to the 2,953 bytes one QR
    code holds. Show it full screen; scanners need every module.
    """
    import segno  # only this command needs it

    kind = None
    if out is not None:
        kind = out.suffix.lower().lstrip(".")
        if kind not in ("png", "svg"):
            raise InputError("unsupported_format", "--out", f"{out.name}: use a .png or .svg file")
    if presentation_path is not None:
        if aud or nonce or disclose or attestation is not None:
            raise InputError(
                "conflicting_options",
                "--presentation",
                "give a presentation file or --aud/--nonce/--disclose, not both",
            )
        text = _read_presentation(presentation_path)
    else:
        text = _make_presentation(wallet_path, attestation, aud, nonce, disclose, now)
    size = len(text.encode("utf-8"))
    try:
        # Error level L is the floor: segno raises it to M or Q when the same version has room.
        code = segno.make(text, error="l", micro=False, boost_error=True)
    except segno.DataOverflowError as exc:
        raise InputError(
            "presentation_too_long",
            "--disclose" if presentation_path is None else "--presentation",
            f"the presentation is {size} bytes; one QR code holds at most {QR_MAX_BYTES}. "
            "Disclose fewer claims, or send it as text",
        ) from exc
    typer.echo(
        f"QR code version {code.designator} ({code.symbol_size(border=0)[0]} modules a side, {size} bytes)",
        err=True,
    )
    if out is not None:
        buffer = io.BytesIO()
        code.save(buffer, kind=kind, scale=4, border=4)
        _write_out(out, buffer.getvalue())
        typer.echo(f"wrote {out}", err=True)
    if terminal or out is None:
        code.terminal(out=sys.stdout, compact=True)


def _read_presentation(path: Path) -> str:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError as exc:
        raise InputError("file_not_found", "--presentation", f"no such file: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("file_error", "--presentation", f"cannot read {path}: {exc}") from exc
    if text.count("~") < 2 or text.endswith("~"):
        raise InputError(
            "malformed_token", "--presentation", f"{path} does not hold a presentation"
        )
    return text


def _write_out(path: Path, data: bytes) -> None:
    try:
        write_atomically(path, data)
    except OSError as exc:
        raise InputError("file_error", "--out", f"cannot write {path}: {exc.strerror}") from exc


# --- development login and consents (issue 20) ----------------------------------------------

NodeOption = Annotated[
    str,
    typer.Option(
        "--node",
        metavar="URL",
        help="Your home node's base URL, e.g. http://127.0.0.1:8002.",
        show_default=False,
    ),
]
ResidentTokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        metavar="TOKEN",
        envvar="CCX_WALLET_TOKEN",
        help="A bearer token from your city's identity provider, or `ccx wallet login` "
        "(or $CCX_WALLET_TOKEN).",
        show_default=False,
        show_envvar=False,
    ),
]
DevSubjectOption = Annotated[
    str | None,
    typer.Option(
        "--dev-subject",
        metavar="RESIDENT_ID",
        help="Development only: log in as this resident through the node's development "
        "identity provider (CCX_DEV_IDP=true) instead of giving --token.",
        show_default=False,
    ),
]


def _dev_token(http: httpx.Client, subject: str) -> str:
    from cli import call_node

    try:
        answer = call_node(http, "POST", "dev-idp/token", json={"subject": subject})
    except InputError as exc:
        if exc.code == "not_found":  # a node answers, without the provider
            raise InputError(
                "no_dev_idp",
                "--dev-subject",
                f"{http.base_url} has no development identity provider (CCX_DEV_IDP is off); "
                "log in with --token",
            ) from exc
        raise
    return str(answer["access_token"])


def _as_resident(
    node: str, token: str | None, dev_subject: str | None, method: str, path: str, **request: Any
) -> Any:
    from cli import call_node, node_client

    if (token is None) == (dev_subject is None):
        raise InputError("missing_option", "--token", "give --token or --dev-subject (one of them)")
    with node_client(node) as http:
        bearer = token if token is not None else _dev_token(http, str(dev_subject))
        return call_node(http, method, path, token=bearer, **request)


@wallet_app.command("login")
@reports_errors
def login_command(
    node: NodeOption,
    subject: Annotated[
        str,
        typer.Option("--subject", metavar="RESIDENT_ID", help="The resident to log in as."),
    ],
) -> None:
    """Development only: log in as a resident at the node's development identity
    provider (CCX_DEV_IDP=true) and print the bearer token (valid 15 minutes), e.g.
    export CCX_WALLET_TOKEN=$(ccx wallet login --node URL --subject resident-1).
    Nothing is stored."""
    from cli import node_client

    with node_client(node) as http:
        typer.echo(_dev_token(http, subject))


consent_app = typer.Typer(
    help="Your consents on your home node: list, grant, withdraw (withdrawing revokes "
    "your attestations at once).",
    no_args_is_help=True,
    add_completion=False,
)
wallet_app.add_typer(consent_app, name="consent")


def _consent_line(consent: dict[str, Any]) -> list[str]:
    withdrawn = consent.get("withdrawn_at")
    return [
        str(consent["kind"]),
        "active" if withdrawn is None else f"withdrawn {format_time(int(withdrawn))}",
        format_time(int(consent["granted_at"])),
        " ".join(consent.get("recipients") or []) or "-",
        str(consent.get("purpose") or "-"),
    ]


@consent_app.command("list")
@reports_errors
def consent_list(
    node: NodeOption, token: ResidentTokenOption = None, dev_subject: DevSubjectOption = None
) -> None:
    """Your consents, withdrawn ones included. As GET /v1/me/consents."""
    found = _as_resident(node, token, dev_subject, "GET", "v1/me/consents")["consents"]
    if not found:
        typer.echo("no consents", err=True)
        return
    rows = [["kind", "state", "granted", "recipients", "purpose"]]
    rows += [_consent_line(consent) for consent in found]
    for line in columns(rows, left=(0, 1, 2, 3, 4)):
        typer.echo(line)


# the node's consent kinds (node/services/residents.CONSENT_KINDS; the wallet imports
# nothing of the node): one for the score, one per credential to share
CONSENT_KINDS = ("open_score", "share_alliance", "share_domestic_service")


def _kinds_text() -> str:
    return ", ".join(CONSENT_KINDS[:-1]) + " or " + CONSENT_KINDS[-1]


@consent_app.command("grant")
@reports_errors
def consent_grant(
    kind: Annotated[
        str,
        typer.Argument(
            metavar="KIND",
            help="open_score (to see your score), share_alliance (to share your standing) or "
            "share_domestic_service (to share your domestic-service credential).",
            show_default=False,
        ),
    ],
    node: NodeOption,
    recipients: Annotated[
        list[str] | None,
        typer.Option(
            "--recipient",
            metavar="MEMBER",
            help="share_*: a member node id that may receive the credential, or "
            "'alliance' for every member; repeat for more.",
            show_default=False,
        ),
    ] = None,
    purpose: Annotated[
        str | None,
        typer.Option(
            "--purpose",
            metavar="TEXT",
            help="share_*: why you share it.",
            show_default=False,
        ),
    ] = None,
    token: ResidentTokenOption = None,
    dev_subject: DevSubjectOption = None,
) -> None:
    """Grant a consent. As POST /v1/me/consents."""
    body: dict[str, Any] = {"kind": kind}
    if kind not in CONSENT_KINDS:
        raise InputError("invalid_kind", "KIND", f"{kind!r}; use {_kinds_text()}")
    if kind != "open_score":
        if not recipients:
            raise InputError(
                "missing_option", "--recipient", "name who may receive it, or 'alliance' for all"
            )
        if not purpose:
            raise InputError("missing_option", "--purpose", "say why you share it")
        body.update(recipients=recipients, purpose=purpose)
    elif recipients or purpose:
        raise InputError(
            "conflicting_options", "--recipient", "open_score takes no recipients or purpose"
        )
    granted = _as_resident(node, token, dev_subject, "POST", "v1/me/consents", json=body)
    line = _consent_line(granted)
    typer.echo(f"granted {line[0]}" + (f" to {line[3]}" if granted.get("recipients") else ""))


@consent_app.command("withdraw")
@reports_errors
def consent_withdraw(
    kind: Annotated[
        str,
        typer.Argument(
            metavar="KIND",
            help="open_score, share_alliance or share_domestic_service.",
            show_default=False,
        ),
    ],
    node: NodeOption,
    token: ResidentTokenOption = None,
    dev_subject: DevSubjectOption = None,
) -> None:
    """Withdraw a consent: the attestations it covers are revoked at once (open_score and
    share_alliance: your credit standings; share_domestic_service: your domestic-service
    credentials). As DELETE /v1/me/consents/{kind}."""
    if kind not in CONSENT_KINDS:
        raise InputError("invalid_kind", "KIND", f"{kind!r}; use {_kinds_text()}")
    done = _as_resident(node, token, dev_subject, "DELETE", f"v1/me/consents/{kind}")
    typer.echo(f"withdrew {kind}; {done['revoked_attestations']} attestation(s) revoked")
