"""The text files of a client kit (``my.cnf``, ``README.txt``) and its connection strings.

Pure functions of (layer, user, kit directory, hosts, port), so ``kit show`` prints exactly what
``kit build`` wrote. Every string verifies the server: its certificate must chain to the kit's
``root.crt`` and carry the host name connected to, which is why the hosts matter.
"""

import os
from typing import Dict, List
from urllib.parse import quote

#: Per database family: the administrator with a client certificate, the default port and the
#: database a PostgreSQL client names (the MySQL family connects without one).
LAYERS = {
    "postgres": {"admin": "webadmin", "port": 5432, "database": "postgres"},
    "mysql": {"admin": "root", "port": 3306, "database": ""},
}  # type: Dict[str, Dict[str, object]]


def _conninfo_value(value: str) -> str:
    """A libpq keyword value, quoted when it holds a space, a quote or a backslash."""
    if value and not any(c in value for c in " '\\"):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _url(value: str) -> str:
    return quote(value, safe="/")


def files(directory: str) -> Dict[str, str]:
    """Kit file role -> absolute path."""
    names = {"root": "root.crt", "cert": "client.crt", "key": "client.key", "pk8": "client.pk8",
             "p12": "client.p12", "p12_password": "client.p12.password", "mycnf": "my.cnf", "readme": "README.txt"}
    return {role: os.path.join(directory, name) for role, name in names.items()}


def _pg_strings(user: str, host: str, port: int, database: str, f: Dict[str, str]) -> Dict[str, str]:
    conninfo = " ".join("{}={}".format(k, _conninfo_value(v)) for k, v in (
        ("host", host), ("port", str(port)), ("dbname", database), ("user", user), ("sslmode", "verify-full"),
        ("sslrootcert", f["root"]), ("sslcert", f["cert"]), ("sslkey", f["key"])))
    jdbc = ("jdbc:postgresql://{}:{}/{}?user={}&sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}"
            .format(host, port, _url(database), _url(user), _url(f["root"]), _url(f["cert"]), _url(f["pk8"])))
    node = ("new pg.Client({{host: '{}', port: {}, database: '{}', user: '{}', ssl: {{ca: fs.readFileSync('{}'), "
            "cert: fs.readFileSync('{}'), key: fs.readFileSync('{}')}}}})"
            .format(host, port, database, user, f["root"], f["cert"], f["key"]))
    return {
        "psql": "psql \"{}\"".format(conninfo.replace('"', '\\"')),
        "libpq": conninfo,
        "psycopg": "psycopg.connect({!r})".format(conninfo),
        "pgjdbc": jdbc,
        "node-postgres": node,
    }


def _mysql_strings(user: str, host: str, port: int, f: Dict[str, str]) -> Dict[str, str]:
    return {
        "mariadb": "mariadb --defaults-extra-file={} -h {} -P {} -u {} -p".format(f["mycnf"], host, port, user),
        "mariadb-explicit": ("mariadb -h {} -P {} -u {} -p --ssl-ca={} --ssl-cert={} --ssl-key={} "
                             "--ssl-verify-server-cert".format(host, port, user, f["root"], f["cert"], f["key"])),
        "mysql8": ("mysql -h {} -P {} -u {} -p --ssl-mode=VERIFY_IDENTITY --ssl-ca={} --ssl-cert={} --ssl-key={}"
                   .format(host, port, user, f["root"], f["cert"], f["key"])),
        "connector-j": ("jdbc:mysql://{}:{}/?user={}&sslMode=VERIFY_IDENTITY"
                        "&trustCertificateKeyStoreUrl=file:{}&trustCertificateKeyStoreType=PKCS12"
                        "&trustCertificateKeyStorePassword=<truststore password>"
                        "&clientCertificateKeyStoreUrl=file:{}&clientCertificateKeyStoreType=PKCS12"
                        "&clientCertificateKeyStorePassword=<contents of {}>"
                        .format(host, port, _url(user), _url(os.path.join(os.path.dirname(f["root"]),
                                                                          "truststore.p12")),
                                _url(f["p12"]), f["p12_password"])),
    }


