"""docs/SETTINGS.md is written from node.settings.Settings (scripts/settings_doc.py) and
names every CCX_* variable the code reads (issue 20)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from node.settings import Settings
from scripts.settings_doc import DOCUMENT, EXAMPLES, OTHER_VARIABLES, document, variable

ROOT = Path(__file__).parent.parent
PACKAGES = ("protocol", "keys", "mappings", "cli", "alliance", "wallet", "node", "simulator", "ccx")


def test_the_settings_document_is_written_from_the_settings_as_they_are() -> None:
    assert DOCUMENT.read_text(encoding="utf-8") == document(), (
        "stale: run python scripts/settings_doc.py --write"
    )


def test_every_setting_is_in_the_document_with_its_default() -> None:
    text = DOCUMENT.read_text(encoding="utf-8")
    for name, field in Settings.model_fields.items():
        assert f"| `{variable(name)}` |" in text
        assert field.description, f"{name} has no description to show"
    assert "| `CCX_STATUS_LIST_TTL` | `300` |" in text


def test_the_examples_together_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each example as the document shows it, read from the environment."""
    assert set(EXAMPLES) <= set(Settings.model_fields)
    monkeypatch.delenv("CCX_CONFIG", raising=False)
    for name, value in EXAMPLES.items():
        monkeypatch.setenv(variable(name), value)
    settings = Settings(_env_file=None)
    assert settings.city == "fuzhou"
    assert settings.wallet_redirect_uris == ["http://127.0.0.1/callback", "ccxwallet://callback"]
    assert settings.admin_token_hash == EXAMPLES["admin_token_hash"]
    assert settings.rate_limits is False


def test_every_ccx_variable_in_the_code_is_in_the_document() -> None:
    named = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            named |= set(re.findall(r"\bCCX_[A-Z][A-Z0-9_]*\b", path.read_text(encoding="utf-8")))
    documented = {variable(n) for n in Settings.model_fields} | set(OTHER_VARIABLES)
    missing = sorted(named - documented)
    assert not missing, f"add them to OTHER_VARIABLES in scripts/settings_doc.py: {missing}"
