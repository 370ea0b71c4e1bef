"""Grid'5000 connection settings: where the API is, who we are, how SSH reaches the nodes.

They come from the provider configuration (`testbed:g5k*` keys) and, for whatever is not set
there, from python-grid5000's usual YAML file. We read that file ourselves instead of calling
`Grid5000.from_yaml`, because on any error that function silently returns an anonymous client
aimed at the real API; here a missing or malformed file is a configuration error naming the key.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Collection, Optional

import yaml

from ...common.results import CheckFailure
from ...config_schema import URI, URI_HINT, ConfigArgs
from ...protocol.redact import REDACTOR
from ...typed.model import default_of, input_names

DEFAULT_URI = "https://api.grid5000.fr/stable"
DEFAULT_TIMEOUT = 30.0  # neither `testbed:g5kTimeout` nor the file's `timeout` set
ACCESS_HOST = "access.grid5000.fr"
_URI = re.compile(URI)

# Provider configuration keys (flat, as `testbed:<key>` in stack config).
KEYS = {k for k in input_names(ConfigArgs) if k.startswith("g5k")}


@dataclass(frozen=True)
class G5kSettings:
    uri: str = DEFAULT_URI
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    verify_ssl: Any = None  # bool or CA bundle path; None: python-grid5000's default (system bundle)
    timeout: float = DEFAULT_TIMEOUT
    ssh_user: str = default_of(ConfigArgs, "g5k_ssh_user")
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


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def parse_settings(values: dict[str, Any], refused: Collection[str] = ()) -> tuple[Optional[G5kSettings], list[CheckFailure]]:
    """Settings from config values the definition checked (config_schema.ConfigArgs: typed as it
    says, secrets revealed); `refused` names the keys it refused, neither used nor judged again.
    What no type says is checked here, each failure naming its key: python-grid5000's file and
    what it holds, a password without a user, a timeout that is not positive. None as settings
    whenever a key was refused or a rule failed."""
    failures: list[CheckFailure] = []
    fail = lambda key, reason: failures.append(CheckFailure(key, reason))  # noqa: E731
    ok = {k: v for k, v in values.items() if k not in refused and v is not None}
    if ok.get("g5kPassword"):
        REDACTOR.register(ok["g5kPassword"])

    merged: dict[str, Any] = {}
    source = "provider configuration"
    path = ""
    if not ok.get("g5kUri") and not {"g5kUri", "g5kConfigFile"} & set(refused):
        default_file = default_of(ConfigArgs, "g5k_config_file")
        explicit = ok.get("g5kConfigFile") is not None
        path = os.path.expanduser(ok.get("g5kConfigFile") or default_file)
        key = "g5kConfigFile"
        if not os.path.isfile(path):
            where = f"`{path}`" if explicit else f"the default file `{path}`"
            fail(
                key,
                f"the python-grid5000 configuration {where} does not exist; set `testbed:g5kConfigFile` to "
                "an existing file, or give `testbed:g5kUri` (with `testbed:g5kUsername`/`testbed:g5kPassword`)",
            )
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
            fail(key, f"`{path}` has no `uri`; refusing to fall back to the public API implicitly (write `uri: {DEFAULT_URI}` to use it)")
            return None, failures
        merged.update({k: loaded[k] for k in ("uri", "username", "password", "verify_ssl", "timeout") if k in loaded})
        source = f"`{path}`"
    for config_key, field_key in (("g5kUri", "uri"), ("g5kUsername", "username"), ("g5kPassword", "password")):
        if ok.get(config_key):
            merged[field_key] = ok[config_key]

    uri = merged.get("uri")
    if path and (not isinstance(uri, str) or not _URI.fullmatch(uri)):  # the key's own is checked by its pattern
        fail("g5kConfigFile", f"the API address (`uri` of `{path}`) must be {URI_HINT} (got `{uri}`)")
    if merged.get("password") and not merged.get("username"):
        fail("g5kUsername", "a password is configured but no user name")

    verify = ok.get("g5kVerifySsl", merged.get("verify_ssl"))
    timeout = DEFAULT_TIMEOUT
    raw_timeout = None if "g5kTimeout" in refused else ok.get("g5kTimeout", merged.get("timeout"))
    if raw_timeout is not None:
        number = _number(raw_timeout)
        if number is None or not math.isfinite(number) or number <= 0:
            shown = f"{number:g}" if number is not None else raw_timeout
            if "g5kTimeout" in ok:
                fail("g5kTimeout", f"must be a positive number of seconds (got `{shown}`)")
            else:
                fail("g5kConfigFile", f"the HTTP `timeout` of `{path}` must be a positive number of seconds (got `{shown}`)")
        else:
            timeout = number
    if failures or refused or not isinstance(uri, str):
        return None, failures
    return (
        G5kSettings(
            uri=uri.rstrip("/"),  # python-grid5000 concatenates paths: a trailing slash gives `//sites`
            username=str(merged["username"]) if merged.get("username") else None,
            password=str(merged["password"]) if merged.get("password") is not None else None,
            verify_ssl=verify,
            timeout=timeout,
            ssh_user=ok.get("g5kSshUser") or default_of(ConfigArgs, "g5k_ssh_user"),
            ssh_proxy_command=ok.get("g5kSshProxyCommand") or None,
            site=ok.get("g5kSite") or None,
            source=source,
        ),
        [],
    )
