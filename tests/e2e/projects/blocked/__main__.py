"""Says it runs (its pid in the file named by $BLOCKED_PROGRAM_STARTED), then blocks forever:
whatever stops it is what the test looks at."""

import os
import threading

import pulumi

with open(os.environ["BLOCKED_PROGRAM_STARTED"], "w") as f:
    f.write(str(os.getpid()))
pulumi.export("never", "exported")
threading.Event().wait()
