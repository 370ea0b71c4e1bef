"""Typed definition of the provider's configuration (`testbed:*` keys): the source of its schema, Check and docs.

config.parse_config checks the keys against it (stack config sends strings: `true`, `30` are read
as the types say first); what no type says stays by hand there and in testbeds/g5k/settings.py:
the backends available, python-grid5000's file and what it holds, a password without a user, a
timeout that must be positive (from the key or from the file). A default is declared only where
the key alone decides: `g5kTimeout`, `g5kUsername`, `g5kPassword` fall back to the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .testbeds.g5k.oar import SITE_RE
from .typed.model import Config, prop

URI = r"https?://\S+"
URI_HINT = "an http(s) URL such as `https://api.grid5000.fr/stable`"


@dataclass(kw_only=True)
class ConfigArgs:
    backend: str = prop(
        "The testbed this stack's resources live on: `local` (hosts as network namespaces with their own sshd on this "
        "machine; needs root), `g5k` (Grid'5000, through its REST API; see the `g5k*` keys), `chameleon` (Chameleon Cloud: "
        "Blazar leases and bare-metal Nova servers on its OpenStack; see the `chameleon*` keys) or `static` (machines you "
        "already have; see the `static*` keys).",
        default="local",
        fill=True,
    )  # (the SDK writing it is what parse_config assumes anyway)
    g5k_config_file: str = prop(
        "g5k backend: python-grid5000's YAML file (`uri`, `username`, `password`, `verify_ssl`, "
        "`timeout`), read when `g5kUri` is not set. A missing or malformed file, or one without `uri`, "
        "is a configuration error (python-grid5000 itself would silently fall back to an anonymous "
        "client of the public API).",
        default="~/.python-grid5000.yaml",
    )
    g5k_uri: Optional[str] = prop(
        "g5k backend: base URL of the Grid'5000 API including its version prefix, e.g. "
        "`https://api.grid5000.fr/stable` (or an emulator's `http://127.0.0.1:PORT/stable`). Overrides the "
        "file's `uri`.",
        pattern=URI,
        hint=URI_HINT,
    )
    g5k_username: Optional[str] = prop(
        "g5k backend: Grid'5000 login (HTTP Basic auth). Overrides the file's `username`; also the login "
        "used by the default SSH ProxyCommand."
    )
    g5k_password: Optional[str] = prop(
        "g5k backend: Grid'5000 password (HTTP Basic auth). Secret: set it with `pulumi config set --secret "
        "testbed:g5kPassword`; never shown in state, logs or errors.",
        secret=True,
    )
    g5k_verify_ssl: Optional[bool] = prop(
        "g5k backend: verify the API's TLS certificate (default: python-grid5000's choice, the system CA bundle)."
    )
    g5k_timeout: Optional[float] = prop(
        "g5k backend: seconds before one API request times out (when not set: the file's `timeout`, else "
        "30); timed-out reads are retried with back-off.",
        hint="a positive number of seconds",
    )
    g5k_ssh_user: str = prop("g5k backend: user the Reservation's inventory logs in as on deployed nodes.", default="root")
    g5k_ssh_proxy_command: Optional[str] = prop(
        "g5k backend: ssh ProxyCommand reaching the nodes (`%h`/`%p` are the node and port). "
        "Default `ssh -W %h:%p <g5kUsername>@access.grid5000.fr`; against the emulator use the "
        "`proxyCommand` of its `GET /_emulator/ssh`."
    )
    g5k_site: Optional[str] = prop(
        "g5k backend: default site of a Reservation's machine groups (their `site` option overrides it), so a "
        "program written for the local backend runs unchanged.",
        pattern=SITE_RE.pattern,
        hint="a Grid'5000 site name such as `rennes`",
    )
    static_hosts: Optional[str] = prop(
        "static backend: the machines you already have, by role, as YAML or JSON: `{server: [{address: 10.0.0.5, "
        "user: root, port: 22, alias: srv, networks: [{id: experiment, address: 192.168.1.5, interface: eth1}]}], "
        "client: [...]}` (only `address` is required). A machine group takes the hosts of its first role, in order."
    )
    static_ssh_key_file: Optional[str] = prop(
        "static backend: the private key that logs in on those hosts (default `~/.ssh/id_ed25519`, else "
        "`~/.ssh/id_rsa`); kept in state as a secret so later steps and `destroy` need nothing else."
    )
    static_ssh_user: str = prop("static backend: the user of a host that names none.", default="root")
    static_ssh_proxy_command: Optional[str] = prop(
        "static backend: ssh ProxyCommand reaching the hosts (`%h`/`%p`), e.g. `ssh -W %h:%p jump.example.org`; none: direct connections."
    )
    static_known_hosts: Optional[str] = prop(
        "static backend: known_hosts lines for the hosts. Given, their keys are checked from the first connection; "
        "not given, the first connection's keys are trusted and pinned (the preview warns)."
    )

    chameleon_cloud: Optional[str] = prop(
        "chameleon backend: the cloud's name in `clouds.yaml` (as `OS_CLOUD`), read from `chameleonCloudsFile` or "
        "OpenStack's usual places (`./clouds.yaml`, `~/.config/openstack/clouds.yaml`, `/etc/openstack/clouds.yaml`). "
        "Default: the file's only cloud."
    )
    chameleon_clouds_file: Optional[str] = prop("chameleon backend: a `clouds.yaml` file (its `secure.yaml` beside it is read too).")
    chameleon_openrc: Optional[str] = prop(
        "chameleon backend: an OpenRC file as Chameleon's dashboard gives it (`export OS_AUTH_URL=…` lines); its password "
        "prompt is answered by `chameleonPassword`."
    )
    chameleon_auth_url: Optional[str] = prop(
        "chameleon backend: Keystone v3 URL, e.g. `https://chi.uc.chameleoncloud.org:5000/v3` (or an emulator's "
        "`http://127.0.0.1:PORT/v3`); overrides the file's.",
        pattern=URI,
        hint="an http(s) URL such as `https://chi.uc.chameleoncloud.org:5000/v3`",
    )
    chameleon_region: Optional[str] = prop(
        "chameleon backend: the site, as OpenStack's region name (`CHI@UC`, `CHI@TACC`…); overrides the file's."
    )
    chameleon_application_credential_id: Optional[str] = prop(
        "chameleon backend: an application credential's id (overrides the file's; with `chameleonApplicationCredentialSecret`)."
    )
    chameleon_application_credential_secret: Optional[str] = prop(
        "chameleon backend: that credential's secret. Secret: `pulumi config set --secret`; never in state, logs or errors.",
        secret=True,
    )
    chameleon_username: Optional[str] = prop("chameleon backend: user name for password authentication (overrides the file's).")
    chameleon_password: Optional[str] = prop(
        "chameleon backend: password (overrides the file's, answers an OpenRC's prompt). Secret: never in state, logs or errors.",
        secret=True,
    )
    chameleon_project_name: Optional[str] = prop(
        "chameleon backend: project for password authentication, e.g. `CHI-123456` (overrides the file's)."
    )
    chameleon_image: str = prop("chameleon backend: the Glance image of machine groups naming no `environment`.", default="CC-Ubuntu22.04")
    chameleon_node_type: str = prop("chameleon backend: the node type of machine groups naming no `nodeType`.", default="compute_skylake")
    chameleon_network: str = prop("chameleon backend: the Neutron network the servers are on.", default="sharednet1")
    chameleon_floating_ips: bool = prop(
        "chameleon backend: give every server a floating IP from `chameleonPublicNetwork` and reach it there (else at its "
        "fixed address, e.g. through `chameleonSshProxyCommand`).",
        default=True,
    )
    chameleon_public_network: str = prop("chameleon backend: the external network floating IPs come from.", default="public")
    chameleon_ssh_user: str = prop("chameleon backend: the user the images log in (Chameleon's images: `cc`).", default="cc")
    chameleon_ssh_proxy_command: Optional[str] = prop(
        "chameleon backend: ssh ProxyCommand reaching the servers (`%h`/`%p`), e.g. through a jump host; none: direct "
        "connections. Against the emulator: its `proxyCommand`."
    )


CONFIG = Config(
    "The testbed provider. One stack per testbed: the same program runs on another testbed with another stack's `testbed:backend`.",
    ConfigArgs,
)
