"""The report's plots: matplotlib (Agg) figures rendered to inline SVG, byte-for-byte reproducible.

Reproducible: a fixed ``svg.hashsalt`` (element ids), no date or creator metadata, text kept as
text (``svg.fonttype = none``: smaller, selectable, no font-dependent paths). The same results
render to the same SVG, so a test can compare it and a diff of two reports shows real changes.

Each function takes plain series (lists / pandas frames built by :mod:`fridgebench.report.sections`)
and returns an SVG string, or None when there is nothing to draw.
"""

from __future__ import annotations

import io
import math
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

SVG_RC = {
    "svg.hashsalt": "fridgebench",
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "figure.dpi": 100,
}
STORE_COLORS = {"postgres": "#336791", "redis-seed": "#d62728", "redis-atomic": "#ff7f0e", "driver": "#7f7f7f"}
EXTRA_COLORS = ["#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
RUN_STYLES = ["-", "--", ":", "-."]
PCT_TICKS = [(50.0, "50%"), (90.0, "90%"), (99.0, "99%"), (99.9, "99.9%"), (99.99, "99.99%")]


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def color(name: str) -> str:
    if name in STORE_COLORS:
        return STORE_COLORS[name]
    return EXTRA_COLORS[sum(map(ord, name)) % len(EXTRA_COLORS)]


def run_style(i: int) -> str:
    return RUN_STYLES[i % len(RUN_STYLES)]


def to_svg(fig: Any) -> str:
    """The figure as an inline ``<svg>`` element (no XML prolog), closed afterwards."""
    plt = _plt()
    buf = io.StringIO()
    with plt.rc_context(SVG_RC):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    start = text.find("<svg")
    return text[start:] if start >= 0 else text


def _figure(rows: int = 1, cols: int = 1, *, width: float = 7.0, height: float = 3.2, **kw: Any) -> tuple[Any, Any]:
    plt = _plt()
    with plt.rc_context(SVG_RC):
        fig, axes = plt.subplots(rows, cols, figsize=(width, height), squeeze=False, **kw)
    return fig, axes


def _us_label(v: float, _pos: Any = None) -> str:
    if v >= 1_000_000:
        return f"{v / 1e6:g} s"
    if v >= 1000:
        return f"{v / 1000:g} ms"
    return f"{v:g} µs"


def _log_latency_axis(ax: Any) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(_us_label))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, p: ""))


def percentile_x(p: float) -> float:
    """HdrHistogram's percentile axis: 1 / (1 - p)."""
    return 1.0 / (1.0 - p / 100.0)


def latency_by_percentile(panels: Sequence[tuple[str, list[dict[str, Any]]]], *, title: str) -> str | None:
    """One panel per operation; in each, a line per (store, run): intended-start latency (solid, full curve)
    and service time (markers at p50/p90/p99/p99.9). ``panels``: (op, [series]) with series dicts
    ``{"label", "store", "run", "curve": [(p, v)], "service": [(p, v)]}``."""
    panels = [(op, s) for op, s in panels if any(x["curve"] or x["service"] for x in s)]
    if not panels:
        return None
    cols = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / cols)
    n_labels = 1 + len({s["label"] for _, ss in panels for s in ss})
    fig, axes = _figure(rows, cols, width=7.0 if cols == 2 else 5.0,
                        height=2.4 * rows + 0.32 + 0.2 * math.ceil(n_labels / 3))
    plt = _plt()
    with plt.rc_context(SVG_RC):
        for i, (op, series) in enumerate(panels):
            ax = axes[i // cols][i % cols]
            top = 2.0
            for s in series:
                c, ls = color(s["store"]), run_style(s["run"])
                if s["curve"]:
                    xs = [percentile_x(p) for p, _ in s["curve"]]
                    ax.plot(xs, [v for _, v in s["curve"]], color=c, linestyle=ls, linewidth=1.4, label=s["label"])
                    top = max(top, max(xs))
                if s["service"]:
                    xs = [percentile_x(p) for p, _ in s["service"]]
                    ax.plot(xs, [v for _, v in s["service"]], color=c, linestyle="none", marker="o",
                            markersize=3, markerfacecolor="none", alpha=0.9)
                    top = max(top, max(xs))
            ax.set_xscale("log")
            ticks = [(percentile_x(p), lab) for p, lab in PCT_TICKS if percentile_x(p) <= top * 1.01]
            ax.set_xticks([t for t, _ in ticks], [lab for _, lab in ticks])
            ax.xaxis.set_minor_locator(plt.NullLocator())
            ax.set_xlim(1.8, max(top, 2.5) * 1.1)
            _log_latency_axis(ax)
            ax.set_title(op, loc="left")
            if i % cols == 0:
                ax.set_ylabel("latency")
        for j in range(len(panels), rows * cols):
            axes[j // cols][j % cols].set_visible(False)
        handles, labels = axes[0][0].get_legend_handles_labels()
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="#444", marker="o", markerfacecolor="none", linestyle="none"))
        labels.append("service time (from the actual send)")
        height = fig.get_figheight()
        head = 0.32 + 0.2 * math.ceil(len(labels) / 3)  # inches: the title, then the legend's rows
        fig.suptitle(title, y=1.0 - 0.04 / height, va="top", fontsize=10, x=0.02, ha="left")
        fig.legend(handles, labels, loc="upper center", ncol=min(3, len(labels)),
                   bbox_to_anchor=(0.5, 1.0 - 0.3 / height))
        fig.tight_layout(rect=(0, 0, 1, 1 - head / height))
    return to_svg(fig)


