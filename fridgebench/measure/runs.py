"""Find and load finished runs: one run directory, or a folder of them (``compare --repeat``'s group).

Reports and the gate read runs only through here, so every reader refuses the same things in
the same words: a path that does not exist, a run that did not finish (``INCOMPLETE``), a
results file of a newer format, a folder with no runs in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fridgebench.errors import UsageError
from fridgebench.measure.hlog import IntervalCounts, read_hlog
from fridgebench.measure.results import INCOMPLETE_MARKER, RESULTS_FILE, ResultsDocument, load_results


@dataclass
class Run:
    """A finished run: its folder, its results document, and (lazily) its interval logs."""

    path: Path
    doc: ResultsDocument
    _hlogs: dict[tuple[str, str], IntervalCounts | None] = field(default_factory=dict, repr=False)

    @property
    def run_id(self) -> str:
        return self.doc.run_id

    @property
    def label(self) -> str:
        g = self.doc.group
        return f"{self.doc.run_id} (repeat {g.index + 1}/{g.count})" if g else self.doc.run_id

    def hlog(self, store: str, op: str) -> IntervalCounts | None:
        """Per-second latency counts of one store and operation, or None when the run has no such log."""
        key = (store, op)
        if key not in self._hlogs:
            p = self.path / f"{store}.{op}.hlog"
            self._hlogs[key] = read_hlog(p) if p.is_file() else None
        return self._hlogs[key]


def _is_run(path: Path) -> bool:
    return (path / RESULTS_FILE).is_file() or (path / INCOMPLETE_MARKER).exists()


def load_run(path: Path | str) -> Run:
    p = Path(path)
    if p.is_file() and p.name == RESULTS_FILE:
        p = p.parent
    if not p.exists():
        raise UsageError(f"no run at {p}", hint="pass a run folder (reports/<run-id>) or a folder of runs")
    return Run(p, load_results(p))


def load_runs(path: Path | str) -> list[Run]:
    """One run directory -> [run]; a folder of run directories (a repeat group), or a folder of such
    folders, -> its runs, oldest first."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"no run at {p}", hint="pass a run folder (reports/<run-id>) or a folder of runs")
    if p.is_file() or _is_run(p):
        return [load_run(p)]
    if not p.is_dir():
        raise UsageError(f"{p} is neither a run folder nor a folder of runs")
    subdirs = sorted(d for d in p.iterdir() if d.is_dir() and _is_run(d))
    if not subdirs:  # a folder holding repeat groups (e.g. CI's `--out baseline`): their runs
        subdirs = sorted(d for g in p.iterdir() if g.is_dir() for d in g.iterdir() if d.is_dir() and _is_run(d))
    if not subdirs:
        raise UsageError(f"{p} holds no runs (no results.json in it or in its subfolders)",
                         hint="point at a run folder under reports/, or at the folder compare --repeat wrote")
    runs = [load_run(d) for d in subdirs]  # an unfinished one among them refuses the whole folder
    runs.sort(key=lambda r: (r.doc.started_at, r.doc.group.index if r.doc.group else 0))
    return runs
