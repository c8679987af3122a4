"""A leaked copy of the database or the data folder (docs/SECURITY.md, "Leaked
database copy").

Someone gets a copy of the node's data folder (a backup, a disk image): the SQLite
database with its WAL, the keyring file, the saved registry. The copy must not let them
act as the node, a service point or a resident: credentials are stored hashed,
challenge nonces as digests, tokens not at all, and the signing keys encrypted under a
passphrase kept elsewhere. What the copy does hold, residents' records and scores, is
in the clear (encrypt the disk)."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import SQLModel

import protocol as P
from keys import Keyring, WrongPassphrase
from node.auth import hash_token
from tests.node.issuing_helpers import bearer, new_nonce, node_state
from tests.node.pushing import ADMIN_TOKEN, admin_settings
from tests.security.world import XIAMEN, World, attest, service_point

DATABASE_ROWS = "database rows"


def folder_bytes(world: World) -> dict[str, bytes]:
    """Every file of Xiamen's data folder (the SQLite database with its WAL and free
    pages, the keyring, ...); on PostgreSQL, also every row of every table, as text
    (what a dump would hold)."""
    state = node_state(world.xiamen)
    folder = state.settings.data_dir
    files = {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
    if state.settings.database_url is not None:
        with state.engine.connect() as connection:
            files[DATABASE_ROWS] = "\n".join(
                repr(tuple(row))
                for table in SQLModel.metadata.sorted_tables
                for row in connection.execute(select(table))
            ).encode()
    return files


def holding(files: dict[str, bytes], secret: str) -> list[str]:
    return [name for name, data in files.items() if secret.encode() in data]


def test_a_copy_of_the_data_folder_holds_no_credential_token_or_live_nonce(
    make_client: Any, tmp_path: Path
) -> None:
    world = World.make(make_client, tmp_path, **admin_settings())
    login = bearer(world.xiamen, "resident-leak")["Authorization"].removeprefix("Bearer ")
    attestation, holder = attest(world.xiamen, XIAMEN, "resident-leak", 720)
    desk = service_point(world.xiamen, "library_deposit_free")
    desk_token = desk["Authorization"].removeprefix("Bearer ")
    used = world.challenge(desk)
    presentation = world.present(attestation, holder, used)
    assert world.send(desk, used["nonce"], presentation).json()["decision"] == "granted"
    live = world.challenge(desk)["nonce"]  # outstanding: it would still verify
    passphrase = node_state(world.xiamen).settings.keyring_passphrase.get_secret_value()
    secrets = {
        "service point token": desk_token,
        "admin token": ADMIN_TOKEN,
        "resident's bearer token": login,
        "attestation": attestation.split("~")[0],
        "presentation's key binding": presentation.rsplit("~", 1)[1],
        "used challenge nonce": used["nonce"],
        "live challenge nonce": live,
        "keyring passphrase": passphrase,
    }

    files = folder_bytes(world)
    assert "keyring.json" in files
    assert "node.db" in files or DATABASE_ROWS in files
    assert {what: holding(files, secret) for what, secret in secrets.items()} == {
        what: [] for what in secrets
    }
    # not vacuous: what the node keeps instead is there
    assert holding(files, hash_token(desk_token))
    assert holding(files, hashlib.sha256(used["nonce"].encode()).hexdigest())  # single use
    # a live challenge is sealed, not stored: not even its digest is in the copy
    assert not holding(files, hashlib.sha256(live.encode()).hexdigest())


def test_the_keyring_file_is_encrypted_and_readable_by_the_node_alone(client: Any) -> None:
    settings = node_state(client).settings
    path = settings.keyring_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = path.read_bytes()
    ring = node_state(client).signing_keys()
    assert data.count(b"BEGIN ENCRYPTED PRIVATE KEY") == len(ring.keys)
    for key in ring.keys:
        scalar = key.private_key.private_numbers().private_value.to_bytes(32, "big")
        for form in (scalar, scalar.hex().encode(), P.b64url_encode(scalar).encode()):
            assert form not in data
    with pytest.raises(WrongPassphrase):
        Keyring.load(data, b"a guess of twelve bytes or more")


def test_a_copy_of_the_database_holds_no_live_proof_of_possession_nonce(
    make_client: Any, tmp_path: Path
) -> None:
    world = World.make(make_client, tmp_path)
    nonce = new_nonce(world.xiamen, bearer(world.xiamen, "resident-pop"))
    assert holding(folder_bytes(world), nonce) == []
