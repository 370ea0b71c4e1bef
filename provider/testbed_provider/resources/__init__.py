"""One controller per schema resource token."""

from __future__ import annotations

from .base import ResourceController
from .command import Command
from .fetch import Fetch
from .g5k_deployment import Deployment as G5kDeployment
from .g5k_job import Job as G5kJob
from .g5k_vlan import VlanAttachment as G5kVlanAttachment
from .metrics_backup import MetricsBackup
from .monitoring import Monitoring
from .netem import Netem
from .play import Play
from .reservation import Reservation

CONTROLLERS: dict[str, type[ResourceController]] = {
    c.token: c for c in (Reservation, Command, Play, Fetch, G5kJob, G5kDeployment, G5kVlanAttachment, Monitoring, MetricsBackup, Netem)
}
