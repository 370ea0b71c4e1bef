"""The emulated site's fixed inventory: reservable bare-metal hosts (by node type), the images
and the `baremetal` flavor, and the two networks Chameleon sites have (`sharednet1`, `public`).

Everything here is generated from a few parameters (node types and counts, the region), never
read from a real site; ids are stable (uuid5 of a name) so they survive restarts.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from dataclasses import dataclass
from typing import Any

NS = uuid.UUID("6f1c8a52-3f0e-4b7e-9a61-0c2b5f0e7a11")


def stable_id(*parts: str) -> str:
    return str(uuid.uuid5(NS, "/".join(parts)))


@dataclass(frozen=True)
class NodeSpec:
    cpu_model: str
    vcpus: int
    memory_mb: int
    local_gb: int
    gpu: str = ""


NODE_SPECS = {
    "compute_skylake": NodeSpec("Intel(R) Xeon(R) Gold 6126 CPU @ 2.60GHz", 48, 196608, 240),
    "compute_cascadelake_r": NodeSpec("Intel(R) Xeon(R) Gold 6242 CPU @ 2.80GHz", 64, 196608, 480),
    "compute_cascadelake": NodeSpec("Intel(R) Xeon(R) Gold 6240R CPU @ 2.40GHz", 96, 196608, 480),
    "compute_icelake_r650": NodeSpec("Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz", 160, 262144, 480),
    "gpu_rtx_6000": NodeSpec("Intel(R) Xeon(R) Gold 6126 CPU @ 2.60GHz", 48, 196608, 240, "Quadro RTX 6000"),
    "gpu_p100": NodeSpec("Intel(R) Xeon(R) CPU E5-2670 v3 @ 2.30GHz", 48, 131072, 1000, "Tesla P100"),
}
GENERIC = NodeSpec("Intel(R) Xeon(R) CPU", 32, 131072, 240)
DEFAULT_NODE_TYPES = {"compute_skylake": 4, "compute_cascadelake_r": 4, "gpu_rtx_6000": 1}

DEFAULT_IMAGES = ("CC-Ubuntu22.04", "CC-Ubuntu24.04", "CC-CentOS9-Stream", "CC-Ubuntu22.04-CUDA")

SHARED_NET = "sharednet1"
SHARED_CIDR = ipaddress.IPv4Network("10.140.80.0/22")
SHARED_GATEWAY = ipaddress.IPv4Address("10.140.83.254")
PUBLIC_NET = "public"
# TEST-NET-3 (RFC 5737): documentation addresses, never routed anywhere, only used inside the
# emulator's switch namespace.
PUBLIC_CIDR = ipaddress.IPv4Network("203.0.113.0/24")
PUBLIC_GATEWAY = ipaddress.IPv4Address("203.0.113.1")
FLAVOR = "baremetal"
CREATED = "2026-01-01T00:00:00Z"


def parse_node_types(specs: list[str]) -> dict[str, int]:
    """`TYPE=COUNT` flags → {type: count} (the defaults when none is given)."""
    if not specs:
        return dict(DEFAULT_NODE_TYPES)
    out: dict[str, int] = {}
    for spec in specs:
        name, sep, count = spec.partition("=")
        if not name or not sep or not count.isdigit() or int(count) < 1:
            raise ValueError(f"a node type is TYPE=COUNT (COUNT ≥ 1), got {spec!r}")
        out[name] = out.get(name, 0) + int(count)
    return out


def build_hosts(node_types: dict[str, int], region: str) -> dict[str, dict[str, Any]]:
    """Blazar's host records (string ids "1", "2", … as Blazar numbers them)."""
    hosts: dict[str, dict[str, Any]] = {}
    n = 0
    for node_type, count in node_types.items():
        spec = NODE_SPECS.get(node_type, GENERIC)
        for i in range(1, count + 1):
            n += 1
            name = f"{node_type.replace('_', '-')}-{i:02d}"
            hosts[str(n)] = {
                "id": str(n),
                "hypervisor_hostname": stable_id("host", region, name),
                "service_name": stable_id("host", region, name),
                "node_name": name,
                "node_type": node_type,
                "cpu_info": json.dumps({"model": spec.cpu_model, "arch": "x86_64", "vendor": "Intel"}),
                "vcpus": spec.vcpus,
                "memory_mb": spec.memory_mb,
                "local_gb": spec.local_gb,
                "hypervisor_type": "ironic",
                "hypervisor_version": 1,
                "reservable": True,
                "disabled": False,
                "gpu.gpu": bool(spec.gpu),
                "gpu.gpu_model": spec.gpu or None,
                "architecture.platform_type": "x86_64",
                "placement.rack": f"rack-{(n - 1) // 8 + 1:02d}",
                "trust_id": stable_id("trust", region),
                "created_at": "2026-01-01 00:00:00",
                "updated_at": None,
            }
    return hosts


def build_images(names: tuple[str, ...] = DEFAULT_IMAGES) -> dict[str, dict[str, Any]]:
    images = {}
    for name in names:
        iid = stable_id("image", name)
        images[iid] = {
            "id": iid,
            "name": name,
            "status": "active",
            "visibility": "public",
            "protected": False,
            "disk_format": "qcow2",
            "container_format": "bare",
            "min_disk": 0,
            "min_ram": 0,
            "size": 4 * 1024**3,
            "checksum": uuid.uuid5(NS, "checksum/" + name).hex,
            "os_hidden": False,
            "owner": stable_id("project", "chameleon-admin"),
            "tags": [],
            "build-os": "ubuntu" if "Ubuntu" in name else "centos",
            "created_at": CREATED,
            "updated_at": CREATED,
            "file": f"/v2/images/{iid}/file",
            "self": f"/v2/images/{iid}",
            "schema": "/v2/schemas/image",
        }
    return images


def build_flavors() -> dict[str, dict[str, Any]]:
    fid = stable_id("flavor", FLAVOR)
    return {
        fid: {
            "id": fid,
            "name": FLAVOR,
            "ram": 0,
            "vcpus": 0,
            "disk": 0,
            "swap": 0,
            "OS-FLV-EXT-DATA:ephemeral": 0,
            "OS-FLV-DISABLED:disabled": False,
            "os-flavor-access:is_public": True,
            "rxtx_factor": 1.0,
            "description": "bare-metal node of a Blazar reservation",
            "extra_specs": {},
        }
    }
