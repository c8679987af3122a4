"""The wallet presents an attestation only to a verifier its recipients name (issue 17,
known gap K of docs/SECURITY.md, section 17): her ``share_alliance`` consent names the
members that may receive her standing, issuing puts them in the attestation's
issuer-signed ``aud``, and the wallet refuses, before anything is sent, to show it to
a member it doesn't name, in both dialects: ``ccx wallet present``/``qr`` (the
verifier's node id) and ``ccx wallet answer`` (the member id of the request's
certificate)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

import protocol as P
from tests.cli_results import assert_one_line_error, ok
from tests.conftest import NOW
from tests.node.issuing_helpers import RESIDENT
from tests.node.servers import RunningNode
from tests.node.test_verifications import seed_resident_app
from tests.wallet.test_cli import (  # noqa: F401  (fixtures, used by name)
    VERIFIER,
    keygen_and_fetch,
    node,
    node_key_resolver,
    run,
    wallet,
)
from tests.wallet.test_oid4vp import World, world  # noqa: F401  (the fixture, by name)
from wallet.cli import NOW_ENV, PASSPHRASE_ENV, WALLET_ENV, wallet_app

HOME = "http://xiamen.ccx.test"  # the node of tests/wallet/test_cli.py: her home city


def test_present_refuses_a_verifier_her_consent_does_not_name(
    wallet: Path,  # noqa: F811 (the fixture, by name)
    node: RunningNode,  # noqa: F811
    tmp_path: Path,
) -> None:
    seed_resident_app(node, RESIDENT, 780, (HOME,), now=NOW)  # her home city only
    keygen_and_fetch(wallet, node)
    challenge = ("--nonce", "n-1", "--disclose", "band")
    for command in (("present",), ("qr", "--out", str(tmp_path / "p.png"))):
        refused = run(wallet, *command, "--aud", VERIFIER, *challenge)
        assert_one_line_error(refused, "recipient_not_named", "--aud")
        assert "nothing was sent" in refused.stderr
    assert not (tmp_path / "p.png").exists()

    shown = ok(run(wallet, "present", "--aud", HOME, *challenge))  # the one she named
    verified = P.verify_presentation(
        shown.stdout.strip(), resolve_issuer_key=node_key_resolver(node), aud=HOME,
        nonce="n-1", now=NOW, recipient=HOME,
    )  # fmt: skip
    assert set(verified.disclosed) == {"band"}


def test_answer_refuses_a_verifier_her_consent_does_not_name(
    world: World,  # noqa: F811 (the fixture, by name)
    tmp_path: Path,
) -> None:
    # a second Fuzhou resident, whose consent names Fuzhou alone: not Xiamen, which asks
    seed_resident_app(world.fuzhou, "fz-homebody", 780, (world.fuzhou.url,), now=NOW)
    env = {WALLET_ENV: str(tmp_path / "homebody.json"), PASSPHRASE_ENV: "a wallet passphrase!",
           NOW_ENV: str(NOW)}  # fmt: skip
    runner = CliRunner()
    ok(runner.invoke(wallet_app, ["keygen"], env=env))
    ok(runner.invoke(wallet_app, ["authorize", world.fuzhou.url, "--dev-login", "fz-homebody"],
                     env=env))  # fmt: skip
    made = world.request()
    refused = runner.invoke(wallet_app, ["answer", made["request"], "--yes"], env=env)
    assert_one_line_error(refused, "recipient_not_named", "REQUEST")
    assert "asks to see" not in refused.stderr  # refused before she is even asked
    assert world.result(made)["outcome"] == "pending"  # nothing reached the verifier
