"""dbtls-agent: the on-node half of the dbtls add-on.

Runs on platform nodes with Python >= 3.6 and the standard library only; ``cryptography`` is used
when importable, the ``openssl`` command otherwise.
"""

__version__ = "0.1.0"
