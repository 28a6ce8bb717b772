"""Exit confidence against numpy (float64), including huge, -inf, +inf and NaN logits."""
import subprocess
import sys

import numpy as np
import pytest

from edgeinf._native import kernels
from edgeinf.confidence import confidence, reference_confidence
from edgeinf.errors import InputError

ISAS = kernels.build_info()["isas"]
F32MAX = np.finfo(np.float32).max


def _check(z, isa, tol=2e-5):
    got, want = confidence(z, isa=isa), reference_confidence(z)
    for k in ("max_prob", "margin", "entropy"):
        assert got[k].shape == (np.atleast_2d(z).shape[0],) and got[k].dtype == np.float32
        np.testing.assert_allclose(got[k], want[k], atol=tol, rtol=tol, err_msg=f"{k} {isa}")
    return got


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("cols", [1, 2, 3, 10, 17, 1000])
def test_matches_numpy(isa, cols):
    z = (np.random.default_rng(cols).standard_normal((33, cols)) * 4).astype(np.float32)
    _check(z, isa)


@pytest.mark.parametrize("isa", ISAS)
def test_extreme_logits(isa):
    z = np.random.default_rng(0).standard_normal((7, 40)).astype(np.float32)
    z[0] = -np.inf  # uniform
    z[1, 3] = np.inf  # all mass on one class
    z[2] = 1e30  # huge but equal: uniform
    z[3, 5] = np.nan  # ignored
    z[4, :2] = F32MAX  # two tied maxima: margin 0
    z[5] = np.linspace(-float(F32MAX), float(F32MAX), 40)  # differences overflow float32
    z[6, 7] = 1e4
    got = _check(z, isa)
    assert np.all(np.isfinite(got["entropy"])) and np.all(np.isfinite(got["margin"]))
    np.testing.assert_allclose(got["max_prob"][[0, 1, 2, 4, 5, 6]], [1 / 40, 1, 1 / 40, 0.5, 1, 1], rtol=1e-5)
    np.testing.assert_allclose(got["entropy"][0], np.log(40), rtol=1e-6)
    assert got["margin"][4] == 0


def test_strided_rows_and_bad_shapes():
    z = np.random.default_rng(1).standard_normal((8, 30)).astype(np.float32)
    a = confidence(z[::2, 5:25])
    b = reference_confidence(np.ascontiguousarray(z[::2, 5:25]))
    np.testing.assert_allclose(a["max_prob"], b["max_prob"], rtol=1e-5)
    assert confidence(z[0])["max_prob"].shape == (1,)
    with pytest.raises(InputError):
        confidence(np.zeros((2, 0), np.float32))


def test_forced_generic_path_is_reported_and_agrees():
    code = ("import numpy as np; from edgeinf import _native, confidence as c, codec;"
            "z=np.random.default_rng(3).standard_normal((4,100)).astype(np.float32)*3;"
            "print(_native.build_info()['isa']);"
            "print(repr(c.confidence(z)['entropy'].tolist()));"
            "print(codec.encode(z,'int4-pc').hex())")
    import os

    env = {**os.environ, "EDGEINF_FORCE_GENERIC": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    isa, ent, enc = r.stdout.split("\n")[:3]
    assert isa == "generic"
    z = np.random.default_rng(3).standard_normal((4, 100)).astype(np.float32) * 3
    np.testing.assert_allclose(eval(ent), confidence(z)["entropy"], rtol=1e-5)
    from edgeinf import codec

    assert enc == codec.encode(z, "int4-pc").hex()  # SIMD and generic bytes agree
