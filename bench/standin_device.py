"""A private stand-in and one enrolled device profile, for the benchmark.

The stand-in runs as its own process (``python -m emulator`` on free ports). The device
is set up with the same AWS calls the stack and ``enroll`` make, done directly with
boto3 so the benchmark needs no CDK synthesis: an IAM role trusted by the credentials
provider, a role alias, an IoT policy allowing ``iot:AssumeRoleWithCertificate`` on it,
a certificate from a CSR (the key never leaves this machine), a thing. The profile
directory is written in the layout DESIGN.md gives.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class StandIn:
    process: subprocess.Popen
    state_dir: Path
    endpoint_url: str
    credentials_endpoint: str
    ca_file: Path
    log_path: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }

    def credentials_requests(self) -> int:
        """How many credentials requests the endpoint has answered so far (from its log)."""
        return sum("credentials GET /role-aliases/" in line for line in self.log_path.read_text().splitlines())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_standin(state_dir: Path, *, timeout: float = 60) -> StandIn:
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "emulator.log"
    log = open(log_path, "wb")  # noqa: SIM115 - the child owns it until it exits
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", "0", "--credentials-port", "0", "--state-dir", str(state_dir)],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )
    endpoint_file = state_dir / "endpoint.json"
    deadline = time.monotonic() + timeout
    while not endpoint_file.exists():
        if process.poll() is not None:
            raise RuntimeError(f"the stand-in exited early: {log_path.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the stand-in did not write endpoint.json in time")
        time.sleep(0.1)
    endpoint = json.loads(endpoint_file.read_text())
    return StandIn(process, state_dir, endpoint["controlPlane"], endpoint["credentialsEndpoint"],
                   Path(endpoint["caFile"]), log_path)


def enroll_device(standin, profile_dir: Path, *, name: str = "bench") -> Path:
    """Create role, alias, policy, certificate (from a local key) and thing; write the profile.

    ``standin`` needs ``endpoint_url`` and ``ca_file`` (a StandIn here, or the tests'
    emulator fixture); ``name`` keeps several devices in one stand-in apart.
    """
    role_alias, thing_name = f"{name}-role-alias", f"{name}-laptop"
    role_name, policy_name = f"{name}-device-role", f"{name}-device-policy"
    import boto3
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from provisioner.profile import DeviceProfile, write_file_atomic, write_secret_file

    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name="us-east-1")
    iam = session.client("iam", endpoint_url=standin.endpoint_url)
    iot = session.client("iot", endpoint_url=standin.endpoint_url)
    role = iam.create_role(
        RoleName=role_name,
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "credentials.iot.amazonaws.com"},
            "Action": "sts:AssumeRole"}]}),
    )["Role"]
    alias = iot.create_role_alias(roleAlias=role_alias, roleArn=role["Arn"], credentialDurationSeconds=3600)
    iot.create_policy(policyName=policy_name, policyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iot:AssumeRoleWithCertificate",
                       "Resource": alias["roleAliasArn"]}]}))
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, thing_name)]))
           .sign(key, hashes.SHA256()))
    cert = iot.create_certificate_from_csr(
        certificateSigningRequest=csr.public_bytes(serialization.Encoding.PEM).decode(), setAsActive=True)
    iot.attach_policy(policyName=policy_name, target=cert["certificateArn"])
    iot.create_thing(thingName=thing_name)
    iot.attach_thing_principal(thingName=thing_name, principal=cert["certificateArn"])
    endpoint = iot.describe_endpoint(endpointType="iot:CredentialProvider")["endpointAddress"]

    certificate = x509.load_pem_x509_certificate(cert["certificatePem"].encode())
    profile = DeviceProfile(
        directory=profile_dir, thing_name=thing_name, certificate_id=cert["certificateId"],
        certificate_arn=cert["certificateArn"], credentials_endpoint=endpoint, role_alias=role_alias,
        region="us-east-1", stack_name=name, environment="local",
        not_after=certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    write_secret_file(profile.key_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    write_file_atomic(profile.cert_path, cert["certificatePem"].encode())
    write_file_atomic(profile.ca_path, standin.ca_file.read_bytes())
    write_file_atomic(profile.json_path, profile.to_json_bytes())
    os.chmod(profile_dir, 0o700)
    return profile_dir
