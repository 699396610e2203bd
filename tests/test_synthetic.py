"""Synthetic scene generator: determinism, structure, low rank, speed and the source-string syntax."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hsibench.data import DataError, load_scene, synthetic_components, synthetic_scene
from hsibench.data import synthetic as synth


@pytest.fixture(scope="module")
def scene():
    return synthetic_scene(64, 31, 5, seed=0)


def test_shape_dtype_range_wavelengths(scene):
    assert scene.shape == (31, 64, 64) and scene.cube.dtype == np.float32
    assert scene.cube.min() >= 0.0 and scene.cube.max() == 1.0
    np.testing.assert_allclose(scene.wavelengths, np.linspace(400, 700, 31))
    assert scene.scaling > 0  # original reflectance = cube * scaling
    assert scene.name == "synthetic_64x64x31_e5_s0"
    json.dumps(scene.to_dict_meta())


def test_deterministic_and_seed_dependent(scene):
    again = synthetic_scene(64, 31, 5, seed=0)
    assert again.cube.tobytes() == scene.cube.tobytes()
    other = synthetic_scene(64, 31, 5, seed=1)
    assert not np.array_equal(other.cube, scene.cube)
    assert other.provenance["spectra"] != scene.provenance["spectra"]


def test_provenance_records_parameters_and_spectra(scene):
    p = scene.provenance
    assert p["loader"] == "synthetic"
    assert p["generator"]["seed"] == 0 and p["generator"]["endmembers"] == 5 and p["generator"]["bands"] == 31
    assert len(p["spectra"]) == 5 and all(s["name"] for s in p["spectra"])
    # the first five picks cover the five LEVEL_2 classes (bare, built, burned, npv, vegetation)
    assert len({s["level_2"] for s in p["spectra"]}) == 5
    assert "earthlib" in p["library"]


@pytest.mark.parametrize("endmembers", [3, 5, 8])
def test_low_rank(endmembers):
    s = synthetic_scene(48, 31, endmembers, seed=2)
    sv = np.linalg.svd(s.cube.reshape(s.bands, -1).astype(np.float64), compute_uv=False)
    assert sv[endmembers] / sv[0] < 1e-5  # rank <= endmembers up to float32 rounding
    assert sv[endmembers - 1] / sv[0] > 1e-4  # and the endmembers are really used


def test_abundances_sum_to_one_and_structure():
    comp = synthetic_components(96, 20, 4, seed=3)
    a = comp["abundances"]
    assert a.shape == (4, 96, 96) and a.min() >= 0
    np.testing.assert_allclose(a.sum(axis=0), 1.0, atol=1e-12)
    dom = a.argmax(axis=0)
    assert len(np.unique(dom)) == 4  # every endmember dominates somewhere
    # sharp edges: some neighbouring pixels jump strongly, most change little
    jumps = np.abs(np.diff(a, axis=2)).max(axis=0)
    assert jumps.max() > 0.5 and np.median(jumps) < 0.1


def test_wavelength_range_and_rectangular_size():
    s = synthetic_scene((20, 30), bands=50, endmembers=4, seed=5, wavelength_range=(400, 2500), name="vswir")
    assert s.shape == (50, 20, 30) and s.name == "vswir"
    assert s.wavelengths[0] == 400 and s.wavelengths[-1] == 2500
    assert any("gaps" in n for n in s.provenance["library_notes"])  # crosses the water bands
    assert any("outside library range" in n for n in s.provenance["library_notes"])


def test_source_strings():
    s = load_scene("synthetic:32x8:3")
    assert s.shape == (8, 32, 32) and s.provenance["generator"]["seed"] == 3
    s = load_scene("synthetic:16x24x6", endmembers=2)
    assert s.shape == (6, 16, 24) and s.provenance["generator"]["endmembers"] == 2
    assert load_scene("synthetic", size=16).shape == (31, 16, 16)
    with pytest.raises(DataError, match="bad synthetic source"):
        load_scene("synthetic:abc")
    with pytest.raises(DataError, match="endmembers"):
        synthetic_scene(16, 8, 0)


def test_missing_earthlib_data_is_an_error(monkeypatch):
    monkeypatch.setattr(synth.importlib.util, "find_spec", lambda name: None)
    synth.earthlib_library.cache_clear()
    try:
        with pytest.raises(DataError, match="earthlib"):
            synthetic_scene(16, 8, 3)
    finally:
        monkeypatch.undo()
        synth.earthlib_library.cache_clear()


def test_scaling_gives_reflectance(scene):
    comp = synthetic_components(64, 31, 5, seed=0)
    refl = np.einsum("be,ehw->bhw", comp["spectra"], comp["abundances"])
    np.testing.assert_allclose(scene.cube * scene.scaling, refl, rtol=1e-5, atol=1e-7)
    raw = load_scene("synthetic:64x31:0", normalize=False)
    assert raw.scaling == 1.0 and raw.provenance["normalized"] is False
    np.testing.assert_allclose(raw.cube, refl, rtol=1e-5, atol=1e-7)
