"""The environment CA: create it once, rotate it on request, and sign other nodes' requests.

Runs on the CA node only (the primary of the database layer). The CA key is written there, 0600 in a
0700 directory, and is never printed or copied: other nodes send CSRs and get certificates back,
unlike the upstream add-on which copies its CA key to every node.
"""

import os
from typing import Any, Dict, List, Optional

from dbtls_agent import fsio, killpoint
from dbtls_agent.certs import inspect
from dbtls_agent.certs.layout import DIR_MODE, KEY_MODE, CertLayout, missing_error
from dbtls_agent.crypto import CryptoBackend, der
from dbtls_agent.crypto.names import check_cn, normalize_sans, valid_dns_name
from dbtls_agent.errors import AgentError
from dbtls_agent.vocab import KeySpec

# What the CA accepts from a request: RSA from 2048 bits (keys stronger than we generate are fine),
# or P-256, the only curve every supported database's TLS library handles.
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
ACCEPTED_EC = ("ecdsa-p256",)


def default_ca_cn(env_name: Optional[str], layer: Optional[str], fallback: str) -> str:
    """``<env> <layer> CA`` (upstream names things by environment and layer), or ``<env> CA``.

    One CA serves every layer of an environment, so the layer only appears when the caller says
    which layer created it.
    """
    parts = [env_name or fallback]
    if layer:
        parts.append(layer)
    return " ".join(parts + ["CA"])


def load_ca(layout: CertLayout, backend: CryptoBackend) -> Optional[Dict[str, bytes]]:
    """The current CA key and certificate, None if there is none; error on a half-present pair."""
    key = fsio.read_bytes(layout.ca_key)
    cert = fsio.read_bytes(layout.ca_cert)
    if key is None and cert is None:
        return None
    if key is None or cert is None:
        raise AgentError(
            "incomplete CA in {}: {} is missing (restore it, or run 'ca init --rotate')".format(
                layout.ca_dir, layout.ca_key if key is None else layout.ca_cert
            )
        )
    if not backend.key_matches_cert(key, cert):
        raise AgentError("CA key and certificate in {} do not match (run 'ca init --rotate')".format(layout.ca_dir))
    return {"key": key, "cert": cert}


def init_ca(
    layout: CertLayout, backend: CryptoBackend, cn: str, key_type: str, days: int, rotate: bool
) -> Dict[str, Any]:
    """Create the CA if absent (or a new one with ``rotate``); return {certificate, changed, ...}.

    Rotation keeps the previous pair in ``ca/old-<serial>/`` so certificates it issued can still be
    checked, and so an operator can go back, until every node has certificates from the new CA.
    """
    check_cn(cn, "CA name")
    KeySpec.parse(key_type)
    existing = None
    if not rotate:
        existing = load_ca(layout, backend)
    if existing is not None:
        return {"certificate": existing["cert"], "changed": False, "rotated_to": None}
    layout.prepare_private_dir(layout.ca_dir)
    key = backend.generate_key(key_type)
    cert = backend.create_ca(key, cn, days)
    old_dir = None
    old_key = fsio.read_bytes(layout.ca_key)
    old_cert = fsio.read_bytes(layout.ca_cert)
    if old_cert is not None:
        try:
            serial = backend.parse_cert(old_cert)["serial"]
        except AgentError:
            serial = "unreadable"
        old_dir = os.path.join(layout.ca_dir, "old-" + serial)
        fsio.ensure_dir(old_dir, DIR_MODE)
        # A rotation interrupted after the new key was written leaves the new key next to the old
        # certificate; the copy saved by that first run holds the real old key, so never overwrite it.
        if not os.path.exists(os.path.join(old_dir, "ca.crt")):
            fsio.atomic_write(os.path.join(old_dir, "ca.crt"), old_cert, 0o644)
        if old_key is not None and not os.path.exists(os.path.join(old_dir, "ca.key")):
            fsio.atomic_write(os.path.join(old_dir, "ca.key"), old_key, KEY_MODE)
        # The certificate is written last below, so an interrupted rotation still reads the real
        # old root here when it runs again.
        fsio.atomic_write(layout.previous_ca_cert, old_cert, 0o644)
        killpoint.reached("ca-init:previous-kept")
    # Key before certificate: an interruption in between leaves a mismatch that load_ca reports,
    # never a certificate whose key is lost.
    fsio.atomic_write(layout.ca_key, key, KEY_MODE)
    killpoint.reached("ca-init:key")
    fsio.atomic_write(layout.ca_cert, cert, 0o644)
    return {"certificate": cert, "changed": True, "previous": old_dir}


