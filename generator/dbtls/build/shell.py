"""Node-side bash snippets of the manifest, kept deliberately thin.

Every real decision lives in the agent; these scripts only fetch it, move public material (CSRs,
certificates) through ``${response.out}``, and call subcommands. Rules they follow (jps.md §5.3,
§13): shell variables are written ``$VAR`` (never ``${VAR}``, which the engine would substitute),
every script ends with an explicit exit decision, and no script or output ever holds a secret: the
platform records both. Passwords that cross nodes travel sealed (``secrets recipient``/``seal``,
``enable --passwords-sealed``): the transcript sees a public key and opaque blobs only.
"""

from __future__ import annotations

AGENT = "/usr/local/sbin/dbtls-agent"
AGENT_DIR = "/usr/local/lib/dbtls"
CERT_DIR = "/var/lib/jelastic/keys/SSL-TLS"

#: First lines of every script that calls the agent or Python.
PRELUDE = f"""\
A={AGENT}
PY=$(command -v python3 || echo /usr/libexec/platform-python)
. /etc/jelastic/metainf.conf 2>/dev/null || true"""


def fetch_agent() -> str:
    """Install python3 if the node has none, download the agent, check its pinned sha256."""
    return f"""\
set -e
if ! command -v python3 >/dev/null 2>&1 && [ ! -x /usr/libexec/platform-python ]; then
  if command -v dnf >/dev/null 2>&1; then dnf -y -q install python3
  elif command -v yum >/dev/null 2>&1; then yum -y -q install python3
  elif command -v apt-get >/dev/null 2>&1; then apt-get -qq update && apt-get -qq -y install python3
  else echo "dbtls: this node has no python3 and no package manager to install it" >&2; exit 3; fi
fi
PY=$(command -v python3 || echo /usr/libexec/platform-python)
base=$(printf '%s' '${{baseUrl}}' | sed 's:/*$::')
url="$base/node-scripts/dist/dbtls-agent.pyz?_r=${{fn.random}}"
mkdir -p {AGENT_DIR}
tmp=$(mktemp {AGENT_DIR}/.download.XXXXXX)
trap 'rm -f "$tmp"' EXIT
if command -v curl >/dev/null 2>&1; then curl -fsS --retry 3 -o "$tmp" "$url"
elif command -v wget >/dev/null 2>&1; then wget -q -O "$tmp" "$url"
else "$PY" -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$url" "$tmp"
fi
if ! echo "${{globals.agentSha256}}  $tmp" | sha256sum -c --status -; then
  echo "dbtls: the agent downloaded from $base does not match its pinned sha256" >&2; exit 4
fi
chmod 0644 "$tmp"
mv -f "$tmp" {AGENT_DIR}/dbtls-agent.pyz
cat > {AGENT}.new <<'DBTLS_LAUNCHER'
#!/bin/sh
# dbtls-agent launcher, installed by the dbtls add-on: the first Python 3 the node has.
for py in python3 /usr/libexec/platform-python; do
  if command -v "$py" >/dev/null 2>&1; then exec "$py" {AGENT_DIR}/dbtls-agent.pyz "$@"; fi
done
echo "dbtls-agent: no python3 on this node" >&2
exit 127
DBTLS_LAUNCHER
chmod 0755 {AGENT}.new
mv -f {AGENT}.new {AGENT}
echo "dbtls-agent $({AGENT} --version) on $(hostname)"
"""


def check_version() -> str:
    """Print ``unsupported ...`` for PostgreSQL older than 11 (what upstream refuses), else ``ok``."""
    return """\
. /etc/jelastic/metainf.conf 2>/dev/null || true
v=$COMPUTE_TYPE_VERSION
case "$COMPUTE_TYPE" in
  postgres*)
    major=$(printf '%s' "$v" | sed 's/[^0-9].*//')
    [ -n "$major" ] || major=0
    if [ "$major" -lt 11 ]; then echo "unsupported PostgreSQL $v"; else echo "ok PostgreSQL $v"; fi ;;
  *) echo "ok $COMPUTE_TYPE $v" ;;
esac
"""


def ca_init(rotate: bool) -> str:
    """Create the environment CA on the CA node (kept when it exists, unless rotating)."""
    flag = " --rotate" if rotate else ""
    return f"""\
set -e
{PRELUDE}
$A ca init --key-type '${{settings.keyType}}' --env-name '${{env.envName}}'{flag} >/dev/null
echo "CA ready on $(hostname)"
"""


