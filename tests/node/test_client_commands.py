"""The commands that stand in for hand-made JSON (issue 20): `ccx node admin-token`,
`ccx node client add|list|revoke`, `ccx records push`, `ccx wallet login|consent` and
`ccx kiosk scenarios|request|decision`, run as `ccx` against two real nodes on loopback
(tests/node/oid4vp_helpers.two_cities): their happy paths, their --help, and their
one-line errors."""

from __future__ import annotations

import hashlib
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ccx.app import app
from node.auth import hash_token
from tests.cli_results import assert_one_line_error, ok
from tests.conftest import NOW
from tests.node.oid4vp_helpers import TwoCities, two_cities
from tests.node.servers import free_port
from wallet.cli import NOW_ENV, PASSPHRASE_ENV, WALLET_ENV

ADMIN_TOKEN = "the admin token of these tests"
DAY = 86400
RESIDENT = "fz-visitor"


def ccx(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env, prog_name="ccx")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoCities]:
    admin = {"admin_token_hash": hash_token(ADMIN_TOKEN)}
    with two_cities(tmp_path_factory.mktemp("cities"), fuzhou=admin, xiamen=admin) as cities:
        yield cities


def _records_csv(path: Path, resident: str, rows: int) -> Path:
    lines = ["record_id,resident_id,kind,occurred_at"]
    lines += [f"{resident}-{i},{resident},volunteering,{NOW - (i + 1) * DAY}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- ccx node admin-token -------------------------------------------------------------------


def test_admin_token_prints_a_token_once_and_writes_its_hash_to_the_env_file(
    tmp_path: Path,
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("CCX_CITY=fuzhou\n", encoding="utf-8")
    result = ok(ccx("node", "admin-token", "--env-file", str(env_file)))
    token = result.stdout.strip()
    assert len(token) >= 43
    assert "\n" not in token
    assert "shown this once" in result.stderr
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert env_file.read_text(encoding="utf-8") == (
        f"CCX_CITY=fuzhou\nCCX_ADMIN_TOKEN_HASH={digest}\n"
    )
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600

    # the node reads it from there
    from node.settings import Settings

    assert Settings(_env_file=env_file).admin_token_hash == digest

    refused = ccx("node", "admin-token", "--env-file", str(env_file))
    assert_one_line_error(refused, "admin_token_exists", "--env-file")
    assert f"CCX_ADMIN_TOKEN_HASH={digest}" in env_file.read_text(encoding="utf-8")

    again = ok(ccx("node", "admin-token", "--env-file", str(env_file), "--force"))
    new_digest = hashlib.sha256(again.stdout.strip().encode()).hexdigest()
    assert new_digest != digest
    assert env_file.read_text(encoding="utf-8") == (
        f"CCX_CITY=fuzhou\nCCX_ADMIN_TOKEN_HASH={new_digest}\n"
    )


def test_admin_token_makes_the_env_file_when_there_is_none(tmp_path: Path) -> None:
    env_file = tmp_path / "new.env"
    result = ok(ccx("node", "admin-token", "--env-file", str(env_file)))
    assert env_file.read_text(encoding="utf-8").startswith("CCX_ADMIN_TOKEN_HASH=")
    assert hashlib.sha256(result.stdout.strip().encode()).hexdigest() in env_file.read_text()


def test_admin_token_cannot_write_into_a_missing_folder(tmp_path: Path) -> None:
    result = ccx("node", "admin-token", "--env-file", str(tmp_path / "no" / ".env"))
    assert_one_line_error(result, "file_error", "--env-file")


# --- ccx node client ------------------------------------------------------------------------


def test_client_add_list_revoke(world: TwoCities) -> None:
    node = world.fuzhou.url
    env = {"CCX_ADMIN_TOKEN": ADMIN_TOKEN}
    added = ok(
        ccx("node", "client", "add", "--node", node, "--id", "parks-desk", "--department",
            "parks", "--scope", "records:push", "--expires-in", str(30 * DAY), env=env)
    )  # fmt: skip
    token = added.stdout.strip()
    assert "\n" not in token
    assert "parks-desk" in added.stderr
    assert ADMIN_TOKEN not in added.output

    listed = ok(ccx("node", "client", "list", "--node", node, env=env))
    row = next(line for line in listed.stdout.splitlines() if "parks-desk" in line)
    assert row.split()[:3] == ["parks-desk", "parks", "records:push"]
    assert token not in listed.output

    revoked = ok(ccx("node", "client", "revoke", "parks-desk", "--node", node, env=env))
    assert revoked.stdout.strip() == "revoked client parks-desk of parks"
    listed = ok(ccx("node", "client", "list", "--node", node, env=env))
    assert "parks-desk" not in listed.stdout
    with_revoked = ok(ccx("node", "client", "list", "--node", node, "--revoked", env=env))
    assert "parks-desk" in with_revoked.stdout

    again = ccx("node", "client", "revoke", "parks-desk", "--node", node, env=env)
    assert again.exit_code == 0 or again.stderr.startswith("error [")


def test_client_commands_refuse_a_wrong_admin_token_in_one_line(world: TwoCities) -> None:
    result = ccx("node", "client", "list", "--node", world.fuzhou.url, "--admin-token", "wrong")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error [")
    assert " --admin-token: " in result.stderr
    assert result.stderr.count("\n") == 1


def test_client_commands_need_an_admin_token(world: TwoCities) -> None:
    result = ccx("node", "client", "list", "--node", world.fuzhou.url, env={"CCX_ADMIN_TOKEN": ""})
    assert_one_line_error(result, "missing_option", "--admin-token")


def test_client_commands_name_an_unreachable_node(world: TwoCities) -> None:
    result = ccx("node", "client", "list", "--node", f"http://127.0.0.1:{free_port()}",
                 "--admin-token", ADMIN_TOKEN)  # fmt: skip
    assert_one_line_error(result, "node_unreachable", "--node")


def test_client_commands_name_a_node_url_with_a_path(world: TwoCities) -> None:
    result = ccx("node", "client", "list", "--node", f"{world.fuzhou.url}/v1",
                 "--admin-token", ADMIN_TOKEN)  # fmt: skip
    assert_one_line_error(result, "not_a_node", "--node")
    assert f"without /v1: --node {world.fuzhou.url}" in result.stderr


# --- ccx records push -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def push_token(world: TwoCities) -> str:
    added = ccx("node", "client", "add", "--node", world.fuzhou.url, "--id", "civil-desk",
                "--department", "civil", "--scope", "records:push",
                "--admin-token", ADMIN_TOKEN)  # fmt: skip
    return ok(added).stdout.strip()


def test_records_push_sends_a_csv_in_batches_and_counts_the_rows(
    world: TwoCities, push_token: str, tmp_path: Path
) -> None:
    csv_file = _records_csv(tmp_path / "records.csv", "fz-pusher", 7)
    env = {"CCX_CLIENT_TOKEN": push_token}
    result = ok(ccx("records", "push", str(csv_file), "--node", world.fuzhou.url,
                    "--batch-size", "3", env=env))  # fmt: skip
    assert result.stdout.strip() == "7 rows: 7 stored, 0 duplicate, 0 refused"
    again = ok(ccx("records", "push", str(csv_file), "--node", world.fuzhou.url, env=env))
    assert again.stdout.strip() == "7 rows: 0 stored, 7 duplicate, 0 refused"


def test_records_push_reports_refused_rows_with_their_file_index_and_exits_1(
    world: TwoCities, push_token: str, tmp_path: Path
) -> None:
    rows = [
        {"record_id": "j-0", "resident_id": "fz-jsonl", "kind": "honour", "occurred_at": NOW - DAY},
        {"record_id": "j-1", "resident_id": "fz-jsonl", "kind": "no_such_kind", "occurred_at": 1},
        {"record_id": "j-2", "resident_id": "fz-jsonl", "kind": "honour", "occurred_at": NOW - 2},
    ]
    jsonl = tmp_path / "records.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n\nnot json\n", encoding="utf-8")
    args = ["records", "push", str(jsonl), "--node", world.fuzhou.url, "--token", push_token]
    result = ccx(*args, "--batch-size", "2")
    assert result.exit_code == 1, result.output
    assert result.stdout.strip() == "4 rows: 2 stored, 0 duplicate, 2 refused"
    refused = result.stderr.strip().splitlines()
    assert refused[0].startswith("refused row 1 (j-1): [")
    assert refused[1].startswith("refused row 3: [invalid_json] ")

    out = tmp_path / "refused.jsonl"
    result = ccx(*args, "--refused", str(out))
    assert result.exit_code == 1
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(row["index"], row["status"]) for row in written] == [(1, "refused"), (3, "refused")]


def test_records_push_errors_are_one_line(
    world: TwoCities, push_token: str, tmp_path: Path
) -> None:
    node = world.fuzhou.url
    env = {"CCX_CLIENT_TOKEN": push_token}
    missing = ccx("records", "push", str(tmp_path / "none.csv"), "--node", node, env=env)
    assert_one_line_error(missing, "file_not_found", "FILE")

    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("id,who\n1,alice\n", encoding="utf-8")
    assert_one_line_error(
        ccx("records", "push", str(bad_header), "--node", node, env=env), "invalid_csv", "FILE"
    )
    broken = tmp_path / "broken.csv"
    broken.write_text('record_id,resident_id\n"unclosed,alice\n', encoding="utf-8")
    assert_one_line_error(
        ccx("records", "push", str(broken), "--node", node, env=env), "invalid_csv", "FILE"
    )
    other = tmp_path / "records.txt"
    other.write_text("x", encoding="utf-8")
    assert_one_line_error(
        ccx("records", "push", str(other), "--node", node, env=env),
        "unsupported_file_type",
        "--format",
    )
    good = _records_csv(tmp_path / "good.csv", "fz-nobody", 1)
    bad_token = ccx("records", "push", str(good), "--node", node, "--token", "not-a-token")
    assert bad_token.exit_code == 2
    assert bad_token.stderr.startswith("error [")
    assert " --token: " in bad_token.stderr
    assert bad_token.stderr.count("\n") == 1
    unreachable = ccx("records", "push", str(good), "--node", f"http://127.0.0.1:{free_port()}",
                      env=env)  # fmt: skip
    assert_one_line_error(unreachable, "node_unreachable", "--node")
    no_token = ccx("records", "push", str(good), "--node", node, env={"CCX_CLIENT_TOKEN": ""})
    assert_one_line_error(no_token, "missing_option", "--token")


# --- the story: a department's push, her consents, her credential, a kiosk's decision --------


def test_a_resident_pushed_and_consenting_is_granted_at_a_kiosk_then_withdraws(
    world: TwoCities, push_token: str, tmp_path: Path
) -> None:
    fz, xm = world.fuzhou.url, world.xiamen.url
    pushed = ccx("records", "push", str(_records_csv(tmp_path / "r.csv", RESIDENT, 12)),
                 "--node", fz, "--token", push_token)  # fmt: skip
    assert ok(pushed).stdout.strip() == "12 rows: 12 stored, 0 duplicate, 0 refused"

    token = ok(ccx("wallet", "login", "--node", fz, "--subject", RESIDENT)).stdout.strip()
    as_her = {"CCX_WALLET_TOKEN": token}
    assert ok(ccx("wallet", "consent", "grant", "open_score", "--node", fz, env=as_her))
    granted = ccx("wallet", "consent", "grant", "share_alliance", "--recipient", "alliance",
                  "--purpose", "borrowing books in Xiamen", "--node", fz,
                  "--dev-subject", RESIDENT)  # fmt: skip
    assert ok(granted).stdout.strip() == "granted share_alliance to alliance"
    listed = ok(ccx("wallet", "consent", "list", "--node", fz, env=as_her)).stdout
    assert [line.split()[:2] for line in listed.splitlines()[1:]] == [
        ["open_score", "active"], ["share_alliance", "active"]
    ]  # fmt: skip

    wallet = {WALLET_ENV: str(tmp_path / "w.json"), PASSPHRASE_ENV: "a wallet passphrase!",
              NOW_ENV: str(NOW)}  # fmt: skip
    ok(ccx("wallet", "keygen", env=wallet))
    ok(ccx("wallet", "authorize", fz, "--dev-login", RESIDENT, env=wallet))

    desk = {"CCX_CLIENT_TOKEN": world.desk_token}
    menu = ok(ccx("kiosk", "scenarios", "--node", xm, env=desk)).stdout
    assert menu.splitlines()[0] == "library-desk of culture:"
    assert "library_deposit_free  Deposit-free library borrowing" in menu
    qr = tmp_path / "request.png"
    asked = ok(ccx("kiosk", "request", "--node", xm, "--scenario", "library_deposit_free",
                   "--qr", str(qr), env=desk))  # fmt: skip
    transaction, link = asked.stdout.splitlines()[:2]
    transaction_id = transaction.removeprefix("transaction ")
    assert link.startswith("openid4vp://")
    assert qr.read_bytes().startswith(b"\x89PNG")
    pending = ccx("kiosk", "decision", transaction_id, "--node", xm, env=desk)
    assert pending.exit_code == 1
    assert pending.stdout.startswith("pending: library_deposit_free")

    ok(ccx("wallet", "answer", link, "--yes", env=wallet))
    decided = ok(ccx("kiosk", "decision", transaction_id, "--node", xm, "--wait", "5", env=desk))
    assert decided.stdout.splitlines() == [
        "granted: library_deposit_free",
        "  tier standard: Borrow up to 10 books without the 100 CNY deposit",
        "  [threshold_met] alliance score at least 600: tier 'standard'",
        f"  issuer {fz} (fuzhou)",
    ]

    withdrawn = ok(ccx("wallet", "consent", "withdraw", "share_alliance", "--node", fz, env=as_her))
    assert withdrawn.stdout.strip() == "withdrew share_alliance; 1 attestation(s) revoked"
    listed = ok(ccx("wallet", "consent", "list", "--node", fz, env=as_her)).stdout
    assert listed.splitlines()[2].split()[:2] == ["share_alliance", "withdrawn"]


def test_wallet_consent_errors_are_one_line(world: TwoCities) -> None:
    fz = world.fuzhou.url
    assert_one_line_error(
        ccx("wallet", "consent", "list", "--node", fz), "missing_option", "--token"
    )
    assert_one_line_error(
        ccx("wallet", "consent", "grant", "share_alliance", "--node", fz, "--dev-subject", "x"),
        "missing_option",
        "--recipient",
    )
    assert_one_line_error(
        ccx("wallet", "consent", "withdraw", "everything", "--node", fz, "--dev-subject", "x"),
        "invalid_kind",
        "KIND",
    )
    none_held = ccx("wallet", "consent", "withdraw", "open_score", "--node", fz,
                    "--dev-subject", "fz-nobody")  # fmt: skip
    assert_one_line_error(none_held, "consent_not_found", "--node")
    bad = ccx("wallet", "consent", "list", "--node", fz, "--token", "not-a-token")
    assert bad.exit_code == 2
    assert " --token: " in bad.stderr
    assert bad.stderr.count("\n") == 1
    unreachable = ccx("wallet", "login", "--node", f"http://127.0.0.1:{free_port()}",
                      "--subject", "x")  # fmt: skip
    assert_one_line_error(unreachable, "node_unreachable", "--node")


def test_wallet_consent_to_share_the_domestic_service_credential(world: TwoCities) -> None:
    who = ("--node", world.fuzhou.url, "--dev-subject", "fz-housekeeper")
    assert_one_line_error(
        ccx("wallet", "consent", "grant", "share_domestic_service", *who),
        "missing_option",
        "--recipient",
    )
    granted = ccx("wallet", "consent", "grant", "share_domestic_service", "--recipient",
                  "alliance", "--purpose", "an agency hiring me", *who)  # fmt: skip
    assert ok(granted).stdout.strip() == "granted share_domestic_service to alliance"
    listed = ok(ccx("wallet", "consent", "list", *who)).stdout.splitlines()[1:]
    assert [line.split()[:2] for line in listed] == [["share_domestic_service", "active"]]
    withdrawn = ok(ccx("wallet", "consent", "withdraw", "share_domestic_service", *who))
    assert withdrawn.stdout.strip() == "withdrew share_domestic_service; 0 attestation(s) revoked"


def test_wallet_login_names_a_node_without_the_development_login(tmp_path: Path) -> None:
    with two_cities(tmp_path, fuzhou={"dev_idp": False, "idp_jwks": '{"keys": []}'}) as cities:
        result = ccx("wallet", "login", "--node", cities.fuzhou.url, "--subject", "x")
    assert_one_line_error(result, "no_dev_idp", "--dev-subject")


def test_kiosk_errors_are_one_line(world: TwoCities) -> None:
    xm = world.xiamen.url
    desk = {"CCX_CLIENT_TOKEN": world.desk_token}
    unknown = ccx("kiosk", "request", "--node", xm, "--scenario", "car_park_pay_later", env=desk)
    assert unknown.exit_code == 2
    assert unknown.stderr.startswith("error [")
    assert unknown.stderr.count("\n") == 1
    bad = ccx("kiosk", "scenarios", "--node", xm, "--token", "not-a-token")
    assert bad.exit_code == 2
    assert " --token: " in bad.stderr
    assert bad.stderr.count("\n") == 1
    gone = ccx("kiosk", "decision", "no-such-transaction", "--node", xm, env=desk)
    assert gone.exit_code == 2
    assert " --node: " in gone.stderr
    assert_one_line_error(
        ccx("kiosk", "request", "--node", xm, "--scenario", "x", "--qr", "code.gif", env=desk),
        "unsupported_format",
        "--qr",
    )
    unreachable = ccx("kiosk", "scenarios", "--node", f"http://127.0.0.1:{free_port()}", env=desk)
    assert_one_line_error(unreachable, "node_unreachable", "--node")


def test_kiosk_request_for_a_script_json_or_shell_assignments(world: TwoCities) -> None:
    import shlex

    xm = world.xiamen.url
    desk = {"CCX_CLIENT_TOKEN": world.desk_token}
    args = ("kiosk", "request", "--node", xm, "--scenario", "library_deposit_free")
    made = json.loads(ok(ccx(*args, "--format", "json", env=desk)).stdout)
    assert made["request"].startswith("openid4vp://")
    assert made["transaction_id"]

    lines = ok(ccx(*args, "--format", "env", env=desk)).stdout.splitlines()
    assert lines[-1] == "export CCX_TRANSACTION CCX_REQUEST_LINK"
    assigned = dict(shlex.split(line)[0].split("=", 1) for line in lines[:-1])
    assert sorted(assigned) == ["CCX_REQUEST_LINK", "CCX_TRANSACTION"]
    assert assigned["CCX_REQUEST_LINK"].startswith("openid4vp://")
    assert assigned["CCX_TRANSACTION"] != made["transaction_id"]  # a request of its own
    # `decision` with no id reads CCX_TRANSACTION, as the shell's eval leaves it
    pending = ccx("kiosk", "decision", "--node", xm,
                  env={**desk, "CCX_TRANSACTION": assigned["CCX_TRANSACTION"]})  # fmt: skip
    assert pending.exit_code == 1, pending.output
    assert pending.stdout.startswith("pending: library_deposit_free")

    assert_one_line_error(
        ccx(*args, "--format", "yaml", env=desk), "unsupported_format", "--format"
    )
    assert_one_line_error(
        ccx("kiosk", "decision", "--node", xm, env={**desk, "CCX_TRANSACTION": ""}),
        "missing_argument",
        "TRANSACTION_ID",
    )


def test_node_ready_says_ready_with_the_registry_version_or_names_the_fault(
    world: TwoCities,
) -> None:
    assert ok(ccx("node", "ready", "--node", world.xiamen.url)).stdout.strip() == (
        "ready, registry version 1"
    )
    assert_one_line_error(
        ccx("node", "ready", "--node", f"http://127.0.0.1:{free_port()}"),
        "node_unreachable",
        "--node",
    )
    assert_one_line_error(
        ccx("node", "ready", "--node", world.xiamen.url + "/v1"), "not_a_node", "--node"
    )


# --- --help ---------------------------------------------------------------------------------

COMMANDS = [
    ("node", "admin-token"), ("node", "client", "add"), ("node", "client", "list"),
    ("node", "client", "revoke"), ("records", "push"), ("wallet", "login"),
    ("wallet", "consent", "list"), ("wallet", "consent", "grant"),
    ("wallet", "consent", "withdraw"), ("kiosk", "scenarios"), ("kiosk", "request"),
    ("kiosk", "decision"), ("node", "ready"),
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_new_command_has_help(command: tuple[str, ...]) -> None:
    result = ok(ccx(*command, "--help"))
    assert f"Usage: ccx {' '.join(command)}" in result.stdout


# --- a busy node: records push sends a batch again after Retry-After ------------------------


def test_records_push_waits_out_a_rate_limit_and_sends_the_batch_again(tmp_path: Path) -> None:
    """Fuzhou lets a client make one request a second (burst 1): three batches in a row
    meet a 429 with Retry-After; the push waits and sends each again, and every row is
    stored once. The world's clock is the test's: a thread moves it a second on each time
    the command waits (as the real one would pass), so nothing reads the wall clock."""
    import threading

    limited = {"admin_token_hash": hash_token(ADMIN_TOKEN), "rate_limits": True,
               "client_rate": 1.0, "client_burst": 1}  # fmt: skip
    with two_cities(tmp_path / "cities", fuzhou=limited) as world:
        token = ok(ccx("node", "client", "add", "--node", world.fuzhou.url, "--id", "busy-desk",
                       "--department", "civil", "--scope", "records:push",
                       "--admin-token", ADMIN_TOKEN)).stdout.strip()  # fmt: skip
        done = threading.Event()

        def tick() -> None:
            while not done.wait(0.2):
                world.clock.advance(1)

        ticking = threading.Thread(target=tick, daemon=True)
        ticking.start()
        try:
            csv_file = _records_csv(tmp_path / "r.csv", "fz-busy", 3)
            result = ccx("records", "push", str(csv_file), "--node", world.fuzhou.url,
                         "--batch-size", "1", "--token", token)  # fmt: skip
        finally:
            done.set()
            ticking.join()
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "3 rows: 3 stored, 0 duplicate, 0 refused"
    assert "the node is busy (429 rate_limited): sending the batch again in " in result.stderr
