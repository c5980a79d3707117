"""The curve as PNGs (matplotlib, in the ``dev`` extra): one figure per measure."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

FIGURES: Final = (
    ("requests_per_s", "aggregate writes/s (sum over nodes)", "scaling-throughput.png"),
    ("rss_total_mb", "total RSS per node, MB (mean; idle base included)", "scaling-memory.png"),
    ("rss_above_base_mb", "RSS above each node's idle base, MB (mean)", "scaling-memory-above.png"),
    ("bytes_per_write", "bytes sent to peers per write", "scaling-bytes.png"),
    ("ready_s", "new node: spawn to /readyz 200, s", "scaling-ready.png"),
)


def plot(rows: list[dict[str, Any]], directory: Path) -> list[Path]:
    """Write the PNGs into ``directory``; their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for key, title, name in FIGURES:
        figure, axes = plt.subplots(figsize=(5, 3.4), dpi=100)
        for kind, marker in (("delta", "o"), ("backup", "s")):
            mine = sorted(
                (r["nodes"], r[key]) for r in rows if r["kind"] == kind and r[key] == r[key]
            )  # NaN (not measured: --only) is left out
            if mine:
                axes.plot([n for n, _ in mine], [v for _, v in mine], marker=marker, label=kind)
        axes.set_xlabel("nodes")
        axes.set_title(title, fontsize=10)
        axes.set_xticks(sorted({r["nodes"] for r in rows}))
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        path = directory / name
        figure.savefig(path)
        plt.close(figure)
        written.append(path)
    return written
