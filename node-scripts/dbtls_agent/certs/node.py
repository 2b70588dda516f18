"""This node's side of issuing: make a key and CSR, then install what the CA sent back.

A new key waits in ``.pending/`` until its certificate arrives and verifies, so a re-issue that
fails half-way leaves the running server's files exactly as they were.
"""

import os
from typing import Any, Dict, List, Optional, Tuple

from dbtls_agent import fsio, killpoint
from dbtls_agent.certs import nodeinfo
from dbtls_agent.certs.layout import CERT_MODE, DIR_MODE, KEY_MODE, CertLayout, service_owner
from dbtls_agent.crypto import CryptoBackend, der
from dbtls_agent.crypto.names import check_cn, normalize_sans
from dbtls_agent.errors import AgentError
from dbtls_agent.vocab import KeySpec


def _existing_key(layout: CertLayout, backend: CryptoBackend, kind: str) -> Optional[Tuple[str, bytes]]:
    """The key a new CSR should reuse: a pending one first (a retried run), else the installed one."""
    for path in (layout.pending_key(kind), layout.key_path(kind)):
        data = fsio.read_bytes(path)
        if data is not None:
            return path, data
    return None


def _key_type(backend: CryptoBackend, key_pem: bytes) -> Optional[str]:
    """Key type of an existing key; None when it cannot be read (it is then replaced)."""
    try:
        return str(backend.public_key_info(key_pem)["key_type"])
    except AgentError:
        return None


def reusable_key(
    layout: CertLayout, backend: CryptoBackend, kind: str, key_type: Optional[str], rotate: bool
) -> Optional[Tuple[str, bytes]]:
    """(path, key) a new request for ``kind`` reuses, or None when a new key must be made.

    None with ``rotate``, when there is no key, when it cannot be read, or when it is not of the
    ``key_type`` asked for.
    """
    existing = None if rotate else _existing_key(layout, backend, kind)
    if existing is None:
        return None
    current_type = _key_type(backend, existing[1])
    if current_type is None or (key_type is not None and current_type != key_type):
        return None
    return existing


def server_sans(extra: List[str], info: Optional[Dict[str, Any]] = None) -> List[str]:
    """This node's names and addresses (see nodeinfo) followed by the user's extra SANs."""
    facts = info if info is not None else nodeinfo.collect()
    return normalize_sans(nodeinfo.server_san_defaults(facts) + list(extra))


def make_request(
    layout: CertLayout,
    backend: CryptoBackend,
    kind: str,
    user: Optional[str],
    extra_sans: List[str],
    key_type: Optional[str],
    rotate: bool,
    info: Optional[Dict[str, Any]] = None,
    fresh_key: Optional[bytes] = None,
) -> Dict[str, Any]:
    """Return {csr, key_path, new_key, cn, sans}; creates a pending key only when needed.

    ``fresh_key`` is a key the caller has just generated because ``reusable_key`` found none.
    """
    if key_type is not None:
        KeySpec.parse(key_type)
    if kind == "client":
        if extra_sans:
            raise AgentError("--san applies to server certificates only")
        cn = check_cn(user or "webadmin", "database user name")
        sans = []  # type: List[str]
    else:
        extra = normalize_sans(extra_sans)  # reject garbage before touching anything
        facts = info if info is not None else nodeinfo.collect()
        cn = check_cn(str(facts["hostname"]), "host name")
        sans = server_sans(extra, facts)
    existing = None if fresh_key is not None else reusable_key(layout, backend, kind, key_type, rotate)
    if existing is not None:
        key_path, key = existing
        new_key = False
    else:
        layout.prepare_private_dir(layout.pending_dir)
        key = fresh_key if fresh_key is not None else backend.generate_key(key_type or "rsa2048")
        key_path = layout.pending_key(kind)
        fsio.atomic_write(key_path, key, KEY_MODE)
        killpoint.reached("csr:{}:key".format(kind))
        new_key = True
    csr = backend.make_csr(key, cn, sans, kind)
    return {"csr": csr, "key_path": key_path, "new_key": new_key, "cn": cn, "sans": sans}


