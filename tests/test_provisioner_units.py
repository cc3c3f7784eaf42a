"""Pure parts of the provisioner outside keys.py: stack outputs, botocore error translation, the status table."""
from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoRegionError, ReadTimeoutError

from provisioner.commands.status import render_table
from provisioner.errors import AwsError, NetworkError
from provisioner.stack_info import REQUIRED_OUTPUTS, StackInfo, aws_errors, client_config

OUTPUTS = {key: f"value-of-{key}" for key in REQUIRED_OUTPUTS}


def test_stack_info_maps_every_output():
    info = StackInfo.from_outputs("DeviceTrust-dev", "eu-west-1", OUTPUTS)
    assert (info.role_alias, info.device_policy_name, info.provisioning_template_name, info.thing_group_name) == (
        "value-of-RoleAliasName", "value-of-DevicePolicyName", "value-of-ProvisioningTemplateName",
        "value-of-ThingGroupName")


def test_missing_stack_outputs_are_named_in_one_aws_error():
    partial = {k: v for k, v in OUTPUTS.items() if k not in ("RoleAliasName", "ThingGroupName")}
    with pytest.raises(AwsError, match="stack DeviceTrust-dev lacks the outputs RoleAliasName, ThingGroupName"):
        StackInfo.from_outputs("DeviceTrust-dev", "eu-west-1", partial)


def _client_error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "RegisterThing")


def test_access_denied_becomes_an_aws_error_pointing_at_the_provisioner_policy():
    with pytest.raises(AwsError, match="registering failed: AccessDeniedException: no.*ProvisionerPolicyArn") as info:
        with aws_errors("registering"):
            raise _client_error("AccessDeniedException", "no")
    assert isinstance(info.value.__cause__, ClientError)


def test_throttling_after_retries_says_to_try_later():
    with pytest.raises(AwsError, match="ThrottlingException: slow down: AWS kept throttling"):
        with aws_errors("listing"):
            raise _client_error("ThrottlingException", "slow\n down")


def test_unreachable_endpoint_and_timeouts_are_network_errors():
    with pytest.raises(NetworkError, match="cannot reach AWS"):
        with aws_errors("reading stack"):
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
    with pytest.raises(NetworkError, match="did not answer in time"):
        with aws_errors("reading stack"):
            raise ReadTimeoutError(endpoint_url="http://127.0.0.1:9")


def test_no_region_is_a_configuration_error_with_the_fix():
    with pytest.raises(AwsError, match=r"^no AWS region: pass --region or set AWS_DEFAULT_REGION \(or AWS_REGION\)$"):
        with aws_errors("setting up the iot client"):  # names no service: the first call may be another's
            raise NoRegionError()


def test_clients_use_standard_retries_with_a_bound():
    config = client_config()
    assert config.retries == {"mode": "standard", "total_max_attempts": 5}
    assert config.connect_timeout == 5 and config.read_timeout == 30


def test_status_table_has_one_row_per_certificate_and_marks_empty_things():
    rows = render_table([
        {"thingName": "lap-1", "registered": True, "certificates": [
            {"certificateId": "aa", "status": "ACTIVE", "notAfter": "2049-12-31T23:59:59Z"},
            {"certificateId": "bb", "status": "REVOKED", "notAfter": None}]},
        {"thingName": "lap-22", "registered": True, "certificates": []},
        {"thingName": "gone", "registered": False, "certificates": []},
    ])
    assert [row.split() for row in rows] == [
        ["THING", "CERTIFICATE", "STATUS", "NOT", "AFTER"],
        ["lap-1", "aa", "ACTIVE", "2049-12-31T23:59:59Z"],
        ["lap-1", "bb", "REVOKED", "-"],
        ["lap-22", "-", "NO", "CERTIFICATE", "-"],
        ["gone", "-", "NOT", "REGISTERED", "-"],
    ]
    assert rows[1].index("aa") == rows[2].index("bb") == rows[0].index("CERTIFICATE")  # aligned columns


# ---------------------------------------------------------------- rotate's swap of the profile files

def _staged_profile(tmp_path):
    import types

    from provisioner.commands._common import StagedProfile

    names = ("device.crt", "device.key", "device.p12", "device.json")
    for name in names:
        (tmp_path / name).write_text(f"old {name}")
        (tmp_path / (name + ".new")).write_text(f"new {name}")
    return StagedProfile(types.SimpleNamespace(directory=tmp_path), names), names


