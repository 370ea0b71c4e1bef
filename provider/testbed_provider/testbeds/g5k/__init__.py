"""The Grid'5000 backend: OAR jobs, Kadeploy deployments and KaVLAN through python-grid5000.

One module per concern: settings (configuration), session (client, retries, call counting),
oar (resource requests, walltimes, dates), jobs, deployments, kavlan, naming, validation
(against the reference API) and testbed (the Reservation backend). Only `settings` is imported
eagerly; the rest loads python-grid5000 on first use.
"""
