"""The device profile on disk: layout, atomic writes, modes, and clear errors when it is damaged."""
from __future__ import annotations

import json
import os
import stat

import pytest

from provisioner.errors import LocalFileError
from provisioner.profile import DeviceProfile, default_profile_dir, load_profile, write_file_atomic, write_secret_file

FIELDS = {
    "thingName": "laptop-1", "certificateId": "ab" * 32,
    "certificateArn": "arn:aws:iot:us-east-1:123456789012:cert/" + "ab" * 32,
    "credentialsEndpoint": "localhost:8443", "roleAlias": "DeviceTrust-local-alias", "region": "us-east-1",
    "stackName": "DeviceTrust-local", "environment": "local", "notAfter": "2049-12-31T23:59:59Z",
}


def _write_profile(directory, data=FIELDS, files=("device.key", "device.crt")):
    directory.mkdir(mode=0o700, exist_ok=True)
    (directory / "device.json").write_text(json.dumps(data))
    for name in files:
        (directory / name).write_text("x")


def test_profile_paths_follow_the_documented_layout(tmp_path):
    profile = DeviceProfile.from_json_dict(tmp_path, FIELDS)
    assert [p.name for p in (profile.key_path, profile.cert_path, profile.p12_path, profile.ca_path,
                             profile.json_path)] == ["device.key", "device.crt", "device.p12", "endpoint-ca.pem",
                                                     "device.json"]


def test_device_json_round_trips_with_camel_case_keys(tmp_path):
    _write_profile(tmp_path / "p")
    profile = load_profile(tmp_path / "p")
    assert profile.thing_name == "laptop-1" and profile.not_after == "2049-12-31T23:59:59Z"
    assert json.loads(profile.to_json_bytes()) == FIELDS


def test_default_profile_dir_is_per_environment_under_home():
    assert default_profile_dir("dev").parts[-2:] == (".device-trust", "dev")


def test_missing_profile_says_to_enroll_first(tmp_path):
    with pytest.raises(LocalFileError, match="no device profile at .*enroll this laptop first"):
        load_profile(tmp_path / "nowhere")


def test_damaged_device_json_names_the_missing_keys(tmp_path):
    _write_profile(tmp_path / "p", {k: v for k, v in FIELDS.items() if k != "roleAlias"})
    with pytest.raises(LocalFileError, match="lacks roleAlias"):
        load_profile(tmp_path / "p")


def test_unparsable_device_json_is_a_local_file_error(tmp_path):
    _write_profile(tmp_path / "p")
    (tmp_path / "p" / "device.json").write_text("{not json")
    with pytest.raises(LocalFileError, match="is damaged"):
        load_profile(tmp_path / "p")


def test_profile_without_its_key_is_incomplete(tmp_path):
    _write_profile(tmp_path / "p", files=("device.crt",))
    with pytest.raises(LocalFileError, match=r"incomplete \(device.key missing\)"):
        load_profile(tmp_path / "p")


def test_secret_files_are_0600_in_a_0700_directory_even_if_it_was_open(tmp_path):
    directory = tmp_path / "profile"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    write_secret_file(directory / "device.key", b"secret")
    assert stat.S_IMODE(os.stat(directory / "device.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert (directory / "device.key").read_bytes() == b"secret"


def test_secret_file_creates_missing_parents_private(tmp_path):
    write_secret_file(tmp_path / "a" / "b" / "device.key", b"k")
    assert stat.S_IMODE(os.stat(tmp_path / "a" / "b").st_mode) == 0o700


def test_atomic_write_replaces_the_whole_file_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "device.crt"
    target.write_bytes(b"old" * 1000)
    write_file_atomic(target, b"new", 0o644)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["device.crt"]


def test_atomic_write_keeps_the_old_file_when_the_directory_is_unwritable(tmp_path):
    if os.geteuid() == 0:
        # root ignores directory permissions; a path under a regular file fails for everyone.
        target = tmp_path / "file" / "device.crt"
        (tmp_path / "file").write_text("not a directory")
        with pytest.raises(LocalFileError, match="cannot"):
            write_file_atomic(target, b"new")
        return
    target = tmp_path / "device.crt"
    target.write_bytes(b"old")
    os.chmod(tmp_path, 0o500)
    try:
        with pytest.raises(LocalFileError, match="cannot write"):
            write_file_atomic(target, b"new")
        assert target.read_bytes() == b"old"
    finally:
        os.chmod(tmp_path, 0o700)
