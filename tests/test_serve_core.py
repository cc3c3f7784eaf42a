"""serve's core: request decisions, refresh schedule, and botocore's own container provider against it."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from botocore.credentials import ContainerProvider

from provisioner import container_server as cs
from provisioner.credentials_client import Credentials
from provisioner.errors import CredentialsRefusedError, NetworkError

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
TOKEN = "s3cret-token"


def creds(n: int, expires: datetime) -> Credentials:
    return Credentials(f"ASIA{n:04d}", f"secret{n}", f"token{n}", expires)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class ScriptedFetch:
    """Stands in for the credentials endpoint: returns or raises from a list, counts calls."""

    def __init__(self, clock: Clock, lifetime=timedelta(hours=1), script=None) -> None:
        self.clock, self.lifetime, self.calls = clock, lifetime, 0
        self.script = list(script or [])

    def __call__(self) -> Credentials:
        self.calls += 1
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
        return creds(self.calls, self.clock() + self.lifetime)


# ---------------------------------------------------------------- respond()
def answer(**overrides):
    kwargs = dict(method="GET", path="/credentials", authorization=TOKEN, token=TOKEN,
                  credentials=creds(1, T0 + timedelta(hours=1)), problem=None, now=T0)
    kwargs.update(overrides)
    return cs.respond(**kwargs)


def test_authorized_get_returns_the_container_credentials_shape():
    status, body = answer()
    assert status == 200
    assert body == {"AccessKeyId": "ASIA0001", "SecretAccessKey": "secret1", "Token": "token1",
                    "Expiration": "2030-01-01T13:00:00Z"}


def test_missing_token_is_401_and_wrong_token_is_403_and_neither_leaks_credentials():
    assert answer(authorization=None)[0] == 401
    status, body = answer(authorization="guess")
    assert status == 403
    assert "ASIA" not in json.dumps(body)


def test_wrong_token_is_refused_even_on_unknown_paths():
    assert answer(authorization="guess", path="/other")[0] == 403


def test_unknown_path_and_method_are_refused():
    assert answer(path="/other")[0] == 404
    assert answer(method="POST")[0] == 405


def test_expired_or_nearly_expired_credentials_are_never_served():
    status, body = answer(credentials=creds(1, T0 + timedelta(seconds=30)), problem="certificate refused")
    assert status == 503
    assert body == {"code": "CredentialsUnavailable", "message": "certificate refused"}
    assert answer(credentials=None)[0] == 503


# ---------------------------------------------------------------- refresh schedule
def test_refresh_is_planned_margin_before_expiry():
    assert cs.refresh_time(T0, T0 + timedelta(hours=1), 1200) == T0 + timedelta(minutes=40)


def test_refresh_never_comes_before_half_the_lifetime():
    assert cs.refresh_time(T0, T0 + timedelta(minutes=15), 1200) == T0 + timedelta(seconds=450)


def test_keeper_refreshes_in_the_background_only_when_due():
    clock = Clock(T0)
    fetch = ScriptedFetch(clock)
    keeper = cs.CredentialsKeeper(fetch, margin_seconds=1200, clock=clock)
    keeper.refresh()
    keeper.tick()
    assert fetch.calls == 1
    clock.now = T0 + timedelta(minutes=39)
    keeper.tick()
    assert fetch.calls == 1
    clock.now = T0 + timedelta(minutes=40)
    keeper.tick()
    assert fetch.calls == 2
    assert keeper.current()[0].access_key_id == "ASIA0002"


def test_keeper_logs_a_refresh_with_the_access_key_id_masked():
    """serve prints these lines on stderr: the key id appears only as ASIA...WXYZ."""
    clock = Clock(T0)
    keys = iter(["ASIAFIRSTKEY0000AAAA", "ASIASECONDKEY000WXYZ"])
    logged: list[str] = []
    keeper = cs.CredentialsKeeper(lambda: Credentials(next(keys), "secret", "token", clock() + timedelta(hours=1)),
                                  margin_seconds=1200, clock=clock, log=logged.append)
    keeper.refresh()
    clock.now = T0 + timedelta(minutes=40)
    keeper.tick()
    assert logged == ["refreshed credentials ASIA...WXYZ, valid until 2030-01-01T13:40:00Z"]


def test_keeper_keeps_serving_old_credentials_while_refresh_fails_then_stops_before_expiry():
    clock = Clock(T0)
    fetch = ScriptedFetch(clock, script=[None] + [NetworkError("endpoint down")] * 50)
    keeper = cs.CredentialsKeeper(fetch, margin_seconds=1200, clock=clock)
    keeper.refresh()
    clock.now = T0 + timedelta(minutes=40)
    keeper.tick()
    assert fetch.calls == 2
    assert keeper.current()[0].access_key_id == "ASIA0001"  # still valid: still served
    # the retry comes after a short backoff, not at the next planned time
    assert keeper.next_refresh() == clock.now + timedelta(seconds=cs.RETRY_MIN_SECONDS)
    clock.now = T0 + timedelta(minutes=59, seconds=30)
    credentials, problem = keeper.current()
    assert credentials is None
    assert problem == "endpoint down"


def test_keeper_recovers_after_a_refused_refresh_once_the_endpoint_accepts_again():
    clock = Clock(T0)
    fetch = ScriptedFetch(clock, script=[None, CredentialsRefusedError("revoked")])
    keeper = cs.CredentialsKeeper(fetch, margin_seconds=1200, clock=clock)
    keeper.refresh()
    clock.now = T0 + timedelta(minutes=40)
    keeper.tick()
    clock.now += timedelta(seconds=cs.RETRY_MIN_SECONDS)
    keeper.tick()
    assert keeper.current() == (keeper.current()[0], None)
    assert keeper.current()[0].access_key_id == "ASIA0003"


# ---------------------------------------------------------------- HTTP, read by botocore itself
@pytest.fixture
def running_server():
    clock = Clock(datetime.now(timezone.utc))
    keeper = cs.CredentialsKeeper(ScriptedFetch(clock), clock=clock)
    keeper.refresh()
    server = cs.ContainerCredentialsServer(keeper, TOKEN)
    server.start()
    yield server, keeper
    server.stop()


def test_botocore_container_provider_loads_credentials_from_the_server(running_server):
    server, _ = running_server
    provider = ContainerProvider(environ={
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": server.url,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": TOKEN,
    })
    loaded = provider.load().get_frozen_credentials()
    assert (loaded.access_key, loaded.secret_key, loaded.token) == ("ASIA0001", "secret1", "token1")


def test_server_listens_on_loopback_only(running_server):
    server, _ = running_server
    assert server.url.startswith("http://127.0.0.1:")


def test_http_request_with_a_wrong_token_gets_403(running_server):
    server, _ = running_server
    request = urllib.request.Request(server.url, headers={"Authorization": "nope"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 403
