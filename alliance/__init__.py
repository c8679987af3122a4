"""The alliance administrators' side (docs/ALLIANCE.md, docs/MAPPINGS.md): the
registry's working state and the claims built from it (alliance/state.py, pure), `ccx
alliance` to admit members, attach mapping tables and publish the signed registry
(alliance/cli.py), `ccx mapping` to build, show, apply and plot mapping tables
(alliance/mapping_cli.py, alliance/plot.py), and the demo alliance's synthetic cities
(alliance/demo_cities.py). It never imports ``node``: an alliance host is a node that
serves what this package wrote."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when first asked for (PEP 562): `ccx alliance --help` needs
    # none of it, and alliance.state loads mappings and numpy (issue 20)
    from alliance.state import (
        DEFAULT_POLICY,
        REQUIRED_SCENARIOS,
        STATE_FORMAT,
        AllianceError,
        AllianceState,
        PublishedVersion,
        attach_table,
        check_http_url,
        parse_jwks,
        parse_local_scale,
        parse_policy,
        parse_scale,
        registry_claims,
        retained_tables,
    )

__all__ = [
    "DEFAULT_POLICY",
    "REQUIRED_SCENARIOS",
    "STATE_FORMAT",
    "AllianceError",
    "AllianceState",
    "PublishedVersion",
    "attach_table",
    "check_http_url",
    "parse_jwks",
    "parse_local_scale",
    "parse_policy",
    "parse_scale",
    "registry_claims",
    "retained_tables",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'alliance' has no attribute {name!r}")
    value = getattr(importlib.import_module("alliance.state"), name)
    globals()[name] = value
    return value
