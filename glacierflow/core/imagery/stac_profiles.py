"""What GlacierFlow knows about each STAC collection it reads: data, not code branches.

A :class:`StacProfile` names the API, the collection, the asset behind each common band name, how digital
numbers (DN) become surface reflectance, how the mask asset marks cloud and fill, and which signing the
service needs. :class:`~.stac.StacSource` reads everything from the profile, so a new collection is a new
entry in :data:`PROFILES`.

Masks. Glaciers are snow and ice: snow is never masked.

* Landsat Collection 2 ``qa_pixel`` bits masked: 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 cloud shadow.
  Kept: 5 snow, 6 clear, 7 water and the confidence bits 8-15.
* Sentinel-2 Sen2Cor ``SCL`` classes masked: 0 no data, 1 saturated or defective, 3 cloud shadow,
  8 cloud medium probability, 9 cloud high probability, 10 thin cirrus. Kept: 2 dark area (terrain
  shadow on valley glaciers), 4 vegetation, 5 bare soil, 6 water, 7 unclassified, 11 snow and ice.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

PLANETARY_COMPUTER_API = "https://planetarycomputer.microsoft.com/api/stac/v1"
PLANETARY_COMPUTER_SAS_ENDPOINT = "https://planetarycomputer.microsoft.com/api/sas/v1/token/{collection}"
EARTH_SEARCH_API = "https://earth-search.aws.element84.com/v1"
CLOUD_PROPERTY = "eo:cloud_cover"

PC_AUTH_HINT = ("Planetary Computer asset URLs must be signed with a SAS token; the token service may need a "
                "subscription key: set PC_SDK_SUBSCRIPTION_KEY (or the source's subscription key), check the "
                "token URL, and try again.")
OPEN_AUTH_HINT = ("This service needs no credentials for public data: check the API URL. A private STAC API "
                  "needs its own credentials as request headers (for example Authorization).")


@dataclass(frozen=True)
class AssetBand:
    """One common band name's asset and its DN to reflectance conversion: ``reflectance = DN * scale + offset``.

    Attributes:
        asset: the item's asset key (``nir08``, ``B08``, ``nir``).
        scale: reflectance per DN.
        offset: reflectance at DN 0 (before any processing-baseline offset).
        nodata: the DN meaning no data.
    """

    asset: str
    scale: float
    offset: float
    nodata: float = 0.0


@dataclass(frozen=True)
class MaskRule:
    """How the mask asset marks unusable pixels.

    Attributes:
        asset: the item's asset key (``qa_pixel``, ``SCL``, ``scl``).
        kind: ``bits`` (a pixel is unusable when any of ``values`` is a set bit) or ``classes`` (when its
            value is one of ``values``).
        values: bit numbers or class values marking fill, cloud and shadow.
        fill: the value written outside the scene (it must itself be unusable).
    """

    asset: str
    kind: str
    values: tuple[int, ...]
    fill: int

    def unusable_value_mask(self) -> int:
        """The OR of the masked bits (for ``bits`` masks)."""
        mask = 0
        for bit in self.values:
            mask |= 1 << bit
        return mask


@dataclass(frozen=True)
class BaselineOffset:
    """The Sentinel-2 processing baseline 04.00 shift: from then on DN carry ``dn_offset`` (BOA_ADD_OFFSET).

    Attributes:
        baseline_property: the item property holding the processing baseline (``"04.00"``).
        first_baseline: the first baseline with the shift.
        dn_offset: DN added before scaling (-1000 for every band).
        applied_property: an item property that is true when the provider already removed the shift from
            the files (Earth Search v1's ``earthsearch:boa_offset_applied``), or "".
    """

    baseline_property: str = "s2:processing_baseline"
    first_baseline: float = 4.0
    dn_offset: float = -1000.0
    applied_property: str = ""


@dataclass(frozen=True)
class StacProfile:
    """One collection of one STAC API.

    Attributes:
        name: the source name users choose (``planetary_computer_landsat``).
        title: the service's name in messages.
        api_url: the STAC API root.
        collection: the collection id.
        bands: common band name -> :class:`AssetBand`.
        default_band: the band fetched for ``band=""`` (the one velocity tracks).
        mask: the cloud and fill mask.
        resolution: the default band's pixel size, m.
        signing: ``planetary_computer`` (SAS tokens appended to asset URLs) or "" (URLs used as they are).
        signing_url: the SAS token endpoint, ``{collection}`` filled in.
        property_filters: item property -> allowed values (``platform``: Landsat 8 and 9 only).
        baseline_offset: the processing-baseline DN shift rule, or None.
        auth_hint: what to do when the service answers 401 or 403.
    """

    name: str
    title: str
    api_url: str
    collection: str
    bands: dict[str, AssetBand]
    default_band: str
    mask: MaskRule
    resolution: float
    signing: str = ""
    signing_url: str = ""
    property_filters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    baseline_offset: BaselineOffset | None = None
    auth_hint: str = OPEN_AUTH_HINT

    def configured(self, api_url: str = "", collection: str = "", signing_url: str = "") -> StacProfile:
        """This profile with the API URL, collection or token URL replaced where given (mirrors, tests)."""
        return replace(self, api_url=(api_url or self.api_url).rstrip("/"), collection=collection or self.collection,
                       signing_url=signing_url or self.signing_url)


_LANDSAT_SR = dict(scale=2.75e-05, offset=-0.2, nodata=0.0)  # Collection 2 Level-2 surface reflectance
_S2_SR = dict(scale=1e-4, offset=0.0, nodata=0.0)

LANDSAT_C2_L2 = StacProfile(
    name="planetary_computer_landsat",
    title="Planetary Computer STAC API (Landsat Collection 2 Level-2)",
    api_url=PLANETARY_COMPUTER_API,
    collection="landsat-c2-l2",
    bands={"nir": AssetBand("nir08", **_LANDSAT_SR), "green": AssetBand("green", **_LANDSAT_SR),
           "swir1": AssetBand("swir16", **_LANDSAT_SR), "red": AssetBand("red", **_LANDSAT_SR)},
    default_band="nir",
    mask=MaskRule("qa_pixel", "bits", (0, 1, 2, 3, 4), fill=1),
    resolution=30.0,
    signing="planetary_computer",
    signing_url=PLANETARY_COMPUTER_SAS_ENDPOINT,
    property_filters={"platform": ("landsat-8", "landsat-9")},
    auth_hint=PC_AUTH_HINT,
)

PC_SENTINEL2_L2A = StacProfile(
    name="planetary_computer_sentinel2",
    title="Planetary Computer STAC API (Sentinel-2 Level-2A)",
    api_url=PLANETARY_COMPUTER_API,
    collection="sentinel-2-l2a",
    bands={"nir": AssetBand("B08", **_S2_SR), "green": AssetBand("B03", **_S2_SR),
           "swir1": AssetBand("B11", **_S2_SR), "red": AssetBand("B04", **_S2_SR)},
    default_band="nir",
    mask=MaskRule("SCL", "classes", (0, 1, 3, 8, 9, 10), fill=0),
    resolution=10.0,
    signing="planetary_computer",
    signing_url=PLANETARY_COMPUTER_SAS_ENDPOINT,
    baseline_offset=BaselineOffset(),
    auth_hint=PC_AUTH_HINT,
)

EARTH_SEARCH_SENTINEL2_L2A = StacProfile(
    name="earth_search_sentinel2",
    title="Earth Search STAC API (Sentinel-2 Level-2A)",
    api_url=EARTH_SEARCH_API,
    collection="sentinel-2-l2a",
    bands={"nir": AssetBand("nir", **_S2_SR), "green": AssetBand("green", **_S2_SR),
           "swir1": AssetBand("swir16", **_S2_SR), "red": AssetBand("red", **_S2_SR)},
    default_band="nir",
    mask=MaskRule("scl", "classes", (0, 1, 3, 8, 9, 10), fill=0),
    resolution=10.0,
    baseline_offset=BaselineOffset(applied_property="earthsearch:boa_offset_applied"),
)

PROFILES: dict[str, StacProfile] = {p.name: p for p in (LANDSAT_C2_L2, PC_SENTINEL2_L2A, EARTH_SEARCH_SENTINEL2_L2A)}
