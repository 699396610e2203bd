"""Forward model: PSFs, the block-centred strided operator and its adjoint, SRFs, noise.

See ``docs/conventions.md`` for the definitions.
"""
from .degradation import Degradation, DegradationError, Observation, add_observation_noise, simulate
from .geometry import PSFError, PSFGeometry, as_psf, boundary_index, psf_geometry
from .noise import add_noise, measured_snr, noise_sigma, seeded_rng
from .psf import (
    MAX_PSF_SIZE, MAX_SCALE, PSF_PRESETS, box_psf, check_psf, check_psf_spec, fwhm_to_sigma, gaussian_psf, list_psfs,
    make_psf, parse_psf, psf_error, resize_psf,
)
from .psf import (  # older names of the same objects, kept for compatibility
    KERNEL_PRESETS, MAX_KERNEL_SIZE, KernelError, box_kernel, check_kernel, check_kernel_spec, gaussian_kernel,
    list_kernels, make_kernel, parse_kernel, resize_kernel,
)
from .spatial import BOUNDARIES, blur_decimate, blur_decimate_adjoint, check_scale, interp_matrix, upsample
from .srf import SENSORS, SRFError, band_coverage, check_srf, list_sensors, sensor_curves, srf_error, srf_matrix

__all__ = [
    "Degradation", "DegradationError", "Observation", "add_observation_noise", "simulate", "add_noise", "measured_snr", "noise_sigma",
    "seeded_rng", "PSFError", "PSFGeometry", "as_psf", "boundary_index", "psf_geometry",
    "PSF_PRESETS", "MAX_PSF_SIZE", "MAX_SCALE", "box_psf", "check_psf", "check_psf_spec", "gaussian_psf", "list_psfs",
    "make_psf", "parse_psf", "psf_error", "resize_psf", "fwhm_to_sigma",
    # older names, kept for compatibility
    "KERNEL_PRESETS", "MAX_KERNEL_SIZE", "KernelError", "box_kernel", "check_kernel", "check_kernel_spec",
    "gaussian_kernel", "list_kernels", "make_kernel", "parse_kernel", "resize_kernel",
    "BOUNDARIES", "blur_decimate", "blur_decimate_adjoint", "check_scale", "interp_matrix", "upsample",
    "SENSORS", "SRFError", "band_coverage", "check_srf", "list_sensors", "sensor_curves", "srf_error", "srf_matrix",
]
