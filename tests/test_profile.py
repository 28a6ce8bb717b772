"""Profiling cuts, device profiles and the Neurosurgeon plot."""
import json
from dataclasses import FrozenInstanceError

import pytest

from edgeinf.cli import main
from edgeinf.errors import ConfigError
from edgeinf.split import open_model, profile_model
from edgeinf.split.devices import load_device, names


def test_device_profiles_load_and_scale():
    assert {"raspberry-pi-4", "raspberry-pi-5", "jetson-nano", "jetson-orin-nano", "dev-x86"} <= set(names())
    host, pi4, pi5 = load_device("dev-x86"), load_device("raspberry-pi-4"), load_device("raspberry-pi-5")
    assert pi4.slowdown_vs(host) > pi5.slowdown_vs(host) > 1.0  # a Pi 4 is slower than a Pi 5
    assert pi4.scale_ms(2.0, host) == pytest.approx(2.0 * host.cpu_gflops / pi4.cpu_gflops)
    assert pi4.active_w > pi4.idle_w > 0 and load_device("jetson-nano").gpu_gflops_fp16 == 472
    with pytest.raises(FrozenInstanceError):
        pi4.cores = 8


def test_device_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown device 'raspbery-pi-4'.*raspberry-pi-4"):
        load_device("raspbery-pi-4")
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\ndescription = "x"\n[cpu]\narch = "a"\ncores = "four"\n')
    with pytest.raises(ConfigError, match=r"field 'cpu.cores' must be int; got 'four'"):
        load_device(bad)
    bad.write_text('name = "x"\ndescription = "x"\n[cpu]\narch = "a"\ncores = 4\n')
    with pytest.raises(ConfigError, match=r"missing field 'cpu.clock_ghz'"):
        load_device(bad)


def test_profile_measures_scales_and_plots(tmp_path, zoo_path):
    from edgeinf.split.plot import plot_profile

    m = open_model(zoo_path("hand_landmark_lite"))
    cuts = [m.cuts[0], m.cuts[len(m.cuts) // 2], m.cuts[-1]]
    prof = profile_model(m, cuts, device="raspberry-pi-4", repeat=3, warmup=1)
    assert [c["id"] for c in prof["cuts"]] == [c.id for c in cuts]
    first, last = prof["cuts"][0], prof["cuts"][-1]
    assert first["bytes"] == 112 * 112 * 24 * 4 and first["head_macs"] < last["head_macs"]
    assert first["head_macs"] + first["tail_macs"] == last["head_macs"] + last["tail_macs"]
    assert first["head"]["p90_ms"] >= first["head"]["median_ms"] > 0
    assert last["device_head_ms"] == pytest.approx(last["head"]["median_ms"] * prof["slowdown"], rel=1e-3)
    assert "scaled" in prof["sources"] and "measured" in prof["sources"]
    if first["codec_bytes"]:  # edgeinf.codec is built: fp16 halves the raw size (plus a header)
        assert first["codec_bytes"]["fp16"] < 0.6 * first["bytes"]
    png = plot_profile(prof, tmp_path / "p.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_cli_profile_writes_json_and_png(tmp_path, capsys):
    m = open_model("selfie_segmentation")
    at = ",".join(c.id for c in m.cuts[:2])
    assert main(["profile", "selfie_segmentation", "--at", at, "--repeat", "2", "--warmup", "0",
                 "-o", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "measured" in text and "scaled" in text
    prof = json.loads((tmp_path / "selfie_segmentation.profile.json").read_text())
    assert len(prof["cuts"]) == 2 and prof["device"] is None
    assert (tmp_path / "selfie_segmentation.profile.png").stat().st_size > 0
