"""The `ccx` command (ccx/app.py): the composition root; nothing imports it."""
