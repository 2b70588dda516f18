"""Node-side bash of the manifest, kept thin: every decision lives in the agent.

How the platform runs these (Cloud Scripting docs, actions.md, ``cmd``): the text, trimmed, is
wrapped as ``yes | (TEXT)`` (or ``(TEXT)`` with ``sayYes: false``), base64-encoded and run through
``base64 -d | su root``. Rules that follow from it, and from who is trusted:

* Shell variables are written ``$VAR``, never ``${VAR}``: the engine would take that for one of its
  placeholders, and an unresolved one is a bash "bad substitution" that aborts the whole group.
* No script ends with a heredoc terminator or a comment: after trimming, the closing ``)`` would
  land on that line.
* Nothing a node printed, and nothing a person typed, is pasted into a script as text. Such values
  reach a script only as the platform's ``${....toBase64()}`` inside single quotes, are checked to
  be base64 (``b64``), and go to the agent's stdin, which parses them as data.
* No secret ever appears in a script or an output: the platform records both, and the wrapped text
  is visible in the node's process list while it runs. Passwords that cross nodes travel sealed
  (``secrets recipient``/``seal``): the transcript holds a public key and ciphertext only.
"""

from __future__ import annotations

AGENT = "/usr/local/sbin/dbtls-agent"
AGENT_DIR = "/usr/local/lib/dbtls"
CERT_DIR = "/var/lib/jelastic/keys/SSL-TLS"
REDEPLOY_CONF = "/etc/jelastic/redeploy.conf"
#: What must survive a container redeploy: certificates, backups and state, and the agent.
KEEP_ON_REDEPLOY = (CERT_DIR, AGENT_DIR, AGENT)
#: Oldest Python the agent runs on.
MIN_PYTHON = (3, 6)

#: First lines of every script that calls the agent.
PRELUDE = """\
set -e -o pipefail
A=@AGENT@
. /etc/jelastic/metainf.conf 2>/dev/null || true
b64() { case "$1" in *[!A-Za-z0-9+/=]*) echo "dbtls: a value from the manifest is not base64; refusing it" >&2; return 65 ;; esac; printf '%s\\n' "$1"; }"""


def _fill(text: str, **extra: str) -> str:
    """Replace ``@NAME@`` markers (constants of this module and ``extra``) in a script."""
    values = {"AGENT": AGENT, "AGENT_DIR": AGENT_DIR, "CERT_DIR": CERT_DIR, "REDEPLOY_CONF": REDEPLOY_CONF,
              "PRELUDE": PRELUDE, **extra}
    for _ in range(2):  # PRELUDE itself holds markers
        for name, value in values.items():
            text = text.replace(f"@{name}@", value)
    return text