def trust_bundle(layout: CertLayout, backend: CryptoBackend, with_previous: bool) -> List[bytes]:
    """The roots nodes should trust: the current CA, then (``with_previous``) the one the last
    rotation retired, while it is still in date.

    A CA rotation cannot switch every node at once: servers reload their new certificates one
    after the other, and Pgpool-II / standbys / replicas verify the servers' certificates against
    their own root.crt on every new connection. So the rotation first gives every node both roots,
    then re-issues; the next certificate run (any re-issue, scale-out) writes the current root alone
    again. See docs/buttons.md.
    """
    ca = load_ca(layout, backend)
    if ca is None:
        raise missing_error(layout)
    roots = [ca["cert"]]
    previous = fsio.read_bytes(layout.previous_ca_cert) if with_previous else None
    if previous is not None and previous != ca["cert"]:
        try:
            info = backend.parse_cert(previous)
            in_date = inspect.days_left(info["not_after"]) >= 0
        except (AgentError, ValueError):
            in_date = False
        if in_date and info["is_ca"]:
            roots.append(previous)
    return roots


def _check_request(backend: CryptoBackend, index: int, csr_pem: bytes, kind_option: str) -> Dict[str, Any]:
    """Everything the CA insists on before it signs; returns cn, kind and the SANs to certify."""
    try:
        info = backend.parse_csr(csr_pem)
    except AgentError as exc:
        raise AgentError("request #{}: {}".format(index + 1, exc)) from None
    label = "request #{} ({})".format(index + 1, info.get("subject") or "no subject")

    def reject(reason: str) -> AgentError:
        return AgentError("{}: {}".format(label, reason))

    if not info["signature_valid"]:
        raise reject("signature does not verify (corrupt or tampered request)")
    key_type = info["key_type"]
    if KeySpec.of(key_type).is_rsa:
        if not MIN_RSA_BITS <= info["key_bits"] <= MAX_RSA_BITS:
            raise reject("RSA key of {} bits is not accepted (minimum {})".format(info["key_bits"], MIN_RSA_BITS))
    elif key_type not in ACCEPTED_EC:
        raise reject("key type {} is not accepted (RSA >= 2048 or ECDSA P-256)".format(key_type))
    if info["is_ca"] or "keyCertSign" in info["key_usage"]:
        raise reject("requests CA rights (basicConstraints CA:TRUE or keyCertSign); refusing to sign")
    if info["subject_attributes"] != 1 or not info["cn"]:
        raise reject("subject must be a single CN")
    cn = check_cn(info["cn"])
    kind = kind_option
    if kind == "auto":
        wanted = [k for k, eku in (("server", "serverAuth"), ("client", "clientAuth")) if eku in info["extended_key_usage"]]
        if len(wanted) != 1:
            raise reject("cannot tell server from client (requested EKU {}); pass --kind".format(info["extended_key_usage"] or "none"))
        kind = wanted[0]
    sans = []  # type: List[str]
    if kind == "server":
        for san in info["sans"]:
            if not (san.startswith("DNS:") or san.startswith("IP:")):
                raise reject("unsupported subjectAltName {!r} (only DNS names and IP addresses)".format(san))
        try:
            sans = normalize_sans(info["sans"])
        except AgentError as exc:
            raise reject(str(exc)) from None
        if not sans:
            if not valid_dns_name(cn):
                raise reject("no subjectAltName and the CN is not a host name")
            sans = ["DNS:" + cn.lower()]
    # Client certificates identify a database user by CN; SANs are not certified for them.
    return {"cn": cn, "kind": kind, "sans": sans, "key_type": key_type}


def split_requests(data: bytes) -> List[bytes]:
    """PEM CSRs from stdin, in input order; anything that is not a CSR is an error."""
    blocks = der.pem_blocks(data)
    if not blocks:
        raise AgentError("no PEM certificate request on stdin")
    # Stray text means the caller mixed something else into the input; refuse rather than guess.
    if der.text_outside_pem(data):
        raise AgentError("unexpected text on stdin outside the PEM certificate requests")
    requests = []
    for label, body in blocks:
        if label not in ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"):
            raise AgentError("unexpected PEM block {!r} on stdin (expected CERTIFICATE REQUEST)".format(label))
        requests.append(der.to_pem("CERTIFICATE REQUEST", body))
    return requests


