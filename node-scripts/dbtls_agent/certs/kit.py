"""Client kits: everything a person needs to connect an application to the TLS-enabled database.

``kit build --user U`` runs on the CA node and writes ``<cert-dir>/kits/U/`` (root-only 0700, files
0600): the CA root, a client certificate for U with its key in PEM, PKCS#8 DER and PKCS#12 (with a
generated password in its own file), a MySQL client option file and a README of connection strings
that verify the server. The CA's policy decides who may get one, as for every client certificate
(capolicy): the layer's administrator, or a user a button of the add-on registered.

The certificate is reused when one for U already exists here and stays valid past the renewal
window (the kit's own, the one ``user-cert`` issued, or the node's administrator certificate);
otherwise a new key and certificate are issued from the local CA. So running ``kit build`` again is
also how a kit is renewed. Private keys are written only inside the kit and the node's own folders.
"""

import json
import os
import secrets
from typing import Any, Dict, List, Optional, Tuple

from dbtls_agent import fsio
from dbtls_agent.certs import capolicy, kitcrypto, kittext
from dbtls_agent.certs import inspect as certs_inspect
from dbtls_agent.certs.layout import CertLayout, missing_error
from dbtls_agent.crypto import DEFAULT_DAYS, CryptoBackend
from dbtls_agent.crypto.names import check_cn, normalize_san
from dbtls_agent.errors import AgentError

KITS_DIR = "kits"
META = "kit.json"
FILE_MODE = 0o600
DIR_MODE = 0o700
KEY_TYPE = "rsa2048"  # what user-cert issues too; every client library and pgJDBC's .pk8 reader take it
#: A certificate closer to its end than this is not put into a kit again: a new one is issued.
DEFAULT_RENEW_WITHIN = 30


def kits_root(cert_dir: str) -> str:
    return os.path.join(os.path.abspath(cert_dir), KITS_DIR)


def check_user(user: str) -> str:
    """A user name that is safe as a folder name and as a certificate CN, else one error line."""
    capolicy.check_user(user)
    check_cn(user, "database user name")
    return user


def kit_dir(cert_dir: str, user: str) -> str:
    return os.path.join(kits_root(cert_dir), check_user(user))


def resolve_layer(requested: Optional[str], compute_type: str) -> str:
    """``postgres`` or ``mysql``: as given, else from the node's family."""
    if requested:
        if requested not in kittext.LAYERS:
            raise AgentError("unknown layer {!r} (choose postgres or mysql)".format(requested))
        return requested
    admin = capolicy.admin_user(compute_type)
    if admin is None:
        raise AgentError("cannot tell the database family of this node (COMPUTE_TYPE {!r}); pass --layer "
                         "postgres|mysql".format(compute_type))
    return "postgres" if admin == "webadmin" else "mysql"


def check_allowed(user: str, layer: str, registered: List[str]) -> None:
    """The CA policy for client certificates: the layer's administrator or a registered user
    (see registered_users)."""
    if user != kittext.LAYERS[layer]["admin"] and user not in registered:
        raise AgentError("user {!r} is neither the {} administrator ({}) nor a user registered for a client "
                         "certificate ('user-cert', 'ca policy --client-user'); no kit".format(
                             user, layer, kittext.LAYERS[layer]["admin"]))


def registered_users(cert_dir: str) -> List[str]:
    """Users the client-certificate commands registered here: ``ca policy --client-user`` names,
    and users ``user-cert`` issued a certificate for on this CA node (``client/users/NAME/``)."""
    users = list(capolicy.load(cert_dir)["client_users"])
    try:
        issued = sorted(os.listdir(os.path.join(cert_dir, "client", "users")))
    except OSError:
        issued = []
    return users + [name for name in issued if name not in users]


def check_hosts(hosts: List[str]) -> List[str]:
    """Host names or addresses as given (lower-cased), each one a valid DNS name or IP address."""
    out = []  # type: List[str]
    for host in hosts:
        value = normalize_san(host).split(":", 1)[1]
        if value not in out:
            out.append(value)
    return out


def _usable(backend: CryptoBackend, user: str, key: Optional[bytes], cert: Optional[bytes], root: bytes,
            renew_within: int) -> bool:
    """Whether an existing key + certificate can go into the kit as they are."""
    if key is None or cert is None:
        return False
    try:
        info = backend.parse_cert(cert)
        backend.verify_chain(cert, root)
        matches = backend.public_key_sha256(key) == info["spki_sha256"]
    except AgentError:
        return False
    return (matches and info["cn"] == user and "clientAuth" in info["extended_key_usage"]
            and certs_inspect.days_left(info["not_after"]) > renew_within)


def _candidates(layout: CertLayout, user: str, directory: str) -> List[Tuple[str, str, str]]:
    """(origin, key path, certificate path) of the certificates for ``user`` already on this node."""
    return [
        ("kit", os.path.join(directory, "client.key"), os.path.join(directory, "client.crt")),
        ("user-cert", os.path.join(layout.root, "client", "users", user, "client.key"),
         os.path.join(layout.root, "client", "users", user, "client.crt")),
        ("node-client", layout.key_path("client"), layout.cert_path("client")),
    ]


def _issue(layout: CertLayout, backend: CryptoBackend, user: str) -> Tuple[bytes, bytes]:
    from dbtls_agent.certs.ca import sign_requests

    key = backend.generate_key(KEY_TYPE)
    signed = sign_requests(layout, backend, backend.make_csr(key, user, [], "client"), "client", dict(DEFAULT_DAYS))
    return key, signed["certificates"][0]["certificate"].encode("ascii")