def fetch_agent(agent_sha256: str) -> str:
    """Find Python >= 3.6 (install python3 with the node's package manager if there is none), fetch
    the agent pinned by sha256 unless the same build is already there, and keep our folders across
    redeploys. Fails with a line naming the node when no usable Python can be had: nothing has been
    changed on any database by then."""
    return _fill(r"""
set -e
want=@SHA@
dir=@AGENT_DIR@
usable() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (@PYMIN@) else 1)' >/dev/null 2>&1; }
find_python() {
  for p in python3 /usr/libexec/platform-python python3.12 python3.11 python3.9 python3.8 python3.6; do
    if command -v "$p" >/dev/null 2>&1 && usable "$p"; then command -v "$p"; return 0; fi
  done
  return 1
}
if ! PY=$(find_python); then
  how="no package manager found"
  if command -v dnf >/dev/null 2>&1; then how="dnf install python3 failed"; timeout 600 dnf -y -q install python3 >/dev/null 2>&1 || true
  elif command -v yum >/dev/null 2>&1; then how="yum install python3 failed"; timeout 600 yum -y -q install python3 >/dev/null 2>&1 || true
  elif command -v apt-get >/dev/null 2>&1; then how="apt-get install python3 failed"; { timeout 600 apt-get -qq update && timeout 600 apt-get -qq -y install python3; } >/dev/null 2>&1 || true
  fi
  if ! PY=$(find_python); then
    echo "dbtls: node $(hostname) has no Python 3.6 or newer ($how). Install python3 on it and run the installation again; nothing was changed." >&2
    exit 3
  fi
fi
mkdir -p "$dir"
if ! echo "$want  $dir/dbtls-agent.pyz" | sha256sum -c --status - 2>/dev/null; then
  base=$(printf '%s' '${baseUrl}' | sed 's:/*$::')
  url="$base/node-scripts/dist/dbtls-agent.pyz?_r=${fn.random}"
  tmp=$(mktemp "$dir/.download.XXXXXX")
  trap 'rm -f "$tmp"' EXIT
  if command -v curl >/dev/null 2>&1; then curl -fsS --retry 3 -o "$tmp" "$url"
  elif command -v wget >/dev/null 2>&1; then wget -q -O "$tmp" "$url"
  else "$PY" -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$url" "$tmp"
  fi
  if ! echo "$want  $tmp" | sha256sum -c --status -; then
    echo "dbtls: the agent downloaded from $base does not match its pinned sha256" >&2
    exit 4
  fi
  chmod 0644 "$tmp"
  mv -f "$tmp" "$dir/dbtls-agent.pyz"
fi
cat > @AGENT@.new <<'DBTLS_LAUNCHER'
#!/bin/sh
# dbtls-agent launcher, installed by the dbtls add-on: the first Python 3.6 or newer of the node.
for py in python3 /usr/libexec/platform-python python3.12 python3.11 python3.9 python3.8 python3.6; do
  if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (@PYMIN@) else 1)' >/dev/null 2>&1; then
    exec "$py" @AGENT_DIR@/dbtls-agent.pyz "$@"
  fi
done
echo "dbtls-agent: no Python 3.6 or newer on this node" >&2
exit 127
DBTLS_LAUNCHER
chmod 0755 @AGENT@.new
mv -f @AGENT@.new @AGENT@
if [ -f @REDEPLOY_CONF@ ]; then
  for keep in @KEEP@; do
    if ! grep -qxF "$keep" @REDEPLOY_CONF@; then
      echo "$keep" >> @REDEPLOY_CONF@
      echo "$keep" >> "$dir/redeploy-added"
    fi
  done
fi
echo "dbtls-agent $(@AGENT@ --version) on $(hostname)"
""".strip(), SHA=agent_sha256, PYMIN=", ".join(map(str, MIN_PYTHON)), KEEP=" ".join(KEEP_ON_REDEPLOY))


def check_version() -> str:
    """Refuse PostgreSQL older than 11 (what the platform's own add-on refuses), before any change."""
    return _fill(r"""
. /etc/jelastic/metainf.conf 2>/dev/null || true
case "$COMPUTE_TYPE" in
  postgres*)
    major=$(printf '%s' "$COMPUTE_TYPE_VERSION" | sed 's/[^0-9].*//')
    if [ "$major" -lt 11 ] 2>/dev/null; then
      echo "dbtls: PostgreSQL $COMPUTE_TYPE_VERSION on $(hostname) is not supported: the add-on needs PostgreSQL 11 or newer. Nothing was changed." >&2
      exit 1
    fi ;;
esac
echo "database $COMPUTE_TYPE $COMPUTE_TYPE_VERSION"
""".strip())


def require_database_layer() -> str:
    """On the CA node, before a proxy layer changes anything: the database layer must be done."""
    return _fill(r"""
if [ -x @AGENT@ ] && [ -s @CERT_DIR@/server/server.crt ] && [ -s @CERT_DIR@/ca/ca.crt ]; then
  echo "database layer ready on $(hostname)"
else
  echo "dbtls: install the add-on on the database layer (sqldb) first: its primary holds the environment's CA and must offer TLS before a proxy layer can use it. Nothing was changed." >&2
  exit 1
fi
""".strip())


#: Install form fields -> the agent's option names (``options save --from-manifest``).
FORM_OPTIONS = {"keyType": "key_type", "minTls": "min_tls", "extraNames": "extra_names",
                "requireTls": "require_tls", "clientCertAuth": "client_cert_auth", "md5Compat": "md5_compat",
                "upstreamMode": "upstream_mode", "enforceAnyway": "enforce_anyway"}


def save_options() -> str:
    """Keep the install form's values on this node (validated by the agent)."""
    fields = " ".join(f"'{name}=" + "${settings." + field + ".toBase64()}'" for field, name in FORM_OPTIONS.items())
    return _fill(r"""
@PRELUDE@
printf '%s\n' @FIELDS@ | $A options save --from-manifest >/dev/null
echo "options kept on $(hostname)"
""".strip(), FIELDS=fields)


def ca_policy() -> str:
    """On the CA node: the extra names typed for this layer may be certified for its nodes."""
    return _fill(r"""
@PRELUDE@
printf 'extra_names=%s\n' '${settings.extraNames.toBase64()}' | $A ca policy --layer '${targetNodes.nodeGroup}' --from-manifest >/dev/null
echo "names of ${targetNodes.nodeGroup} recorded on $(hostname)"
""".strip())