def sign_requests(
    layout: CertLayout, backend: CryptoBackend, data: bytes, kind_option: str, days: Dict[str, int],
    with_previous: bool = False,
) -> Dict[str, Any]:
    """Check every request first, then sign them all: one bad CSR means nothing is issued.

    ``ca.also_trusted`` lists the previous root when ``with_previous`` (see trust_bundle): the
    nodes keep trusting it next to the new one until the next certificate run.
    """
    ca = load_ca(layout, backend)
    if ca is None:
        raise missing_error(layout)
    requests = split_requests(data)
    checked = [_check_request(backend, i, csr, kind_option) for i, csr in enumerate(requests)]
    issued = []
    for index, csr in enumerate(requests):
        plan = checked[index]
        cert = backend.sign_csr(
            csr, ca["cert"], ca["key"], plan["kind"], plan["cn"], plan["sans"], days[plan["kind"]]
        )
        info = backend.parse_cert(cert)
        issued.append(
            {
                "index": index,
                "cn": plan["cn"],
                "kind": plan["kind"],
                "sans": info["sans"],
                "serial": info["serial"],
                "sha256": info["sha256"],
                "not_after": info["not_after"],
                "certificate": str(cert, "ascii"),
            }
        )
    root = backend.parse_cert(ca["cert"])
    return {
        "ca": {
            "subject": root["subject"],
            "serial": root["serial"],
            "sha256": root["sha256"],
            "certificate": str(ca["cert"], "ascii"),
            "also_trusted": [str(pem, "ascii") for pem in trust_bundle(layout, backend, with_previous)[1:]],
        },
        "certificates": issued,
    }


def sign_for_nodes(
    layout: CertLayout, backend: CryptoBackend, requests: List[Any], nodes: Dict[int, List[str]],
    env_domain: str, layer: str, extra_names: List[str], client_users: List[str], days: Dict[str, int],
    with_previous: bool = False,
) -> Dict[str, Any]:
    """Sign the requests the manifest collected, under the CA's own policy (see capolicy).

    ``requests`` is ``[(node id, {"server": PEM, "client": PEM})]``; ``nodes`` maps each node id to
    the IP SANs the platform lists for it. Every request is checked first; one refusal means
    nothing is issued. Nodes that asked for nothing (a re-issue of a node without certificates)
    are skipped.
    """
    from dbtls_agent.certs import capolicy

    ca = load_ca(layout, backend)
    if ca is None:
        raise missing_error(layout)
    plans = []  # type: List[Dict[str, Any]]
    for node_id, kinds in requests:
        if node_id not in nodes:
            raise AgentError("node {} sent a request but is not in the platform's node list; refusing to sign"
                             .format(node_id))
        allowed = capolicy.allowed_server_sans(node_id, nodes[node_id], env_domain, extra_names)
        for kind in ("server", "client"):
            pem = kinds.get(kind)
            if not pem:
                continue
            try:
                plan = _check_request(backend, 0, pem.encode("ascii"), kind)
            except AgentError as exc:
                raise AgentError("node {}: {}".format(node_id, str(exc).replace("request #1", kind + " request"))) from None
            plan["dropped"] = []
            if kind == "server":
                plan["sans"], plan["dropped"] = capolicy.filter_server_sans(node_id, plan["cn"], plan["sans"], allowed)
            else:
                capolicy.check_client(node_id, layer, plan["cn"], client_users)
            plan.update({"node": node_id, "csr": pem.encode("ascii")})
            plans.append(plan)
    issued = []
    for plan in plans:
        cert = backend.sign_csr(plan["csr"], ca["cert"], ca["key"], plan["kind"], plan["cn"], plan["sans"],
                                days[plan["kind"]])
        info = backend.parse_cert(cert)
        issued.append({"node": plan["node"], "kind": plan["kind"], "cn": plan["cn"], "sans": info["sans"],
                       "dropped": plan["dropped"], "serial": info["serial"], "certificate": str(cert, "ascii")})
    roots = trust_bundle(layout, backend, with_previous)
    return {"certificates": issued, "roots": [str(pem, "ascii") for pem in roots]}
