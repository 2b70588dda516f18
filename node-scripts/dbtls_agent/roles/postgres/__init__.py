"""The PostgreSQL role: postgresql.conf and pg_hba.conf editors, the server's facts, its client, pre-flight.

Pgpool-II builds on these modules (:mod:`dbtls_agent.roles.pgpool`); the role itself is :mod:`.role`.
"""
