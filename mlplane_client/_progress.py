"""Progress bars that work in Jupyter (widgets) and terminals (`tqdm.auto`)."""

from __future__ import annotations

import importlib.util
import time
from typing import Any

from mlplane_client._transport import Closing


class Progress(Closing):
    """A thin wrapper over `tqdm.auto.tqdm`; does nothing when disabled.

    `rows=True` counts rows and shows the byte rate (MB/s) as a postfix;
    otherwise it counts bytes (KiB/MiB, with tqdm's own rate).
    """

    def __init__(self, enabled: bool, *, desc: str, total: int | None = None, rows: bool) -> None:
        self._bar: Any = None
        self._rows = rows
        self._bytes = 0
        self._started = time.monotonic()
        if not enabled:
            return
        tqdm = _tqdm_class()
        if rows:
            self._bar = tqdm(desc=desc, total=total, unit=" rows", unit_scale=True, leave=True)
        else:
            self._bar = tqdm(
                desc=desc, total=total, unit="B", unit_scale=True, unit_divisor=1024, leave=True
            )

    def update(self, *, rows: int = 0, nbytes: int = 0) -> None:
        self._bytes += nbytes
        if self._bar is None:
            return
        if self._rows:
            elapsed = max(time.monotonic() - self._started, 1e-6)
            self._bar.set_postfix_str(f"{self._bytes / elapsed / 1e6:.1f} MB/s", refresh=False)
            self._bar.update(rows)
        else:
            self._bar.update(nbytes)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _tqdm_class() -> Any:
    """Jupyter's widget bar when ipywidgets is installed, else the text bar, which
    works in a notebook's output too (tqdm.auto would warn before falling back)."""
    if importlib.util.find_spec("ipywidgets") is None:
        from tqdm import tqdm  # type: ignore[import-untyped]
    else:
        from tqdm.auto import tqdm  # type: ignore[import-untyped]
    return tqdm
