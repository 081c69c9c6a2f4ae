"""The photo library (being split by job: see library.py)."""

from birdid_app.core.library.library import *  # noqa: F403
from birdid_app.core.library.library import (  # noqa: F401
    _SCHEMA_V1,
    _decode_for_index,
    _Decoded,
    _pair_companions,
    _scan,
    _Work,
)
