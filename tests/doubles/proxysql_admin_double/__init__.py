"""TEST DOUBLE of ProxySQL 2.x's ADMIN interface (port 6032) for dbtls tests.

It speaks the MySQL protocol (mysql-mimic) over SQLite with ProxySQL's admin tables and
memory/runtime/disk semantics. It does NOT proxy any MySQL traffic. See README.md.
"""

from .schema import EMULATED_PROXYSQL_VERSION

__all__ = ["EMULATED_PROXYSQL_VERSION", "BANNER_VERSION", "VERSION_COMMENT"]

BANNER_VERSION = "{} (ProxySQL {} Admin TEST DOUBLE: proxysql_admin_double, no traffic proxying)".format(
    "5.5.30", EMULATED_PROXYSQL_VERSION,
)
VERSION_COMMENT = (
    "(ProxySQL Admin Module) TEST DOUBLE proxysql_admin_double: admin interface only,"
    " does not proxy traffic"
)
