"""The ProxySQL role: the admin-interface plan, backend drains around restarts, its report.

The role itself is :mod:`.role`; it reuses the MySQL-family client.
"""