def _split_certs(backend: CryptoBackend, data: bytes) -> Tuple[List[bytes], List[bytes]]:
    """(self-signed CA certificates, other certificates) from stdin PEM, each in input order."""
    certs = [der.to_pem(label, body) for label, body in der.pem_blocks(data) if label == "CERTIFICATE"]
    if not certs:
        raise AgentError("no PEM certificate on stdin")
    roots, leaves = [], []  # type: List[bytes], List[bytes]
    for pem in certs:
        info = backend.parse_cert(pem)
        (roots if info["is_ca"] and info["subject"] == info["issuer"] else leaves).append(pem)
    return roots, leaves


def _split_input(backend: CryptoBackend, data: bytes) -> Tuple[bytes, List[bytes]]:
    """(root.crt content, leaf certificates) from stdin PEM.

    root.crt is the one self-signed CA certificate, or during a CA rotation the trust bundle ``ca
    sign --with-previous`` prints: the new root followed by the previous one (ca.trust_bundle).
    """
    roots, leaves = _split_certs(backend, data)
    if not roots or len(roots) > 2:
        raise AgentError("expected exactly one root CA certificate on stdin (or the new and the previous "
                         "root during a CA rotation), found {}".format(len(roots)))
    if not leaves:
        raise AgentError("no server or client certificate on stdin (only the root)")
    return b"".join(roots), leaves


def install_roots(layout: CertLayout, backend: CryptoBackend, data: bytes, owner_name: Optional[str]) -> Dict[str, Any]:
    """Make root.crt in server/ and client/ the CA certificates on stdin (a trust bundle).

    The first step of a CA rotation: every node trusts the new root next to the old one before any
    server presents a certificate from it. A node never loses the root of a certificate it has
    installed: when the bundle does not verify it (a rotation retried after a half-done one), the
    roots of the current root.crt that do are kept too, and the re-issue that follows replaces
    that certificate.
    """
    roots, leaves = _split_certs(backend, data)
    if leaves or not roots:
        raise AgentError("install-certs --roots-only expects CA certificates only on stdin")
    _, ids = service_owner(owner_name)
    results = []
    for kind in ("server", "client"):
        cert = fsio.read_bytes(layout.cert_path(kind))
        if cert is None:
            continue
        path = layout.root_path(kind)
        wanted, kept = list(roots), []  # type: List[bytes], List[str]
        if not _verifies(backend, cert, wanted):
            current = [der.to_pem(label, body) for label, body in der.pem_blocks(fsio.read_bytes(path) or b"")
                       if label == "CERTIFICATE"]
            for pem in current:
                if pem not in wanted and _verifies(backend, cert, [pem]):
                    wanted.append(pem)
                    kept.append(backend.parse_cert(pem)["subject"])
        bundle = b"".join(wanted)
        changed = fsio.read_bytes(path) != bundle
        if changed:
            fsio.atomic_write(path, bundle, CERT_MODE, ids)
        results.append({"kind": kind, "root_path": path, "changed": changed, "kept_roots": kept,
                        "verified": _verifies(backend, cert, wanted)})
    return {"roots": [backend.parse_cert(pem)["sha256"] for pem in roots], "installed": results}


def _verifies(backend: CryptoBackend, cert: bytes, roots: List[bytes]) -> bool:
    try:
        backend.verify_chain(cert, b"".join(roots))
    except AgentError:
        return False
    return True


def _local_keys(layout: CertLayout, backend: CryptoBackend) -> List[Tuple[str, str, bytes, str]]:
    """(kind, path, key, public key sha256) of every key here, pending ones first; each key is
    hashed once, however many certificates the bundle holds."""
    keys = []  # type: List[Tuple[str, str, bytes, str]]
    for kind in ("server", "client"):
        for path in (layout.pending_key(kind), layout.key_path(kind)):
            key = fsio.read_bytes(path)
            if key is not None:
                keys.append((kind, path, key, backend.public_key_sha256(key)))
    return keys


