"""How a cached output is keyed: a short hash of the configuration that made it.

Every data stage (``santa.stages``) and the pipeline engine name their output directories with
it, so a rerun with the same configuration finds and reuses them; one function, so the two cannot
start hashing differently and silently stop sharing a cleaned corpus.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def config_key(obj: Any) -> str:
    """16 hex digits of SHA-256 over ``obj`` as canonical JSON (sorted keys; values JSON cannot
    hold, such as paths, by their ``str``)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
