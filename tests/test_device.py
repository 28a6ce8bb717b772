import json

from edgeinf import device


def test_describe_on_this_machine_is_complete_and_serialisable():
    d = device.describe()
    json.dumps(d)
    assert d["cores_logical"] >= 1 and d["memory_total_mb"] > 0
    assert d["board"]["kind"] in {"generic", "raspberry-pi", "jetson", "other-sbc"}
    assert 0 <= d["cpu_percent"] <= 100 * d["cores_logical"]


def test_detects_raspberry_pi(tmp_path):
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\x00")
    b = device.detect_board(str(tmp_path))
    assert b == {"kind": "raspberry-pi", "model": "Raspberry Pi 5 Model B Rev 1.0"}


def test_detects_jetson(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 3.0, GCID: 1\n")
    b = device.detect_board(str(tmp_path))
    assert b["kind"] == "jetson" and b["release"].startswith("# R36")


def test_plain_machine_falls_back(tmp_path):
    assert device.detect_board(str(tmp_path))["kind"] == "generic"