def _find_key(keys: List[Tuple[str, str, bytes, str]], cert_info: Dict[str, Any]) -> Optional[Tuple[str, str, bytes]]:
    """(kind, key path, key) of the local key this certificate was issued for, or None."""
    for kind, path, key, sha in keys:
        if sha == cert_info["spki_sha256"]:
            return kind, path, key
    return None


def _match_key(keys: List[Tuple[str, str, bytes, str]], cert_info: Dict[str, Any]) -> Tuple[str, str, bytes]:
    """Like _find_key, but a certificate without a local key is an error."""
    found = _find_key(keys, cert_info)
    if found is None:
        raise AgentError("certificate {} does not match any key on this node (run 'csr' here first)".format(cert_info["subject"]))
    return found


def pick_own(
    keys: List[Tuple[str, str, bytes, str]], backend: CryptoBackend, leaves: List[bytes]
) -> Tuple[List[bytes], List[Dict[str, Any]]]:
    """Split a bundle signed for many nodes into (this node's certificates, skipped ones).

    A certificate is this node's when its public key is one of the node's keys (pending or
    installed, see _local_keys). Skipped entries are reported by subject and serial; none matching
    is an error.
    """
    own, skipped = [], []  # type: List[bytes], List[Dict[str, Any]]
    for pem in leaves:
        info = backend.parse_cert(pem)
        if _find_key(keys, info) is None:
            skipped.append({"subject": info["subject"], "serial": info["serial"], "reason": "no matching key here"})
        else:
            own.append(pem)
    if not own:
        raise AgentError(
            "none of the {} certificates on stdin matches a key on this node (run 'csr' here first)".format(len(leaves))
        )
    return own, skipped


def install(
    layout: CertLayout, backend: CryptoBackend, data: bytes, owner_name: Optional[str], pick: bool = False
) -> Dict[str, Any]:
    """Verify every certificate against its key and the root, then write them; all or nothing.

    With ``pick`` the bundle may hold other nodes' certificates too: only those whose public key
    matches a local key are installed, the rest are listed under ``skipped``.
    """
    root, leaves = _split_input(backend, data)
    keys = _local_keys(layout, backend)
    skipped = []  # type: List[Dict[str, Any]]
    if pick:
        leaves, skipped = pick_own(keys, backend, leaves)
    plans = []
    for pem in leaves:
        info = backend.parse_cert(pem)
        kind, key_path, key = _match_key(keys, info)
        wanted = {"server": "serverAuth", "client": "clientAuth"}[kind]
        if wanted not in info["extended_key_usage"]:
            raise AgentError("certificate {} lacks {} for the {} key".format(info["subject"], wanted, kind))
        backend.verify_chain(pem, root)
        if any(p["kind"] == kind for p in plans):
            raise AgentError("two {} certificates on stdin".format(kind))
        plans.append({"kind": kind, "cert": pem, "key": key, "key_source": key_path, "info": info})
    owner, ids = service_owner(owner_name)
    fsio.check_writable_dir(layout.root)
    if not os.path.isdir(layout.root):
        fsio.ensure_dir(layout.root, 0o711)
    results = []
    for plan in plans:
        kind = plan["kind"]
        fsio.ensure_dir(layout.kind_dir(kind), DIR_MODE, ids)
        changed = False
        for name, path, content, mode in (
            ("root", layout.root_path(kind), root, CERT_MODE),
            ("key", layout.key_path(kind), plan["key"], KEY_MODE),
            ("cert", layout.cert_path(kind), plan["cert"], CERT_MODE),
        ):
            changed = changed or fsio.read_bytes(path) != content
            fsio.atomic_write(path, content, mode, ids)
            killpoint.reached("install-certs:{}:{}".format(kind, name))
        if plan["key_source"] == layout.pending_key(kind):
            os.unlink(plan["key_source"])
        info = plan["info"]
        results.append(
            {
                "kind": kind,
                "cn": info["cn"],
                "sans": info["sans"],
                "serial": info["serial"],
                "sha256": info["sha256"],
                "not_after": info["not_after"],
                "cert_path": layout.cert_path(kind),
                "key_path": layout.key_path(kind),
                "root_path": layout.root_path(kind),
                "new_key": plan["key_source"] == layout.pending_key(kind),
                "changed": changed,
            }
        )
    root_info = backend.parse_cert(der.to_pem("CERTIFICATE", der.pem_blocks(root)[0][1]))
    report = {
        "owner": owner,
        "root": {"subject": root_info["subject"], "sha256": root_info["sha256"]},
        "installed": results,
    }  # type: Dict[str, Any]
    if pick:
        report["skipped"] = skipped
    return report


