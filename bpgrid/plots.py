"""matplotlib without a display, for the plots ``bpgrid.report`` writes as PNG files."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402, F401 - bpgrid.report.figures draws with it
