"""The Pgpool-II role: pool_passwd (format and key), pool_hba.conf, its OpenSSL configuration, its report.

The role itself is :mod:`.role`; it reuses the PostgreSQL editors and client.
"""
