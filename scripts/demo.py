"""The whole story on the local stand-in, no AWS account needed.

Starts the stand-in, deploys DeviceTrust-local into it with the real CDK CLI, enrolls a
laptop with the provisioner, fetches credentials over mutual TLS, calls STS
GetCallerIdentity with them, revokes the certificate, shows the next fetch refused, and
stops the stand-in. Run it with `make demo`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THING_NAME = "demo-laptop-001"


class DemoFailed(Exception):
    """A step of the demo did not do what it should."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def step(title: str) -> None:
    print(f"\n==> {title}", flush=True)


def show(text: str) -> None:
    for line in text.rstrip().splitlines():
        print(f"    {line}", flush=True)


def run(argv: list[str], env: dict[str, str], *, expect_ok: bool = True, quiet: bool = False) -> subprocess.CompletedProcess:
    shown = " ".join(a if " " not in a else repr(a) for a in argv)
    print(f"    $ {shown}", flush=True)
    result = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if not quiet:
        show(result.stdout)
    if expect_ok and result.returncode != 0:
        show(result.stderr)
        raise DemoFailed(f"{argv[0]} {argv[1] if len(argv) > 1 else ''} exited {result.returncode}")
    return result


def start_stand_in(state_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen, dict]:
    port, credentials_port = free_port(), free_port()
    log = open(state_dir / "emulator.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", str(port), "--credentials-port", str(credentials_port),
         "--state-dir", str(state_dir)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    endpoint_file = state_dir / "endpoint.json"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoFailed(f"the stand-in exited with status {process.returncode}; see {state_dir / 'emulator.log'}")
        if endpoint_file.exists():
            try:
                return process, json.loads(endpoint_file.read_text())
            except json.JSONDecodeError:
                pass  # being written
        time.sleep(0.1)
    raise DemoFailed("the stand-in did not become ready within 30 s")


def stop_stand_in(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def story(work: Path) -> None:
    state_dir = work / "stand-in"
    profile_dir = work / "laptop"
    state_dir.mkdir()
    aws_config = work / "aws-config"
    aws_config.write_text("")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(aws_config),
        "AWS_SHARED_CREDENTIALS_FILE": str(aws_config),
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
    }
    env.pop("AWS_PROFILE", None)
    python = sys.executable
    provisioner = [python, "-m", "provisioner"]

    step("Start the local stand-in (AWS API + mutual-TLS credentials endpoint)")
    process, endpoint = start_stand_in(state_dir, env)
    try:
        env["AWS_ENDPOINT_URL"] = endpoint["controlPlane"]
        # The stand-in's CA verifies its credentials endpoint (on AWS: Amazon's root CAs, the default).
        env["DEVICE_TRUST_ENDPOINT_CA"] = endpoint["caFile"]
        show(f"AWS API:              {endpoint['controlPlane']}")
        show(f"credentials endpoint: https://{endpoint['credentialsEndpoint']}")
        show(f"stand-in CA:          {endpoint['caFile']}")

        step("Deploy the DeviceTrust-local stack with the real CDK CLI")
        cdk = str(ROOT / "node_modules" / ".bin" / "cdk")
        run([cdk, "deploy", "DeviceTrust-local", "-c", "env=local", "--require-approval", "never",
             "--progress", "events", "--output", str(work / "cdk.out")], env, quiet=True)
        outputs = run(
            [python, "-c",
             "import boto3, json; s = boto3.client('cloudformation').describe_stacks(StackName='DeviceTrust-local');"
             "print(json.dumps({o['OutputKey']: o['OutputValue'] for o in s['Stacks'][0]['Outputs']}, indent=2))"],
            env, quiet=True,
        )
        show("stack outputs:")
        show(outputs.stdout)

        step(f"Enroll a laptop: key made locally, CSR, certificate, RegisterThing ({THING_NAME})")
        # The PKCS#12 password comes from the environment (never the command line), and only
        # the enroll process gets it.
        enroll_env = {**env, "DEVICE_TRUST_PKCS12_PASSWORD": secrets.token_urlsafe(12)}
        run([*provisioner, "enroll", "--env", "local", "--thing-name", THING_NAME, "--owner", "alice@example.com",
             "--serial", "C02DEMO001", "--profile-dir", str(profile_dir)], enroll_env)
        key_mode = oct((profile_dir / "device.key").stat().st_mode & 0o777)
        show(f"device profile: {sorted(p.name for p in profile_dir.iterdir())}; device.key mode {key_mode}")

        step("Fetch credentials over mutual TLS (credential_process output, secrets elided)")
        fetched = run([*provisioner, "credentials", "--profile-dir", str(profile_dir)], env, quiet=True)
        creds = json.loads(fetched.stdout)
        show(json.dumps({"Version": creds["Version"], "AccessKeyId": creds["AccessKeyId"],
                         "SecretAccessKey": "…", "SessionToken": "…", "Expiration": creds["Expiration"]}, indent=2))

        step("Call STS GetCallerIdentity with those credentials")
        run([*provisioner, "verify", "--profile-dir", str(profile_dir)], env)

        step("Operator view of the environment")
        run([*provisioner, "status", "--env", "local"], env)

        step("Lost laptop: revoke its certificate and delete the thing")
        run([*provisioner, "revoke", "--env", "local", "--thing-name", THING_NAME], env)

        step("The next fetch is refused by the credentials endpoint")
        # --no-cache: ask the endpoint now (a cached credential stays valid until it expires).
        refused = run([*provisioner, "credentials", "--profile-dir", str(profile_dir), "--no-cache"],
                      env, expect_ok=False)
        show(refused.stderr)
        if refused.returncode == 0:
            raise DemoFailed("a revoked certificate still got credentials")
        show(f"(exit status {refused.returncode}, as expected)")
    finally:
        step("Stop the stand-in")
        stop_stand_in(process)
    print("\nDone: deploy, enroll, credentials, STS, revoke, refusal — all on loopback.")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="device-trust-demo-"))
    try:
        started = time.monotonic()
        story(work)
        print(f"({time.monotonic() - started:.0f} s)")
        return 0
    except DemoFailed as error:
        print(f"demo failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("demo interrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
