"""Cohorts: many registrations and classifications from one manifest, on Dask, resumable.

`run_batch(manifest, output)` (or `python -m dlreg batch MANIFEST --output DIR`) runs every
row of a CSV manifest on a local Dask cluster or an existing one, writes each job's outputs
atomically under OUTPUT/jobs/ID, skips jobs finished by an earlier run with the same row and
options, and writes OUTPUT/results.csv, OUTPUT/results.jsonl and the QC page OUTPUT/report.html.
Modules: manifest (CSV -> jobs with the pipelines' options), jobs (job identity), execute (one
job on a worker), outputs (atomic files), driver (Dask), results, report, thumbnails, progress.
"""

from dlreg.lazy import lazy_exports

__getattr__ = lazy_exports(__name__, {"run_batch": "api", "BatchSummary": "api", "read_manifest": "manifest"})
__all__ = ["run_batch", "BatchSummary", "read_manifest"]