def connection_strings(layer: str, user: str, directory: str, hosts: List[str], port: int) -> List[Dict[str, object]]:
    """One entry per host: {host, port, strings: {client: string}}. No secret appears in them."""
    f = files(directory)
    out = []  # type: List[Dict[str, object]]
    for host in hosts:
        if layer == "postgres":
            strings = _pg_strings(user, host, port, str(LAYERS["postgres"]["database"]), f)
        else:
            strings = _mysql_strings(user, host, port, f)
        out.append({"host": host, "port": port, "strings": strings})
    return out


def my_cnf(directory: str) -> str:
    """A client option file: the certificate files for every client, server verification for MariaDB's.

    ``ssl-verify-server-cert`` sits in ``[client-mariadb]``, a group only MariaDB's clients read:
    MySQL 8 clients dropped that option and stop at an unknown option in ``[client]`` (they take
    ``--ssl-mode=VERIFY_IDENTITY`` instead, which MariaDB's clients do not know).
    """
    f = files(directory)
    return ("# dbtls client kit: mariadb --defaults-extra-file={mycnf} -h HOST -u USER -p\n"
            "[client]\nssl-ca={root}\nssl-cert={cert}\nssl-key={key}\n\n"
            "[client-mariadb]\nssl-verify-server-cert\n").format(**f)


def readme(layer: str, user: str, directory: str, hosts: List[str], port: int, not_after: str) -> str:
    """README.txt: what each file is for and one connection string per client and host."""
    f = files(directory)
    lines = [
        "dbtls client kit for database user {} ({}).".format(user, "PostgreSQL" if layer == "postgres" else
                                                             "MySQL/MariaDB"),
        "The client certificate expires {}; run 'kit build --user {}' on the CA node again before then."
        .format(not_after, user),
        "",
        "root.crt             the environment CA: clients verify the server's certificate with it",
        "client.crt           the client certificate (CN={})".format(user),
        "client.key           its private key, PEM (libpq, psycopg, node-postgres, mariadb)",
        "client.pk8           the same key, PKCS#8 DER, unencrypted (pgJDBC's sslkey)",
        "client.p12           key + certificate + root, PKCS#12 (Java, GUI clients)",
        "client.p12.password  the PKCS#12 password",
        "my.cnf               option file for MariaDB/MySQL clients",
        "",
        "Every string below verifies the server's certificate and host name. Copy the kit to the",
        "client machine (it holds a private key: keep it readable by its owner only) and adjust the",
        "paths if it lands elsewhere.",
    ]
    if layer == "mysql":
        lines += [
            "Connector/J reads trust from a keystore; make one from root.crt with:",
            "  keytool -importcert -noprompt -alias dbtls-ca -file {} -keystore {} -storetype PKCS12"
            .format(f["root"], os.path.join(directory, "truststore.p12")),
        ]
    for entry in connection_strings(layer, user, directory, hosts, port):
        lines += ["", "== {}:{} ==".format(entry["host"], entry["port"])]
        strings = entry["strings"]
        assert isinstance(strings, dict)
        for client, text in sorted(strings.items()):
            lines.append("{}:".format(client))
            lines.append("  " + text)
    return "\n".join(lines) + "\n"


def summary(kit: Dict[str, object], node: str) -> str:
    """A few lines for the dashboard: where the kit is, until when it works, one string per client
    family; no secret (the PKCS#12 password stays in its file)."""
    certificate = kit.get("certificate") or {}
    until = certificate.get("not_after", "?") if isinstance(certificate, dict) else "?"
    lines = ["Client kit of {} in {} on node {} (certificate valid until {}).".format(
        kit["user"], kit["kit_dir"], node, until),
        "Fetch the folder with the file manager or over SSH as root; README.txt there explains every file."]
    connections = kit.get("connections") or []
    if isinstance(connections, list) and connections:
        first = connections[0]
        strings = first.get("strings") if isinstance(first, dict) else None
        if isinstance(strings, dict):
            for name in ("psql", "mariadb"):
                if name in strings:
                    lines.append("{}: {}".format(name, strings[name]))
    return "\n".join(lines)
