"""The provisioner's command line as a user meets it: verbs, usage errors, one-line failures.

Every case runs ``python -m provisioner`` in a subprocess. AWS_ENDPOINT_URL points at a
closed port: an input that reached AWS would fail with the network exit status (4), so
each expected usage error (2) also proves the input was refused before any AWS call.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from provisioner import keys

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def offline_env(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("home")
    (home / "aws-config").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEVICE_TRUST_"))}
    env.update({
        "HOME": str(home), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_closed_port()}",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(home / "aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-config"),
        "AWS_MAX_ATTEMPTS": "1", "DEVICE_TRUST_PKCS12_PASSWORD": PASSWORD, "PYTHONPATH": str(REPO),
    })
    return env


def run_cli(args, env, *, stdin=subprocess.DEVNULL, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "provisioner", *args], capture_output=True, text=True, env=env,
                          stdin=stdin, cwd=cwd or REPO, timeout=120)


def assert_one_line_failure(result, exit_code: int, fragment: str) -> None:
    assert result.returncode == exit_code, (result.returncode, result.stderr)
    assert result.stdout == "", "a failure prints nothing on stdout"
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("device-trust: ")
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def test_help_lists_every_verb_of_the_design(offline_env):
    result = run_cli(["--help"], offline_env)
    assert result.returncode == 0
    for verb in ("enroll", "csr", "register", "install", "credentials", "verify", "revoke", "rotate", "status",
                 "browser-policy", "aws-config", "serve"):
        assert f"    {verb}" in result.stdout


@pytest.mark.parametrize("verb", ["enroll", "csr", "register", "install", "revoke", "rotate", "status"])
def test_each_verb_has_help_with_the_common_options(offline_env, verb):
    result = run_cli([verb, "--help"], offline_env)
    assert result.returncode == 0, result.stderr
    for option in ("--env", "--stack-name", "--region", "--profile-dir", "--json"):
        assert option in result.stdout


def _csr_file(tmp_path, cn="laptop-1", env="local", name="pending.csr") -> Path:
    path = tmp_path / name
    path.write_bytes(keys.build_csr(keys.generate_private_key(), cn, env))
    return path


def _foreign_cn_csr(tmp_path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "www.example.com")]))
           .sign(key, hashes.SHA256()))
    path = tmp_path / "foreign.csr"
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return path


# (arguments, exit status, fragment of the one-line message); {tmp} is a fresh directory.
BAD_INPUTS = [
    (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    (["enroll", "--thing-name", "lap", "--bogus"], 2, "unrecognized arguments: --bogus"),
    (["enroll"], 2, "the following arguments are required: --thing-name"),
    (["enroll", "--thing-name", "bad name"], 2, "invalid thing name 'bad name'"),
    (["enroll", "--thing-name", "x" * 129], 2, "invalid thing name"),
    (["enroll", "--thing-name", "lap;rm"], 2, "invalid thing name 'lap;rm'"),
    (["enroll", "--thing-name", "lap", "--key-type", "dsa-1024"], 2, "invalid choice: 'dsa-1024'"),
    (["enroll", "--thing-name", "lap", "--pkcs12-encryption", "rc2"], 2, "invalid choice: 'rc2'"),
    (["enroll", "--thing-name", "lap", "--owner", "two words"], 2, "invalid --owner 'two words'"),
    (["enroll", "--thing-name", "lap", "--serial", "a" * 801], 2, "invalid --serial"),
    (["enroll", "--thing-name", "lap", "--env", "no spaces"], 2, "invalid --env 'no spaces'"),
    # the stack's rule (stacks/config.py): 1-17 lowercase letters, digits or '-', starting with a letter
    (["enroll", "--thing-name", "lap", "--env", "Prod"], 2, "invalid --env 'Prod': 1-17 lowercase letters"),
    (["enroll", "--thing-name", "lap", "--env", "1dev"], 2, "invalid --env '1dev'"),
    (["enroll", "--thing-name", "lap", "--env", "a" * 18], 2, "invalid --env"),
    (["csr", "--thing-name", "lap", "--env", "Dev"], 2, "invalid --env 'Dev'"),
    (["status", "--region", "us-eats-1"], 2, "unknown AWS region 'us-eats-1' (from --region)"),
    (["status", "--region", "us-eats-1"], 2, "did you mean us-east-1?"),
    (["revoke", "--thing-name", "lap", "--region", "eu-westt-1"], 2, "unknown AWS region 'eu-westt-1'"),
    (["register", "--csr", "{tmp}/pending.csr", "--region", "us-eats-1"], 2, "unknown AWS region 'us-eats-1'"),
    (["enroll", "--thing-name", "lap", "--stack-name", "1stack"], 2, "invalid --stack-name '1stack'"),
    (["enroll", "--thing-name", "lap", "--region", "Mars"], 2, "invalid --region 'Mars'"),
    (["enroll", "--thing-name", "lap", "--endpoint-ca", "{tmp}/missing.pem"], 2, "cannot read endpoint CA file"),
    (["enroll", "--thing-name", "lap", "--endpoint-ca", "{tmp}/empty.pem"], 2, "holds no PEM certificate"),
    (["enroll", "--thing-name", "lap", "--profile-dir", "{tmp}/afile/profile"], 5, "is not a directory"),
    # root passes os.access on /proc, yet nothing can be created there: the probe must really try
    (["enroll", "--thing-name", "lap", "--profile-dir", "/proc/dt"], 5, "cannot write to profile directory /proc/dt"),
    (["csr", "--thing-name", "lap", "--profile-dir", "/proc/dt/sub"], 5,
     "cannot write to profile directory /proc/dt/sub"),
    (["csr"], 2, "the following arguments are required: --thing-name"),
    (["csr", "--thing-name", "über"], 2, "invalid thing name"),
    (["register"], 2, "the following arguments are required: --csr"),
    (["register", "--csr", "{tmp}/missing.csr"], 2, "cannot read CSR file"),
    (["register", "--csr", "{tmp}/empty.pem"], 2, "not a PEM certificate signing request"),
    (["register", "--csr", "{tmp}/pending.csr", "--thing-name", "other"], 2, "the CSR is for thing laptop-1, not other"),
    (["register", "--csr", "{tmp}/pending.csr", "--env", "prod"], 2, "it was made for another environment"),
    (["register", "--csr", "{tmp}/foreign.csr"], 2, "invalid thing name 'www.example.com'"),
    (["register", "--csr", "{tmp}/pending.csr", "--output-dir", "{tmp}/nope"], 2, "output directory"),
    (["install", "--certificate", "{tmp}/missing.crt", "--registration", "{tmp}/r.json"], 2,
     "cannot read certificate file"),
    (["install", "--certificate", "{tmp}/empty.pem", "--registration", "{tmp}/r.json"], 2,
     "not a PEM X.509 certificate"),
    (["rotate", "--profile-dir", "{tmp}/none"], 5, "no device profile at"),
    (["revoke"], 2, "the following arguments are required: --thing-name"),
    (["revoke", "--thing-name", "a/b"], 2, "invalid thing name 'a/b'"),
    (["status", "--thing-name", "*"], 2, "invalid thing name '*'"),
    # no profile exists under HOME: exit 2, not 5, proves the URL is refused before anything is read
    (["aws-config", "--write", "--endpoint-url", "http://iot.example.com:4566"], 2,
     "would send signed requests unencrypted: use https, or http only for localhost, 127.0.0.1 or [::1]"),
    (["aws-config", "--endpoint-url", "http://127.0.0.1.example.com"], 2, "would send signed requests unencrypted"),
    (["aws-config", "--endpoint-url", "127.0.0.1:4566"], 2, "expected https://HOST[:PORT]"),
]


@pytest.mark.parametrize("args,exit_code,fragment", BAD_INPUTS, ids=[" ".join(c[0])[:60] for c in BAD_INPUTS])
def test_bad_input_gets_one_line_and_its_exit_status_before_any_aws_call(offline_env, tmp_path, args, exit_code,
                                                                         fragment):
    (tmp_path / "empty.pem").write_text("nothing here\n")
    (tmp_path / "afile").write_text("a regular file")
    _csr_file(tmp_path)
    _foreign_cn_csr(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--profile-dir" not in args and args[0] in ("enroll", "csr", "install", "rotate"):
        args += ["--profile-dir", str(tmp_path / "profile")]
    assert_one_line_failure(run_cli(args, offline_env), exit_code, fragment)


def test_a_region_of_another_partition_is_known(offline_env):
    # cn-north-1 is in botocore's aws-cn partition: accepted, so the call goes out (and meets the closed port)
    result = run_cli(["status", "--thing-name", "lap", "--region", "cn-north-1"], offline_env)
    assert_one_line_failure(result, 4, "cannot reach AWS")


@pytest.mark.parametrize("variable", ["AWS_DEFAULT_REGION", "AWS_REGION"])
def test_a_misspelt_region_in_the_environment_is_a_usage_error_naming_the_variable(offline_env, variable):
    env = {k: v for k, v in offline_env.items() if k not in ("AWS_DEFAULT_REGION", "AWS_REGION")}
    env[variable] = "us-eats-1"
    result = run_cli(["status", "--thing-name", "lap"], env)
    assert_one_line_failure(result, 2, f"unknown AWS region 'us-eats-1' (from {variable})")


def test_rotate_with_a_profile_naming_an_unknown_region_says_where_it_came_from(offline_env, tmp_path):
    import json

    profile = tmp_path / "p"
    profile.mkdir(mode=0o700)
    (profile / "device.json").write_text(json.dumps({
        "thingName": "lap", "certificateId": "ab" * 32, "certificateArn": "arn:aws:iot:us-east-1:1:cert/" + "ab" * 32,
        "credentialsEndpoint": "x.credentials.iot.us-east-1.amazonaws.com", "roleAlias": "a", "region": "us-eats-1",
        "stackName": "DeviceTrust-local", "environment": "local", "notAfter": "2049-12-31T23:59:59Z"}))
    (profile / "device.key").write_text("k")
    (profile / "device.crt").write_text("c")
    result = run_cli(["rotate", "--profile-dir", str(profile)], offline_env)
    assert_one_line_failure(result, 2, f"unknown AWS region 'us-eats-1' (from {profile / 'device.json'})")


class _BrokenAws:
    """An "AWS endpoint" that answers every request with HTTP 500 and the given body."""

    def __init__(self, body: bytes, headers: dict[str, str]):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        import threading

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(500)
                for key, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_an_answer_that_is_not_an_aws_answer_is_a_network_error_not_an_internal_error(offline_env):
    # CloudFormation speaks XML; a 500 whose body is not XML makes botocore raise ResponseParserError.
    broken = _BrokenAws(b"Internal Server Error", {"Content-Type": "text/plain"})
    try:
        result = run_cli(["status"], {**offline_env, "AWS_ENDPOINT_URL": broken.url})
    finally:
        broken.close()
    assert_one_line_failure(result, 4, "reading stack DeviceTrust-local failed: the answer is not an AWS API answer")
    assert "internal error" not in result.stderr and "AWS_ENDPOINT_URL" in result.stderr


def test_http_500_from_aws_after_retries_is_an_aws_error_saying_so(offline_env):
    broken = _BrokenAws(b'{"message": "we are down"}', {"Content-Type": "application/json",
                                                        "x-amzn-ErrorType": "InternalFailureException"})
    try:
        result = run_cli(["status", "--thing-name", "lap"], {**offline_env, "AWS_ENDPOINT_URL": broken.url})
    finally:
        broken.close()
    assert_one_line_failure(result, 3, "InternalFailureException: we are down: AWS answered HTTP 500 after retries")


def _without_site() -> list[str]:
    return [sys.executable, "-S", "-m", "provisioner"]


def test_a_python_without_the_dependencies_is_told_how_to_get_them(offline_env):
    # -S: the same interpreter without its site-packages (no boto3, botocore, cryptography);
    # PYTHONPATH still finds the provisioner itself, as it would for a checkout run with the system python.
    for verb in (["status"], ["enroll", "--thing-name", "lap"], ["--help"]):
        result = subprocess.run([*_without_site(), *verb], capture_output=True, text=True,
                                env=offline_env, cwd=REPO, stdin=subprocess.DEVNULL, timeout=60)
        assert_one_line_failure(result, 5, "missing dependency ")
        assert "run `make setup` and use .venv/bin/python (or activate .venv)" in result.stderr
        assert "internal error" not in result.stderr


def test_version_needs_no_dependencies(offline_env):
    result = subprocess.run([*_without_site(), "--version"], capture_output=True, text=True,
                            env=offline_env, cwd=REPO, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, "device-trust 0.1.0\n", "")


def test_register_refuses_to_overwrite_a_registration_before_any_aws_call(offline_env, tmp_path):
    csr = _csr_file(tmp_path)
    (tmp_path / "laptop-1.json").write_text("{}")
    result = run_cli(["register", "--csr", str(csr)], offline_env)
    assert_one_line_failure(result, 2, f"{tmp_path / 'laptop-1.json'} already exist")
    assert "--force" in result.stderr
    # --force goes on to AWS (here: the closed port)
    assert_one_line_failure(run_cli(["register", "--csr", str(csr), "--force"], offline_env), 4, "cannot reach AWS")


def test_enroll_without_password_and_without_terminal_is_a_clear_usage_error(offline_env, tmp_path):
    env = {k: v for k, v in offline_env.items() if k != "DEVICE_TRUST_PKCS12_PASSWORD"}
    result = run_cli(["enroll", "--thing-name", "lap", "--profile-dir", str(tmp_path / "p")], env)
    assert_one_line_failure(result, 2, "no PKCS#12 password: set DEVICE_TRUST_PKCS12_PASSWORD")


def run_in_terminal(args, env, *, answers=(), timeout=90) -> tuple[int, str]:
    """Run the provisioner on a pseudo-terminal (stdin, stdout, stderr), answering each password
    prompt with the next of ``answers``; with none left, the process is killed at the prompt."""
    import pty
    import select
    import time

    master, slave = pty.openpty()
    # A new session without a controlling terminal: getpass falls back to stdin/stderr, the pty.
    process = subprocess.Popen([sys.executable, "-m", "provisioner", *args], stdin=slave, stdout=slave,
                               stderr=slave, env=env, cwd=REPO, start_new_session=True)
    os.close(slave)
    output, pending, deadline = b"", list(answers), time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the process closed the terminal
                break
            output += chunk
            if output.rstrip().endswith((b"Password for device.p12:", b"Repeat the password:")):
                if not pending:
                    break
                os.write(master, pending.pop(0).encode() + b"\n")
                output += b"<answered>\n"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        os.close(master)
    return process.returncode, output.decode(errors="replace")


def test_enroll_reads_the_stack_before_prompting_for_the_password(offline_env, tmp_path):
    # AWS (the stand-in) is down: the user learns that before typing a password twice for nothing.
    env = {k: v for k, v in offline_env.items() if k != "DEVICE_TRUST_PKCS12_PASSWORD"}
    code, output = run_in_terminal(["enroll", "--thing-name", "lap", "--profile-dir", str(tmp_path / "p")], env)
    assert "Password for device.p12" not in output, output
    assert code == 4 and "cannot reach AWS" in output, output


def test_short_pkcs12_password_is_refused_before_any_aws_call(offline_env, tmp_path):
    env = {**offline_env, "DEVICE_TRUST_PKCS12_PASSWORD": "short"}
    result = run_cli(["enroll", "--thing-name", "lap", "--profile-dir", str(tmp_path / "p")], env)
    assert_one_line_failure(result, 2, "at least 8 characters")


def test_unreachable_aws_is_a_network_error(offline_env, tmp_path):
    result = run_cli(["status", "--thing-name", "lap"], offline_env)
    assert_one_line_failure(result, 4, "cannot reach AWS")


def test_missing_aws_credentials_are_an_aws_configuration_error(offline_env, tmp_path):
    env = {k: v for k, v in offline_env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    result = run_cli(["revoke", "--thing-name", "lap"], env)
    assert_one_line_failure(result, 3, "no AWS credentials found")


def test_csr_writes_a_private_pending_key_and_a_csr_without_aws(offline_env, tmp_path):
    profile = tmp_path / "profile"
    result = run_cli(["csr", "--thing-name", "laptop-9", "--env", "dev", "--profile-dir", str(profile), "--json"],
                     offline_env)
    assert result.returncode == 0, result.stderr
    import json
    import stat

    out = json.loads(result.stdout)
    assert out["csrPath"] == str(profile / "pending.csr")
    summary = keys.inspect_csr((profile / "pending.csr").read_bytes())
    assert (summary.common_name, summary.organization) == ("laptop-9", "DeviceTrust dev")
    assert stat.S_IMODE((profile / "pending.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(profile.stat().st_mode) == 0o700
    again = run_cli(["csr", "--thing-name", "laptop-9", "--env", "dev", "--profile-dir", str(profile)], offline_env)
    assert_one_line_failure(again, 2, "a pending request already exists")


def test_internal_errors_are_one_line_without_traceback(offline_env, tmp_path):
    # A profile directory whose device.json is a directory: an OSError nobody anticipated.
    profile = tmp_path / "p"
    (profile / "device.json").mkdir(parents=True)
    result = run_cli(["rotate", "--profile-dir", str(profile)], offline_env)
    assert result.returncode in (1, 5)
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_ctrl_c_is_one_line_and_exit_130(offline_env, tmp_path):
    import signal
    import time

    # An "AWS endpoint" that accepts the connection and never answers: the verb waits until interrupted.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        env = {**offline_env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{silent.getsockname()[1]}"}
        process = subprocess.Popen([sys.executable, "-m", "provisioner", "status", "--thing-name", "lap"], env=env,
                                   cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        silent.settimeout(30)
        connection, _ = silent.accept()  # the request is in flight
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
        connection.close()
    assert process.returncode == 130
    assert stdout == "" and stderr == "device-trust: interrupted\n"


def test_debug_switch_shows_the_traceback_for_developers(offline_env, tmp_path):
    env = {**offline_env, "DEVICE_TRUST_DEBUG": "1"}
    result = run_cli(["rotate", "--profile-dir", str(tmp_path / "none")], env)
    assert result.returncode == 5
    assert "Traceback" in result.stderr and result.stderr.splitlines()[-1].startswith("device-trust: no device profile")


def test_enroll_refuses_a_profile_of_another_stack_before_any_aws_call(offline_env, tmp_path):
    import json

    profile = tmp_path / "prod-profile"
    profile.mkdir(mode=0o700)
    (profile / "device.json").write_text(json.dumps({
        "thingName": "lap", "certificateId": "ab" * 32, "certificateArn": "arn:aws:iot:eu-west-1:1:cert/" + "ab" * 32,
        "credentialsEndpoint": "x.credentials.iot.eu-west-1.amazonaws.com", "roleAlias": "a", "region": "eu-west-1",
        "stackName": "DeviceTrust-prod", "environment": "prod", "notAfter": "2049-12-31T23:59:59Z"}))
    (profile / "device.key").write_text("k")
    (profile / "device.crt").write_text("c")
    result = run_cli(["enroll", "--thing-name", "lap", "--profile-dir", str(profile)], offline_env)
    assert_one_line_failure(result, 2, "belongs to stack DeviceTrust-prod, not DeviceTrust-local")
