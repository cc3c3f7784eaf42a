"""Merging the device-trust profile into an AWS config file (pure text), read back by botocore."""
from __future__ import annotations

import re
import subprocess

import pytest
from botocore.compat import compat_shell_split
from botocore.configloader import raw_config_parse

from provisioner import aws_profile

PYTHON = "/opt/My Tools/venv/bin/python3"
PROFILE_DIR = "/home/ann/Device Trust/it's local"

EXISTING = """\
# my AWS config, hand-written
[default]
region = eu-west-1
output = json

[profile work]
# the work account
sso_start_url = https://example.awsapps.com/start
sso_region = eu-west-1
s3 =
  max_concurrent_requests = 20

[profile device-trust-local]
aws_access_key_id = AKIAOLDSTATIC
aws_secret_access_key = oldsecret
output = table
region = us-west-2

; trailing note about the next section
[profile after]
region = ap-south-1
"""


def settings(**overrides):
    command = aws_profile.credential_process_command(PYTHON, PROFILE_DIR)
    values = {"credential_process": command, "region": "us-east-1"}
    values.update(overrides)
    return aws_profile.profile_settings(**values)


def parse(tmp_path, text):
    path = tmp_path / "config"
    path.write_text(text)
    return raw_config_parse(str(path))


def test_credential_process_survives_botocores_split_with_spaces_and_quotes():
    command = aws_profile.credential_process_command(PYTHON, PROFILE_DIR)
    assert compat_shell_split(command, platform="linux") == [
        PYTHON, "-m", "provisioner", "credentials", "--profile-dir", PROFILE_DIR,
    ]


def test_credential_process_is_quoted_for_windows_splitting():
    python = r"C:\Program Files\Python311\python.exe"
    directory = r"C:\Users\Ann Lee\.device-trust\local"
    command = aws_profile.credential_process_command(python, directory, windows=True)
    assert compat_shell_split(command, platform="win32") == [
        python, "-m", "provisioner", "credentials", "--profile-dir", directory,
    ]


def test_merge_into_empty_file_creates_the_profile(tmp_path):
    merged = aws_profile.merge_profile("", "device-trust-local", settings())
    parsed = parse(tmp_path, merged)
    assert parsed["profile device-trust-local"]["region"] == "us-east-1"
    assert "credentials --profile-dir" in parsed["profile device-trust-local"]["credential_process"]


def test_merge_leaves_every_other_line_untouched(tmp_path):
    merged = aws_profile.merge_profile(EXISTING, "device-trust-local", settings())
    before, _, _ = EXISTING.partition("[profile device-trust-local]")
    assert merged.startswith(before)
    assert merged.endswith("; trailing note about the next section\n[profile after]\nregion = ap-south-1\n")
    parsed = parse(tmp_path, merged)
    assert parsed["default"] == {"region": "eu-west-1", "output": "json"}
    assert parsed["profile work"]["s3"] == {"max_concurrent_requests": "20"}
    assert parsed["profile after"] == {"region": "ap-south-1"}


def test_merge_replaces_static_keys_and_keeps_the_users_other_settings(tmp_path):
    merged = aws_profile.merge_profile(EXISTING, "device-trust-local", settings())
    ours = parse(tmp_path, merged)["profile device-trust-local"]
    assert "aws_access_key_id" not in ours and "aws_secret_access_key" not in ours
    assert ours["output"] == "table"
    assert ours["region"] == "us-east-1"
    assert compat_shell_split(ours["credential_process"], platform="linux")[-1] == PROFILE_DIR
    assert aws_profile.removed_keys(EXISTING, "device-trust-local") == [
        "aws_access_key_id", "aws_secret_access_key",
    ]


def test_merge_is_idempotent():
    once = aws_profile.merge_profile(EXISTING, "device-trust-local", settings())
    assert aws_profile.merge_profile(once, "device-trust-local", settings()) == once


def test_merge_appends_a_new_profile_after_a_blank_line():
    merged = aws_profile.merge_profile("[default]\nregion = eu-west-1", "dt", settings())
    assert merged.startswith("[default]\nregion = eu-west-1\n\n[profile dt]\n")


def test_default_profile_uses_the_bare_section_name(tmp_path):
    merged = aws_profile.merge_profile(EXISTING, "default", settings())
    parsed = parse(tmp_path, merged)
    assert parsed["default"]["region"] == "us-east-1"
    assert parsed["default"]["output"] == "json"
    assert "[profile default]" not in merged


