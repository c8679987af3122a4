"""Credential offer interception (docs/SECURITY.md section 18; issue 14): an offer shown
as a QR code can be photographed, a link forwarded, a log read. What a thief of each gets."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import pytest

from node.server import SECRET_PATHS, redact_access_log
from node.services import oid4vci
from tests.node.issuing_helpers import bearer, seed_resident
from tests.node.test_oid4vci import code_of, oauth_error, pre_authorized, token


def test_an_offer_seen_over_the_shoulder_is_useless_without_its_transaction_code(
    make_client: Any,
) -> None:
    node = make_client()
    seed_resident(node)
    made = node.post(
        "/v1/me/credential-offers", json={"cross_device": True}, headers=bearer(node)
    ).json()
    # the thief scans the QR code first and fetches the offer before the wallet does
    stolen = node.get(urlsplit(made["credential_offer_uri"]).path).json()
    code = code_of(stolen)
    assert oauth_error(token(node, pre_authorized(code))) == "invalid_request"
    guesses = (f"{n:06d}" for n in range(10**6) if f"{n:06d}" != made["tx_code"])
    for _ in range(oid4vci.TX_CODE_TRIES):
        assert (
            oauth_error(token(node, pre_authorized(code, tx_code=next(guesses)))) == "invalid_grant"
        )
    # the code is burnt: even the right transaction code gets nothing now
    late = token(node, pre_authorized(code, tx_code=made["tx_code"]))
    assert (late.status_code, oauth_error(late)) == (400, "invalid_grant")
    # and the resident's own wallet finds the offer used: she asks for a new one
    assert node.get(urlsplit(made["credential_offer_uri"]).path).status_code == 404


def test_the_offer_id_never_reaches_the_access_log(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("uvicorn.access")
    redact_access_log(logger)
    redact_access_log(logger)  # once, however many apps a process builds
    secret = "an-offer-id-that-is-a-secret"
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        # uvicorn's access record: client, method, path, HTTP version, status
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET",
                    f"{SECRET_PATHS[0]}{secret}", "1.1", 200)  # fmt: skip
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/healthz", "1.1", 200)
    lines = [record.getMessage() for record in caplog.records]
    assert secret not in "\n".join(lines)
    assert lines[0].endswith(f'"GET {SECRET_PATHS[0]}... HTTP/1.1" 200')
    assert lines[1].endswith('"GET /healthz HTTP/1.1" 200')
    assert sum(1 for f in logger.filters if type(f).__name__ == "_RedactSecretPaths") == 1
