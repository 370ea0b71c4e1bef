"""Experiment services: what runs beside an experiment on its hosts (monitoring), one module per
service, in EnOSlib's sense. The resources that deploy them live in `resources/`; this package
holds what they run there (configurations, command lines, the PromQL of the standard views)."""
