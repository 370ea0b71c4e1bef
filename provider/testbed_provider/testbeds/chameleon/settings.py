"""The chameleon backend's settings, from the `testbed:chameleon*` keys.

Credentials come the ways OpenStack users already hold them: a `clouds.yaml` cloud (read by
openstacksdk's own loader, so its `secure.yaml`, profiles and defaults work as in the `openstack`
CLI), an OpenRC file as Chameleon's dashboard gives it, or keys of their own, each overriding
the file's. Nothing is read from the provider's environment (`OS_*` variables of whoever runs
`pulumi` must not silently pick the cloud). Every secret is registered with the redactor the
moment it is read, and the settings' repr never shows one.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from typing import Any, Optional

from ...common.results import CheckFailure
from ...config_schema import ConfigArgs
from ...protocol.redact import REDACTOR
from ...typed.model import default_of, input_names

KEYS = {k for k in input_names(ConfigArgs) if k.startswith("chameleon")}
SECRET_FIELDS = ("password", "application_credential_secret", "token")

# OpenRC variable → openstacksdk option (what `openstack.connect(**options)` takes).
OPENRC = {
    "OS_AUTH_URL": "auth_url",
    "OS_AUTH_TYPE": "auth_type",
    "OS_REGION_NAME": "region_name",
    "OS_INTERFACE": "interface",
    "OS_IDENTITY_API_VERSION": "identity_api_version",
    "OS_APPLICATION_CREDENTIAL_ID": "application_credential_id",
    "OS_APPLICATION_CREDENTIAL_NAME": "application_credential_name",
    "OS_APPLICATION_CREDENTIAL_SECRET": "application_credential_secret",
    "OS_USERNAME": "username",
    "OS_USER_ID": "user_id",
    "OS_PASSWORD": "password",
    "OS_PROJECT_NAME": "project_name",
    "OS_PROJECT_ID": "project_id",
    "OS_TENANT_NAME": "project_name",
    "OS_TENANT_ID": "project_id",
    "OS_USER_DOMAIN_NAME": "user_domain_name",
    "OS_USER_DOMAIN_ID": "user_domain_id",
    "OS_PROJECT_DOMAIN_NAME": "project_domain_name",
    "OS_PROJECT_DOMAIN_ID": "project_domain_id",
}
# Provider keys → openstacksdk options; each overrides what a file says.
OVERRIDES = {
    "chameleonAuthUrl": "auth_url",
    "chameleonRegion": "region_name",
    "chameleonApplicationCredentialId": "application_credential_id",
    "chameleonApplicationCredentialSecret": "application_credential_secret",
    "chameleonUsername": "username",
    "chameleonPassword": "password",
    "chameleonProjectName": "project_name",
}


@dataclass(frozen=True)
class ChameleonSettings:
    options: dict[str, Any] = field(default_factory=dict, repr=False)  # openstacksdk options (secrets among them)
    config_files: tuple[str, ...] = ()  # clouds.yaml files to read (none: OpenRC or keys only)
    cloud: Optional[str] = None  # the cloud's name in them
    region: str = ""
    image: str = default_of(ConfigArgs, "chameleon_image")
    node_type: str = default_of(ConfigArgs, "chameleon_node_type")
    network: str = default_of(ConfigArgs, "chameleon_network")
    floating_ips: bool = default_of(ConfigArgs, "chameleon_floating_ips")
    public_network: str = default_of(ConfigArgs, "chameleon_public_network")
    ssh_user: str = default_of(ConfigArgs, "chameleon_ssh_user")
    proxy_command: str = ""
    source: str = "provider configuration"  # where the credentials came from, for messages
    auth_url: str = ""  # for messages only


def read_openrc(path: str) -> tuple[dict[str, str], list[str]]:
    """`export OS_X=value` lines of an OpenRC file, as openstacksdk options; also the variables
    it reads from a prompt (Chameleon's asks for the password), which the keys must answer.
    Only assignments are read: the file is never run."""
    options: dict[str, str] = {}
    prompted: list[str] = []
    with open(path) as f:
        text = f.read()
    for line in text.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if words[:1] == ["export"]:
            words = words[1:]
        for word in words:
            name, eq, value = word.partition("=")
            if not eq or name not in OPENRC:
                continue
            if "$" in value:  # `OS_PASSWORD=$OS_PASSWORD_INPUT`: the value comes from a prompt
                prompted.append(name)
                continue
            options[OPENRC[name]] = value
    return options, prompted


def _default_clouds_files() -> list[str]:
    from openstack.config import loader

    return [p for p in loader.CONFIG_FILES if os.path.isfile(p)]


def _clouds_in(files: list[str]) -> list[str]:
    import yaml

    names: list[str] = []
    for path in files:
        try:
            with open(path) as f:
                data = yaml.safe_load(f) or {}
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and isinstance(data.get("clouds"), dict):
            names += [str(n) for n in data["clouds"] if str(n) not in names]
    return names


def parse_settings(values: dict[str, Any]) -> tuple[Optional[ChameleonSettings], list[CheckFailure]]:
    """The settings, or None with failures naming each bad key. Builds (but does not use) the
    OpenStack cloud configuration, so a missing cloud or credential fails here, at preview."""
    failures: list[CheckFailure] = []
    fail = lambda key, reason: failures.append(CheckFailure(key, reason))  # noqa: E731
    for key in ("chameleonPassword", "chameleonApplicationCredentialSecret"):
        if values.get(key):
            REDACTOR.register(str(values[key]))
    options: dict[str, Any] = {}
    source = "provider configuration"
    files: list[str] = []
    cloud = values.get("chameleonCloud") or None
    openrc = values.get("chameleonOpenrc")
    if openrc:
        path = os.path.expanduser(str(openrc))
        try:
            options, prompted = read_openrc(path)
        except (OSError, UnicodeDecodeError) as err:
            fail("chameleonOpenrc", f"cannot read the OpenRC file `{path}`: {err}")
            return None, failures
        for secret in SECRET_FIELDS:
            if options.get(secret):
                REDACTOR.register(options[secret])
        if "OS_PASSWORD" in prompted and not values.get("chameleonPassword") and not options.get("application_credential_secret"):
            fail("chameleonPassword", f"`{path}` asks for the password at a prompt: give it as `testbed:chameleonPassword` (secret)")
        source = f"`{path}`"
    if values.get("chameleonCloudsFile"):
        path = os.path.expanduser(str(values["chameleonCloudsFile"]))
        if not os.path.isfile(path):
            fail("chameleonCloudsFile", f"`{path}` does not exist")
            return None, failures
        files = [path]
    elif cloud or not (openrc or values.get("chameleonAuthUrl")):
        files = _default_clouds_files()
    if files:
        names = _clouds_in(files)
        if cloud is None:
            if len(names) != 1:
                key = "chameleonCloud" if names else ("chameleonCloudsFile" if values.get("chameleonCloudsFile") else "chameleonAuthUrl")
                listed = f"the file(s) define {', '.join(names)}" if names else f"no cloud is defined in {', '.join(files)}"
                fail(key, f"which cloud? {listed}: set `testbed:chameleonCloud`" if names else f"{listed}; give credentials")
                return None, failures
            cloud = names[0]
        elif cloud not in names:
            fail("chameleonCloud", f"no cloud `{cloud}` in {', '.join(files)} (clouds there: {', '.join(names) or 'none'})")
            return None, failures
        source = f"cloud `{cloud}` of {', '.join(files)}"
    elif cloud:
        fail("chameleonCloud", "no clouds.yaml found (set `testbed:chameleonCloudsFile`)")
        return None, failures
    for key, option in OVERRIDES.items():
        if values.get(key):
            options[option] = str(values[key])
    if "auth_type" not in options:
        if options.get("application_credential_id") or options.get("application_credential_name"):
            options["auth_type"] = "v3applicationcredential"
    if not files and not options.get("auth_url"):
        fail("chameleonAuthUrl", "no Keystone URL: give `testbed:chameleonAuthUrl`, an OpenRC file or a clouds.yaml cloud")
    if failures:
        return None, failures
    settings = ChameleonSettings(
        options=options,
        config_files=tuple(files),
        cloud=cloud,
        image=str(values.get("chameleonImage") or default_of(ConfigArgs, "chameleon_image")),
        node_type=str(values.get("chameleonNodeType") or default_of(ConfigArgs, "chameleon_node_type")),
        network=str(values.get("chameleonNetwork") or default_of(ConfigArgs, "chameleon_network")),
        floating_ips=bool(values.get("chameleonFloatingIps", default_of(ConfigArgs, "chameleon_floating_ips"))),
        public_network=str(values.get("chameleonPublicNetwork") or default_of(ConfigArgs, "chameleon_public_network")),
        ssh_user=str(values.get("chameleonSshUser") or default_of(ConfigArgs, "chameleon_ssh_user")),
        proxy_command=str(values.get("chameleonSshProxyCommand") or ""),
        source=source,
    )
    try:
        region = cloud_region(settings)
    except Exception as err:  # noqa: BLE001 - openstacksdk's config errors have no common base worth naming
        key = "chameleonCloud" if files else ("chameleonOpenrc" if openrc else "chameleonAuthUrl")
        fail(key, f"the OpenStack configuration from {source} is not usable: {REDACTOR.scrub(str(err))}")
        return None, failures
    auth = region.config.get("auth") or {}
    for secret in SECRET_FIELDS:
        if auth.get(secret):
            REDACTOR.register(str(auth[secret]))
    if not auth.get("auth_url"):
        fail("chameleonAuthUrl", f"{source} names no Keystone URL (`auth_url`)")
        return None, failures
    from dataclasses import replace

    return replace(settings, region=str(region.region_name or ""), auth_url=str(auth["auth_url"])), []


def cloud_region(settings: ChameleonSettings) -> Any:
    """openstacksdk's CloudRegion for these settings (no request made): the file's cloud with
    the keys' overrides, never the process environment."""
    from openstack.config import loader

    config = loader.OpenStackConfig(
        config_files=list(settings.config_files),
        vendor_files=[],
        secure_files=[os.path.join(os.path.dirname(f), "secure.yaml") for f in settings.config_files],
        load_yaml_config=bool(settings.config_files),
        load_envvars=False,
    )
    return config.get_one(cloud=settings.cloud, **settings.options)
