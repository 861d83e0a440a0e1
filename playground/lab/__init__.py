"""The lab engine: real worker processes, a load balancer and virtual users, measured.

Plain asyncio; nothing here imports Django, so a test, a management command or the web
can run a lab alike.

    from playground.lab import Lab, LabConfig, LabError

    lab = Lab(LabConfig(lab_id="ab12cd", mode="stateful", workers=3), on_event=print)
    await lab.start()
    try:
        await lab.worker_kill("worker-1")
        print(lab.snapshot()["metrics"])
    finally:
        await lab.close()
"""

from .config import LabConfig
from .errors import LabError
from .lab import Lab
from .process import WorkerPool

__all__ = ["Lab", "LabConfig", "LabError", "WorkerPool"]
