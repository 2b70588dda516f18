"""The command line: the only modules that parse arguments and print.

Each module exposes ``register(subparsers)`` (wired in :mod:`dbtls_agent.cli`); a command parses,
takes the node lock when it changes something, calls the logic in ``certs``, ``passwords`` or ``roles``
and prints the result.
"""
