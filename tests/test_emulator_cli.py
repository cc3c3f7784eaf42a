"""`python -m emulator` as a user runs it: endpoint.json, the CA in the state
directory, one log line per request, clean stops, quota emulation."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography import x509

from tests.fixtures.emulator import REPO_ROOT, start_emulator


def test_endpoint_json_describes_both_endpoints(emulator):
    endpoint = json.loads((emulator.state_dir / "endpoint.json").read_text())
    assert endpoint == {
        "controlPlane": emulator.endpoint_url,
        "credentialsEndpoint": emulator.credentials_endpoint,
        "caFile": str(emulator.ca_file),
    }
    assert endpoint["controlPlane"].startswith("http://127.0.0.1:")
    assert endpoint["credentialsEndpoint"].startswith("localhost:")
    assert os.path.isabs(endpoint["caFile"])
    x509.load_pem_x509_certificate(emulator.ca_file.read_bytes())


def test_ca_private_key_is_owner_only(emulator):
    mode = stat.S_IMODE((emulator.state_dir / "ca.key").stat().st_mode)
    assert mode == 0o600


def test_ca_is_reused_across_restarts(tmp_path):
    with start_emulator(tmp_path) as first:
        ca_before = first.ca_file.read_bytes()
        key_before = (tmp_path / "ca.key").read_bytes()
    assert not (tmp_path / "endpoint.json").exists()
    with start_emulator(tmp_path) as second:
        assert second.ca_file.read_bytes() == ca_before
        assert (tmp_path / "ca.key").read_bytes() == key_before


def test_one_log_line_per_request_names_the_operation(emulator):
    iot = emulator.client("iot")
    marker = f"log-{time.time_ns()}"
    iot.create_thing(thingName=marker)
    iot.describe_thing(thingName=marker)
    with pytest.raises(ClientError):
        iot.describe_thing(thingName=marker + "-missing")
    time.sleep(0.2)
    lines = emulator.log_text().splitlines()
    assert any("iot.CreateThing -> 200" in line for line in lines)
    assert any("iot.DescribeThing -> 200" in line for line in lines)
    assert any("iot.DescribeThing -> 404 ResourceNotFoundException" in line for line in lines)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly_and_removes_endpoint_json(tmp_path, sig):
    with start_emulator(tmp_path) as running:
        running.process.send_signal(sig)
        assert running.process.wait(timeout=15) == 0
        assert not (tmp_path / "endpoint.json").exists()
        assert "Traceback" not in running.log_text()
        assert "stopped" in running.log_text()


def test_starts_quickly(tmp_path):
    started = time.monotonic()
    with start_emulator(tmp_path) as running:
        elapsed = time.monotonic() - started
        assert running.client("sts").get_caller_identity()["Account"] == "123456789012"
    # The brief asks for < 3 s; the bound leaves room for a machine shared with other test runs.
    assert elapsed < 10, f"took {elapsed:.1f} s"


def test_busy_port_is_one_clear_line_and_exit_1(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "emulator", "--port", "0", "--credentials-port", str(port), "--state-dir", str(tmp_path)],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"emulator: cannot listen on 127.0.0.1:{port}" in result.stderr


def test_without_throttle_bursts_are_served(emulator):
    iot = emulator.client("iot", config=Config(retries={"max_attempts": 1}))
    for _ in range(30):
        iot.describe_endpoint(endpointType="iot:Data-ATS")


def test_throttle_answers_bursts_over_the_quota_with_throttling_exception(tmp_path):
    with start_emulator(tmp_path, throttle=True) as running:
        iot = running.client("iot", config=Config(retries={"max_attempts": 1}))
        errors = []

        def describe() -> None:
            try:
                iot.describe_endpoint(endpointType="iot:Data-ATS")
            except ClientError as exc:
                errors.append((exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]))

        # DescribeEndpoint's quota is 10 requests per second; 60 at once exceed it on any machine.
        with ThreadPoolExecutor(max_workers=12) as pool:
            list(pool.map(lambda _: describe(), range(60)))
        assert errors, "no request was throttled"
        assert set(errors) == {("ThrottlingException", 400)}

        # botocore's standard retries (a client we did not write) ride it out.
        patient = running.client("iot", config=Config(retries={"mode": "standard", "max_attempts": 10}))
        for _ in range(15):
            patient.describe_endpoint(endpointType="iot:Data-ATS")

        sts = running.client("sts", config=Config(retries={"max_attempts": 1}))
        assert sts.get_caller_identity()["Account"] == "123456789012"


@pytest.mark.parametrize("option", ["--port", "--credentials-port"])
@pytest.mark.parametrize("value", ["70000", "65536", "-1", "abc", "80.5"])
def test_port_outside_0_to_65535_is_one_clear_line_and_exit_2(tmp_path, option, value):
    result = subprocess.run(
        [sys.executable, "-m", "emulator", option, value, "--state-dir", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"emulator: argument {option}: ")
    assert "0-65535" in lines[0]
    assert not (tmp_path / "endpoint.json").exists()


def test_planted_symlinks_and_loose_state_dir_do_not_leak_the_keys(tmp_path):
    """A state directory someone else could write to before the first start: the
    stand-in neither writes through their links nor leaves the directory open."""
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    victims = {}
    for name in ("ca.key.tmp", "credentials-server.key.tmp", "ca.pem", "credentials-server.pem", "endpoint.json.tmp"):
        victim = tmp_path / f"victim-{name}"
        victim.write_text("not yours\n")
        (state / name).symlink_to(victim)
        victims[name] = victim
    dangling = tmp_path / "nowhere" / "stolen.key"
    (state / "credentials-server.key").symlink_to(dangling)

    with start_emulator(state) as running:
        assert running.client("sts").get_caller_identity()["Account"] == "123456789012"
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        for name, mode in (("ca.key", 0o600), ("credentials-server.key", 0o600), ("ca.pem", 0o644),
                           ("credentials-server.pem", 0o644), ("endpoint.json", 0o644)):
            info = os.lstat(state / name)
            assert stat.S_ISREG(info.st_mode), name
            assert stat.S_IMODE(info.st_mode) == mode, name
        assert b"PRIVATE KEY" in (state / "ca.key").read_bytes()
    for name, victim in victims.items():
        assert victim.read_text() == "not yours\n", name
    assert not dangling.exists()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.0.2.10", "stand-in.example"])
def test_non_loopback_host_is_refused_with_one_line_and_exit_2(tmp_path, host):
    # Nothing is bound or resolved: the refusal comes before the state directory or any socket is touched.
    result = subprocess.run(
        [sys.executable, "-m", "emulator", "--host", host, "--port", "0", "--credentials-port", "0",
         "--state-dir", str(tmp_path / "state")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=20, check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"emulator: --host {host!r} is not a loopback address")
    assert "--allow-remote" in lines[0]
    assert not (tmp_path / "state").exists()


def test_localhost_by_name_is_a_loopback_host(tmp_path):
    with start_emulator(tmp_path, extra_args=("--host", "localhost")) as running:
        assert running.endpoint_url.startswith("http://localhost:")
        assert running.client("sts").get_caller_identity()["Account"] == "123456789012"
    assert "--allow-remote" not in running.log_text()


def test_allow_remote_is_accepted(tmp_path):
    # Only loopback is bound here; the flag's effect on a non-loopback --host is the absence of the refusal above.
    with start_emulator(tmp_path, extra_args=("--host", "127.0.0.1", "--allow-remote")) as running:
        assert running.client("sts").get_caller_identity()["Account"] == "123456789012"


# ---------------------------------------------------------------- a second stand-in on a running one's state


def _server_certificate_seen(running, cert_path, key_path) -> bytes:
    """The DER certificate the credentials endpoint presents in a verified mutual-TLS handshake."""
    import ssl

    context = ssl.create_default_context(cafile=str(running.ca_file))
    context.load_cert_chain(certfile=str(cert_path), keyfile=str(key_path))
    host, port = running.credentials_endpoint.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            return tls.getpeercert(binary_form=True)


@pytest.mark.parametrize("clash", ["both-ports", "api-port", "credentials-port", "state-dir-only"])
def test_second_stand_in_on_a_running_ones_ports_or_state_dir_exits_1_and_leaves_the_first_serving(tmp_path, clash):
    from tests.fixtures.emulator import credentials_get, make_key_and_csr, write_client_files

    with start_emulator(tmp_path / "state") as first:
        state = first.state_dir
        key, csr = make_key_and_csr("second-start")
        cert = first.client("iot").create_certificate_from_csr(certificateSigningRequest=csr, setAsActive=True)
        cert_path, key_path = write_client_files(tmp_path / "device", cert["certificatePem"], key)
        files = ("endpoint.json", "credentials-server.key", "credentials-server.pem", "ca.key", "ca.pem", "lock")
        before = {name: (state / name).read_bytes() for name in files}
        seen_before = _server_certificate_seen(first, cert_path, key_path)

        api_port = first.endpoint_url.rsplit(":", 1)[1]
        credentials_port = first.credentials_endpoint.rsplit(":", 1)[1]
        ports = {
            "both-ports": (api_port, credentials_port),
            "api-port": (api_port, "0"),
            "credentials-port": ("0", credentials_port),
            "state-dir-only": ("0", "0"),
        }[clash]
        second = subprocess.run(
            [sys.executable, "-m", "emulator", "--port", ports[0], "--credentials-port", ports[1],
             "--state-dir", str(state)],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
        )
        assert second.returncode == 1
        assert second.stdout == ""
        lines = second.stderr.splitlines()
        assert len(lines) == 1, second.stderr
        if clash == "state-dir-only":
            assert lines[0] == (
                f"emulator: state directory {state.resolve()} is in use by another stand-in "
                f"(pid {first.process.pid}); stop it or use another --state-dir"
            )
        else:
            assert lines[0].startswith("emulator: cannot listen on 127.0.0.1:")
            assert lines[0].endswith("Address already in use")

        # The first one's files are untouched and it still serves both doors with the same certificate.
        assert {name: (state / name).read_bytes() for name in files} == before
        assert _server_certificate_seen(first, cert_path, key_path) == seen_before
        served = x509.load_der_x509_certificate(seen_before)
        on_disk = x509.load_pem_x509_certificate(before["credentials-server.pem"])
        assert served == on_disk
        status, _, body = credentials_get(first, cert_path, key_path, "no-such-alias")
        assert status == 403, body  # the handshake verified; the unattached certificate is refused by the rules
        assert first.client("sts").get_caller_identity()["Account"] == "123456789012"
        assert first.process.poll() is None


def test_stop_keeps_an_endpoint_json_this_process_did_not_write(tmp_path):
    with start_emulator(tmp_path) as running:
        other = {"controlPlane": "http://127.0.0.1:1", "credentialsEndpoint": "localhost:2", "caFile": "/x/ca.pem"}
        (tmp_path / "endpoint.json").write_text(json.dumps(other))  # as another stand-in on this directory would
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=15) == 0
    assert json.loads((tmp_path / "endpoint.json").read_text()) == other


# ---------------------------------------------------------------- a region that does not exist


@pytest.mark.parametrize(
    ("service", "call", "code"),
    [
        ("iot", lambda client: client.list_things(), "InvalidSignatureException"),  # REST-JSON
        ("cloudformation", lambda client: client.list_stacks(), "SignatureDoesNotMatch"),  # query (XML)
        ("sts", lambda client: client.get_caller_identity(), "SignatureDoesNotMatch"),
    ],
    ids=["iot", "cloudformation", "sts"],
)
def test_unknown_region_is_a_403_naming_it_and_one_log_line(emulator, service, call, code):
    import boto3

    client = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-eats-1"
    ).client(service, endpoint_url=emulator.endpoint_url, config=Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as raised:
        call(client)
    error = raised.value.response["Error"]
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error["Code"] == code
    assert error["Message"] == "Credential should be scoped to a valid region, not 'us-eats-1'. "
    time.sleep(0.2)
    log = emulator.log_text()
    assert "Traceback" not in log
    assert "KeyError" not in log
    assert any(line.endswith("-> 403 unknown region 'us-eats-1'") and f" api {service}." in line
               for line in log.splitlines())
    # The stand-in's own region is still served.
    assert emulator.client("sts").get_caller_identity()["Account"] == "123456789012"


# ---------------------------------------------------------------- a Python without the project's packages


def test_python_without_the_dependencies_gets_one_line_and_exit_5(tmp_path):
    # A fresh venv of the base interpreter: the standard library only, whatever the base has installed.
    bare = tmp_path / "bare-venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    python = str(bare / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    probe = subprocess.run([python, "-s", "-c", "import cryptography"], capture_output=True, env=env, check=False)
    assert probe.returncode != 0, "the bare venv has cryptography; the test would prove nothing"

    result = subprocess.run(
        [python, "-s", "-m", "emulator", "--port", "0", "--credentials-port", "0",
         "--state-dir", str(tmp_path / "state")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, env=env, check=False,
    )
    assert result.returncode == 5
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "emulator: missing dependency cryptography: run `make setup` and use .venv/bin/python"
    ]
    assert not (tmp_path / "state").exists()