def csr() -> str:
    """CSRs of one node for ``${this.scope}`` (server, client or all); ``${this.mode}`` is
    ``install`` or ``reissue`` (re-issue rotates keys and skips nodes without certificates)."""
    return f"""\
set -e
{PRELUDE}
scope='${{this.scope}}'
if [ '${{this.mode}}' = reissue ]; then
  [ -s {CERT_DIR}/server/server.crt ] || exit 0
  rotate=--rotate
else
  rotate=
fi
if [ "$scope" != client ]; then
  set -- csr --kind server --key-type '${{settings.keyType}}' $rotate
  for name in $(printf '%s' '${{settings.extraNames}}' | tr ',;' '  '); do set -- "$@" --san "$name"; done
  $A "$@"
fi
case "$COMPUTE_TYPE" in
  postgres*) user=webadmin ;;
  mysql*|mariadb*|percona*) user=root ;;
  *) user= ;;
esac
if [ "$scope" != server ] && [ -n "$user" ]; then
  $A csr --kind client --user "$user" $rotate
fi
exit 0
"""


def ca_sign() -> str:
    """Sign every CSR collected in ``${globals.csrs}`` (public material, all nodes) in one run on
    the CA node; the answer is one PEM bundle: each node's certificates, then the root (and, in the
    re-issue that rotates the CA, the previous root: root.crt keeps trusting both until the next run)."""
    return f"""\
set -e
{PRELUDE}
csrs=$(cat <<'DBTLS_CSR'
${{globals.csrs}}
DBTLS_CSR
)
previous=
if [ '${{this.mode}}' = reissue ] && [ '${{this.scope}}' = all ]; then previous=--with-previous; fi
case "$csrs" in
  *'BEGIN CERTIFICATE REQUEST'*) printf '%s\\n' "$csrs" | $A ca sign --format pem $previous ;;
  *) echo "no requests" ;;
esac
"""


def ca_roots() -> str:
    """On the CA node right after ``ca init --rotate``: the new root and the one it retired (PEM)."""
    return f"""\
set -e
{PRELUDE}
$A ca roots --with-previous
"""


def install_roots() -> str:
    """Make ``${globals.trustRoots}`` (both roots of a CA rotation) this node's root.crt, so it
    trusts certificates of either CA while the servers move to the new one; nodes without our
    certificates have nothing to trust with."""
    return f"""\
set -e
{PRELUDE}
if [ ! -s {CERT_DIR}/server/server.crt ]; then echo "no certificates on $(hostname)"; exit 0; fi
roots=$(cat <<'DBTLS_ROOTS'
${{globals.trustRoots}}
DBTLS_ROOTS
)
printf '%s\\n' "$roots" | $A install-certs --roots-only >/dev/null
echo "root.crt on $(hostname) trusts the new and the previous CA"
"""


def install_certs() -> str:
    """Install this node's certificates from the bundle the CA node signed for all nodes of the
    cmd (``--pick-own``: only those matching a key here); a node that made no request (re-issue
    of a node without certificates) has nothing to pick."""
    return f"""\
set -e
{PRELUDE}
if [ '${{this.mode}}' = reissue ] && [ ! -s {CERT_DIR}/server/server.crt ]; then
  echo "nothing to install on $(hostname)"; exit 0
fi
certs=$(cat <<'DBTLS_CERTS'
${{response.out}}
DBTLS_CERTS
)
case "$certs" in
  *'BEGIN CERTIFICATE'*) printf '%s\\n' "$certs" | $A install-certs --pick-own >/dev/null ;;
  *) echo "nothing to install on $(hostname)"; exit 0 ;;
esac
echo "certificates installed on $(hostname)"
"""


def reload_certs() -> str:
    """After a re-issue, make this node's server load its new certificate (one node at a time)."""
    return f"""\
set -e
{PRELUDE}
if [ -s {CERT_DIR}/server/server.crt ]; then
  if [ '${{settings.upstreamMode}}' = true ]; then
    jem service restart >/dev/null
  else
    case "$COMPUTE_TYPE" in
      postgres*) jem service reload >/dev/null ;;
      # MariaDB FLUSH SSL / MySQL ALTER INSTANCE RELOAD TLS / PROXYSQL RELOAD TLS: the agent's
      # offer stage sees the served certificate differ from the new one and swaps it live.
      mysql*|mariadb*|percona*) $A enable --role mysql --stage offer </dev/null >/dev/null ;;
      proxysql*) $A enable --role proxysql --stage offer </dev/null >/dev/null ;;
      # Pgpool-II 4.x loads its certificate only at start.
      *) jem service restart >/dev/null ;;
    esac
  fi
fi
echo "certificates loaded on $(hostname)"
"""


