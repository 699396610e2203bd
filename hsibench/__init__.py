"""hsibench: a benchmark suite for unsupervised hyperspectral super-resolution (HSI-MSI fusion)."""

__version__ = "0.1.0"
CONVENTIONS_VERSION = "1.0"
