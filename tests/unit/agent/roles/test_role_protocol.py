"""Every registered role module provides the role protocol (roles/__init__.py), and nothing else is registered."""

import inspect

import pytest

from dbtls_agent import roles
from dbtls_agent.errors import AgentError


@pytest.mark.parametrize("name", roles.ROLE_NAMES)
def test_role_module_satisfies_the_protocol(name):
    module = roles.load(name)
    assert module.ROLE == name
    assert module.__name__ == f"dbtls_agent.roles.{name}.role"
    for function, arity in roles.PROTOCOL.items():
        member = getattr(module, function, None)
        assert callable(member), f"{name} has no {function}()"
        params = [p for p in inspect.signature(member).parameters.values() if p.default is p.empty]
        assert len(params) == arity, f"{name}.{function} takes {len(params)} required arguments, not {arity}"


def test_registry_and_names_agree():
    assert tuple(roles.ROLE_MODULES) == roles.ROLE_NAMES


def test_an_unknown_role_is_one_line():
    with pytest.raises(AgentError, match="unknown role 'oracle'"):
        roles.load("oracle")
