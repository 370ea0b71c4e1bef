"""A g5k Job with a vlan, a Deployment on its nodes and a VlanAttachment of their eth1."""

import pulumi
import pulumi_testbed as testbed

config = pulumi.Config()
job = testbed.g5k.Job(
    "job",
    site="lyon",
    nodes=[testbed.g5k.NodeRequestArgs(cluster="taurus", count=config.get_int("count") or 2)],
    vlan=testbed.g5k.VlanRequestArgs(type="kavlan"),
    types=["deploy"],
    walltime=config.get("walltime") or "1:00:00",
    opts=pulumi.ResourceOptions(custom_timeouts=pulumi.CustomTimeouts(create=config.get("createTimeout"))),
)
deployment = testbed.g5k.Deployment("deploy", site=job.site, job_uid=job.uid, environment="debian12-min", key="ssh-ed25519 AAAAe2e")
attachment = testbed.g5k.VlanAttachment(
    "vlan", site=job.site, job_uid=job.uid, interface="eth1", opts=pulumi.ResourceOptions(depends_on=[deployment])
)

pulumi.export("uid", job.uid)
pulumi.export("oarRequest", job.oar_request)
pulumi.export("nodes", job.assigned_nodes)
pulumi.export("walltimeSeconds", job.walltime_seconds)
pulumi.export("deployed", deployment.deployed_nodes)
pulumi.export("vlanNames", attachment.members.apply(lambda ms: [m.hostname for m in ms]))
