"""``python -m ccx ...``: the `ccx` command."""

from ccx.app import app

app()