def ca_init(rotate: bool) -> str:
    """Create the environment CA on the CA node (kept when it exists, unless rotating; a CA
    copied from another environment by a clone is replaced)."""
    flag = " --rotate" if rotate else ""
    return _fill(r"""
@PRELUDE@
$A ca init --options --env-name '${env.envName}'@FLAG@ >/dev/null
echo "CA ready on $(hostname)"
""".strip(), FLAG=flag)


def csr() -> str:
    """This node's requests for ``${this.scope}`` as one JSON line. ``${this.mode}``: ``install``
    (always), ``reissue`` (new keys, only nodes that already have certificates) or ``repair``
    (only nodes that have none)."""
    return _fill(r"""
@PRELUDE@
case '${this.mode}' in
  reissue) [ -x $A ] || { echo '{}'; exit 0; }; $A csr --bundle --options --scope '${this.scope}' --rotate --if-installed ;;
  repair) $A csr --bundle --options --scope '${this.scope}' --only-missing ;;
  *) $A csr --bundle --options --scope '${this.scope}' ;;
esac
""".strip())


def ca_sign() -> str:
    """On the CA node: sign what the nodes asked for, under the CA's own policy (the node list is
    the platform's); one JSON line back. ``${this.previous}`` = yes during a CA rotation."""
    return _fill(r"""
@PRELUDE@
set -- ca sign --from-manifest --env-domain '${env.domain}' --layer '${this.layer}'
[ '${this.previous}' != yes ] || set -- "$@" --with-previous
{ b64 '${globals.csrs.toBase64()}'; b64 '${globals.nodeList.toBase64()}'; } | $A "$@"
""".strip())


def install_certs() -> str:
    """Install this node's certificates out of the CA node's answer (a node with no request in it
    has nothing to do)."""
    return _fill(r"""
@PRELUDE@
if [ ! -x $A ]; then echo "no agent on $(hostname)"; exit 0; fi
b64 '${globals.signed.toBase64()}' | $A install-certs --from-manifest --allow-none >/dev/null
echo "certificates checked on $(hostname)"
""".strip())


def ca_roots() -> str:
    """On the CA node right after ``ca init --rotate``: the new root and the one it retired (PEM)."""
    return _fill(r"""
@PRELUDE@
$A ca roots --with-previous
""".strip())


def install_roots() -> str:
    """Make both roots of a CA rotation this node's root.crt (nodes without our certificates skip)."""
    return _fill(r"""
@PRELUDE@
if [ ! -x $A ] || [ ! -s @CERT_DIR@/server/server.crt ]; then echo "no certificates on $(hostname)"; exit 0; fi
b64 '${globals.roots.toBase64()}' | $A install-certs --roots-only --from-manifest >/dev/null
echo "root.crt on $(hostname) trusts the new and the previous CA"
""".strip())


def reload_certs() -> str:
    """After a re-issue, make this node's server load its new certificate (one node at a time)."""
    return _fill(r"""
@PRELUDE@
if [ -x $A ] && [ -s @CERT_DIR@/server/server.crt ]; then
  if $A options show | grep -q '"upstream_mode": true'; then
    jem service restart >/dev/null
  else
    case "$COMPUTE_TYPE" in
      postgres*) jem service reload >/dev/null ;;
      mysql*|mariadb*|percona*) $A enable --role mysql --stage offer --options </dev/null >/dev/null ;;
      proxysql*) $A enable --role proxysql --stage offer --options </dev/null >/dev/null ;;
      *) jem service restart >/dev/null ;;
    esac
  fi
  echo "certificates loaded on $(hostname)"
else
  echo "no certificates on $(hostname)"
fi
""".strip())


def enable(sealed: bool) -> str:
    """``enable --stage ${this.stage}`` on one node (or several: ``${this.nodeId}`` may be a list).
    With ``sealed``, the passwords sealed to this node's one-run key reach the agent on stdin."""
    feed = ("b64 '${globals.sealed.toBase64()}' | $A \"$@\" --passwords-sealed --from-manifest >/dev/null"
            if sealed else '$A "$@" </dev/null >/dev/null')
    return _fill(r"""
@PRELUDE@
set -- enable --role '${this.role}' --stage '${this.stage}' --options
set -f
for ip in $(b64 '${globals.proxyIps.toBase64()}' | base64 -d); do
  case "$ip" in *[!0-9A-Fa-f.:]*) ;; *) set -- "$@" --no-client-cert-address "$ip" ;; esac
done
set +f
@FEED@
echo "${this.stage} done on $(hostname)"
""".strip(), FEED=feed)


