"""JPS (Cloud Scripting) tooling: a validator for generated manifests and an interpreter that runs
them against a simulated environment. See validate.py and interpreter.py."""

from .errors import ConditionError, JpsError, ManifestError, PlaceholderError, UnsupportedFeature
from .interpreter import Interpreter
from .model import Addon, CmdResult, Environment, Node, NodeRunner, User
from .results import Result, Step

__all__ = [
    "Addon", "CmdResult", "ConditionError", "Environment", "Interpreter", "JpsError",
    "ManifestError", "Node", "NodeRunner", "PlaceholderError", "Result", "Step",
    "UnsupportedFeature", "User",
]
