"""``dbtls build``: the add-on manifest, the marketplace listings and the agent zipapp."""

from dbtls.addon.project import DEFAULT_BASE_URL, BuildError, Output, build_outputs, drift, write_outputs
from dbtls.addon.zipapp import Zipapp, build_zipapp

__all__ = ["DEFAULT_BASE_URL", "BuildError", "Output", "Zipapp", "build_outputs", "build_zipapp", "drift",
           "write_outputs"]
