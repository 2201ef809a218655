"""Acquirer host simulator: ISO 8583 over TCP, SQLite ledger, fault injection.

    python -m tools.host --port 8583 --db host.db      (a real board on the network)

From Python: `HostSimulator(db_path, cards=None, port=0)`, `await start()`, `inject(step)`,
`export_ledger()`, `await stop()` (tools/host/server.py).
"""

from .server import HostSimulator  # noqa: F401
