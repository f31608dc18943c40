"""One file per modality: every spec the package finds is registered, and each keeps its own
contract on a real face (stored shape, exact mirror, model input), which is all the generic
pipeline, cache, mirroring and encoders rely on."""

from __future__ import annotations

import numpy as np
import pytest

from palsy_core.extraction.pipeline import Settings, analyse_media
from palsy_core.modalities import specs
from palsy_core.model.batches import Normaliser, analysis_arrays
from palsy_core.registry import FRAME_FEATURES, MODALITY_KEYS


@pytest.fixture(scope="module")
def analysis(pyfeat_dir):
    return analyse_media(pyfeat_dir / "single_face.jpg", "single_face.jpg", Settings())


def test_every_registered_modality_has_one_file_and_no_file_is_unregistered():
    assert list(specs()) == list(MODALITY_KEYS)
    modules = {type(s).__module__ for s in specs().values()}
    assert len(modules) == len(MODALITY_KEYS)  # one file each
    assert all(m.startswith("palsy_core.modalities.") for m in modules)


@pytest.mark.parametrize("key", MODALITY_KEYS)
def test_each_modality_keeps_its_contract_on_a_real_face(analysis, key):
    spec = specs()[key]
    size = Settings().size
    values = analysis.values[key]
    assert values.shape == (analysis.n_frames, *spec.shape(size))
    assert values.dtype == (np.uint8 if spec.image else np.float32)
    assert np.isfinite(values.astype(np.float64)).all()  # a face was found in the one frame
    # The mirror is exact: twice is the identity, and once changes a real (asymmetric) face.
    once = spec.mirror(values)
    np.testing.assert_array_equal(spec.mirror(once), values)
    assert not np.array_equal(once, values)
    # Model input: float32 rows, finite, images channels-first at the model's size.
    n = len(FRAME_FEATURES)
    norm = Normaliser(np.zeros(n, np.float32), np.ones(n, np.float32))
    rows = analysis_arrays(analysis, 64, np.arange(analysis.n_frames)).values[key]
    x = spec.model_input(rows, norm)
    assert x.dtype == np.float32 and len(x) == analysis.n_frames and np.isfinite(x).all()
    if spec.encoder == "image":
        assert x.shape[1:] == (3, 64, 64)
    elif spec.encoder in ("vector", "scaled"):
        assert x.shape[1:] == (spec.input_dim(n),)
    # Frames without a face are stored as black images or NaN vectors of the same shape.
    empty = spec.empty(2, size)
    assert empty.shape == (2, *spec.shape(size))
    assert (empty == 0).all() if spec.image else np.isnan(empty).all()
