"""Logging setup of the command-line tools."""
from __future__ import annotations

import logging


def setup_logging(role: str, verbose: bool = False) -> None:
    """One line per record, tagged with the tool's role; aiortc / aioice chatter only with ``verbose``."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format=f"%(asctime)s {role} %(levelname)s %(message)s")
    if not verbose:
        for name in ("aioice", "aiortc"):
            logging.getLogger(name).setLevel(logging.WARNING)
