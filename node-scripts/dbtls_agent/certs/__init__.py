"""Certificates: the environment CA, node certificates, their files on disk, inspection.

The cryptography itself (a ``cryptography`` or ``openssl`` CLI backend) is in :mod:`dbtls_agent.crypto`.
"""
