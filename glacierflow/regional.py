"""Regional velocity from the command line, without QGIS (an HPC login node, a cloud VM):

    python -m glacierflow.regional --outlines rgi.gpkg --folder scenes --output region \\
        [--rule interval --min-days 5 --max-days 40] [--year-a 2021] [--months 6-10] \\
        [--scheduler tcp://host:8786 | --workers 4 --memory-per-worker 4GB]

The same job as ``glacierflow:regional_velocity`` and :func:`glacierflow.core.workflows.regional.run_regional_job`.
Exit status: 0 when every glacier is complete, 1 when some are not (see ``index.gpkg``), 2 on bad input.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def parser() -> argparse.ArgumentParser:
    """The command line's options (units in the help)."""
    from .core.imagery import RULES

    p = argparse.ArgumentParser(prog="python -m glacierflow.regional", description=__doc__.splitlines()[0])
    p.add_argument("--outlines", required=True, help="glacier polygons (RGI shapefile, GeoPackage, GeoJSON)")
    p.add_argument("--output", required=True, help="output folder: one folder per glacier and index.gpkg")
    p.add_argument("--folder", default="", help="folder of dated GeoTIFFs (the local_folder source)")
    p.add_argument("--source", default="local_folder", help="imagery source name (default local_folder)")
    p.add_argument("--source-url", default="", help="STAC API or Earth Engine URL other than the default")
    p.add_argument("--year-a", type=int, default=None, help="first season's year (the year it ends in)")
    p.add_argument("--year-b", type=int, default=None, help="second (cross_year) or last season's year")
    p.add_argument("--months", default="auto", help="season months, e.g. 6-10 or 11-3; auto: by hemisphere")
    p.add_argument("--rule", default="cross_year", choices=RULES, help="pairing rule")
    p.add_argument("--min-days", type=float, default=5.0, help="minimum pair interval (days)")
    p.add_argument("--max-days", type=float, default=40.0, help="maximum pair interval (days)")
    p.add_argument("--max-pairs-per-scene", type=int, default=10, help="cap on pairs per scene (0: none)")
    p.add_argument("--max-cloud", type=float, default=None, help="largest scene cloud cover (%%)")
    p.add_argument("--engine", default="hybrid", help="optical-flow engine (hybrid: the most accurate on real texture)")
    p.add_argument("--id-field", default="", help="field naming each glacier (default: RGIId or the like)")
    p.add_argument("--group-distance", type=float, default=5000.0, help="glaciers this close share scenes (m)")
    p.add_argument("--min-area", type=float, default=0.0, help="leave out glaciers smaller than this (km2)")
    p.add_argument("--scheduler", default="", help="Dask scheduler address; empty: a local cluster")
    p.add_argument("--workers", type=int, default=2, help="local cluster worker processes (0: no Dask)")
    p.add_argument("--memory-per-worker", default="4GB", help="local cluster memory limit per worker")
    p.add_argument("--retries", type=int, default=2, help="extra tries for a task that raised")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job with a log on stderr; see the module docstring for the exit status."""
    from .core.errors import GlacierFlowError
    from .core.feedback import Feedback
    from .core.workflows.regional import RegionalJob, run_regional_job

    class PrintFeedback(Feedback):
        def info(self, message: str) -> None:
            print(message, file=sys.stderr, flush=True)

        def warning(self, message: str) -> None:
            print(f"Warning: {message}", file=sys.stderr, flush=True)

    args = parser().parse_args(argv)
    job = RegionalJob(
        outlines=args.outlines, output=args.output, folder=args.folder, source=args.source,
        source_settings={"url": args.source_url}, year_a=args.year_a, year_b=args.year_b, months=args.months,
        rule=args.rule, min_days=args.min_days, max_days=args.max_days,
        max_pairs_per_scene=args.max_pairs_per_scene, max_cloud=args.max_cloud, engine=args.engine,
        id_field=args.id_field, group_distance_m=args.group_distance, min_area_km2=args.min_area,
        scheduler=args.scheduler, workers=args.workers, memory_per_worker=args.memory_per_worker,
        retries=args.retries)
    try:
        result = run_regional_job(job, PrintFeedback())
    except GlacierFlowError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    print(result.index)
    return 0 if all(row.get("status") == "complete" for row in result.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
