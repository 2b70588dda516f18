"""The CA node decides what it signs: a node that asks for another node's name, a name the platform
does not list, or a client certificate for a role nobody named is refused, on real nodes.

The hostile side is the standby's root: it makes its own key and a request with ``openssl`` (not the
agent), names the primary, and the request travels the way the manifest carries it: the standby's
output as the platform's base64, next to the platform's node list, into ``ca sign --from-manifest``
on the primary.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from hardening_helpers import issue_pg_certificates
from harness import RELEASES, Env, sim_env


@pytest.fixture(scope="module", params=RELEASES)
def env(request, engine) -> Iterator[Env]:
    for e in sim_env("pg-cluster", request.param, "sca"):
        issue_pg_certificates(e)
        yield e


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def node_id(env: Env, node: str) -> int:
    return int(env.host[node].split("-", 1)[0][len("node"):])


def hostile_request(env: Env, cn: str, sans: list[str], kind: str = "server") -> str:
    """A request made by the standby's root with openssl: its own key, any names it likes."""
    eku = "serverAuth" if kind == "server" else "clientAuth"
    ext = f"-addext extendedKeyUsage={eku}" + (f" -addext subjectAltName={','.join(sans)}" if sans else "")
    rc, out = env.exec("standby", ["bash", "-c",
                                   f"openssl req -new -newkey rsa:2048 -nodes -keyout /tmp/hostile.key -subj /CN={cn} "
                                   f"{ext} 2>/dev/null"])
    assert rc == 0 and "BEGIN CERTIFICATE REQUEST" in out, out
    return out


def sign_as_the_manifest_does(env: Env, requests: dict[int, str]) -> tuple[int, str, str]:
    """What the manifest's ca sign step hands the primary: both lists base64-encoded by the platform."""
    nodes = " ".join(f"{node_id(env, n)}={env.ip[n]}" for n in ("primary", "standby", "pgpool"))
    listing = " ".join(f"{i}:{b64(out)}" for i, out in requests.items())
    domain = env.host["primary"].split("-", 1)[1]
    stdin = f"{b64(listing)}\n{b64(nodes)}\n".encode()
    proc = env.agent("primary", "ca", "sign", "--from-manifest", "--env-domain", domain, "--layer", "sqldb",
                     stdin=stdin)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def test_a_node_asking_for_the_primarys_name_is_refused(env):
    primary_cn = env.host["primary"].split(".", 1)[0]
    request = hostile_request(env, primary_cn, [f"DNS:{env.host['primary']}"])
    code, out, err = sign_as_the_manifest_does(env, {node_id(env, "standby"): json.dumps({"server": request})})
    assert code == 2 and out == "", (code, out, err)
    assert f"node {node_id(env, 'standby')} asks for a server certificate named '{primary_cn}'" in err, err


def test_a_name_the_platform_does_not_list_is_refused(env):
    own_cn = env.host["standby"].split(".", 1)[0]
    request = hostile_request(env, own_cn, [f"DNS:{env.host['standby']}", "DNS:bank.example.com"])
    code, out, err = sign_as_the_manifest_does(env, {node_id(env, "standby"): json.dumps({"server": request})})
    assert code == 2 and "DNS:bank.example.com" in err and "refusing to sign" in err, err


def test_a_client_certificate_for_an_unnamed_role_is_refused(env):
    request = hostile_request(env, "postgres", [], kind="client")
    code, out, err = sign_as_the_manifest_does(env, {node_id(env, "standby"): json.dumps({"client": request})})
    assert code == 2 and "user 'postgres'" in err, err


def test_the_nodes_own_request_is_signed_and_foreign_addresses_left_out(env):
    own_cn = env.host["standby"].split(".", 1)[0]
    request = hostile_request(env, own_cn, [f"DNS:{env.host['standby']}", f"IP:{env.ip['standby']}", "IP:192.0.2.7"])
    code, out, err = sign_as_the_manifest_does(env, {node_id(env, "standby"): json.dumps({"server": request})})
    assert code == 0, err
    issued = json.loads(out)["certificates"][0]
    assert f"IP:{env.ip['standby']}" in issued["sans"] and "IP:192.0.2.7" not in issued["sans"], issued
    assert issued["dropped"] == ["IP:192.0.2.7"], issued
