"""Microstructure features: OFI, CVD, z-scores, fusion, divergence, activity."""

from v13.features.engine import FeatureEngine
from v13.features.ofi import level_ofi, multi_level_ofi

__all__ = ["FeatureEngine", "level_ofi", "multi_level_ofi"]
