"""What every ``ccx`` command group shares (the node's, the alliance's, the wallet's, the
simulator's): one-line errors ``error [code] field: message`` with exit status 2, the
``--now`` option, reading files and writing them atomically, aligned columns, times for
people. It imports only the pure libraries (protocol, keys, mappings), so every group
may use it; the ``ccx`` command itself is put together in ``ccx/``."""

from cli._files import pretty_json, write_atomically
from cli._http import NODE_TIMEOUT, call_node, node_client, pause
from cli._support import (
    EXIT_BAD_INPUT,
    InputError,
    NowOption,
    as_input_error,
    columns,
    fail,
    format_time,
    mapping_message,
    now_from,
    parse_time,
    read_bytes,
    reports_errors,
)

__all__ = [
    "EXIT_BAD_INPUT",
    "NODE_TIMEOUT",
    "InputError",
    "NowOption",
    "as_input_error",
    "call_node",
    "columns",
    "fail",
    "format_time",
    "mapping_message",
    "node_client",
    "now_from",
    "parse_time",
    "pause",
    "pretty_json",
    "read_bytes",
    "reports_errors",
    "write_atomically",
]
