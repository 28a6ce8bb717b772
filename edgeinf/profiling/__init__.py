"""Package profiles: every plan measured on this host, kept in the package as ``profile.json``.

Public API::

    prof = profile_package(pkg, inputs=None, device="raspberry-pi-4")   # writes pkg/profile.json
    prof = load_profile(pkg)            # PackageError if missing or stale
    pace, label = pace_for(prof, "raspberry-pi-4")
    costs = prof.costs(pace)            # List[PlanCost] for the controller
    prof.best_codec(cut_id)             # fewest bytes among codecs meeting the accuracy floor
    stacked = load_inputs_npz("x.npz", pkg.inputs)

Model layer: imports the package, backends, codecs, the split engine and the cost model's
``PlanCost``; never transport or runtime.
"""
from __future__ import annotations

from . import fidelity  # the module: fidelity.fidelity(metric, refs, gots)
from .fidelity import REL_L2, TOP1, metric_for
from .host import measure_host, pace_for
from .measure import HEADER_BYTES, IMAGE_CODECS, OFFLOAD_CODECS, TENSOR_CODECS, profile_package
from .profile import FILE, PlanProfile, Profile, load_profile, save_profile
from .samples import check_inputs, load_inputs_npz, sample_inputs

__all__ = ["profile_package", "load_profile", "save_profile", "Profile", "PlanProfile", "pace_for",
           "measure_host", "load_inputs_npz", "check_inputs", "sample_inputs", "fidelity", "metric_for",
           "TOP1", "REL_L2", "FILE", "HEADER_BYTES", "TENSOR_CODECS", "OFFLOAD_CODECS", "IMAGE_CODECS"]