def build(cert_dir: str, backend: CryptoBackend, user: str, layer: str, registered: List[str], hosts: List[str],
          port: Optional[int] = None, renew_within: int = DEFAULT_RENEW_WITHIN) -> Dict[str, Any]:
    """Write (or refresh) the kit of ``user``; return what ``kit show`` prints, plus where the certificate
    came from. Call it under the node lock."""
    from dbtls_agent.certs.ca import load_ca

    check_user(user)
    check_allowed(user, layer, registered)
    hosts = check_hosts(hosts)
    if not hosts:
        raise AgentError("no host to connect to: pass --host NAME (a name in the server certificates)")
    layout = CertLayout(cert_dir)
    ca = load_ca(layout, backend)
    if ca is None:
        raise missing_error(layout)
    root = ca["cert"]
    directory = kit_dir(cert_dir, user)
    source, key, cert = "issued", None, None  # type: str, Optional[bytes], Optional[bytes]
    for origin, key_path, cert_path in _candidates(layout, user, directory):
        k, c = fsio.read_bytes(key_path), fsio.read_bytes(cert_path)
        if _usable(backend, user, k, c, root, renew_within):
            source, key, cert = origin, k, c
            break
    if key is None or cert is None:
        key, cert = _issue(layout, backend, user)
    password = secrets.token_urlsafe(24).encode("ascii")
    pk8 = kitcrypto.pkcs8_der(backend, key)
    p12 = kitcrypto.pkcs12(backend, key, cert, root, user, password)
    info = backend.parse_cert(cert)
    port = port or int(str(kittext.LAYERS[layer]["port"]))
    meta = {"user": user, "layer": layer, "hosts": hosts, "port": port, "serial": info["serial"],
            "not_after": info["not_after"]}
    paths = kittext.files(directory)
    fsio.check_writable_dir(cert_dir)
    fsio.ensure_dir(kits_root(cert_dir), DIR_MODE)
    fsio.ensure_dir(directory, DIR_MODE)
    # The password file goes before the PKCS#12 it opens, and README/kit.json last: an interrupted
    # build leaves a kit that 'kit build' completes, never a README promising files that are not there.
    for name, data in (("root", root), ("key", key), ("cert", cert), ("pk8", pk8), ("p12_password", password),
                       ("p12", p12), ("mycnf", kittext.my_cnf(directory).encode("utf-8")),
                       ("readme", kittext.readme(layer, user, directory, hosts, port,
                                                 info["not_after"]).encode("utf-8"))):
        fsio.atomic_write(paths[name], data, FILE_MODE)
    fsio.atomic_write(os.path.join(directory, META), (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode(),
                      FILE_MODE)
    result = show(cert_dir, backend, user)
    result["source"] = source
    return result


def show(cert_dir: str, backend: CryptoBackend, user: str) -> Dict[str, Any]:
    """Where the kit is, its files, the certificate's expiry and the connection strings; no secret."""
    directory = kit_dir(cert_dir, user)
    text = fsio.read_text(os.path.join(directory, META))
    if text is None:
        raise AgentError("no kit for user {!r} in {} (run 'kit build --user {}')".format(user, kits_root(cert_dir), user))
    try:
        meta = json.loads(text)
        layer, hosts, port = meta["layer"], list(meta["hosts"]), int(meta["port"])
    except (ValueError, KeyError, TypeError):
        raise AgentError("{} is damaged; run 'kit build --user {}' again".format(os.path.join(directory, META),
                                                                                   user)) from None
    files = []  # type: List[Dict[str, Any]]
    for role, path in sorted(kittext.files(directory).items()):
        data, st = fsio.read_with_stat(path)
        files.append({"role": role, "path": path, "present": data is not None,
                      "mode": oct(st.st_mode & 0o777) if st is not None else None})
    cert = fsio.read_bytes(kittext.files(directory)["cert"])
    certificate = {"error": "client.crt missing"}  # type: Dict[str, Any]
    if cert is not None:
        try:
            info = backend.parse_cert(cert)
            certificate = {k: info[k] for k in ("subject", "issuer", "serial", "not_after")}
            certificate["days_left"] = certs_inspect.days_left(info["not_after"])
        except AgentError as exc:
            certificate = {"error": str(exc)}
    return {"user": user, "layer": layer, "kit_dir": directory, "hosts": hosts, "port": port, "files": files,
            "certificate": certificate,
            "connections": kittext.connection_strings(layer, user, directory, hosts, port)}


def remove(cert_dir: str, user: str) -> Dict[str, Any]:
    """Delete the kit of ``user`` (its key and certificate go with it); the CA is not told."""
    directory = kit_dir(cert_dir, user)
    removed = fsio.remove_tree(directory)
    root = kits_root(cert_dir)
    try:
        if removed and not os.listdir(root):
            os.rmdir(root)
    except OSError:
        pass
    return {"user": user, "kit_dir": directory, "removed": removed}


def list_kits(cert_dir: str) -> List[str]:
    """User names that have a kit folder here."""
    try:
        return sorted(n for n in os.listdir(kits_root(cert_dir)) if os.path.isdir(os.path.join(kits_root(cert_dir), n)))
    except OSError:
        return []