def seal_recipient() -> str:
    """Make this node's one-run key pair; the output is its PUBLIC key only."""
    return _fill(r"""
@PRELUDE@
$A secrets recipient
""".strip())


def seal() -> str:
    """Seal the passwords this node knows to the recipient key the manifest carries; one opaque
    blob line out."""
    return _fill(r"""
@PRELUDE@
b64 '${globals.sealTo.toBase64()}' | $A secrets seal --from-manifest 2>/dev/null
""".strip())


def status_line() -> str:
    """One human line for this node (the caller prefixes the node id)."""
    return _fill(r"""
A=@AGENT@
if [ -x $A ]; then $A status-line; else printf 'add-on not set up on this node'; fi
""".strip())


def disable(*, remove_certs: bool = True, remove_ca: bool = False, stage: str = "all") -> str:
    """Restore this node's configuration and, by default, remove its certificates (and the CA on
    the CA node). The agent and its state stay for ``replication wait`` and ``cleanup``. A node with
    our state but no agent is an error, never a silent skip: its backups are the only way back.
    ``stage="require"`` (PostgreSQL): only stop requiring TLS/SCRAM; TLS stays offered."""
    if stage != "all":
        remove_certs = remove_ca = False
    flag = " --remove-certs" if remove_certs else (" --stage " + stage if stage != "all" else "")
    done = "TLS disabled" if stage == "all" else "TLS no longer required"
    tail = "\nrm -rf @CERT_DIR@/ca @CERT_DIR@/.pending" if remove_ca else ""
    return _fill(r"""
@PRELUDE@
if [ -d @CERT_DIR@/.dbtls-state ] || [ -d @CERT_DIR@/server ]; then
  if [ ! -x $A ]; then echo "dbtls: $(hostname) has the add-on's state but no agent; nothing was restored" >&2; exit 1; fi
  upstream=
  if $A options show | grep -q '"upstream_mode": true'; then upstream=--upstream-mode; fi
  $A disable --role auto@FLAG@ $upstream </dev/null >/dev/null
fi@TAIL@
echo "@DONE@ on $(hostname)"
""".strip(), FLAG=flag, TAIL=tail, DONE=done)


def cleanup() -> str:
    """The end of an uninstall on this node: the agent, its state (backups included: every file is
    restored by then) and the lines the add-on added to redeploy.conf go."""
    return _fill(r"""
A=@AGENT@
rm -rf @CERT_DIR@/.dbtls-state @CERT_DIR@/.pending
rmdir @CERT_DIR@ 2>/dev/null || true
if [ -f @AGENT_DIR@/redeploy-added ] && [ -f @REDEPLOY_CONF@ ]; then
  keep=$(mktemp)
  grep -vxF -f @AGENT_DIR@/redeploy-added @REDEPLOY_CONF@ > "$keep" || true
  cat "$keep" > @REDEPLOY_CONF@
  rm -f "$keep"
fi
rm -f $A @AGENT_DIR@/dbtls-agent.pyz @AGENT_DIR@/redeploy-added
rmdir @AGENT_DIR@ 2>/dev/null || true
echo "add-on removed from $(hostname)"
""".strip())


def replication_wait() -> str:
    """Wait until this node's replication streams again (a primary: its standbys/replicas; a
    standby/replica: its own channel, restarting a MariaDB IO thread that waits for its retry)."""
    return _fill(r"""
@PRELUDE@
if [ ! -x $A ]; then echo "no agent on $(hostname)"; exit 0; fi
$A replication wait --timeout 120 </dev/null >/dev/null
echo "replication streams on $(hostname)"
""".strip())


def preflight() -> str:
    """What enabling TLS changes for this node's logins, sessions and replication; changes nothing."""
    return _fill(r"""
A=@AGENT@
if [ -x $A ] && out=$($A preflight --text 2>&1); then printf '%s' "$out" | sed '2,$s/^/  /'; else printf 'no report (%s)' "$(printf '%s' "$out" | tail -n 1)"; fi
""".strip())


def start_if_stopped() -> str:
    """Start a new PostgreSQL node that could not start on its own: a standby made by scale-out
    clones the primary's configuration, which already asks for server/server.crt, which exists only
    once this add-on has issued it."""
    return _fill(r"""
. /etc/jelastic/metainf.conf 2>/dev/null || true
case "$COMPUTE_TYPE" in
  postgres*)
    if ! pg_isready -q -h /var/run/postgresql 2>/dev/null && ! pg_isready -q -h /tmp 2>/dev/null; then
      jem service start >/dev/null
      echo "started PostgreSQL on $(hostname) with its new certificate"
    fi ;;
esac
echo "node $(hostname) up"
""".strip())