#: Reads the agent's JSON answer from file "$1" and prints one line for the dashboard.
_SUMMARY_PY = r"""
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except ValueError:
    print(open(sys.argv[1]).read().strip()[:300]); sys.exit(0)
parts = ["%s %s: %s" % (d.get("role"), d.get("stage", ""), d.get("action", "none"))]
if d.get("md5_roles"):
    parts.append("md5 roles to reset: " + ", ".join(d["md5_roles"]))
parts += d.get("messages") or []
print("; ".join(parts))
"""


def _flags() -> str:
    """``set --`` lines turning the install form into agent options (no secrets here)."""
    return """\
set -- --min-tls '${settings.minTls}'
[ '${settings.clientCertAuth}' != true ] || set -- "$@" --client-cert-auth
[ '${settings.md5Compat}' != true ] || set -- "$@" --keep-md5-compat
case "$COMPUTE_TYPE" in
  mysql*|mariadb*|percona*|proxysql*) [ '${settings.requireTls}' != true ] || set -- "$@" --require-tls ;;
esac
for ip in ${globals.proxyIps}; do set -- "$@" --no-client-cert-address "$ip"; done
[ '${settings.upstreamMode}' != true ] || set -- "$@" --upstream-mode"""


def enable(sealed: bool) -> str:
    """``enable --stage ${this.stage}`` on one node; with ``sealed``, the blobs gathered in
    ``${globals.sealed}`` (sealed to this node's recipient key) reach the agent on stdin and are
    opened inside it."""
    feed = "<<'DBTLS_SEALED' || rc=$?\n${globals.sealed}\nDBTLS_SEALED" if sealed else "</dev/null || rc=$?"
    secrets_flag = " --passwords-sealed" if sealed else ""
    return f"""\
set -e
{PRELUDE}
{_flags()}
t=$(mktemp)
trap 'rm -f "$t"' EXIT
rc=0
$A enable --role '${{this.role}}' --stage '${{this.stage}}' "$@"{secrets_flag} >"$t" {feed}
"$PY" - "$t" <<'DBTLS_PY'
{_SUMMARY_PY.strip()}
DBTLS_PY
exit $rc
"""


def seal_recipient() -> str:
    """Make the using node's one-run key pair; ``${response.out}`` = its PUBLIC key PEM only."""
    return f"""\
set -e
{PRELUDE}
$A secrets recipient
"""


#: What ``seal(if_agent=True)`` prints on a node without an agent that can seal.
NO_AGENT = "dbtls-no-sealing-agent"


def seal(if_agent: bool = False) -> str:
    """Seal the passwords this node knows to the public key in ``${globals.sealTo}``; the output is
    one opaque blob line, the only thing the transcript sees. With ``if_agent`` a node without an
    agent that can seal (a layer the add-on is not installed on) prints NO_AGENT instead."""
    body = """\
$A secrets seal <<'DBTLS_RECIPIENT'
${globals.sealTo}
DBTLS_RECIPIENT
"""
    if if_agent:
        # An old agent without ``secrets seal`` fails here too; the manifest then fetches the
        # current one and seals again, so a real sealing error still stops the run there.
        body = f"""\
if [ -x $A ] && blob=$($A secrets seal 2>/dev/null <<'DBTLS_RECIPIENT'
${{globals.sealTo}}
DBTLS_RECIPIENT
); then
  printf '%s\\n' "$blob"
else
  echo {NO_AGENT}
fi
"""
    return f"""\
set -e
{PRELUDE}
""" + body


