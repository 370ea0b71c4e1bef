"""The OpenStack emulator's Keystone and Glance, driven by the unmodified openstacksdk: a token
with a catalog pointing back at the emulator, application-credential and password auth, refused
credentials and expired tokens, image lists."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Iterator

import openstack
import pytest
from keystoneauth1 import exceptions as ka

from openstack_emulator.app import Emulator

pytestmark = pytest.mark.fast


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """The emulator served from a thread of its own (the sdk is blocking)."""
    yield from serve(Emulator())


def serve(emulator: Emulator) -> Iterator[Emulator]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(emulator.start(0))
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30)
    yield emulator
    asyncio.run_coroutine_threadsafe(emulator.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)


def connect(emu: Emulator, **auth: Any) -> Any:
    cred = emu.config.app_credentials[0]
    options = auth or {
        "auth_type": "v3applicationcredential",
        "application_credential_id": cred.id,
        "application_credential_secret": cred.secret,
    }
    return openstack.connect(auth_url=f"{emu.url}/v3", region_name=emu.config.region, load_yaml_config=False, load_envvars=False, **options)


def test_application_credential_token_and_catalog_lead_back_to_the_emulator(emu):
    conn = connect(emu)
    conn.authorize()
    assert conn.image.get_endpoint().startswith(emu.url)
    names = [i.name for i in conn.image.images()]
    assert "CC-Ubuntu22.04" in names
    [found] = [i for i in conn.image.images(name="CC-Ubuntu22.04")]
    assert conn.image.get_image(found.id).name == "CC-Ubuntu22.04"


def test_password_auth_and_refusals(emu):
    user = emu.config.users[0]
    conn = connect(
        emu,
        username=user.name,
        password=user.password,
        project_name=emu.config.project,
        user_domain_name="Default",
        project_domain_name="Default",
    )
    assert conn.authorize()
    bad = connect(emu, auth_type="v3applicationcredential", application_credential_id="nope", application_credential_secret="x")
    with pytest.raises(openstack.exceptions.SDKException, match="HTTP 401") as refused:
        bad.authorize()
    assert isinstance(refused.value.__cause__ or refused.value.__context__, ka.Unauthorized)
    from testbed_provider.testbeds.chameleon.cloud import is_refused

    assert is_refused(refused.value)  # the provider tells refused credentials from a failing cloud


def test_an_expired_token_is_refused(emu):
    conn = connect(emu)
    token = conn.authorize()
    emu.clock.advance(emu.config.token_lifetime + 1)
    import requests

    answer = requests.get(f"{emu.url}/image/v2/images", headers={"X-Auth-Token": token}, timeout=10)
    assert answer.status_code == 401 and answer.json()["error"]["title"] == "Unauthorized"
