"""Moved to `testbed_provider.common.deadlines` (one module for deadlines): import it from there."""

from ..common.deadlines import Deadline as Deadline, deadline as deadline
