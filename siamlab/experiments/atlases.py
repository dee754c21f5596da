"""The shipped collapse atlases (``siamlab atlas NAME``)."""
from __future__ import annotations

ATLASES: dict = {}