def test_endpoint_url_is_written_when_asked(tmp_path):
    merged = aws_profile.merge_profile("", "dt", settings(endpoint_url="http://127.0.0.1:4566"))
    assert parse(tmp_path, merged)["profile dt"]["endpoint_url"] == "http://127.0.0.1:4566"


def test_a_duplicated_section_is_refused_rather_than_guessed():
    text = "[profile dt]\nregion = a\n[profile dt]\nregion = b\n"
    with pytest.raises(aws_profile.ConfigMergeError, match="appears 2 times"):
        aws_profile.merge_profile(text, "dt", settings())


@pytest.mark.parametrize("name", ["", "has space", "a]b", "x" * 65])
def test_invalid_profile_names_are_rejected(name):
    with pytest.raises(ValueError):
        aws_profile.profile_section(name)


def test_paths_with_line_breaks_are_rejected():
    with pytest.raises(ValueError):
        aws_profile.credential_process_command(PYTHON, "/tmp/evil\ncredential_process = sh")


# ---------------------------------------------------------------- what cmd.exe would act on
WINDOWS_PYTHON = r"C:\Program Files\Python311\python.exe"
WINDOWS_DIR = r"C:\Users\Ann Lee\.device-trust\local"


@pytest.mark.parametrize("char", list('&|<>^%!"'))
def test_windows_rendering_refuses_a_profile_dir_with_a_character_cmd_exe_interprets(char):
    """The Go, JavaScript and Java SDKs run credential_process through `cmd.exe /C`:
    C:\\a&calc\\x would run calc; %VAR% and !VAR! would be expanded; " would end the quoting."""
    with pytest.raises(ValueError, match=r"contains .* which cmd\.exe interprets .*cmd\.exe /C"):
        aws_profile.credential_process_command(WINDOWS_PYTHON, WINDOWS_DIR + f"\\a{char}calc", windows=True)


def test_windows_rendering_refuses_a_python_path_with_a_character_cmd_exe_interprets():
    with pytest.raises(ValueError, match=r"path 'C:\\\\100%\\\\python\.exe' contains %"):
        aws_profile.credential_process_command(r"C:\100%\python.exe", WINDOWS_DIR, windows=True)


def test_posix_rendering_keeps_shell_characters_literal():
    """POSIX SDKs run `sh -c`, and shlex quoting is what sh reads: no reason to refuse these."""
    directory = "/home/ann/a&b|c<d>e^f%g!h\"i$(j)`k`"
    command = aws_profile.credential_process_command(PYTHON, directory)
    assert compat_shell_split(command, platform="linux")[-1] == directory
    # run the rendered value as the Go SDK does on POSIX, `sh -c <value>`, with echo standing in for python
    shown = subprocess.run(["sh", "-c", aws_profile.credential_process_command("echo", directory)],
                           capture_output=True, text=True, check=True)
    assert shown.stdout == f"-m provisioner credentials --profile-dir {directory}\n"


@pytest.mark.parametrize("char", ["\x0b", "\x0c", "\x1b", "\x1c", "\x85", "\u2028", "\x00"])
@pytest.mark.parametrize("windows", [False, True])
def test_paths_with_control_characters_are_rejected(char, windows):
    with pytest.raises(ValueError, match="control character"):
        aws_profile.credential_process_command(PYTHON, f"/tmp/a{char}b", windows=windows)


# ---------------------------------------------------------------- endpoint_url
@pytest.mark.parametrize("url", [
    "https://example.com", "https://vpce-1.iot.us-east-1.vpce.amazonaws.com:8443/",
    "http://127.0.0.1:4566", "http://localhost:4566", "http://LOCALHOST", "http://[::1]:4566",
])
def test_endpoint_url_https_anywhere_or_http_to_this_machine_is_accepted(url, tmp_path):
    merged = aws_profile.merge_profile("", "dt", settings(endpoint_url=url))
    assert parse(tmp_path, merged)["profile dt"]["endpoint_url"] == url


@pytest.mark.parametrize("url,fragment", [
    ("http://example.com", "unencrypted"),
    ("http://10.0.0.5:4566", "unencrypted"),
    ("http://127.0.0.1.example.com:4566", "unencrypted"),
    ("http://127.0.0.2:4566", "unencrypted"),
    ("ftp://127.0.0.1", "expected https://HOST"),
    ("127.0.0.1:4566", "expected https://HOST"),
    ("https://", "expected https://HOST"),
    ("https://example.com:99999", "Port out of range"),
])
def test_endpoint_url_without_https_off_this_machine_is_refused(url, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        aws_profile.profile_settings(credential_process="x", region="us-east-1", endpoint_url=url)
