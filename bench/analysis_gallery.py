"""Pictures of the analysis tools for the README, made from the built-in sample (no network)::

    QT_QPA_PLATFORM=offscreen python -m bench.analysis_gallery docs/analysis

Computes the sample pair with Farneback, then writes into the folder: the HTML report's speed map with
arrows and its stable-ground scatter, the CF netCDF rendered by QGIS as a mesh with its vector arrows,
the arrows GeoPackage with its saved style, the effective strain rate, a centreline profile, a time
series over a synthetic stack, and the flux-gate table (flux_gate.md), the forecast report's panels;
also report.html itself.
"""
from __future__ import annotations

import argparse
import base64
import os
import re
import tempfile
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np


def decode_figure(html_image: str, path: str) -> str:
    """Write the PNG embedded in an ``<img>`` tag to ``path``."""
    data = re.search(r'base64,([A-Za-z0-9+/=]+)"', html_image).group(1)
    with open(path, "wb") as handle:
        handle.write(base64.b64decode(data))
    return path


def ridge(speed: np.ndarray, rows: range) -> list[tuple[int, int]]:
    """(row, col) of the fastest pixel of each row in ``rows``: a centreline."""
    return [(row, int(np.nanargmax(np.nan_to_num(speed[row], nan=-1.0)))) for row in rows]


_APP: list = []  # the one QgsApplication of this process, alive until the process ends


def qgis_app() -> object:
    """Start QGIS once (headless) and keep it alive: a collected QgsApplication crashes the next render."""
    if not _APP:
        from qgis.core import QgsApplication

        _APP.append(QgsApplication([], False))
        _APP[0].initQgis()
    return _APP[0]


def render_layer(layer: Any, extent: Any, output: str) -> str:
    """``layer`` drawn by QGIS over ``extent`` (its CRS) on a dark background, 600 x 600 px, to ``output``."""
    from qgis.core import QgsMapRendererParallelJob, QgsMapSettings
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    map_settings = QgsMapSettings()
    map_settings.setLayers([layer])
    map_settings.setDestinationCrs(layer.crs())
    map_settings.setExtent(extent)
    map_settings.setOutputSize(QSize(600, 600))
    map_settings.setBackgroundColor(QColor(30, 30, 30))
    job = QgsMapRendererParallelJob(map_settings)
    job.start()
    job.waitForFinished()
    job.renderedImage().save(output, "PNG")
    return output


def render_mesh(netcdf: str, output: str) -> str:
    """The netCDF opened by QGIS as a mesh layer: speed as colour, velocity as QGIS's own mesh arrows."""
    from qgis.core import (
        QgsColorRampShader,
        QgsMeshLayer,
        QgsMeshRendererVectorArrowSettings,
        QgsMeshRendererVectorSettings,
        QgsStyle,
    )
    from qgis.PyQt.QtGui import QColor

    qgis_app()
    layer = QgsMeshLayer(netcdf, "velocity", "mdal")
    provider = layer.dataProvider()
    groups = {provider.datasetGroupMetadata(i).name(): i for i in range(provider.datasetGroupCount())}
    vector = groups["ice surface velocity"]
    settings = layer.rendererSettings()
    settings.setActiveScalarDatasetGroup(vector)
    scalar = settings.scalarSettings(vector)
    shader = QgsColorRampShader(0.0, 50.0)
    shader.setSourceColorRamp(QgsStyle.defaultStyle().colorRamp("Viridis"))
    shader.classifyColorRamp(8, -1)
    scalar.setColorRampShader(shader)
    scalar.setClassificationMinimumMaximum(0.0, 50.0)
    settings.setScalarSettings(vector, scalar)
    settings.setActiveVectorDatasetGroup(vector)
    arrows = settings.vectorSettings(vector)
    arrows.setSymbology(QgsMeshRendererVectorSettings.Symbology.Arrows)
    arrows.setOnUserDefinedGrid(True)  # one arrow per 22 screen px, not per vertex
    arrows.setUserGridCellWidth(22)
    arrows.setUserGridCellHeight(22)
    arrows.setColor(QColor(255, 255, 255))
    arrows.setLineWidth(0.4)
    arrows.setFilterMin(8.0)  # m/yr: no arrows on still rock
    arrow_settings = arrows.arrowSettings()
    arrow_settings.setShaftLengthMethod(QgsMeshRendererVectorArrowSettings.ArrowScalingMethod.Scaled)
    arrow_settings.setScaleFactor(0.35)
    arrows.setArrowsSettings(arrow_settings)
    settings.setVectorSettings(vector, arrows)
    layer.setRendererSettings(settings)
    return render_layer(layer, layer.extent(), output)


