"""rayscript: give orders to a sharded k-mer store running on MPI ranks."""

from .cluster import Cluster
from .errors import RayScriptError
from .results import Result

__version__ = "0.1.0"
__all__ = ["Cluster", "RayScriptError", "Result", "__version__"]
