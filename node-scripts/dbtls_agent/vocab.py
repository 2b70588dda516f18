"""The words the install form, the command line and the roles share: key types and TLS minimums.

Defined once here; the generator's install form offers exactly these values (a unit test compares
the generated manifest with them), ``--min-tls`` takes them as argparse choices, and the options
file is validated against them.

Where the minimum applies today: PostgreSQL (``ssl_min_protocol_version``) and the MySQL family
(``tls_version``). Pgpool-II and ProxySQL do not read it yet; the place for Pgpool-II would be
``roles/pgpool/role.wanted_params`` (``ssl_min_protocol_version`` exists from Pgpool-II 4.3), for
ProxySQL ``roles/proxysql/plan.enable_plan`` (``mysql-ssl_p2s_*`` / frontend TLS variables).
"""

#: Private key types the agent can generate (``cryptography`` and ``openssl`` backends alike).
KEY_TYPES = ("rsa2048", "rsa3072", "rsa4096", "ecdsa-p256")
DEFAULT_KEY_TYPE = "rsa2048"

#: Lowest TLS versions a server may be told to accept; TLS 1.0 and 1.1 are never offered.
MIN_TLS_VERSIONS = ("TLSv1.2", "TLSv1.3")
DEFAULT_MIN_TLS = "TLSv1.2"
