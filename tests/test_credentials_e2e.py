"""End to end on the stand-in: the credentials verbs through the doors users use.

The DeviceTrust-local stack is deployed into the stand-in (``deployed_stack``) and the
laptops are enrolled with ``python -m provisioner enroll``. Every test then runs
``python -m provisioner ...`` as a subprocess and talks to the stand-in over real HTTP
and mutual TLS; AWS clients we did not write (boto3, the AWS CLI v1) read the results.
No static AWS key is in the environment of those clients: the only way they get
credentials is the device certificate.
"""
from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.fixtures.deployment import deploy_template

REPO = Path(__file__).resolve().parent.parent
AWS_CLI = Path(sys.executable).with_name("aws")
WHOAMI = (
    "import boto3, json, sys; "
    "print(json.dumps(boto3.session.Session(profile_name=sys.argv[1] if len(sys.argv) > 1 else None)"
    ".client('sts').get_caller_identity()))"
)


def provisioner(*args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "provisioner", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


PKCS12_PASSWORD = "correct horse battery staple"


def enroll(emulator, base_env: dict, thing_name: str, directory: Path) -> dict:
    """`python -m provisioner enroll` as an operator-equipped laptop runs it; device.json + dir."""
    env = base_env | {k: v for k, v in emulator.env.items() if k not in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")}
    env["DEVICE_TRUST_PKCS12_PASSWORD"] = PKCS12_PASSWORD
    done = provisioner("enroll", "--thing-name", thing_name, "--profile-dir", str(directory),
                       "--endpoint-ca", str(emulator.ca_file), env=env)
    assert done.returncode == 0, done.stderr
    return json.loads((directory / "device.json").read_text()) | {"dir": directory}


def requests_seen(emulator, role_alias: str) -> int:
    return emulator.log_text().count(f"credentials GET /role-aliases/{role_alias}/credentials")


def wait_for_log(emulator, role_alias: str, at_least: int) -> int:
    deadline = time.monotonic() + 5
    while (seen := requests_seen(emulator, role_alias)) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    return seen


@pytest.fixture(scope="module")
def base_env(emulator, tmp_path_factory) -> dict:
    """The environment of a laptop user: no AWS keys, an empty AWS config of its own."""
    home = tmp_path_factory.mktemp("home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    return env


@pytest.fixture(scope="module")
def device(deployed_stack, base_env, tmp_path_factory):
    directory = tmp_path_factory.mktemp("device") / "profile"
    return enroll(deployed_stack.emulator, base_env, "credentials-e2e-laptop", directory) | {
        "roleArn": deployed_stack.outputs["DeviceRoleArn"],
    }


@pytest.fixture(scope="module")
def aws_profile(device, base_env, emulator) -> str:
    """A ~/.aws/config profile written by `aws-config --write`, pointing at the stand-in."""
    done = provisioner("aws-config", "--write", "--profile-name", "laptop", "--profile-dir", str(device["dir"]),
                       "--endpoint-url", emulator.endpoint_url, env=base_env)
    assert done.returncode == 0, done.stderr
    return "laptop"


def assert_assumed_device_role(identity: dict, device: dict) -> None:
    role_name = device["roleArn"].rsplit("/", 1)[1]
    assert identity["Account"] == "123456789012"
    assert identity["Arn"] == f"arn:aws:sts::123456789012:assumed-role/{role_name}/{device['certificateId']}"


# ---------------------------------------------------------------- credential_process
@pytest.fixture
def elsewhere(tmp_path, base_env) -> tuple[Path, dict]:
    """Where a user runs AWS clients: a directory outside the repository, no PYTHONPATH;
    credential_process must find the provisioner through the installed package."""
    directory = tmp_path / "somewhere-else"
    directory.mkdir()
    assert REPO not in directory.resolve().parents
    return directory, {k: v for k, v in base_env.items() if k != "PYTHONPATH"}


def test_boto3_gets_credentials_through_the_credential_process_profile(aws_profile, device, elsewhere):
    cwd, env = elsewhere
    done = subprocess.run([sys.executable, "-c", WHOAMI, aws_profile], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert_assumed_device_role(json.loads(done.stdout), device)


def test_aws_cli_v1_get_caller_identity_works_through_the_profile(aws_profile, device, elsewhere):
    cwd, env = elsewhere
    done = subprocess.run([str(AWS_CLI), "sts", "get-caller-identity", "--profile", aws_profile,
                           "--output", "json"], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert_assumed_device_role(json.loads(done.stdout), device)


def test_aws_config_refuses_a_profile_name_with_a_space_before_reading_the_profile(base_env, tmp_path):
    config = tmp_path / "config"
    env = base_env | {"AWS_CONFIG_FILE": str(config)}
    done = provisioner("aws-config", "--write", "--profile-name", "a b", "--profile-dir", str(tmp_path / "none"),
                       env=env)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "device-trust: invalid profile name 'a b': use letters, digits and . _ - @ + (up to 64)"]
    assert not config.exists()


def test_credentials_prints_credential_process_version_1_json_only(device, base_env):
    done = provisioner("credentials", "--profile-dir", str(device["dir"]), env=base_env)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert set(document) == {"Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}
    assert document["Version"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", document["Expiration"])
    cache = device["dir"] / "credentials-cache.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert document["SecretAccessKey"] not in done.stderr


def test_warm_call_is_served_from_the_cache_without_a_request(device, base_env, emulator):
    first = provisioner("credentials", "--profile-dir", str(device["dir"]), env=base_env)
    assert first.returncode == 0, first.stderr
    before = wait_for_log(emulator, device["roleAlias"], 1)
    second = provisioner("credentials", "--profile-dir", str(device["dir"]), env=base_env)
    assert second.returncode == 0, second.stderr
    time.sleep(0.3)
    assert requests_seen(emulator, device["roleAlias"]) == before
    assert json.loads(second.stdout) == json.loads(first.stdout)


def test_warm_command_line_call_imports_neither_boto3_nor_cryptography(device, base_env):
    # credential_process runs before every AWS CLI command: the warm path through
    # `python -m provisioner credentials` must not pay for the other verbs' imports.
    warm = provisioner("credentials", "--profile-dir", str(device["dir"]), env=base_env)
    assert warm.returncode == 0, warm.stderr
    traced = subprocess.run([sys.executable, "-X", "importtime", "-m", "provisioner", "credentials",
                             "--profile-dir", str(device["dir"])],
                            env=base_env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert traced.returncode == 0, traced.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in traced.stderr.splitlines() if line.startswith("import time:")}
    assert "provisioner.credential_cache" in imported
    assert not {name for name in imported if name.split(".")[0] in {"boto3", "botocore", "cryptography"}}


def test_cache_is_refreshed_once_inside_the_refresh_margin(device, base_env, emulator):
    first = json.loads(provisioner("credentials", "--profile-dir", str(device["dir"]), env=base_env).stdout)
    before = wait_for_log(emulator, device["roleAlias"], 1)
    # 3600 s credentials with a 43200 s margin are always "about to expire"
    env = base_env | {"DEVICE_TRUST_REFRESH_MARGIN": "43200"}
    refreshed = provisioner("credentials", "--profile-dir", str(device["dir"]), env=env)
    assert refreshed.returncode == 0, refreshed.stderr
    assert wait_for_log(emulator, device["roleAlias"], before + 1) == before + 1
    assert json.loads(refreshed.stdout)["AccessKeyId"] != first["AccessKeyId"]
    # and the new credentials are what the cache now serves
    again = provisioner("credentials", "--profile-dir", str(device["dir"]), "--refresh-margin", "60", env=base_env)
    assert json.loads(again.stdout) == json.loads(refreshed.stdout)


def test_eight_concurrent_callers_on_a_cold_cache_all_succeed_with_one_request(device, base_env, emulator):
    (device["dir"] / "credentials-cache.json").unlink(missing_ok=True)
    before = wait_for_log(emulator, device["roleAlias"], 0)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(
            lambda _: provisioner("credentials", "--profile-dir", str(device["dir"]), env=base_env), range(8)))
    assert [r.returncode for r in results] == [0] * 8, [r.stderr for r in results]
    documents = [json.loads(r.stdout) for r in results]
    assert all(d == documents[0] for d in documents)
    time.sleep(0.3)
    assert requests_seen(emulator, device["roleAlias"]) == before + 1


def test_missing_profile_is_one_clear_line_and_exit_5(base_env, tmp_path):
    done = provisioner("credentials", "--profile-dir", str(tmp_path / "nothing"), env=base_env)
    assert done.returncode == 5
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "enroll this laptop first" in done.stderr


# ---------------------------------------------------------------- verify
def test_verify_prints_role_session_name_and_expiry(device, base_env, emulator):
    env = base_env | {"AWS_ENDPOINT_URL": emulator.endpoint_url}
    done = provisioner("verify", "--profile-dir", str(device["dir"]), "--json", env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["roleArn"] == device["roleArn"]
    assert result["sessionName"] == device["certificateId"]
    assert result["sessionIsCertificate"] is True
    assert result["expiration"].endswith("Z")
    assert re.fullmatch(r"ASIA\.\.\.[A-Z0-9]{4}", result["accessKeyId"]), result["accessKeyId"]  # masked
    text = provisioner("verify", "--profile-dir", str(device["dir"]), env=env)
    assert text.returncode == 0, text.stderr
    assert f"role:         {device['roleArn']}" in text.stdout
    assert f"session name: {device['certificateId']}  (= certificate id)" in text.stdout


# ---------------------------------------------------------------- serve
def test_sdk_program_gets_credentials_through_serve_and_serve_stops_on_sigterm(device, base_env, emulator):
    server = subprocess.Popen([sys.executable, "-m", "provisioner", "serve", "--profile-dir", str(device["dir"])],
                              env=base_env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        exports = dict(
            re.fullmatch(r"export (\w+)=(\S+)\n", server.stdout.readline()).groups() for _ in range(2)
        )
        assert set(exports) == {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN"}
        assert exports["AWS_CONTAINER_CREDENTIALS_FULL_URI"].startswith("http://127.0.0.1:")
        env = base_env | exports | {"AWS_ENDPOINT_URL": emulator.endpoint_url, "AWS_DEFAULT_REGION": "us-east-1"}
        done = subprocess.run([sys.executable, "-c", WHOAMI], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert_assumed_device_role(json.loads(done.stdout), device)
        # a program holding the URI but not the token gets nothing
        wrong = env | {"AWS_CONTAINER_AUTHORIZATION_TOKEN": "guess"}
        refused = subprocess.run([sys.executable, "-c", WHOAMI], env=wrong, capture_output=True, text=True,
                                 timeout=120)
        assert refused.returncode != 0
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert code == 0
    stderr = server.stderr.read()
    assert "Traceback" not in stderr
    assert "warning" not in stderr  # no AWS variables in this environment


def test_serve_warns_about_aws_variables_the_sdks_would_prefer_and_sends_a_clean_server_header(
        device, base_env, tmp_path):
    shadowing = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG",
                 "AWS_PROFILE": "someone-else"}
    server = subprocess.Popen([sys.executable, "-m", "provisioner", "serve", "--profile-dir", str(device["dir"])],
                              env=base_env | shadowing, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        exports = dict(
            re.fullmatch(r"export (\w+)=(\S+)\n", server.stdout.readline()).groups() for _ in range(2)
        )
        notes = []
        while not (line := server.stderr.readline()).startswith("device-trust serve: serving credentials"):
            assert line, f"serve stopped early: {notes}"
            notes.append(line)
        assert notes == [
            "device-trust serve: warning: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE are set; the AWS "
            "SDKs and CLI use them before the container endpoint: unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY "
            "AWS_PROFILE in the shell that runs your programs\n"
        ]
        # the raw header line, as it goes over the wire
        import socket
        from urllib.parse import urlsplit

        url = urlsplit(exports["AWS_CONTAINER_CREDENTIALS_FULL_URI"])
        with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
            sock.sendall(f"GET {url.path} HTTP/1.0\r\nAuthorization: "
                         f"{exports['AWS_CONTAINER_AUTHORIZATION_TOKEN']}\r\n\r\n".encode())
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
        head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        assert head[0].startswith(b"HTTP/1.0 200 "), head
        assert b"Server: device-trust-serve" in head, head
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert code == 0


# ---------------------------------------------------------------- aws-config
def test_aws_config_without_write_prints_the_profile_and_touches_nothing(device, base_env, tmp_path):
    env = base_env | {"AWS_CONFIG_FILE": str(tmp_path / "config")}
    done = provisioner("aws-config", "--profile-dir", str(device["dir"]), env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[profile device-trust-local]\ncredential_process = ")
    assert f"-m provisioner credentials --profile-dir {device['dir'].resolve()}" in done.stdout
    assert Path(sys.executable).absolute().as_posix() in done.stdout
    assert not (tmp_path / "config").exists()


def test_aws_config_write_keeps_other_profiles(device, base_env, tmp_path):
    config = tmp_path / "config"
    config.write_text("[default]\nregion = eu-west-1\n\n[profile other]\noutput = text\n")
    config.chmod(0o640)
    env = base_env | {"AWS_CONFIG_FILE": str(config)}
    done = provisioner("aws-config", "--write", "--profile-dir", str(device["dir"]), env=env)
    assert done.returncode == 0, done.stderr
    text = config.read_text()
    assert text.startswith("[default]\nregion = eu-west-1\n\n[profile other]\noutput = text\n\n")
    assert "[profile device-trust-local]\ncredential_process = " in text
    assert stat.S_IMODE(config.stat().st_mode) == 0o640


def test_aws_config_write_refuses_a_duplicated_section_with_exit_5_and_leaves_the_file_alone(device, base_env,
                                                                                              tmp_path):
    config = tmp_path / "config"
    original = ("[profile device-trust-local]\nregion = eu-west-1\n\n[default]\noutput = json\n\n"
                "[profile device-trust-local]\noutput = text\n")
    config.write_text(original)
    env = base_env | {"AWS_CONFIG_FILE": str(config)}
    done = provisioner("aws-config", "--write", "--profile-dir", str(device["dir"]), env=env)
    assert done.returncode == 5
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "[profile device-trust-local] appears 2 times; remove the duplicates by hand first" in done.stderr
    assert config.read_text() == original


# ---------------------------------------------------------------- revoked certificate
@pytest.fixture
def revoked_device(deployed_stack, base_env, tmp_path):
    """A second laptop, enrolled for this test: its certificate gets revoked."""
    return enroll(deployed_stack.emulator, base_env, "credentials-revoked-laptop", tmp_path / "profile")


def test_revoked_certificate_gives_a_clear_error_and_exit_6(revoked_device, base_env, emulator):
    warm = provisioner("credentials", "--profile-dir", str(revoked_device["dir"]), env=base_env)
    assert warm.returncode == 0, warm.stderr
    operator_env = base_env | {k: v for k, v in emulator.env.items()
                               if k not in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")}
    revoked = provisioner("revoke", "--thing-name", "credentials-revoked-laptop", env=operator_env)
    assert revoked.returncode == 0, revoked.stderr
    status = emulator.client("iot").describe_certificate(certificateId=revoked_device["certificateId"])
    assert status["certificateDescription"]["status"] == "REVOKED"

    # still fresh: the cache answers and the endpoint is not asked
    cached = provisioner("credentials", "--profile-dir", str(revoked_device["dir"]), env=base_env)
    assert cached.returncode == 0 and json.loads(cached.stdout) == json.loads(warm.stdout)

    refused = provisioner("credentials", "--profile-dir", str(revoked_device["dir"]), "--refresh-margin", "43200",
                          env=base_env)
    assert refused.returncode == 6
    assert refused.stdout == ""
    assert refused.stderr.count("\n") == 1
    assert refused.stderr.startswith(
        f"device-trust: credentials endpoint {emulator.credentials_endpoint} refused the certificate (403 Forbidden: "
    )
    assert "revoked, inactive or unknown" in refused.stderr
    assert "Traceback" not in refused.stderr
    # the cache of a refused certificate is gone: the next call does not hand out old keys
    assert not (revoked_device["dir"] / "credentials-cache.json").exists()
    again = provisioner("credentials", "--profile-dir", str(revoked_device["dir"]), env=base_env)
    assert again.returncode == 6

    env = base_env | {"AWS_ENDPOINT_URL": emulator.endpoint_url}
    verify = provisioner("verify", "--profile-dir", str(revoked_device["dir"]), env=env)
    assert verify.returncode == 6 and "refused the certificate" in verify.stderr

    serve = provisioner("serve", "--profile-dir", str(revoked_device["dir"]), env=base_env, timeout=60)
    assert serve.returncode == 6 and serve.stdout == ""


def test_every_refusal_deletes_the_cache_so_plain_credentials_refuse_too(deployed_stack, base_env, emulator,
                                                                         tmp_path):
    """After `revoke`, verify, credentials --no-cache and serve each meet the refusal (exit 6) and
    delete credentials-cache.json, so a plain `credentials` (what the AWS CLI profile runs) asks
    the endpoint and refuses too instead of handing out the cached keys for up to an hour."""
    device = enroll(deployed_stack.emulator, base_env, "credentials-refused-paths-laptop", tmp_path / "profile")
    cache = device["dir"] / "credentials-cache.json"
    warm = provisioner("credentials", "--profile-dir", str(device["dir"]), env=base_env)
    assert warm.returncode == 0, warm.stderr
    cached_bytes = cache.read_bytes()
    operator_env = base_env | {k: v for k, v in emulator.env.items()
                               if k not in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")}
    revoked = provisioner("revoke", "--thing-name", "credentials-refused-paths-laptop", env=operator_env)
    assert revoked.returncode == 0, revoked.stderr

    refusing_paths = {
        "verify": (["verify"], base_env | {"AWS_ENDPOINT_URL": emulator.endpoint_url}),
        "credentials --no-cache": (["credentials", "--no-cache"], base_env),
        "serve": (["serve"], base_env),
    }
    for name, (args, env) in refusing_paths.items():
        cache.write_bytes(cached_bytes)  # the fresh cache the laptop had when it was revoked
        cache.chmod(0o600)
        done = provisioner(*args, "--profile-dir", str(device["dir"]), env=env, timeout=60)
        assert done.returncode == 6, (name, done.stderr)
        assert done.stdout == "", name
        assert done.stderr.count("\n") == 1 and "refused the certificate" in done.stderr, (name, done.stderr)
        assert not cache.exists(), f"{name} left the cache of a refused certificate in place"
        plain = provisioner("credentials", "--profile-dir", str(device["dir"]), env=base_env)
        assert plain.returncode == 6, (name, plain.stdout)  # not the cached keys
        assert plain.stdout == "" and "refused the certificate" in plain.stderr, name


# ---------------------------------------------------------------- endpoint down
def test_unreachable_endpoint_falls_back_to_still_valid_cached_credentials(base_env, local_template, tmp_path):
    from tests.fixtures.emulator import start_emulator

    with start_emulator(tmp_path / "private-standin") as private:  # a stand-in of its own, to stop
        deploy_template(private, local_template.template)
        directory = enroll(private, base_env, "credentials-offline-laptop", tmp_path / "profile")["dir"]
        warm = provisioner("credentials", "--profile-dir", str(directory), env=base_env)
        assert warm.returncode == 0, warm.stderr
    # the stand-in is gone; the cached credentials have about an hour left
    stale = provisioner("credentials", "--profile-dir", str(directory), "--refresh-margin", "43200", env=base_env)
    assert stale.returncode == 0, stale.stderr
    assert json.loads(stale.stdout) == json.loads(warm.stdout)
    assert stale.stderr.startswith("device-trust: warning: credentials endpoint ")
    assert "unreachable; using cached credentials valid until" in stale.stderr
    uncached = provisioner("credentials", "--profile-dir", str(directory), "--no-cache", env=base_env)
    assert uncached.returncode == 4
    assert "cannot connect to credentials endpoint" in uncached.stderr
    assert uncached.stderr.count("\n") == 1
