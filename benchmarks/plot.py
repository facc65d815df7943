"""Draw a line chart from a small JSON spec (run by the benchmarks with matplotlib from their side environment).

    python benchmarks/plot.py spec.json out.png

spec: {"title", "xlabel", "ylabel", "logx": bool, "logy": bool, "hline": number | null,
       "series": [{"label", "x": [...], "y": [...], "style": "-o"}]}
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    spec = json.loads(open(sys.argv[1], encoding="utf-8").read())
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    for series in spec["series"]:
        ax.plot(series["x"], series["y"], series.get("style", "-o"), label=series["label"])
    if spec.get("hline") is not None:
        ax.axhline(
            spec["hline"],
            color="grey",
            linestyle="--",
            linewidth=1,
            label=spec.get("hline_label", f"{spec['hline']:g}"),
        )
    if spec.get("logx"):
        ax.set_xscale("log")
    if spec.get("logy"):
        ax.set_yscale("log")
    ax.set_xlabel(spec["xlabel"])
    ax.set_ylabel(spec["ylabel"])
    ax.set_title(spec["title"], fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(sys.argv[2])


if __name__ == "__main__":
    main()