def forecast_panels(work: str, folder: str) -> str:
    """The forecast report's panels for the built-in NDSI sample (U-net), as forecast_ndsi writes them."""
    from glacierflow.core.analysis.report import forecast_report
    from glacierflow.core.forecast.jobs import ForecastJob, NdsiSeriesJob, run_forecast_job, run_ndsi_series_job
    from glacierflow.core.imagery.local import LocalFolderSource
    from training.forecast.generator import write_sample_scenes

    scenes = os.path.join(work, "ndsi")
    write_sample_scenes(scenes, (160, 160), 5)
    series = os.path.join(work, "series.tif")
    run_ndsi_series_job(NdsiSeriesJob(series, LocalFolderSource(scenes)))
    result = run_forecast_job(ForecastJob(series, "unet", os.path.join(work, "forecast.tif")))
    page = forecast_report(result.output, os.path.join(work, "forecast.html"), series, result.hindcast)
    image = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,[^"]+">', open(page, encoding="utf-8").read())
    return decode_figure(image[0], os.path.join(folder, "report_forecast.png"))


def render_arrows(gpkg: str, output: str) -> str:
    """The arrows GeoPackage of ``glacierflow:velocity_arrows`` as QGIS draws it: its saved default style
    (rotated by direction, sized and coloured by speed), on a dark background."""
    from qgis.core import QgsVectorLayer

    from glacierflow.processing.velocity_arrows import save_arrow_style

    qgis_app()
    save_arrow_style(gpkg, coloured=True)
    layer = QgsVectorLayer(gpkg, "flow arrows", "ogr")  # loads the default style saved in the GeoPackage
    return render_layer(layer, layer.extent().buffered(layer.extent().width() * 0.05), output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    folder = os.path.abspath(parser.parse_args().folder)
    os.makedirs(folder, exist_ok=True)

    from glacierflow.core.analysis import export, fluxgate, profile, report, strain, timeseries
    from glacierflow.core.analysis.figures import new_figure, save_png
    from glacierflow.core.analysis.lines import Line
    from glacierflow.core.geo.crs import transform_points, wgs84_wkt
    from glacierflow.core.io.cog import ProductWriter
    from glacierflow.core.products.velocity import PAIR_BANDS, open_velocity
    from glacierflow.core.velocity.pair import PairJob, run_pair_job
    from training.sample import write_sample

    work = tempfile.mkdtemp(prefix="gallery_")
    sample = write_sample(os.path.join(work, "sample"))
    pair = run_pair_job(PairJob(sample.image_a, sample.image_b, os.path.join(work, "pair.tif"),
                                outlines=sample.outlines, engine="farneback")).output
    product = open_velocity(pair)
    grid = product.grid
    speed = np.hypot(product.read("vx"), product.read("vy"))

    page = os.path.join(folder, "report.html")
    report.velocity_report(pair, page, report.VelocityReportInputs(glacier_outlines=sample.outlines),
                           "GlacierFlow sample glacier")
    html_text = open(page, encoding="utf-8").read()
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,[^"]+">', html_text)
    decode_figure(images[0], os.path.join(folder, "report_speed_arrows.png"))
    decode_figure(images[2], os.path.join(folder, "report_stable_ground.png"))

    netcdf = export.export_netcdf(pair, os.path.join(work, "velocity.nc"))
    render_mesh(netcdf, os.path.join(folder, "mesh_arrows.png"))
    gpkg, _ = export.export_arrows(pair, os.path.join(work, "arrows.gpkg"))
    render_arrows(gpkg, os.path.join(folder, "arrows_gpkg.png"))

    strain_path, rates = strain.write_strain_rates(pair, os.path.join(work, "strain.tif"), 60.0)
    figure = new_figure(6.0, 5.0)
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(rates.effective, cmap="viridis", vmin=0, vmax=float(np.nanpercentile(rates.effective, 98)))
    figure.colorbar(image, ax=axes, label="Effective strain rate (1/yr)", shrink=0.8)
    axes.set_xticks([])
    axes.set_yticks([])
    save_png(figure, os.path.join(folder, "strain_effective.png"))

    points = ridge(speed, range(490, 140, -50))  # from the terminus up, against the flow: along < 0
    centreline = Line("centreline", np.array([grid.pixel_to_map(c + 0.5, r + 0.5) for r, c in points]), grid.crs_wkt)
    profile.write_profile_png(os.path.join(folder, "profile.png"),
                              profile.velocity_profiles(pair, [centreline], 20.0))

    row, col = ridge(speed, range(367, 368))[0]
    x, y = grid.pixel_to_map(col + 0.5, row + 0.5)
    vx, vy = product.read("vx")[row, col], product.read("vy")[row, col]
    across = np.array([-vy, vx]) / np.hypot(vx, vy)  # perpendicular to the flow
    ends = [(x - 900 * across[0], y - 900 * across[1]), (x + 900 * across[0], y + 900 * across[1])]
    gate = Line("gate", np.array(ends), grid.crs_wkt)
    (flux,) = fluxgate.flux_gates(pair, [gate], fluxgate.Thickness(constant=150.0, uncertainty_fraction=0.1),
                                  velocity_uncertainty=2.0)
    with open(os.path.join(folder, "flux_gate.md"), "w", encoding="utf-8") as handle:
        handle.write("| gate | covered | flux (km3/yr) | ± (km3/yr) | flux (Gt/yr) | ± (Gt/yr) |\n"
                     "|---|---|---|---|---|---|\n")
        handle.write(f"| gate | {100 * flux.covered_fraction:.0f} % | {flux.total / 1e9:.2e} | "
                     f"{flux.uncertainty / 1e9:.1e} | {flux.gigatonnes(flux.total):.2e} | "
                     f"{flux.gigatonnes(flux.uncertainty):.1e} |\n")

    truth_vx = product.read("vx")
    truth_vy = product.read("vy")
    series_folder = os.path.join(work, "series")
    os.makedirs(series_folder)
    start = datetime(2021, 4, 1, tzinfo=timezone.utc)
    rng = np.random.default_rng(1)
    for index in range(10):
        first = start + timedelta(days=20 * index)
        days = float(rng.choice([12, 24, 36]))
        factor = 1.0 + 0.4 * np.sin(2 * np.pi * index / 10)  # a summer speed-up
        with ProductWriter(os.path.join(series_folder, f"pair_{index:02d}.tif"), grid, PAIR_BANDS) as writer:
            fvx, fvy = truth_vx * factor, truth_vy * factor
            writer.write_rows(0, {"vx": fvx, "vy": fvy, "speed": np.hypot(fvx, fvy),
                                  "valid": np.isfinite(fvx).astype(np.float32)})
            writer.finish({"ACQUISITION_A": f"{first:%Y-%m-%dT%H:%M:%SZ}",
                           "ACQUISITION_B": f"{first + timedelta(days=days):%Y-%m-%dT%H:%M:%SZ}",
                           "INTERVAL_DAYS": f"{days}", "GLACIERFLOW_PRODUCT": "velocity_pair"})
    stakes = [timeseries.SeriesPoint(name, *grid.pixel_to_map(c + 0.5, r + 0.5))
              for name, (r, c) in (("upper", points[3]), ("lower", points[-3]))]
    lonlat = transform_points([(p.x, p.y) for p in stakes], grid.crs_wkt, wgs84_wkt())
    stakes = [timeseries.SeriesPoint(p.name, lon, lat) for p, (lon, lat) in zip(stakes, lonlat)]
    values = timeseries.velocity_time_series([series_folder], stakes, wgs84_wkt())
    timeseries.write_series_png(os.path.join(folder, "time_series.png"), values)
    forecast_panels(work, folder)
    print(f"Gallery written to {folder}; the netCDF and products are in {work}; strain {strain_path}")


if __name__ == "__main__":
    main()
