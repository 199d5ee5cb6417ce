"""The QC report: OUTPUT/report.html, a static page that opens offline in any browser.

A summary table per task, a histogram of the predicted uncertainties per task (SVG files),
then one table per task with one row per job, worst first: failed jobs, then jobs flagged
"likely failed", then the rest by decreasing predicted uncertainty. Registration rows show
the job's thumbnails (fixed and registered moving overlaid in three planes, and the
uncertainty map); classification rows show the image. No script, no external resource:
every link is a relative path inside OUTPUT.
"""

from __future__ import annotations

import html
import statistics
from pathlib import Path
from typing import Iterable

from dlreg import __version__
from dlreg.batch import thumbnails
from dlreg.batch.jobs import TASK_OPTIONS
from dlreg.imaging.outputs import write_text

REPORT_NAME = "report.html"
ASSETS = "report_files"
HISTOGRAM_BINS = 12
STATUS_ORDER = {"failed": 0, "pending": 1, "done": 2}
UNCERTAINTY_MEANING = {
    "register3d": "spread of the perturbed predictions at the head box corners (mm); the map is an upper bound "
                  f"of the displacement spread per voxel, colour scale 0-{thumbnails.SCALE_3D_MM:g} mm",
    "register2d": "predicted grid error (px, mean standard deviation of the uncertainty runs); the map is the "
                  f"per-pixel standard deviation, colour scale 0-{thumbnails.SCALE_2D_PX:g} px",
    "classify": "1 - calibrated confidence of the predicted class",
}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; font-size: 14px; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.failed { background: #fde2e2; } .flagged { background: #fff4d6; } .pending { background: #eee; }
td.result { min-width: 14em; max-width: 20em; overflow-wrap: break-word; }
img.thumb { display: block; height: 110px; margin: 2px 0; }
figure { display: inline-block; width: 360px; margin: 0 1.5em 1em 0; vertical-align: top; font-size: 13px; }
p.legend { max-width: 60em; }
"""


def sort_worst_first(records: Iterable[dict]) -> list[dict]:
    """Failed, then pending, then done; among those, flagged first, then by decreasing uncertainty."""
    return sorted(records, key=lambda r: (STATUS_ORDER.get(r.get("status"), 1), not r.get("likely_failed"),
                                          -(r.get("uncertainty") or 0.0), r["id"]))


def write_report(output: str | Path, records: list[dict], manifest: str) -> Path:
    """Write report.html and its histograms; return the report's path."""
    output = Path(output)
    tasks = [t for t in TASK_OPTIONS if any(r["task"] == t for r in records)]
    parts = [f"<h1>Batch QC report</h1><p>Manifest <code>{_e(manifest)}</code>: {len(records)} jobs. "
             f"Made by dlreg {_e(__version__)}. Rows are sorted worst first; thumbnails show fixed (green) and "
             "registered moving (magenta) overlaid, grey where they agree.</p>",
             "<h2>Summary</h2>", summary_table(records, tasks), "<h2>Predicted uncertainty</h2>"]
    for task in tasks:
        values = [r["uncertainty"] for r in records if r["task"] == task and r.get("uncertainty") is not None]
        name = f"{ASSETS}/uncertainty_{task}.svg"
        write_text(output / name, histogram_svg(values, f"{task}: {_unit(records, task)}"))
        parts.append(f'<figure><img src="{name}" alt="histogram of the {task} uncertainties" width="360" '
                     f'height="220"><figcaption>{task}: {_e(UNCERTAINTY_MEANING[task])}</figcaption></figure>')
    for task in tasks:
        rows = sort_worst_first(r for r in records if r["task"] == task)
        parts += [f"<h2>{task}: {len(rows)} jobs, worst first</h2>", job_table(rows, task)]
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>dlreg batch QC report"
            f"</title><style>{STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
    return write_text(output / REPORT_NAME, page)


def summary_table(records: list[dict], tasks: list[str]) -> str:
    """Counts by status, flagged jobs, and uncertainty and time figures per task."""
    head = ("<tr><th>task</th><th>jobs</th><th>done</th><th>failed</th><th>not run</th><th>likely failed</th>"
            "<th>median uncertainty</th><th>max uncertainty</th><th>median seconds</th></tr>")
    rows = [head]
    for task in tasks:
        mine = [r for r in records if r["task"] == task]
        done = [r for r in mine if r["status"] == "done"]
        values = [r["uncertainty"] for r in done if r.get("uncertainty") is not None]
        seconds = [r["seconds"] for r in done if r.get("seconds") is not None]
        cells = [task, len(mine), len(done), sum(r["status"] == "failed" for r in mine),
                 sum(r["status"] == "pending" for r in mine), sum(bool(r.get("likely_failed")) for r in done),
                 _number(statistics.median(values)) if values else "", _number(max(values)) if values else "",
                 _number(statistics.median(seconds)) if seconds else ""]
        rows.append("<tr>" + "".join(f"<td>{_e(str(c))}</td>" for c in cells) + "</tr>")
    return "<table class=\"summary\">" + "".join(rows) + "</table>"


def job_table(rows: list[dict], task: str) -> str:
    """One row per job: rank, id, status, figures, reasons and thumbnails."""
    pictures = ("image_png",) if task == "classify" else ("overlay_png", "uncertainty_png")
    title = "image" if task == "classify" else "overlay (axial, coronal, sagittal) and uncertainty map"
    head = ("<tr><th>#</th><th>id</th><th>status</th><th>uncertainty</th><th>result</th>"
            f"<th>{title}</th><th>seconds</th><th>worker</th></tr>")
    body = [head]
    for rank, r in enumerate(rows, 1):
        files = r.get("files") or {}
        cls = {"failed": "failed", "pending": "pending"}.get(r["status"], "flagged" if r.get("likely_failed") else "")
        thumbs = "<td>" + "".join(f'<img class="thumb" src="{_e(files[p])}" alt="{p[:-4]} of {_e(r["id"])}">'
                                  for p in pictures if p in files) + "</td>"
        body.append(f'<tr class="{cls}"><td class="num">{rank}</td><td>{_e(r["id"])}</td><td>{_e(r["status"])}</td>'
                    f'<td class="num">{_number(r.get("uncertainty"))}</td><td class="result">{_outcome(r)}</td>{thumbs}'
                    f'<td class="num">{_number(r.get("seconds"))}</td><td>{_e(r.get("worker") or "")}</td></tr>')
    return "<table>" + "".join(body) + "</table>"


def histogram_svg(values: list[float], title: str, width: int = 360, height: int = 220) -> str:
    """A bar histogram of `values` as a standalone SVG document."""
    left, bottom, top = 40, 30, 24
    high = max(values) if values else 1.0
    high = high if high > 0 else 1.0
    counts = [0] * HISTOGRAM_BINS
    for v in values:
        counts[min(int(v / high * HISTOGRAM_BINS), HISTOGRAM_BINS - 1)] += 1
    tallest = max(counts) or 1
    bar_w = (width - left - 10) / HISTOGRAM_BINS
    plot_h = height - bottom - top
    bars = "".join(
        f'<rect x="{left + i * bar_w:.1f}" y="{top + plot_h * (1 - c / tallest):.1f}" width="{bar_w - 1:.1f}" '
        f'height="{plot_h * c / tallest:.1f}" fill="#4a78b5"/>' for i, c in enumerate(counts))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">'
            f'<rect width="{width}" height="{height}" fill="white"/>'
            f'<text x="{left}" y="14">{_e(title)} ({len(values)} jobs)</text>{bars}'
            f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" stroke="#333"/>'
            f'<text x="{left}" y="{height - 10}">0</text>'
            f'<text x="{width - 10}" y="{height - 10}" text-anchor="end">{_number(high)}</text>'
            f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{tallest}</text></svg>\n')


def _outcome(r: dict) -> str:
    if r["status"] != "done":
        return _e(r.get("reason") or "not run")
    parts = []
    if r.get("predicted_class"):
        parts.append(f"<b>{_e(r['predicted_class'])}</b> (confidence {_number(r.get('confidence'))})")
    if r.get("note"):
        parts.append(_e(r["note"]))
    if r.get("swapped"):
        parts.append("fixed and moving swapped by the modality classifier")
    if r.get("likely_failed"):
        parts.append("<b>likely failed</b>: " + _e("; ".join(r.get("failure_reasons") or [])))
    elif r["task"] != "classify":
        parts.append("ok")
    return "<br>".join(parts)


def _unit(records: list[dict], task: str) -> str:
    return next((r["uncertainty_unit"] for r in records if r["task"] == task and r.get("uncertainty_unit")), "")


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
