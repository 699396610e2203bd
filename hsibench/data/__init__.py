"""Data layer: the `Scene` container, file loaders, the synthetic scene generator and the dataset catalog."""
from .catalog import dataset_wavelengths, find_datasets, list_datasets, sensor_wavelengths
from .loaders import SUPPORTED, load_scene
from .pairs import PAIRS, RealPair, load_pair, pair_case
from .scene import DataError, Scene
from .synthetic import synthetic_components, synthetic_scene

__all__ = [
    "DataError", "PAIRS", "RealPair", "Scene", "SUPPORTED", "load_pair", "pair_case", "dataset_wavelengths", "find_datasets", "list_datasets", "load_scene",
    "sensor_wavelengths", "synthetic_components", "synthetic_scene",
]
