"""QGIS layer styles (.qml text) for GlacierFlow products; plain XML, no qgis import.

A ``.qml`` beside a raster with the same base name is QGIS's default style
for it, so the product renders styled however it is loaded.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

from .atomic import write_text

# Perceptually uniform ramp (viridis), sampled at 9 stops: readable in grey and by colour-blind users.
VIRIDIS: tuple[str, ...] = ("#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c",
                            "#28ae80", "#5ec962", "#addc30", "#fde725")


def nice_maximum(value: float) -> float:
    """Round ``value`` (m/yr) up to 1, 2, 2.5 or 5 times a power of ten, for a legend."""
    if value <= 0:
        return 1.0
    from math import floor, log10

    power = 10 ** floor(log10(value))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= factor * power:
            return factor * power
    return 10.0 * power


def _stops(maximum: float, colours: Sequence[str]) -> list[tuple[float, str]]:
    n = len(colours) - 1
    return [(maximum * i / n, colour) for i, colour in enumerate(colours)]


def speed_style_qml(maximum: float, band: int = 3, unit: str = "m/yr") -> str:
    """A pseudocolour style for the speed band, 0..``maximum`` (m/yr), legend labels with units."""
    stops = [(value, colour, f"{value:.4g} {unit}") for value, colour in _stops(maximum, VIRIDIS)]
    return pseudocolor_qml(band, stops, suffix=f" {unit}", decimals=0)


def pseudocolor_qml(band: int, stops: Sequence[tuple[float, str, str]], suffix: str = "", decimals: int = 1) -> str:
    """QGIS .qml text: an interpolated single-band pseudocolour ramp through ``stops`` (value, #rrggbb, label),
    from the first stop's value to the last's, with a continuous legend."""
    minimum, maximum = stops[0][0], stops[-1][0]
    items = "\n".join(f'            <item alpha="255" value="{value:.6g}" label="{label}" color="{colour}"/>'
                      for value, colour, label in stops)
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22.0" styleCategories="AllStyleCategories">
  <pipe>
    <rasterrenderer type="singlebandpseudocolor" band="{band}" opacity="1" alphaBand="-1"
                    classificationMin="{minimum:.6g}" classificationMax="{maximum:.6g}" nodataColor="">
      <rasterTransparency/>
      <minMaxOrigin>
        <limits>None</limits>
        <extent>WholeRaster</extent>
        <statAccuracy>Estimated</statAccuracy>
        <cumulativeCutLower>0.02</cumulativeCutLower>
        <cumulativeCutUpper>0.98</cumulativeCutUpper>
        <stdDevFactor>2</stdDevFactor>
      </minMaxOrigin>
      <rastershader>
        <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0"
                         minimumValue="{minimum:.6g}" maximumValue="{maximum:.6g}" labelPrecision="{max(decimals, 1)}">
          <colorramp type="gradient" name="[source]">
            <Option type="Map">
              <Option type="QString" name="color1" value="{_rgba(stops[0][1])}"/>
              <Option type="QString" name="color2" value="{_rgba(stops[-1][1])}"/>
              <Option type="QString" name="discrete" value="0"/>
              <Option type="QString" name="rampType" value="gradient"/>
            </Option>
          </colorramp>
{items}
          <rampLegendSettings minimumLabel="" maximumLabel="" prefix="" suffix="{suffix}"
                              direction="0" useContinuousLegend="1" orientation="2">
            <numericFormat id="basic">
              <Option type="Map">
                <Option type="int" name="decimals" value="{decimals}"/>
                <Option type="bool" name="show_trailing_zeros" value="false"/>
              </Option>
            </numericFormat>
          </rampLegendSettings>
        </colorrampshader>
      </rastershader>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" colorizeOn="0" grayscaleMode="0"/>
    <rasterresampler maxOversampling="2"/>
    <resamplingStage>resamplingFilter</resamplingStage>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""


def _rgba(colour: str) -> str:
    """"#rrggbb" -> "r,g,b,255" (QGIS colour option text)."""
    return ",".join(str(int(colour[i:i + 2], 16)) for i in (1, 3, 5)) + ",255"


def write_style_beside(raster_path: str, qml: str) -> str:
    """Write ``qml`` as the default style of ``raster_path`` (same base name, .qml); returns its path."""
    return write_text(os.path.splitext(raster_path)[0] + ".qml", qml)
