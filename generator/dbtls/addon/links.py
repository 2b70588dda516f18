"""The platform's own guides on TLS connections, one per database family."""

TUTORIAL_PG = "https://www.virtuozzo.com/application-platform-docs/ssl-for-pgsql/"
TUTORIAL_MYSQL = "https://www.virtuozzo.com/application-platform-docs/ssl-for-mysql-mariadb-percona/"
