"""Deep unsupervised fusion networks (one training engine, shared learned-degradation layers).

Importing this package registers ``hyconet``, ``cucanet``, ``eu2adl``, ``ual`` and ``cycfusion`` with the
method registry.
``engine`` holds the training loop (optimiser/schedules, budget, plateau stop, NaN guard, seeding,
device, loss curves); ``layers`` the learned PSF/SRF layers, the endmember decoder and the losses.
"""
from . import engine, layers  # noqa: F401
from .cucanet import CUCaNet
from .cycfusion import CycFusion
from .engine import NetMethod, TrainConfig, TrainResult, train
from .eu2adl import EU2ADL
from .hyconet import HyCoNet
from .layers import EndmemberDecoder, PSFLayer, SRFLayer, relative_error
from .ual import UAL

__all__ = [
    "CUCaNet", "CycFusion", "EU2ADL", "HyCoNet", "UAL", "NetMethod", "TrainConfig", "TrainResult", "train",
    "EndmemberDecoder", "PSFLayer", "SRFLayer", "relative_error",
]
