"""The MySQL-family role (MariaDB, MySQL): option files, flavours, the client, accounts, replicas.

The role itself is :mod:`.role`.
"""
