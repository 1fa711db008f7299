"""rayscript: give orders to a sharded k-mer store running on MPI ranks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import RayScriptError
from .results import Result

if TYPE_CHECKING:
    from .cluster import Cluster

__version__ = "0.1.0"
__all__ = ["Cluster", "RayScriptError", "Result", "__version__"]


def __getattr__(name: str) -> type[Cluster]:
    # Cluster (and with it numpy and the runtime) is imported on first use, so that the command
    # line splits off each rank's keeper while the process is still small
    if name == "Cluster":
        from .cluster import Cluster

        return Cluster
    raise AttributeError(f"module 'rayscript' has no attribute {name!r}")
