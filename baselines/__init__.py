"""Classical fusion baselines (installed as ``hsibench.baselines``), array-API generic."""
from . import gsa  # noqa: F401  (registers the method)