def make_bundle(
    layout: CertLayout, backend: CryptoBackend, scope: str, client_user: Optional[str], extra_sans: List[str],
    key_type: Optional[str], rotate: bool, info: Optional[Dict[str, Any]] = None,
) -> Dict[str, str]:
    """The requests of one node for ``scope`` (server, client or all) as {kind: CSR PEM}.

    A node whose family has no client user (Pgpool-II, ProxySQL) makes a server request only.
    """
    kinds = [kind for kind, wanted in (("server", scope in ("server", "all")),
                                       ("client", scope in ("client", "all") and bool(client_user))) if wanted]
    if key_type is not None:
        KeySpec.parse(key_type)
    if "server" in kinds:
        normalize_sans(extra_sans)  # reject garbage before any key is made
    if "client" in kinds:
        check_cn(client_user or "webadmin", "database user name")
    missing = [kind for kind in kinds if reusable_key(layout, backend, kind, key_type, rotate) is None]
    wait_for_keys = backend.start_keys([key_type or "rsa2048"] * len(missing))
    if "server" in kinds and info is None:
        info = nodeinfo.collect()  # the node's names and addresses, read while the keys are made
    keys = wait_for_keys()
    fresh = {kind: keys[index] for index, kind in enumerate(missing)}
    out = {}  # type: Dict[str, str]
    for kind in kinds:
        user = client_user if kind == "client" else None
        sans = extra_sans if kind == "server" else []
        request = make_request(layout, backend, kind, user, sans, key_type, rotate, info, fresh.get(kind))
        out[kind] = str(request["csr"], "ascii")
    return out


def bundle_to_pem(bundle: Dict[str, Any]) -> bytes:
    """PEM text (every certificate, then the roots) of what ``ca sign --from-manifest`` printed."""
    certs = bundle.get("certificates")
    roots = bundle.get("roots")
    if not isinstance(certs, list) or not isinstance(roots, list) or not roots:
        raise AgentError("the signed bundle has no certificates/roots lists")
    parts = []  # type: List[str]
    for item in certs:
        if not isinstance(item, dict) or not isinstance(item.get("certificate"), str):
            raise AgentError("the signed bundle holds an entry without a certificate")
        parts.append(item["certificate"])
    for pem in roots:
        if not isinstance(pem, str):
            raise AgentError("the signed bundle holds a root that is not PEM text")
        parts.append(pem)
    data = "".join(parts).encode("ascii", "replace")
    if der.text_outside_pem(data):
        raise AgentError("the signed bundle holds text outside its PEM certificates")
    return data


def has_own_certificate(layout: CertLayout, backend: CryptoBackend, data: bytes) -> bool:
    """Whether any leaf of ``data`` was issued for a key of this node."""
    _, leaves = _split_certs(backend, data)
    keys = _local_keys(layout, backend)
    return any(_find_key(keys, backend.parse_cert(pem)) is not None for pem in leaves)
