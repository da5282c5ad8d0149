"""The GlacierFlow Processing provider."""
from __future__ import annotations

import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon


class GlacierFlowProvider(QgsProcessingProvider):
    """Provider ``glacierflow``: glacier velocity, validation and forecasting algorithms."""

    def id(self) -> str:
        return "glacierflow"

    def name(self) -> str:
        return "GlacierFlow"

    def longName(self) -> str:  # noqa: N802
        return "GlacierFlow: glacier velocity and snow-cover forecasts"

    def icon(self) -> QIcon:
        return QIcon(os.path.join(os.path.dirname(os.path.dirname(__file__)), "icon.svg"))

    def supportedOutputRasterLayerExtensions(self) -> list[str]:  # noqa: N802
        """GlacierFlow writes Cloud Optimized GeoTIFFs only: the file dialogs offer .tif."""
        return ["tif"]

    def defaultRasterFileExtension(self) -> str:  # noqa: N802
        return "tif"

    def loadAlgorithms(self) -> None:  # noqa: N802
        from .annual_velocity import AnnualVelocityAlgorithm
        from .compare_reference import CompareReferenceAlgorithm
        from .download_scenes import DownloadScenesAlgorithm
        from .finetune_raft import FineTuneRaftAlgorithm
        from .forecast_ndsi import ForecastNdsiAlgorithm
        from .image_pairs import ImagePairsAlgorithm
        from .ndsi_series import NdsiSeriesAlgorithm
        from .regional_velocity import RegionalVelocityAlgorithm
        from .search_scenes import SearchScenesAlgorithm
        from .stable_ground import StableGroundAlgorithm
        from .stack_velocity import StackVelocityAlgorithm
        from .stakes import CompareStakesAlgorithm
        from .train_forecaster import TrainForecasterAlgorithm
        from .velocity_pair import VelocityPairAlgorithm

        self.addAlgorithm(VelocityPairAlgorithm())
        self.addAlgorithm(StackVelocityAlgorithm())
        self.addAlgorithm(StableGroundAlgorithm())
        self.addAlgorithm(CompareReferenceAlgorithm())
        self.addAlgorithm(SearchScenesAlgorithm())
        self.addAlgorithm(ImagePairsAlgorithm())
        self.addAlgorithm(DownloadScenesAlgorithm())
        self.addAlgorithm(CompareStakesAlgorithm())
        self.addAlgorithm(AnnualVelocityAlgorithm())
        self.addAlgorithm(RegionalVelocityAlgorithm())
        self.addAlgorithm(FineTuneRaftAlgorithm())
        self.addAlgorithm(NdsiSeriesAlgorithm())
        self.addAlgorithm(ForecastNdsiAlgorithm())
        self.addAlgorithm(TrainForecasterAlgorithm())
        self._load_analysis_algorithms()

    def _load_analysis_algorithms(self) -> None:
        """The analysis tools (issue 17): what glaciologists do next with a velocity field."""
        from .export_netcdf import ExportNetcdfAlgorithm
        from .flux_gate import FluxGateAlgorithm
        from .strain_rates import StrainRatesAlgorithm
        from .velocity_arrows import VelocityArrowsAlgorithm
        from .velocity_profile import VelocityProfileAlgorithm
        from .velocity_report import VelocityReportAlgorithm
        from .velocity_time_series import VelocityTimeSeriesAlgorithm

        for algorithm in (VelocityArrowsAlgorithm(), ExportNetcdfAlgorithm(), StrainRatesAlgorithm(),
                          VelocityProfileAlgorithm(), VelocityTimeSeriesAlgorithm(), FluxGateAlgorithm(),
                          VelocityReportAlgorithm()):
            self.addAlgorithm(algorithm)