#: Formats ``status`` (or, while status is missing, ``inspect``) into one line per node. File "$1"
#: holds ``status``, file "$2" ``inspect``: PostgreSQL/Pgpool status lists the certificates and a
#: handshake (``tls``); MySQL-family status has ``served``/``have_ssl`` and ProxySQL status its
#: runtime variables and backends, without certificates, which then come from ``inspect``.
_STATUS_PY = r"""
import json, sys
def load(path):
    try:
        d = json.load(open(path))
    except (ValueError, IOError, OSError):
        return {}
    return d if isinstance(d, dict) else {}
d = load(sys.argv[1])
extra = load(sys.argv[2]) if len(sys.argv) > 2 else {}
certs = d.get("certificates")
if isinstance(certs, dict):
    certs = certs.get("certificates", [])
if not isinstance(certs, list):
    certs = extra.get("certificates")
certs = [c for c in certs if isinstance(c, dict)] if isinstance(certs, list) else []
def on(v):
    return str(v).strip().lower() in ("1", "true", "yes", "on")
def state():
    tls = d.get("tls") or {}
    if tls.get("ok"):
        return "TLS on (%s)" % tls.get("protocol")
    if d.get("enabled") is False:
        return "TLS off"
    served = d.get("served") if isinstance(d.get("served"), dict) else {}
    if served.get("tls_version"):
        text = "TLS on (%s)" % served["tls_version"]
        if d.get("serves_our_certificate") is False:
            text += ", serving another certificate"
        return text
    if "have_ssl" in d and str(d.get("have_ssl")).upper() != "YES":
        return "TLS off"
    if d.get("role") == "proxysql":
        have = on((d.get("runtime_variables") or {}).get("mysql-have_ssl"))
        servers = [s for s in d.get("servers") or [] if isinstance(s, dict)]
        used = sum(1 for s in servers if on(s.get("use_ssl")))
        return "TLS %s (backends over TLS %d/%d)" % ("on" if have else "off", used, len(servers))
    return "TLS not verified"
server = next((c for c in certs if c.get("role") in ("server", "server.crt")), {})
root = next((c for c in certs if "root" in str(c.get("role"))), {})
client = next((c for c in certs if str(c.get("role")).startswith("client")), None)
line = "%s; server cert %s expires %s (%s days); root sha256 %s" % (
    state(), server.get("cn", "-"), str(server.get("not_after", "-"))[:10], server.get("days_left", "-"),
    str(root.get("sha256", "-"))[:23])
if client:
    line += "; client certs in %s" % str(client.get("path", "")).rsplit("/", 1)[0]
print(line)
"""


def status_line() -> str:
    """One human line for this node (the caller prefixes the node id) built from the agent's ``status`` (and
    ``inspect`` for the certificates when status does not list them)."""
    return f"""\
{PRELUDE}
t=$(mktemp)
u=$(mktemp)
trap 'rm -f "$t" "$u"' EXIT
$A status >"$t" 2>/dev/null || $A inspect >"$t" 2>/dev/null || true
$A inspect >"$u" 2>/dev/null || true
"$PY" - "$t" "$u" <<'DBTLS_PY'
{_STATUS_PY.strip()}
DBTLS_PY
exit 0
"""


def status_json() -> str:
    """The agent's full ``status`` JSON (read by the simulator's tables and by people)."""
    return f"""\
{PRELUDE}
$A status 2>/dev/null || $A inspect
"""


def disable(*, remove_certs: bool = True, remove_ca: bool = False, stage: str = "all") -> str:
    """Restore this node's configuration; by default also remove its certificates and the agent
    (and the CA on the CA node). Without ``remove_certs`` the node can offer TLS again at once.
    ``stage="require"`` (PostgreSQL): only stop requiring TLS/SCRAM; TLS stays offered."""
    if stage != "all":
        remove_certs = remove_ca = False
    flag = " --remove-certs" if remove_certs else (" --stage " + stage if stage != "all" else "")
    done = "TLS disabled" if stage == "all" else "TLS no longer required"
    ca = f"\nrm -rf {CERT_DIR}/ca {CERT_DIR}/.pending" if remove_ca else ""
    agent = (f"\nrm -rf {CERT_DIR}/.dbtls-state\nrmdir {CERT_DIR} 2>/dev/null || true"
             f"\nrm -f $A {AGENT_DIR}/dbtls-agent.pyz\nrmdir {AGENT_DIR} 2>/dev/null || true") if remove_certs else ""
    return f"""\
set -e
{PRELUDE}
if [ -x $A ]; then
  upstream=
  [ '${{settings.upstreamMode}}' != true ] || upstream=--upstream-mode
  $A disable --role auto{flag} $upstream >/dev/null
fi{ca}{agent}
echo "{done} on $(hostname)"
"""


