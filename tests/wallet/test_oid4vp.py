"""`ccx wallet answer` (issue 14): a Fuzhou resident's wallet answers a Xiamen service
point's OpenID4VP request over real HTTP on loopback, given as a link or as a QR code
image, after showing who asks for what; both nodes follow one registry that carries the
alliance CA and their certificates."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import segno
from typer.testing import CliRunner

from tests.cli_results import assert_one_line_error, ok
from tests.node.oid4vp_helpers import (
    cli_wallet,
    presentation_request,
    presentation_result,
    two_cities,
)
from tests.node.servers import RunningNode
from wallet.cli import wallet_app

SCENARIO = "library_deposit_free"


@dataclass
class World:
    fuzhou: RunningNode
    xiamen: RunningNode
    desk: dict[str, str]
    env: dict[str, str]

    def request(self) -> dict[str, Any]:
        return presentation_request(self.xiamen, self.desk, SCENARIO)

    def result(self, made: dict[str, Any]) -> dict[str, Any]:
        return presentation_result(self.xiamen, self.desk, made)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with two_cities(tmp_path) as cities:
        env = cli_wallet(cities.fuzhou, tmp_path)
        yield World(cities.fuzhou, cities.xiamen, cities.desk, env)


def test_the_wallet_answers_a_request_link_and_the_desk_sees_granted(world: World) -> None:
    made = world.request()
    answered = ok(CliRunner().invoke(wallet_app, ["answer", made["request"], "--yes"],
                                     env=world.env))  # fmt: skip
    assert "Xiamen" in answered.stderr  # who asks, shown before anything is sent
    [claim] = made["disclose"]  # the scenario's one score_at_least entry
    assert f"  {claim}\n" in answered.stderr
    assert f"answered Xiamen: {claim}" in answered.stdout
    decided = world.result(made)
    assert decided["outcome"] == "granted"
    assert decided["issuer_city"] == "fuzhou"


def test_the_wallet_reads_the_request_from_a_qr_code_image(world: World, tmp_path: Path) -> None:
    made = world.request()
    image = tmp_path / "kiosk.png"
    segno.make(made["request"], error="m").save(image, scale=6)
    ok(CliRunner().invoke(wallet_app, ["answer", "--qr", str(image), "--yes"], env=world.env))
    assert world.result(made)["outcome"] == "granted"


def test_a_resident_who_says_no_discloses_nothing(world: World) -> None:
    made = world.request()
    declined = CliRunner().invoke(wallet_app, ["answer", made["request"]], env=world.env,
                                  input="n\n")  # fmt: skip
    assert declined.exit_code == 2
    assert "asks to see" in declined.stderr  # shown first, then the question
    assert (
        declined.stderr.strip()
        .splitlines()[-1]
        .endswith("error [declined] REQUEST: you declined: nothing was disclosed")
    )
    assert world.result(made)["outcome"] == "pending"


def test_an_image_without_a_qr_code_is_a_clear_error(world: World, tmp_path: Path) -> None:
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 255).save(blank)
    result = CliRunner().invoke(wallet_app, ["answer", "--qr", str(blank)], env=world.env)
    assert_one_line_error(result, "no_qr_code", "--qr")
