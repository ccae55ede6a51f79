"""``skelly smoke``: the on-device smoke test (docs/SMOKE.md).

* ``checklist.py`` — items, PASS/FAIL/SKIP, the rendered checklist and the exit status;
* ``checks.py`` — the checks that need nobody: data dir, database, ingest port, running service;
* ``outputs.py`` — the visible steps on the GPIO back end and the MCU link, and the button;
* ``runner.py`` — the order of the items, the person (or ``--yes``), and the ``--sim`` rig.
"""

from skelly.smoke.checklist import Checklist, Item, Status
from skelly.smoke.runner import SimRig, SmokeOptions, run_smoke

__all__ = ["Checklist", "Item", "SimRig", "SmokeOptions", "Status", "run_smoke"]
