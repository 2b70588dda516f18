"""JPS (Cloud Scripting) tooling: a validator for generated manifests and an interpreter that runs
them against a simulated environment. See validate.py and interpreter.py."""

from dbtls.jps.errors import ConditionError, JpsError, ManifestError, PlaceholderError, UnsupportedFeature
from dbtls.jps.interpreter import Interpreter
from dbtls.jps.model import Addon, CmdResult, Environment, Node, NodeRunner, User
from dbtls.jps.results import Result, Step

__all__ = [
    "Addon", "CmdResult", "ConditionError", "Environment", "Interpreter", "JpsError",
    "ManifestError", "Node", "NodeRunner", "PlaceholderError", "Result", "Step",
    "UnsupportedFeature", "User",
]
