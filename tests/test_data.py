"""Data layer: real scenes in ../shared/data, every file format round trip, Scene operations, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hsibench.data import DataError, Scene, find_datasets, list_datasets, load_scene
from hsibench.data.catalog import dataset_wavelengths, sensor_wavelengths

REQUIRED_PROV = {"source", "loader", "variable", "layout", "wavelength_source", "dropped_bands", "crop"}


def _check_common(scene: Scene):
    assert scene.cube.dtype == np.float32
    assert scene.cube.ndim == 3 and scene.shape == scene.cube.shape
    assert np.isfinite(scene.cube).all()
    assert scene.cube.min() >= 0.0
    assert scene.cube.max() == 1.0  # exactly, after normalisation
    assert REQUIRED_PROV <= set(scene.provenance)
    meta = scene.to_dict_meta()
    json.dumps(meta)  # JSON-serialisable
    assert meta["shape"] == list(scene.shape)


# ------------------------------------------------------------------------------- real scenes

REAL = {
    # relative path: (shape, name, (wl_min, wl_max) tolerance box)
    "cave/balloons_ms.mat": ((31, 256, 256), "cave_balloons", (400.0, 700.0)),
    "jasper_ridge/jasperRidge2_R198.mat": ((198, 100, 100), "jasper_ridge", (380.0, 2510.0)),
    "urban_hydice/subimage_Urban_R162.mat": ((162, 34, 78), "urban", (400.0, 2500.0)),
    "pavia_centre/pavia.mat": ((102, 100, 100), "pavia_centre", (430.0, 860.0)),
    "paris_eo1_hyperion_ali/paris_data_hs_ms.mat": ((128, 72, 72), "paris", (356.0, 2578.0)),
}


@pytest.fixture(scope="module")
def real_scenes(shared_data):
    return {rel: load_scene(shared_data / rel) for rel in REAL if (shared_data / rel).exists()}


@pytest.mark.parametrize("rel", list(REAL))
def test_real_scene_shape_range_wavelengths(real_scenes, rel):
    if rel not in real_scenes:
        pytest.skip(f"{rel} not present")
    scene = real_scenes[rel]
    shape, name, (lo, hi) = REAL[rel]
    _check_common(scene)
    assert scene.shape == shape
    assert scene.name == name
    assert scene.wavelengths is not None and scene.wavelengths.shape == (shape[0],)
    assert scene.wavelengths.dtype == np.float64
    assert lo <= scene.wavelengths.min() and scene.wavelengths.max() <= hi
    assert scene.provenance["dropped_bands"] == []  # none of these files has a constant band
    assert scene.provenance["wavelength_source"] != "unknown"
    if "jasper" not in rel:  # AVIRIS spectrometers overlap: Jasper's centres are not monotonic
        assert np.all(np.diff(scene.wavelengths) > 0)


def test_cave_values_and_scaling(shared_data, real_scenes):
    import scipy.io as sio

    scene = real_scenes.get("cave/balloons_ms.mat") or pytest.skip("CAVE absent")
    raw = sio.loadmat(shared_data / "cave/balloons_ms.mat")["Omsi"]
    assert scene.scaling == float(raw.max()) == 63382.0
    np.testing.assert_allclose(scene.cube * scene.scaling, raw.transpose(2, 0, 1), rtol=1e-6)
    np.testing.assert_array_equal(scene.wavelengths, np.arange(400.0, 701.0, 10.0))
    assert scene.provenance["loader"] == "mat-v5" and scene.provenance["variable"] == "Omsi"
    assert scene.provenance["layout"][0].startswith("HWC->CHW")


def test_jasper_zhu_layout_and_orientation(shared_data, real_scenes):
    import scipy.io as sio

    scene = real_scenes.get("jasper_ridge/jasperRidge2_R198.mat") or pytest.skip("Jasper absent")
    m = sio.loadmat(shared_data / "jasper_ridge/jasperRidge2_R198.mat")
    y = m["Y"].astype(np.float64)
    # pixel (r, c) is column c*nRow + r of Y (MATLAB column-major order)
    for r, c in [(0, 0), (3, 7), (99, 0), (0, 99), (42, 77)]:
        np.testing.assert_allclose(scene.cube[:, r, c] * scene.scaling, y[:, c * 100 + r], rtol=1e-6)
    assert "zhu pixel-per-column" in scene.provenance["layout"][0]
    assert scene.provenance["band_numbers_1based"]["variable"] == "SlectBands"
    assert scene.provenance["band_numbers_1based"]["values"][:3] == [4, 5, 6]
    assert scene.provenance["file_maxValue"] == 5000.0
    # Orientation: the lake (dark in the NIR) is on the left, the road side on the right.
    nir = scene.cube[int(np.argmin(np.abs(scene.wavelengths - 860.0)))]
    dark = nir < 0.5 * np.median(nir)
    assert dark[:, :50].mean() > 0.4 and dark[:, 50:].mean() < 0.15


def test_jasper_wavelengths_match_aviris_table(shared_data, real_scenes):
    import scipy.io as sio

    scene = real_scenes.get("jasper_ridge/jasperRidge2_R198.mat") or pytest.skip("Jasper absent")
    table = shared_data / "srf/aviris/AVIRIS_wavelengths.mat"
    if not table.exists():
        pytest.skip("AVIRIS table absent")
    ref = sio.loadmat(table)["AVIRIS_wavlen"].ravel()
    idx = np.asarray(scene.provenance["band_numbers_1based"]["values"]) - 1
    assert np.abs(scene.wavelengths - ref[idx]).max() < 2.0
    assert "approximate" in scene.provenance["wavelength_source"]
    assert scene.provenance["wavelengths_monotonic"] is False
    s2 = load_scene(shared_data / "jasper_ridge/jasperRidge2_R198.mat", sort_bands=True)
    assert np.all(np.diff(s2.wavelengths) > 0) and s2.provenance["wavelengths_monotonic"] is True


def test_pavia_v73_reversed_axes(shared_data, real_scenes):
    import h5py

    scene = real_scenes.get("pavia_centre/pavia.mat") or pytest.skip("Pavia absent")
    with h5py.File(shared_data / "pavia_centre/pavia.mat") as fh:
        h5 = fh["data"][()]  # (bands, cols, rows)
    np.testing.assert_allclose(scene.cube, np.transpose(h5, (0, 2, 1)) / h5.max(), rtol=1e-6)
    assert scene.provenance["loader"] == "mat-v7.3"
    assert scene.provenance["layout"][0] == "h5 reversed axes"
    np.testing.assert_allclose(scene.wavelengths, np.linspace(430, 860, 102))


def test_paris_hyperion_wavelengths(real_scenes):
    scene = real_scenes.get("paris_eo1_hyperion_ali/paris_data_hs_ms.mat") or pytest.skip("Paris absent")
    nums = scene.provenance["band_numbers_1based"]
    assert nums["variable"] == "non_del_bands" and len(nums["values"]) == 128 and nums["values"][0] == 8
    assert scene.wavelengths[0] == pytest.approx(355.59 + 10.175 * 7)
    assert scene.provenance["variable"] == "HSim"


def test_urban_kept_bands_are_catalog_based(real_scenes):
    scene = real_scenes.get("urban_hydice/subimage_Urban_R162.mat") or pytest.skip("Urban absent")
    full = np.linspace(400, 2500, 210)
    assert scene.wavelengths[0] == pytest.approx(full[4])  # bands 1-4 removed
    assert "approximate" in scene.provenance["wavelength_source"]


def test_find_datasets_in_shared(shared_data):
    found = find_datasets(shared_data)
    for name in ["cave", "jasper_ridge", "urban", "pavia_centre", "paris"]:
        assert name in found, name
    assert found["paris"].name == "paris_data_hs_ms.mat"


def test_aviris_sensor_model_close_to_table(shared_data):
    import scipy.io as sio

    table = shared_data / "srf/aviris/AVIRIS_wavelengths.mat"
    if not table.exists():
        pytest.skip("AVIRIS table absent")
    ref = sio.loadmat(table)["AVIRIS_wavlen"].ravel()
    wl, label = sensor_wavelengths("aviris224")
    assert wl.shape == (224,) and np.abs(wl - ref).max() < 1.0 and "approximate" in label


# ------------------------------------------------------------------------------ the catalog

def test_list_datasets_fields():
    ds = list_datasets()
    json.dumps(ds)
    names = {d["name"] for d in ds}
    assert {"pavia_university", "pavia_centre", "indian_pines", "salinas", "ksc", "botswana", "chikusei",
            "houston2013", "harvard", "cave", "jasper_ridge", "urban", "paris"} <= names
    for d in ds:
        assert {"name", "files", "keys", "bands", "wavelength_range_nm", "layout"} <= set(d)
        for b in d["bands"]:
            wl, _ = dataset_wavelengths(d["name"], b)
            assert wl.shape == (b,)


@pytest.mark.parametrize("name,bands", [("indian_pines", 200), ("salinas", 204), ("botswana", 145),
                                        ("urban", 162), ("jasper_ridge", 198), ("cuprite", 188),
                                        ("paris", 128)])
def test_kept_band_lists_have_right_length(name, bands):
    wl, label = dataset_wavelengths(name, bands)
    assert wl.shape == (bands,) and "approximate" in label


def test_hyperion_formula():
    wl, _ = sensor_wavelengths("hyperion242")
    assert wl[0] == pytest.approx(355.59) and wl[69] == pytest.approx(355.59 + 69 * 10.175)
    assert wl[70] == pytest.approx(851.92) and wl[-1] == pytest.approx(851.92 + 171 * 10.09)


# ----------------------------------------------------------------------------- file formats

@pytest.fixture
def cube(rng):
    """A small positive CHW cube with distinct sizes on every axis."""
    return rng.uniform(0.1, 2.0, size=(6, 10, 13)).astype(np.float32)


def test_npy_chw_and_hwc(tmp_path, cube):
    np.save(tmp_path / "a.npy", cube)
    s = load_scene(tmp_path / "a.npy", normalize=False)
    np.testing.assert_array_equal(s.cube, cube)
    assert s.wavelengths is None and s.provenance["wavelength_source"] == "unknown"
    np.save(tmp_path / "b.npy", cube.transpose(1, 2, 0))  # HWC, bands smallest -> guessed
    s = load_scene(tmp_path / "b.npy", normalize=False)
    np.testing.assert_array_equal(s.cube, cube)
    assert s.provenance["layout"][0].startswith("HWC->CHW")
    # forced layout: treat the HWC file as CHW on purpose
    s = load_scene(tmp_path / "b.npy", layout="CHW", normalize=False)
    assert s.shape == (10, 13, 6)


def test_npz_with_wavelengths(tmp_path, cube):
    wl = np.linspace(0.45, 0.95, 6)  # µm: converted to nm
    np.savez(tmp_path / "c.npz", cube=cube, wavelengths=wl)
    s = load_scene(tmp_path / "c.npz")
    np.testing.assert_allclose(s.cube, cube / cube.max(), rtol=1e-6)
    np.testing.assert_allclose(s.wavelengths, wl * 1000)
    assert "µm" in s.provenance["wavelength_source"]
    assert s.scaling == pytest.approx(float(cube.max()))
    np.savez(tmp_path / "d.npz", other=cube, x=np.zeros(3))
    assert load_scene(tmp_path / "d.npz").provenance["variable"] == "other"
    with pytest.raises(DataError, match="available: other"):
        load_scene(tmp_path / "d.npz", key="nope")


def test_tiff_roundtrip(tmp_path, cube):
    import tifffile

    tifffile.imwrite(tmp_path / "t.tif", cube, metadata={"wavelengths": [500.0 + 10 * i for i in range(6)]})
    s = load_scene(tmp_path / "t.tif", normalize=False)
    np.testing.assert_array_equal(s.cube, cube)
    np.testing.assert_allclose(s.wavelengths, 500.0 + 10 * np.arange(6))
    tifffile.imwrite(tmp_path / "h.tiff", cube.transpose(1, 2, 0))
    s = load_scene(tmp_path / "h.tiff", normalize=False, layout="HWC")
    np.testing.assert_array_equal(s.cube, cube)
    assert "layout= argument" in s.provenance["layout"][0]


def test_envi_roundtrip(tmp_path, cube):
    import spectral.io.envi as envi

    md = {"wavelength": [0.5 + 0.05 * i for i in range(6)], "wavelength units": "Micrometers"}
    envi.save_image(str(tmp_path / "e.hdr"), cube.transpose(1, 2, 0), metadata=md, dtype=np.float32,
                    interleave="bil", force=True)
    for src in (tmp_path / "e.hdr", tmp_path / "e.img"):
        s = load_scene(src, normalize=False)
        np.testing.assert_array_equal(s.cube, cube)
        np.testing.assert_allclose(s.wavelengths, 500 + 50 * np.arange(6))
        assert s.provenance["loader"] == "envi"


def test_mat_v5_known_key_and_override(tmp_path, rng):
    import scipy.io as sio

    hwc = rng.uniform(0, 1, size=(8, 9, 103))
    sio.savemat(tmp_path / "my_pavia_u.mat", {"paviaU": hwc, "junk": rng.uniform(size=(20, 20, 20))})
    s = load_scene(tmp_path / "my_pavia_u.mat")
    assert s.shape == (103, 8, 9) and s.provenance["variable"] == "paviaU"
    assert s.provenance["dataset"] == "pavia_university"
    np.testing.assert_allclose(s.wavelengths, np.linspace(430, 860, 103))
    s = load_scene(tmp_path / "my_pavia_u.mat", key="junk", name="j")
    assert s.provenance["variable"] == "junk" and s.name == "j" and s.wavelengths is None
    with pytest.raises(DataError, match=r"no variable 'cube'.*paviaU"):
        load_scene(tmp_path / "my_pavia_u.mat", key="cube")


def test_mat_v5_largest_3d_array(tmp_path, rng):
    import scipy.io as sio

    sio.savemat(tmp_path / "x.mat", {"small": rng.uniform(size=(4, 4, 3)), "big": rng.uniform(size=(12, 11, 5)),
                                     "vec": np.arange(5.0)})
    s = load_scene(tmp_path / "x.mat")
    assert s.provenance["variable"] == "big" and s.shape == (5, 12, 11)


def test_mat_v73_reversed_axes(tmp_path, rng):
    import h5py

    matlab = rng.uniform(0.1, 1, size=(7, 9, 5))  # MATLAB (rows, cols, bands)
    with h5py.File(tmp_path / "v73.mat", "w", userblock_size=512) as fh:
        ds = fh.create_dataset("hsi", data=matlab.T)  # MATLAB writes column-major: h5py sees reversed axes
        ds.attrs["MATLAB_class"] = np.bytes_(b"double")
    s = load_scene(tmp_path / "v73.mat", normalize=False)
    np.testing.assert_allclose(s.cube, matlab.transpose(2, 0, 1), rtol=1e-6)
    assert s.provenance["loader"] == "mat-v7.3" and s.provenance["layout"][0] == "h5 reversed axes"


def test_zhu_file_roundtrip(tmp_path, rng):
    import scipy.io as sio

    n_row, n_col, bands = 6, 8, 5
    cube = rng.uniform(0.1, 1, size=(bands, n_row, n_col))
    y = cube.transpose(1, 2, 0).reshape(n_row * n_col, bands, order="F").T  # MATLAB reshape(Y', ...)
    sio.savemat(tmp_path / "zhu.mat", {"Y": y, "nRow": float(n_row), "nCol": float(n_col), "nBand": 224.0,
                                        "SlectBands": np.array([[10, 11, 12, 40, 41]], dtype=float).T})
    s = load_scene(tmp_path / "zhu.mat", normalize=False)
    np.testing.assert_allclose(s.cube, cube, rtol=1e-6)
    np.testing.assert_allclose(s.wavelengths, sensor_wavelengths("aviris224")[0][[9, 10, 11, 39, 40]])
    assert s.provenance["band_numbers_1based"]["values"] == [10, 11, 12, 40, 41]


def test_cave_png_folder(tmp_path, rng):
    import skimage.io

    folder = tmp_path / "toy_ms" / "toy_ms"
    folder.mkdir(parents=True)
    order = rng.permutation(31) + 1
    for b in order:  # written shuffled; band value = 1000 * band number
        img = np.full((5, 7), 1000 * b, dtype=np.uint16)
        img[0, 0] = 7
        skimage.io.imsave(str(folder / f"toy_ms_{b:02d}.png"), img, check_contrast=False)
    (folder / "toy_RGB.bmp").write_bytes(b"not an image")
    s = load_scene(tmp_path / "toy_ms")
    assert s.shape == (31, 5, 7) and s.name == "cave_toy"
    np.testing.assert_allclose(s.cube[:, 1, 1] * s.scaling, 1000.0 * np.arange(1, 32))
    np.testing.assert_array_equal(s.wavelengths, np.arange(400.0, 701.0, 10.0))
    assert s.provenance["loader"] == "cave-png" and s.provenance["png_dtypes"] == ["uint16"]


# --------------------------------------------------------------------------------- errors

def test_errors(tmp_path, cube):
    bad = cube.copy()
    bad[2, 3, 4] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(DataError, match="NaN"):
        load_scene(tmp_path / "nan.npy")
    np.save(tmp_path / "flat.npy", cube[0])
    with pytest.raises(DataError, match="2-D"):
        load_scene(tmp_path / "flat.npy")
    (tmp_path / "x.xyz").write_text("hello")
    with pytest.raises(DataError, match="unsupported file type '.xyz'"):
        load_scene(tmp_path / "x.xyz")
    with pytest.raises(DataError, match="no such file"):
        load_scene(tmp_path / "missing.mat")
    (tmp_path / "corrupt.mat").write_bytes(b"\x00garbage" * 50)
    with pytest.raises(DataError, match="corrupt.mat"):
        load_scene(tmp_path / "corrupt.mat")
    np.save(tmp_path / "zero.npy", np.zeros((3, 4, 5)))
    with pytest.raises(DataError, match="all-zero"):
        load_scene(tmp_path / "zero.npy", drop_constant=False)
    with pytest.raises(DataError, match="layout"):
        load_scene(tmp_path / "nan.npy", layout="XYZ")
    with pytest.raises(DataError, match="unexpected keyword"):
        load_scene(tmp_path / "nan.npy", bogus=1)
    assert issubclass(DataError, ValueError)


def test_mat_2d_and_nan(tmp_path, rng):
    import scipy.io as sio

    sio.savemat(tmp_path / "m2.mat", {"img": rng.uniform(size=(5, 6))})
    with pytest.raises(DataError, match="no 3-D numeric array"):
        load_scene(tmp_path / "m2.mat")
    with pytest.raises(DataError, match="2-D"):
        load_scene(tmp_path / "m2.mat", key="img")
    a = rng.uniform(size=(5, 6, 4))
    a[0, 0, 0] = np.nan
    sio.savemat(tmp_path / "mn.mat", {"cube": a})
    with pytest.raises(DataError, match="'cube' contains 1 NaN"):
        load_scene(tmp_path / "mn.mat")


# ------------------------------------------------------------------------- Scene operations

def _scene(rng, shape=(6, 10, 13)):
    return Scene(rng.uniform(0.1, 1, size=shape), np.linspace(400, 700, shape[0]), "t", {"source": "test"})


def test_crop_to_multiple(rng):
    s = _scene(rng)
    c = s.crop_to_multiple(4)
    assert c.shape == (6, 8, 12)
    np.testing.assert_array_equal(c.cube, s.cube[:, :8, :12])
    assert c.provenance["crop"] == {"rows": [0, 8], "cols": [0, 12]}
    assert c.provenance["operations"][-1]["multiple_of"] == 4
    assert s.crop_to_multiple(1).shape == s.shape
    with pytest.raises(DataError, match="smaller than the scale factor"):
        s.crop_to_multiple(11)
    # crops compose in source coordinates
    cc = s.crop(slice(2, 9), slice(3, None)).crop(slice(1, 5), slice(0, 4))
    assert cc.provenance["crop"] == {"rows": [3, 7], "cols": [3, 7]}
    np.testing.assert_array_equal(cc.cube, s.cube[:, 3:7, 3:7])


def test_select_and_drop_constant_bands(rng):
    s = _scene(rng)
    cube = s.cube.copy()
    cube[3] = 0.0
    cube[5] = 0.25
    z = Scene(cube, s.wavelengths, "z", {})
    d = z.drop_constant_bands()
    assert d.bands == 4 and d.provenance["dropped_bands"] == [3, 5]
    np.testing.assert_array_equal(d.wavelengths, s.wavelengths[[0, 1, 2, 4]])
    # indices stay relative to the source after an earlier band selection
    d2 = z.select_bands([1, 3, 4, 5]).drop_constant_bands()
    assert d2.provenance["dropped_bands"] == [3, 5] and d2.provenance["band_index_in_source"] == [1, 4]
    sel = s.select_bands(slice(0, 6, 2))
    assert sel.bands == 3 and sel.provenance["band_index_in_source"] == [0, 2, 4]


def test_synthetic_with_zeroed_band_via_loader(tmp_path):
    from hsibench.data import synthetic_scene

    s = synthetic_scene(16, 8, 3, seed=1)
    cube = s.cube.copy()
    cube[2] = 0.0
    np.savez(tmp_path / "z.npz", cube=cube, wavelengths=s.wavelengths)
    loaded = load_scene(tmp_path / "z.npz")
    assert loaded.bands == 7 and loaded.provenance["dropped_bands"] == [2]
    assert load_scene(tmp_path / "z.npz", drop_constant=False).bands == 8


def test_normalized(rng):
    s = _scene(rng)
    n = s.normalized()
    assert n.cube.max() == 1.0 and n.scaling == pytest.approx(float(s.cube.max()))
    assert n.normalized().scaling == n.scaling  # idempotent
    np.testing.assert_allclose(n.cube * n.scaling, s.cube, rtol=1e-6)
    with pytest.raises(DataError, match="all-zero"):
        Scene(np.zeros((2, 3, 3)), None, "z", {}).normalized()


def test_scene_validation():
    with pytest.raises(DataError, match="3-D"):
        Scene(np.zeros((3, 3)), None, "x", {})
    with pytest.raises(DataError, match="wavelengths"):
        Scene(np.ones((3, 2, 2)), np.arange(4.0), "x", {})