def over_time(frame: pd.DataFrame, *, title: str, latency_label: str = "latency from intended start") -> str | None:
    """Latency (p50 solid, p99 dotted) and throughput per second, warm-up (t < 0) shaded.
    ``frame`` columns: label, store, run, t_s, ops, p50_us, p99_us."""
    if frame.empty:
        return None
    fig, axes = _figure(2, 1, width=7.0, height=4.6, sharex=True)
    ax_l, ax_t = axes[0][0], axes[1][0]
    plt = _plt()
    with plt.rc_context(SVG_RC):
        for (label, store, run), g in frame.groupby(["label", "store", "run"], sort=False):
            g = g.sort_values("t_s")
            c, ls = color(str(store)), run_style(int(run))
            x = g["t_s"] + 0.5
            ax_l.plot(x, g["p50_us"], color=c, linestyle=ls, linewidth=1.4, label=f"{label} p50")
            ax_l.plot(x, g["p99_us"], color=c, linestyle=ls, linewidth=0.9, alpha=0.55, marker=".", markersize=3,
                      label=f"{label} p99")
            ax_t.plot(x, g["ops"], color=c, linestyle=ls, linewidth=1.2, label=str(label))
        t_min = float(frame["t_s"].min())
        for ax in (ax_l, ax_t):
            if t_min < 0:
                ax.axvspan(t_min, 0, color="#999", alpha=0.18, linewidth=0)
            ax.axvline(0, color="#999", linewidth=0.6)
        if t_min < 0:
            ax_l.text(t_min + 0.05, 0.97, "warm-up (excluded)", transform=ax_l.get_xaxis_transform(), fontsize=7,
                      color="#555", va="top")
        _log_latency_axis(ax_l)
        ax_l.set_ylabel(latency_label)
        ax_t.set_ylabel("operations / s")
        ax_t.set_xlabel("seconds since the end of warm-up")
        ax_t.set_ylim(bottom=0)
        ax_l.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax_l.set_title(title, loc="left")
        fig.tight_layout()
    return to_svg(fig)


def fault_timelines(panels: Sequence[dict[str, Any]], *, title: str) -> str | None:
    """One small panel per fault case: requests served and requests failed per second (from the
    case's per-bucket counts), the fault window shaded. ``panels``: {"title", "store", "t_s": [...],
    "bucket_s", "served": [...], "errors": [...], "inject_s", "heal_s"}; counts per bucket."""
    panels = [p for p in panels if p["t_s"]]
    if not panels:
        return None
    cols = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / cols)
    fig, axes = _figure(rows, cols, width=7.0, height=1.9 * rows + 0.7, sharex=False)
    plt = _plt()
    with plt.rc_context(SVG_RC):
        for i, p in enumerate(panels):
            ax = axes[i // cols][i % cols]
            per_s = 1.0 / float(p["bucket_s"])
            x = [t + p["bucket_s"] / 2 for t in p["t_s"]]
            ax.axvspan(p["inject_s"], p["heal_s"], color="#d62728", alpha=0.12, linewidth=0)
            ax.plot(x, [v * per_s for v in p["served"]], color=color(p["store"]), linewidth=1.3, label="served / s")
            ax.plot(x, [v * per_s for v in p["errors"]], color="#d62728", linewidth=1.0, linestyle="--",
                    label="failed / s")
            ax.set_ylim(bottom=0)
            ax.set_xlim(0, p["t_s"][-1] + p["bucket_s"])
            ax.set_title(p["title"], loc="left", fontsize=8)
            if i % cols == 0:
                ax.set_ylabel("requests / s")
            if i // cols == rows - 1 or i + cols >= len(panels):
                ax.set_xlabel("seconds into the measured window")
        for j in range(len(panels), rows * cols):
            axes[j // cols][j % cols].set_visible(False)
        from matplotlib.patches import Patch

        handles, labels = axes[0][0].get_legend_handles_labels()
        handles.append(Patch(color="#d62728", alpha=0.12))
        labels.append("the fault (injected → healed)")
        height = fig.get_figheight()
        fig.suptitle(title, y=1.0 - 0.04 / height, va="top", fontsize=10, x=0.02, ha="left")
        fig.legend(handles, labels, loc="upper center", ncol=3, bbox_to_anchor=(0.5, 1.0 - 0.28 / height))
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / height))
    return to_svg(fig)