def test_swap_in_keeps_the_old_files_until_undo_puts_them_back(tmp_path):
    staged, names = _staged_profile(tmp_path)
    swapped = staged.swap_in()
    assert {n: (tmp_path / n).read_text() for n in names} == {n: f"new {n}" for n in names}
    assert {n: (tmp_path / (n + ".old")).read_text() for n in names} == {n: f"old {n}" for n in names}
    assert swapped.undo() is None
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    assert {n: (tmp_path / n).read_text() for n in names} == {n: f"old {n}" for n in names}


def test_swap_in_keep_removes_the_old_files(tmp_path):
    staged, names = _staged_profile(tmp_path)
    staged.swap_in().keep()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    assert {n: (tmp_path / n).read_text() for n in names} == {n: f"new {n}" for n in names}


def test_a_failed_rename_during_swap_in_puts_the_old_files_back(tmp_path, monkeypatch):
    import os

    from provisioner.commands import _common
    from provisioner.errors import LocalFileError

    staged, names = _staged_profile(tmp_path)
    real_replace = os.replace

    def replace(source, target):
        if str(source).endswith("device.p12.new"):
            raise PermissionError(13, "Permission denied")
        return real_replace(source, target)

    monkeypatch.setattr(_common.os, "replace", replace)
    with pytest.raises(LocalFileError, match=r"cannot install device.p12 in .*Permission denied.*the old files are "
                                             r"back in place"):
        staged.swap_in()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no *.new, no *.old
    assert {n: (tmp_path / n).read_text() for n in names} == {n: f"old {n}" for n in names}


def _no_hard_links(monkeypatch):
    """A file system without hard links (FAT, some network shares): swap_in must copy."""
    from provisioner.commands import _common

    def link(source, target):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(_common.os, "link", link)


@pytest.fixture
def umask_022():
    import os

    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_without_hard_links_the_kept_copies_have_the_modes_of_the_originals(tmp_path, monkeypatch, umask_022):
    import os
    import stat

    staged, names = _staged_profile(tmp_path)
    modes = {"device.crt": 0o644, "device.key": 0o600, "device.p12": 0o600, "device.json": 0o644}
    for name, mode in modes.items():
        os.chmod(tmp_path / name, mode)
    _no_hard_links(monkeypatch)
    swapped = staged.swap_in()
    assert {n: stat.S_IMODE((tmp_path / (n + ".old")).stat().st_mode) for n in names} == modes
    assert {n: (tmp_path / (n + ".old")).read_text() for n in names} == {n: f"old {n}" for n in names}
    assert swapped.undo() is None
    assert {n: stat.S_IMODE((tmp_path / n).stat().st_mode) for n in names} == modes


def test_a_key_copy_cut_short_leaves_no_readable_fragment_and_the_old_files_in_place(tmp_path, monkeypatch,
                                                                                     umask_022):
    """The copy of device.key is stopped half-way by the kernel (the file-size limit), which
    freezes the moment between creating the copy and finishing it: no byte of the key may
    then sit in a file others can read (shutil.copy2 creates it with umask permissions and
    copies the mode only at the end), and the profile must be as it was."""
    import os
    import resource
    import stat

    from provisioner.errors import LocalFileError

    staged, names = _staged_profile(tmp_path)
    key = b"-----BEGIN PRIVATE KEY-----\n" + b"K" * 4000 + b"\n-----END PRIVATE KEY-----\n"
    (tmp_path / "device.key").write_bytes(key)
    os.chmod(tmp_path / "device.key", 0o600)
    _no_hard_links(monkeypatch)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, hard))  # SIGXFSZ is ignored by Python: writes fail EFBIG
    try:
        with pytest.raises(LocalFileError, match=r"device\.key.*File too large.*the old files are back in place"):
            staged.swap_in()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    for path in tmp_path.iterdir():
        if b"KKKK" in path.read_bytes():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path.name} holds key bytes and is readable by others"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no *.new, no *.old, no temporary file
    assert (tmp_path / "device.key").read_bytes() == key
    assert {n: (tmp_path / n).read_text() for n in names if n != "device.key"} == {
        n: f"old {n}" for n in names if n != "device.key"}


# ---------------------------------------------------------------- the PKCS#12 password variable
def test_the_pkcs12_password_variable_is_read_once_and_not_passed_on_to_child_processes(monkeypatch):
    import os
    import subprocess
    import sys

    from provisioner.commands._common import PASSWORD_ENV, pkcs12_password

    monkeypatch.setenv(PASSWORD_ENV, "correct horse battery")
    assert pkcs12_password() == b"correct horse battery"
    assert PASSWORD_ENV not in os.environ
    child = subprocess.run([sys.executable, "-c", f"import os; print(os.environ.get({PASSWORD_ENV!r}))"],
                           capture_output=True, text=True, timeout=60, check=True)
    assert child.stdout == "None\n"
