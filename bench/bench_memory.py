"""Peak memory of the pair job on a large scene: it must not grow with the scene's area.

    python -m bench.bench_memory --size 10000 --engine farneback

Writes a size x size uint16 pair strip by strip (a periodic band-limited
texture; image B is the same pixels with its geotransform shifted by a known
sub-pixel offset, so the truth is a uniform displacement and B is warped on
the fly), runs the job, and reports peak resident memory against one
whole-scene float32 array and against the process before the job.
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from glacierflow.core.geo.grid import Grid
from glacierflow.core.velocity.pair import PairJob, run_pair_job

from .render import read_product

SHIFT_PX = (2.5, -1.25)  # true displacement of B relative to A: (columns, rows)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _texture(period: int = 1024, seed: int = 3) -> np.ndarray:
    # Gaussian smoothing in the Fourier domain keeps the texture periodic, so tiled copies join seamlessly.
    noise = np.random.default_rng(seed).normal(size=(period, period))
    k = np.fft.fftfreq(period) * 2 * np.pi
    gain = np.exp(-0.5 * 1.5 ** 2 * (k[:, None] ** 2 + k[None, :] ** 2))
    smooth = np.fft.ifft2(np.fft.fft2(noise) * gain).real
    return (20000 + 4000 * smooth / smooth.std()).clip(1, 65535).astype(np.uint16)


def write_pair(folder: Path, size: int, pixel: float = 10.0) -> tuple:
    """Two GeoTIFFs of ``size`` px a side written strip by strip; returns their paths."""
    from osgeo import gdal, osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32632)
    texture = _texture()
    paths = []
    for name, (sx, sy) in (("a", (0.0, 0.0)), ("b", SHIFT_PX)):
        grid = Grid(srs.ExportToWkt(), (300000.0 + sx * pixel, pixel, 0.0, 5100000.0 - sy * pixel, 0.0, -pixel),
                    size, size)
        path = str(folder / f"big_{name}.tif")
        dataset = gdal.GetDriverByName("GTiff").Create(path, size, size, 1, gdal.GDT_UInt16,
                                                       options=["TILED=YES", "COMPRESS=DEFLATE", "BIGTIFF=YES"])
        dataset.SetGeoTransform(grid.transform)
        dataset.SetProjection(grid.crs_wkt)
        when = "2021-08-01T10:00:00Z" if name == "a" else "2021-09-01T10:00:00Z"
        dataset.SetMetadataItem("ACQUISITION_DATETIME", when)
        band = dataset.GetRasterBand(1)
        band.SetNoDataValue(0)
        reps = -(-size // texture.shape[1])
        for top in range(0, size, 1024):
            rows = min(1024, size - top)
            band.WriteArray(np.tile(texture[:rows], (1, reps))[:, :size], 0, top)
        dataset = None
        paths.append(path)
    return tuple(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10000, help="scene side, px")
    parser.add_argument("--engine", default="farneback")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        image_a, image_b = write_pair(folder, args.size)
        before = _peak_rss_mb()
        started = time.perf_counter()
        run_pair_job(PairJob(image_a, image_b, str(folder / "velocity.tif"), engine=args.engine))
        seconds = time.perf_counter() - started
        peak = _peak_rss_mb()
        product = read_product(str(folder / "velocity.tif")) if args.size <= 4000 else None
    scene_mb = args.size * args.size * 4 / 2**20
    print(f"scene {args.size} x {args.size} px, engine {args.engine}: {seconds:.0f} s, "
          f"{seconds / (args.size ** 2 / 1e6):.2f} s/megapixel")
    print(f"peak RSS {peak:.0f} MB (before the job {before:.0f} MB); one whole-scene float32 array is "
          f"{scene_mb:.0f} MB: peak / array = {peak / scene_mb:.2f}, "
          f"job growth / array = {(peak - before) / scene_mb:.2f}")
    if product is not None:
        print(f"median vx {np.nanmedian(product['vx']):.2f} m/yr (truth {SHIFT_PX[0] * 10 * 365.25 / 31:.2f})")


if __name__ == "__main__":
    main()