def ratio_with_ci(rows: list[dict[str, Any]], *, title: str) -> str | None:
    """PostgreSQL ÷ Redis p50 ratio per operation with its 95% interval; the seed's "10x" marked.
    ``rows``: {"op", "other", "label", "run", "ratio", "ci": (lo, hi) | None, "significant"}, and optionally
    "group" (the pair compared: a thin rule separates consecutive rows of different pairs)."""
    rows = [r for r in rows if r.get("ratio")]
    if not rows:
        return None
    grouped = any(r.get("group") is not None for r in rows)  # labels name path and pair: long, so room for them
    fig, axes = _figure(1, 1, width=9.0 if grouped else 7.0, height=0.32 * len(rows) + (1.4 if grouped else 1.2))
    ax = axes[0][0]
    plt = _plt()
    with plt.rc_context(SVG_RC):
        ys = np.arange(len(rows))[::-1]
        for y, r in zip(ys, rows):
            c = color(r["other"])
            lo, hi = r["ci"] if r.get("ci") else (r["ratio"], r["ratio"])
            ax.plot([lo, hi], [y, y], color=c, linewidth=2.2, alpha=0.6, solid_capstyle="butt")
            ax.plot([r["ratio"]], [y], color=c, marker="o" if r["significant"] else "x", markersize=5)
        for y, a, b in zip(ys[1:], rows, rows[1:]):  # a thin rule where the pair (path, baseline) changes
            if a.get("group") is not None and b.get("group") is not None and a["group"] != b["group"]:
                ax.axhline(y + 0.5, color="#bbb", linewidth=0.6)
        ax.axvline(1.0, color="#333", linewidth=0.8)
        ax.axvline(10.0, color="#2ca02c", linewidth=0.8, linestyle="--")
        ax.text(10.0, 1.0, " seed: 10x", color="#2ca02c", fontsize=7, transform=ax.get_xaxis_transform(), va="bottom")
        ax.set_yticks(ys, [r["label"] for r in rows])
        ax.set_xscale("log")
        from matplotlib.ticker import FuncFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, p: f"{v:g}x"))
        ax.set_xlabel("PostgreSQL p50 ÷ Redis p50 (>1: Redis faster)" + ("\n" if grouped else "; ")
                      + "bar: 95% interval; x: not significant")
        ax.grid(axis="y", alpha=0)
        ax.set_title(title, loc="left")
        fig.tight_layout()
    return to_svg(fig)


def sweep(frame: pd.DataFrame, slo_us: float | None, *, title: str) -> str | None:
    """Offered vs achieved load, and p99 vs offered load, per store (driver alone in grey).
    ``frame`` columns: label, store, run, offered, achieved, p99_us, sustained."""
    if frame.empty:
        return None
    fig, axes = _figure(1, 2, width=7.0, height=3.0)
    a1, a2 = axes[0][0], axes[0][1]
    plt = _plt()
    with plt.rc_context(SVG_RC):
        for (label, store, run), g in frame.groupby(["label", "store", "run"], sort=False):
            g = g.sort_values("offered")
            c, ls = color(str(store)), run_style(int(run))
            a1.plot(g["offered"], g["achieved"], color=c, linestyle=ls, marker="o", markersize=3, label=str(label))
            a2.plot(g["offered"], g["p99_us"], color=c, linestyle=ls, marker="o", markersize=3)
            bad = g[~g["sustained"].astype(bool)]
            a2.plot(bad["offered"], bad["p99_us"], color=c, linestyle="none", marker="x", markersize=6)
        top = float(frame["offered"].max())
        a1.plot([0, top], [0, top], color="#bbb", linewidth=0.8, linestyle=":")
        a1.set_xlabel("offered ops/s")
        a1.set_ylabel("achieved ops/s")
        a1.legend(loc="upper left")
        if slo_us:
            a2.axhline(slo_us, color="#d62728", linewidth=0.8, linestyle="--")
            a2.text(0.01, slo_us, " p99 SLO", color="#d62728", fontsize=7, transform=a2.get_yaxis_transform(),
                    va="bottom")
        _log_latency_axis(a2)
        a2.set_xlabel("offered ops/s (x: not sustained)")
        a2.set_ylabel("p99 from intended start")
        fig.suptitle(title, x=0.02, ha="left", fontsize=10)
        fig.tight_layout()
    return to_svg(fig)


