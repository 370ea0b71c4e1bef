"""Check-time validation against the reference API (sites, clusters, node counts).

Runs only when the API answers within a short timeout: Check must not hang a preview when
Grid'5000 is unreachable (OAR then judges at submission). Answers are cached per process for a
few minutes because Check runs on every preview and the reference data changes rarely.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any, Callable, Optional

from ...common.results import CheckFailure
from .session import G5kError, Session
from .settings import G5kSettings

CHECK_TIMEOUT = 5.0
TTL = 300.0
_cache: dict[tuple[str, str], tuple[float, Any]] = {}


class Reference:
    """Cached reads of the reference API; `None` results mean "could not tell"."""

    def __init__(self, settings: G5kSettings) -> None:
        self.settings = replace(settings, timeout=min(settings.timeout, CHECK_TIMEOUT))
        self._session: Optional[Session] = None
        self.unreachable: Optional[str] = None

    def _client(self) -> Session:
        if self._session is None:
            self._session = Session(self.settings, attempts=1)
        return self._session

    async def _cached(self, key: str, fetch) -> Any:
        hit = _cache.get((self.settings.uri, key))
        if hit and time.monotonic() - hit[0] < TTL:
            return hit[1]
        if self.unreachable:
            return None
        try:
            value = await fetch(self._client())
        except G5kError as err:
            if err.status == 404:
                value = False  # definitely not there
            else:
                self.unreachable = str(err)
                return None
        _cache[(self.settings.uri, key)] = (time.monotonic(), value)
        return value

    async def sites(self) -> Optional[set[str]]:
        async def fetch(s: Session):
            return {x.uid for x in await s.call("listing sites", s.gk.sites.list)}

        return await self._cached("sites", fetch)

    async def clusters(self, site: str) -> Optional[dict[str, dict[str, Any]]]:
        async def fetch(s: Session):
            return {c.uid: c.to_dict() for c in await s.call(f"listing clusters of {site}", s.site(site).clusters.list)}

        value = await self._cached(f"clusters/{site}", fetch)
        return value or None

    async def cluster_nodes(self, site: str, cluster: str) -> Optional[list[dict[str, Any]]]:
        """The cluster's node descriptions (uid, network adapters, …); None: could not tell."""
        from grid5000.objects import Cluster

        async def fetch(s: Session):
            c = Cluster(s.site(site).clusters, {"uid": cluster})
            return [n.to_dict() for n in await s.call(f"listing nodes of {site}/{cluster}", c.nodes.list, limit=1000)]

        value = await self._cached(f"nodes/{site}/{cluster}", fetch)
        return value if isinstance(value, list) else None

    async def node_count(self, site: str, cluster: str) -> Optional[int]:
        nodes = await self.cluster_nodes(site, cluster)
        return None if nodes is None else len(nodes)

    async def environments(self, site: str) -> Optional[set[str]]:
        async def fetch(s: Session):
            items = await s.call(f"listing environments of {site}", s.site(site).environments.list)
            names = set()
            for e in items:
                d = e.to_dict()
                for k in ("name", "alias", "uid"):
                    if d.get(k):
                        names.add(str(d[k]))
            return names

        value = await self._cached(f"environments/{site}", fetch)
        return value or None

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


async def check_placement(
    ref: Reference,
    site: str,
    clusters: dict[str, int],
    site_prop: str,
    cluster_props: dict[str, str],
    total_prop: str = "",
    anywhere: int = 0,
    anywhere_prop: str = "",
    eligible: Optional[Callable[[dict[str, Any]], Optional[frozenset[str]]]] = None,
) -> list[CheckFailure]:
    """Is `site` known, is each cluster at that site, and does it have enough nodes?

    `clusters` maps cluster → nodes wanted, `cluster_props` cluster → the property to blame.
    `anywhere` nodes are wanted on any cluster `eligible(clusters)` names (those serving the
    queue): they must fit in what those clusters have left once the named ones are served,
    or OAR refuses the job at `pulumi up`, after the preview passed."""
    failures: list[CheckFailure] = []
    sites = await ref.sites()
    if sites is None:
        return failures
    if site not in sites:
        failures.append(CheckFailure(site_prop, f"unknown Grid'5000 site `{site}` (sites: {', '.join(sorted(sites))})"))
        return failures
    known = await ref.clusters(site)
    if known is None:
        return failures
    for cluster, wanted in clusters.items():
        prop = cluster_props[cluster]
        if cluster not in known:
            failures.append(CheckFailure(prop, f"no cluster `{cluster}` at site `{site}` (clusters: {', '.join(sorted(known))})"))
            continue
        available = await ref.node_count(site, cluster)
        if available is not None and wanted > available:
            failures.append(
                CheckFailure(
                    prop.rsplit(".", 1)[0] + ".count" if prop.endswith(".cluster") else prop,
                    f"{wanted} nodes requested but cluster `{cluster}` has only {available}",
                )
            )
    names = eligible(known) if anywhere and not failures and eligible is not None else None
    if names is not None:
        counts = {c: await ref.node_count(site, c) for c in sorted(names)}
        if all(n is not None for n in counts.values()):
            left = sum(max(0, (n or 0) - clusters.get(c, 0)) for c, n in counts.items())
            if anywhere > left:
                taken = " left once the named clusters are served" if any(c in names for c in clusters) else ""
                failures.append(
                    CheckFailure(
                        anywhere_prop,
                        f"{anywhere} nodes requested at `{site}` on any cluster, but its "
                        f"clusters serving the job's queue have {left}{taken} "
                        f"({', '.join(sorted(names)) or 'none'})",
                    )
                )
    return failures


async def with_timeout(coro, seconds: float = 3 * CHECK_TIMEOUT):
    """Reference checks are advisory: give up (no failures) rather than stall Check."""
    try:
        return await asyncio.wait_for(coro, seconds)
    except asyncio.TimeoutError:
        return []
