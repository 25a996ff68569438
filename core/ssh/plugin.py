"""Hook implementations of the core SSH transport (targets API)."""

from __future__ import annotations
