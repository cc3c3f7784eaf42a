"""The credential_process cache: freshness, identity binding, margin option (pure parts)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from provisioner import credential_cache as cache
from provisioner.credentials_client import Credentials
from provisioner.errors import UsageError
from provisioner.profile import DeviceProfile

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def profile(**overrides) -> DeviceProfile:
    values = dict(directory=Path("/nowhere"), thing_name="laptop-1", certificate_id="c" * 64,
                  certificate_arn="arn:aws:iot:us-east-1:123456789012:cert/" + "c" * 64,
                  credentials_endpoint="localhost:8443", role_alias="alias", region="us-east-1",
                  stack_name="DeviceTrust-local", environment="local", not_after="2031-01-01T00:00:00Z")
    values.update(overrides)
    return DeviceProfile(**values)


def document(expires: datetime) -> dict:
    return cache.process_document(Credentials("ASIAX", "secret", "token", expires))


def test_process_document_is_credential_process_version_1():
    assert document(NOW) == {"Version": 1, "AccessKeyId": "ASIAX", "SecretAccessKey": "secret",
                             "SessionToken": "token", "Expiration": "2030-01-01T12:00:00Z"}


def test_cache_round_trips_for_the_same_certificate_alias_and_endpoint():
    identity = cache.cache_identity(profile())
    doc = document(NOW + timedelta(hours=1))
    assert cache.decode_cache(cache.encode_cache(doc, identity), identity) == doc


@pytest.mark.parametrize("change", [
    {"certificate_id": "d" * 64}, {"role_alias": "other"}, {"credentials_endpoint": "elsewhere:443"},
])
def test_cache_from_another_certificate_alias_or_endpoint_is_ignored(change):
    data = cache.encode_cache(document(NOW + timedelta(hours=1)), cache.cache_identity(profile()))
    assert cache.decode_cache(data, cache.cache_identity(profile(**change))) is None


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b'{"for": {}, "credentials": {}}'])
def test_damaged_cache_is_ignored_not_fatal(data):
    assert cache.decode_cache(data, cache.cache_identity(profile())) is None


def test_fresh_until_the_margin_before_expiry():
    doc = document(NOW + timedelta(seconds=301))
    assert cache.is_fresh(doc, now=NOW, margin_seconds=300)
    assert not cache.is_fresh(doc, now=NOW + timedelta(seconds=1), margin_seconds=300)
    assert not cache.is_fresh(None, now=NOW, margin_seconds=300)


def test_refresh_margin_option_beats_environment_beats_default():
    env = {cache.REFRESH_MARGIN_ENV: "120"}
    assert cache.parse_refresh_margin(60, env) == 60
    assert cache.parse_refresh_margin(None, env) == 120
    assert cache.parse_refresh_margin(None, {}) == 300


@pytest.mark.parametrize(("option", "env"), [(-1, {}), (None, {cache.REFRESH_MARGIN_ENV: "soon"}),
                                             (None, {cache.REFRESH_MARGIN_ENV: "99999"})])
def test_invalid_refresh_margin_is_a_usage_error(option, env):
    with pytest.raises(UsageError):
        cache.parse_refresh_margin(option, env)


def test_warm_call_of_the_verb_loads_no_tls_boto3_or_cryptography(tmp_path):
    """The warm path is read-two-files-and-print: it must not pay for heavy imports."""
    import subprocess
    import sys

    from provisioner.profile import write_file_atomic

    directory = tmp_path / "profile"
    prof = profile(directory=directory)
    write_file_atomic(prof.json_path, prof.to_json_bytes())
    write_file_atomic(prof.cert_path, b"not parsed on the warm path\n")
    write_file_atomic(prof.key_path, b"not parsed on the warm path\n", mode=0o600)
    fresh = document(datetime.now(timezone.utc) + timedelta(hours=1))
    cache.write_cache(prof, fresh)
    code = (
        "import argparse, json, sys; from pathlib import Path\n"
        "from provisioner.commands import credentials\n"
        f"credentials.run(argparse.Namespace(refresh_margin=None, no_cache=False, json=False,"
        f" profile_dir=Path({str(directory)!r})))\n"
        "heavy = ('boto3', 'botocore', 'cryptography', 'ssl', 'http', 'awscrt')\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(heavy))), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == fresh
    assert json.loads(done.stderr) == []


# ---------------------------------------------------------------- refusal forgets the cache
def _refused(_profile):
    from provisioner.errors import CredentialsRefusedError

    raise CredentialsRefusedError("credentials endpoint x refused the certificate (403 Forbidden)")


def test_a_refusal_outside_get_credentials_deletes_the_cache_and_is_raised_unchanged(tmp_path):
    from provisioner.errors import CredentialsRefusedError

    prof = profile(directory=tmp_path)
    cache.write_cache(prof, document(datetime.now(timezone.utc) + timedelta(hours=1)))
    with pytest.raises(CredentialsRefusedError) as info:
        cache.fetch_forgetting_cache_on_refusal(prof, _refused)
    assert str(info.value) == "credentials endpoint x refused the certificate (403 Forbidden)"
    assert not cache.cache_path(prof).exists()


def test_forgetting_waits_for_the_lock_but_deletes_the_cache_even_if_it_never_comes(tmp_path):
    prof = profile(directory=tmp_path)
    cache.write_cache(prof, document(datetime.now(timezone.utc) + timedelta(hours=1)))
    with cache._ProfileLock(tmp_path / cache.LOCK_FILE, 1):  # a refresh stuck elsewhere
        cache.forget_credentials(prof, lock_timeout=0.2)
    assert not cache.cache_path(prof).exists()


def test_a_cache_that_cannot_be_removed_is_named_in_the_same_one_line_refusal(tmp_path, monkeypatch):
    from provisioner.errors import CredentialsRefusedError, LocalFileError

    prof = profile(directory=tmp_path)

    def cannot(_profile):
        raise LocalFileError(f"cannot remove {cache.cache_path(prof)}: Permission denied")

    monkeypatch.setattr(cache, "discard_cache", cannot)
    with pytest.raises(CredentialsRefusedError) as info:
        cache.fetch_forgetting_cache_on_refusal(prof, _refused)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("credentials endpoint x refused the certificate (403 Forbidden); and the "
                                      f"cached credentials could not be removed (cannot remove {tmp_path}/")
