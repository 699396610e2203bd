"""Forward model: PSF kernels, the block-centred strided operator and its adjoint, SRFs, noise."""
from .degradation import Degradation, DegradationError, Observation, simulate
from .noise import add_noise, measured_snr, noise_sigma, seeded_rng
from .psf import (
    KERNEL_PRESETS, MAX_KERNEL_SIZE, MAX_SCALE, KernelError, check_kernel, check_kernel_spec, gaussian_kernel, list_kernels,
    make_kernel, resize_kernel,
)
from .spatial import BOUNDARIES, blur_decimate, blur_decimate_adjoint, check_scale, interp_matrix, upsample
from .srf import SENSORS, SRFError, band_coverage, check_srf, list_sensors, sensor_curves, srf_matrix

__all__ = [
    "Degradation", "DegradationError", "Observation", "simulate", "add_noise", "measured_snr", "noise_sigma", "seeded_rng",
    "KERNEL_PRESETS", "MAX_KERNEL_SIZE", "MAX_SCALE", "KernelError", "check_kernel", "check_kernel_spec", "gaussian_kernel",
    "list_kernels", "make_kernel", "resize_kernel",
    "BOUNDARIES", "blur_decimate", "blur_decimate_adjoint", "check_scale", "interp_matrix", "upsample",
    "SENSORS", "SRFError", "band_coverage", "check_srf", "list_sensors", "sensor_curves", "srf_matrix",
]