def has_tls() -> str:
    """``yes`` (no newline) when this node carries our certificates and agent, else ``no``."""
    return _fill(r"""
if [ -x @AGENT@ ] && [ -s @CERT_DIR@/server/server.crt ]; then printf yes; else printf no; fi
""".strip())


def require_client_cert() -> str:
    """MySQL family: make one account log in with a client certificate (the CA node issues it)."""
    return _fill(r"""
@PRELUDE@
user=$(b64 '${settings.dbUser.toBase64()}' | base64 -d)
$A user-cert --user "$user"
""".strip())


# -- MySQL family behind ProxySQL: drain a backend around its restart ------------------------------
#: How long ProxySQL waits for a backend's connections in use to finish before its restart goes ahead.
DRAIN_TIMEOUT_S = 60
#: Where a deferred step keeps its exit code and stderr until ``step_result`` replays them.
STEP_DIR = "/run/dbtls-step"


def restart_expected() -> str:
    """``yes`` (no newline) when this node's next ``${this.step}`` restarts the server, so ProxySQL
    must drain it first; ``no`` when nothing restarts. Unsure (agent error): ``yes``."""
    return _fill(r"""
A=@AGENT@
case '${this.step}' in offer) step=offer ;; *) step=disable ;; esac
if [ ! -x $A ]; then printf no; exit 0; fi
if out=$($A restart-expected --step "$step" --options </dev/null); then
  case "$out" in *'"restart": true'*) printf yes ;; *) printf no ;; esac
else
  printf yes
fi
""".strip())


def proxysql_backend(state: str) -> str:
    """On every ProxySQL node: ``offline-soft`` (then wait for the drain) or ``online`` for the
    backend named by ``${this.addresses}``. A failed offline-soft is a warning (the restart goes
    ahead undrained, as without ProxySQL); a failed online fails the step."""
    if state not in ("offline-soft", "online"):
        raise ValueError(state)
    timeout = f" --drain-timeout {DRAIN_TIMEOUT_S}" if state == "offline-soft" else ""
    call = f'$A proxysql-backend --state {state} "$@"{timeout} </dev/null'
    if state == "offline-soft":
        call += (' || echo "dbtls: warning: ProxySQL on $(hostname) could not take the backend offline; '
                 'it restarts without a drain" >&2')
    return _fill(r"""
@PRELUDE@
set --
for a in ${this.addresses}; do set -- "$@" --address "$a"; done
@CALL@
""".strip(), CALL=call)


def proxysql_backends_recover() -> str:
    """Backends an earlier, unfinished run left OFFLINE_SOFT go back ONLINE (nothing recorded: no-op)."""
    return _fill(r"""
@PRELUDE@
if [ -x $A ]; then $A proxysql-backend --state online --all </dev/null >/dev/null; fi
echo "ProxySQL backends checked on $(hostname)"
""".strip())


def deferred(script: str) -> str:
    """Run ``script`` but exit 0 whatever it does, keeping its exit code and stderr on the node for
    ``step_result``: the actions after it (ProxySQL ``online``) must run even when it failed."""
    if "DBTLS_STEP" in script:
        raise ValueError("the script already contains the deferred-step delimiter")
    return _fill(r"""
D=@STEP_DIR@
rm -rf $D && mkdir -m 0700 $D || { echo "dbtls: cannot create $D" >&2; exit 1; }
echo 1 > $D/rc
cat > $D/script <<'DBTLS_STEP'
@SCRIPT@
DBTLS_STEP
rc=0
bash $D/script </dev/null >$D/out 2>$D/err || rc=$?
rm -f $D/script
cat $D/out
cat $D/err >&2
echo $rc > $D/rc
exit 0
""".strip(), SCRIPT=script.rstrip(), STEP_DIR=STEP_DIR)


def step_result() -> str:
    """The exit code and stderr of the last ``deferred`` step on this node, replayed."""
    return _fill(r"""
D=@STEP_DIR@
if ! rc=$(cat $D/rc 2>/dev/null); then
  echo "dbtls: the result of the previous step on $(hostname) is missing" >&2; exit 1
fi
[ "$rc" = 0 ] || cat $D/err >&2
rm -rf $D
exit $rc
""".strip(), STEP_DIR=STEP_DIR)