def start_if_stopped() -> str:
    """Start a new PostgreSQL node that could not start on its own.

    A standby made by scale-out clones the primary's data directory, postgresql.conf included: it
    already demands server/server.crt, which exists only once this add-on has issued it.
    """
    return f"""\
{PRELUDE}
case "$COMPUTE_TYPE" in
  postgres*)
    if ! pg_isready -q -h /var/run/postgresql 2>/dev/null && ! pg_isready -q -h /tmp 2>/dev/null; then
      jem service start >/dev/null
      echo "started PostgreSQL on $(hostname) with its new certificate"
    fi ;;
esac
exit 0
"""


def has_tls() -> str:
    """``yes`` when this node already carries our certificates and agent (a layer done earlier)."""
    return f"""\
if [ -x {AGENT} ] && [ -s {CERT_DIR}/server/server.crt ]; then echo yes; else echo no; fi
"""


def require_client_cert() -> str:
    """MySQL family: make one account log in with a client certificate (agent ``mysql`` role)."""
    return f"""\
set -e
{PRELUDE}
$A user-cert --user '${{settings.dbUser}}'
"""


# -- MySQL family behind ProxySQL: drain a backend around its restart ------------------------------
#: How long ProxySQL waits for a backend's connections in use to finish before its restart goes ahead.
DRAIN_TIMEOUT_S = 60
#: Where a deferred step keeps its exit code and stderr until ``step_result`` replays them.
STEP_DIR = "/run/dbtls-step"


def restart_expected() -> str:
    """``yes`` when this node's next ``${this.step}`` (offer, or any disable) restarts the server, so
    ProxySQL must drain it first; ``no`` when nothing restarts. Unsure (agent error): ``yes``."""
    return f"""\
{PRELUDE}
case '${{this.step}}' in offer) step=offer ;; *) step=disable ;; esac
if [ ! -x $A ]; then echo no; exit 0; fi
if out=$($A restart-expected --step "$step" --min-tls '${{settings.minTls}}' </dev/null); then
  case "$out" in *'"restart": true'*) echo yes ;; *) echo no ;; esac
else
  echo yes
fi
exit 0
"""


def proxysql_backend(state: str) -> str:
    """On every ProxySQL node: ``offline-soft`` (then wait for the drain) or ``online`` for the
    backend named by ``${this.addresses}``. A failed offline-soft is only a warning (the restart then
    goes ahead undrained, as without ProxySQL); a failed online fails the step: a backend must not
    stay out of rotation unnoticed."""
    if state not in ("offline-soft", "online"):
        raise ValueError(state)
    timeout = f" --drain-timeout {DRAIN_TIMEOUT_S}" if state == "offline-soft" else ""
    call = f'$A proxysql-backend --state {state} "$@"{timeout} </dev/null'
    if state == "offline-soft":
        call += (' || echo "dbtls: warning: ProxySQL on $(hostname) could not take the backend offline; '
                 'it restarts without a drain" >&2')
    return f"""\
{PRELUDE}
set --
for a in ${{this.addresses}}; do set -- "$@" --address "$a"; done
{call}
"""


def proxysql_backends_recover() -> str:
    """Backends an earlier, unfinished run left OFFLINE_SOFT go back ONLINE (nothing recorded: no-op)."""
    return f"""\
set -e
{PRELUDE}
$A proxysql-backend --state online --all </dev/null
"""


def deferred(script: str) -> str:
    """Run ``script`` but exit 0 whatever it does, keeping its exit code and stderr on the node for
    ``step_result``: the actions after it (ProxySQL ``online``) must run even when it failed. The
    script goes through a file in the 0700 step directory (never argv: it may carry sealed blobs)."""
    if "DBTLS_STEP" in script:
        raise ValueError("the script already contains the deferred-step delimiter")
    return f"""\
D={STEP_DIR}
rm -rf $D && mkdir -m 0700 $D || {{ echo "dbtls: cannot create $D" >&2; exit 1; }}
echo 1 > $D/rc
cat > $D/script <<'DBTLS_STEP'
{script.rstrip()}
DBTLS_STEP
rc=0
bash $D/script </dev/null >$D/out 2>$D/err || rc=$?
rm -f $D/script
cat $D/out
cat $D/err >&2
echo $rc > $D/rc
exit 0
"""


def step_result() -> str:
    """The exit code and stderr of the last ``deferred`` step on this node, replayed."""
    return f"""\
D={STEP_DIR}
if ! rc=$(cat $D/rc 2>/dev/null); then
  echo "dbtls: the result of the previous step on $(hostname) is missing" >&2; exit 1
fi
[ "$rc" = 0 ] || cat $D/err >&2
rm -rf $D
exit $rc
"""
