"""``python -m node serve ...``: the node operator's `ccx node` commands alone (how the
simulator and the durability tests start nodes, without importing the other groups)."""

from node.cli import node_app

node_app()
