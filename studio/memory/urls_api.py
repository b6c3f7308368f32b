"""Memory API (mounted at /api/v1/): memory/…"""

from __future__ import annotations

urlpatterns: list = []