def distributions(series: list[dict[str, Any]], *, title: str, unit: str) -> str | None:
    """Summaries of distributions (min, p50, p90, p99, max) as one row each: a line min–max, a thick
    p50–p90 bar and ticks at p99. ``series``: {"label", "store", "dist": {n, min, p50, p90, p99, max}}."""
    series = [s for s in series if s["dist"].get("n")]
    if not series:
        return None
    fig, axes = _figure(1, 1, width=7.0, height=0.38 * len(series) + 1.1)
    ax = axes[0][0]
    plt = _plt()
    with plt.rc_context(SVG_RC):
        ys = np.arange(len(series))[::-1]
        for y, s in zip(ys, series):
            d, c = s["dist"], color(s["store"])
            ax.plot([d["min"], d["max"]], [y, y], color=c, linewidth=0.8)
            ax.plot([d["p50"], d["p90"]], [y, y], color=c, linewidth=5, alpha=0.6, solid_capstyle="butt")
            ax.plot([d["p50"]], [y], color=c, marker="|", markersize=10)
            ax.plot([d["p99"]], [y], color=c, marker="d", markersize=4)
        ax.set_yticks(ys, [s["label"] for s in series])
        ax.set_xlabel(f"{unit}: line min–max, bar p50–p90, ◆ p99")
        ax.grid(axis="y", alpha=0)
        ax.set_title(title, loc="left")
        fig.tight_layout()
    return to_svg(fig)


def lines(frame: pd.DataFrame, *, x: str, y: str, xlabel: str, ylabel: str, title: str, logx: bool = False,
          logy: bool = False, latency_y: bool = False, ylim0: bool = False) -> str | None:
    """A line per (label, store, run). ``frame`` columns: label, store, run, x, y."""
    frame = frame.dropna(subset=[x, y])
    if frame.empty:
        return None
    fig, axes = _figure(1, 1, width=7.0, height=3.0)
    ax = axes[0][0]
    plt = _plt()
    with plt.rc_context(SVG_RC):
        for (label, store, run), g in frame.groupby(["label", "store", "run"], sort=False):
            g = g.sort_values(x)
            ax.plot(g[x], g[y], color=color(str(store)), linestyle=run_style(int(run)), marker="o", markersize=3,
                    label=str(label))
        if logx:
            ax.set_xscale("log")
        if latency_y:
            _log_latency_axis(ax)
        elif logy:
            ax.set_yscale("log")
        if ylim0:
            ax.set_ylim(bottom=0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(loc="best")
        ax.set_title(title, loc="left")
        fig.tight_layout()
    return to_svg(fig)


def bars(labels: Sequence[str], groups: dict[str, Sequence[float]], *, title: str, ylabel: str) -> str | None:
    """Grouped bars: one group per label, one bar per key of ``groups``."""
    if not labels or not groups:
        return None
    fig, axes = _figure(1, 1, width=7.0, height=2.8)
    ax = axes[0][0]
    plt = _plt()
    with plt.rc_context(SVG_RC):
        n = len(groups)
        width = 0.8 / n
        xs = np.arange(len(labels))
        for i, (name, vals) in enumerate(groups.items()):
            ax.bar(xs + (i - (n - 1) / 2) * width, list(vals), width, label=name,
                   color=EXTRA_COLORS[i % len(EXTRA_COLORS)])
        ax.set_xticks(xs, list(labels))
        ax.set_ylabel(ylabel)
        ax.legend(loc="best")
        ax.grid(axis="x", alpha=0)
        ax.set_title(title, loc="left")
        fig.tight_layout()
    return to_svg(fig)


def curve_points(counts: np.ndarray, values: np.ndarray, max_x: float = 1e4) -> list[tuple[float, float]]:
    """(percentile, value) along the HdrHistogram percentile axis, from p50 up to what the sample count supports."""
    total = int(counts.sum())
    if total == 0:
        return []
    top = min(max_x, float(total))
    xs = np.unique(np.concatenate([np.geomspace(2.0, max(2.0, top), 60), [2.0, 10.0, 100.0, 1000.0, 10000.0]]))
    xs = xs[xs <= max(2.0, top)]
    cum = np.cumsum(counts)
    out = []
    for xv in xs:
        p = 100.0 * (1.0 - 1.0 / xv)
        rank = max(1, math.ceil(p / 100.0 * total - 1e-9))
        idx = int(np.searchsorted(cum, rank))
        out.append((round(p, 6), float(values[min(idx, values.size - 1)])))
    return out


def frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame.from_records(list(records))
