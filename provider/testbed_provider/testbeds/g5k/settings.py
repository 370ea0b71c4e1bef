"""Grid'5000 connection settings: where the API is, who we are, how SSH reaches the nodes.

They come from the provider configuration (`testbed:g5k*` keys) and, for whatever is not set
there, from python-grid5000's usual YAML file. We read that file ourselves instead of calling
`Grid5000.from_yaml`, because on any error that function silently returns an anonymous client
aimed at the real API; here a missing or malformed file is a configuration error naming the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional

import yaml

from ...protocol.redact import REDACTOR
from ..base import CheckFailure

DEFAULT_URI = "https://api.grid5000.fr/stable"
DEFAULT_CONFIG_FILE = "~/.python-grid5000.yaml"
DEFAULT_TIMEOUT = 30.0
ACCESS_HOST = "access.grid5000.fr"

# Provider configuration keys (flat, as `testbed:<key>` in stack config).
KEYS = {
    "g5kConfigFile",
    "g5kUri",
    "g5kUsername",
    "g5kPassword",
    "g5kVerifySsl",
    "g5kTimeout",
    "g5kSshUser",
    "g5kSshProxyCommand",
    "g5kSite",
}


@dataclass(frozen=True)
class G5kSettings:
    uri: str = DEFAULT_URI
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    verify_ssl: Any = None  # bool or CA bundle path; None: python-grid5000's default (system bundle)
    timeout: float = DEFAULT_TIMEOUT
    ssh_user: str = "root"
    ssh_proxy_command: Optional[str] = None
    site: Optional[str] = None  # default site of a Reservation's machine groups
    source: str = "provider configuration"  # where uri/credentials came from, for messages

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `grid5000.Grid5000(...)`."""
        kwargs: dict[str, Any] = {"uri": self.uri, "timeout": self.timeout}
        if self.username:
            kwargs["username"] = self.username
            kwargs["password"] = self.password or ""
        if self.verify_ssl is not None and self.uri.startswith("https://"):  # meaningless (and warned about) over http
            kwargs["verify_ssl"] = self.verify_ssl
        return kwargs

    @property
    def proxy_command(self) -> str:
        """How ssh reaches a node: the configured ProxyCommand, else the access machine."""
        if self.ssh_proxy_command:
            return self.ssh_proxy_command
        login = f"{self.username}@" if self.username else ""
        return f"ssh -W %h:%p {login}{ACCESS_HOST}"


def _bool(value: Any) -> Optional[bool]:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.strip().lower() in ("true", "yes", "1")
    return None


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def parse_settings(values: dict[str, Any]) -> tuple[Optional[G5kSettings], list[CheckFailure]]:
    """Settings from plain config values (secrets already revealed); failures name the key."""
    failures: list[CheckFailure] = []
    fail = lambda key, reason: failures.append(CheckFailure(key, reason))  # noqa: E731
    for key in ("g5kUri", "g5kUsername", "g5kPassword", "g5kConfigFile", "g5kSshUser", "g5kSshProxyCommand", "g5kSite"):
        if key in values and values[key] is not None and not isinstance(values[key], str):
            fail(key, f"`testbed:{key}` must be a string")
    if failures:
        return None, failures
    if values.get("g5kPassword"):
        REDACTOR.register(values["g5kPassword"])

    merged: dict[str, Any] = {}
    source = "provider configuration"
    if not values.get("g5kUri"):
        explicit = values.get("g5kConfigFile")
        path = os.path.expanduser(explicit or DEFAULT_CONFIG_FILE)
        key = "g5kConfigFile"
        if not os.path.isfile(path):
            where = f"`{path}`" if explicit else f"the default file `{path}`"
            fail(key, f"the python-grid5000 configuration {where} does not exist; set `testbed:g5kConfigFile` to "
                      "an existing file, or give `testbed:g5kUri` (with `testbed:g5kUsername`/`testbed:g5kPassword`)")
            return None, failures
        try:
            with open(path) as f:
                loaded = yaml.safe_load(f)
        except (OSError, yaml.YAMLError) as err:
            fail(key, f"cannot read the python-grid5000 configuration `{path}`: {err}")
            return None, failures
        if not isinstance(loaded, dict):
            fail(key, f"`{path}` must be a YAML mapping with `uri`, `username`, `password` (got {type(loaded).__name__})")
            return None, failures
        if loaded.get("password"):
            REDACTOR.register(str(loaded["password"]))
        if "uri" not in loaded:
            fail(key, f"`{path}` has no `uri`; refusing to fall back to the public API implicitly "
                      f"(write `uri: {DEFAULT_URI}` to use it)")
            return None, failures
        merged.update({k: loaded[k] for k in ("uri", "username", "password", "verify_ssl", "timeout") if k in loaded})
        source = f"`{path}`"
    for config_key, field_key in (("g5kUri", "uri"), ("g5kUsername", "username"), ("g5kPassword", "password")):
        if values.get(config_key):
            merged[field_key] = values[config_key]

    uri = merged.get("uri")
    uri_key = "g5kUri" if values.get("g5kUri") else "g5kConfigFile"
    if not isinstance(uri, str) or not uri.startswith(("http://", "https://")):
        fail(uri_key, f"the API address must be an http(s) URL such as `{DEFAULT_URI}` (got `{uri}`)")
        return None, failures
    uri = uri.rstrip("/")  # python-grid5000 concatenates paths: a trailing slash gives `//sites`
    if merged.get("password") and not merged.get("username"):
        fail("g5kUsername", "a password is configured but no user name")

    verify = merged.get("verify_ssl")
    if "g5kVerifySsl" in values and values["g5kVerifySsl"] is not None:
        verify = _bool(values["g5kVerifySsl"])
        if verify is None:
            fail("g5kVerifySsl", "must be true or false")
    timeout = DEFAULT_TIMEOUT
    raw_timeout = values.get("g5kTimeout", merged.get("timeout"))
    if raw_timeout is not None:
        number = _number(raw_timeout)
        if number is None or number <= 0:
            fail("g5kTimeout" if "g5kTimeout" in values else "g5kConfigFile", f"the HTTP timeout must be a positive number of seconds (got `{raw_timeout}`)")
        else:
            timeout = number
    ssh_user = values.get("g5kSshUser") or "root"
    if failures:
        return None, failures
    return (
        G5kSettings(
            uri=uri,
            username=str(merged["username"]) if merged.get("username") else None,
            password=str(merged["password"]) if merged.get("password") is not None else None,
            verify_ssl=verify,
            timeout=timeout,
            ssh_user=ssh_user,
            ssh_proxy_command=values.get("g5kSshProxyCommand") or None,
            site=values.get("g5kSite") or None,
            source=source,
        ),
        [],
    )
