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

import jinja2

AGENT = "/usr/local/sbin/dbtls-agent"
AGENT_DIR = "/usr/local/lib/dbtls"
CERT_DIR = "/var/lib/jelastic/keys/SSL-TLS"
REDEPLOY_CONF = "/etc/jelastic/redeploy.conf"
#: What must survive a container redeploy: certificates, backups and state, and the agent.
KEEP_ON_REDEPLOY = (CERT_DIR, AGENT_DIR, AGENT)
#: Oldest Python the agent runs on.
MIN_PYTHON = (3, 6)
#: How long ProxySQL waits for a backend's connections in use to finish before its restart goes ahead.
DRAIN_TIMEOUT_S = 60
#: The renewal trigger's cron file (the agent's renewtrigger.CRON_FILE).
RENEW_CRON = "/etc/cron.d/dbtls-renew"
#: Where a deferred step keeps its exit code and stderr until ``step_result`` replays them.
STEP_DIR = "/run/dbtls-step"

#: The scripts are the templates in ``scripts/`` (package data). Every name a template uses must be
#: given (``StrictUndefined``): a typo fails the build instead of leaving a hole in a node's script.
#: ``prelude.sh.j2``, included first by every script that calls the agent, sets ``A`` and ``b64``.
_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("dbtls.addon", "scripts"), undefined=jinja2.StrictUndefined,
    autoescape=False, keep_trailing_newline=False)
_TEMPLATES.globals.update(agent=AGENT, agent_dir=AGENT_DIR, cert_dir=CERT_DIR, redeploy_conf=REDEPLOY_CONF,
                          step_dir=STEP_DIR, drain_timeout_s=DRAIN_TIMEOUT_S)


def _render(template: str, **values: object) -> str:
    """One script, trimmed (the platform trims it anyway; see the rules above)."""
    return _TEMPLATES.get_template(template).render(**values).strip()


def fetch_agent(agent_sha256: str) -> str:
    """Find Python >= 3.6 (install python3 with the node's package manager if there is none), fetch
    the agent pinned by sha256 unless the same build is already there, unpack it into a root-owned
    folder named after that sha256 and compile its modules with the node's Python (each agent call
    then loads bytecode instead of compiling from the zipapp, about 20 ms per call), and keep our
    folders across redeploys. Fails with a line naming the node when no usable Python can be had:
    nothing has been changed on any database by then."""
    return _render("fetch_agent.sh.j2", sha=agent_sha256, pymin=", ".join(map(str, MIN_PYTHON)),
                   keep=" ".join(KEEP_ON_REDEPLOY))


def check_version() -> str:
    """Refuse PostgreSQL older than 11 (what the platform's own add-on refuses), before any change."""
    return _render("check_version.sh.j2")


def require_database_layer() -> str:
    """On the CA node, before a proxy layer changes anything: the database layer must be done."""
    return _render("require_database_layer.sh.j2")


#: Install form fields -> the agent's option names (``options save --from-manifest``).
FORM_OPTIONS = {"keyType": "key_type", "minTls": "min_tls", "extraNames": "extra_names",
                "requireTls": "require_tls", "clientCertAuth": "client_cert_auth", "md5Compat": "md5_compat",
                "upstreamMode": "upstream_mode", "enforceAnyway": "enforce_anyway"}


def save_options() -> str:
    """Keep the install form's values on this node (validated by the agent)."""
    return _render("save_options.sh.j2", form_options=FORM_OPTIONS)


def ca_init(rotate: bool) -> str:
    """Create the environment CA on the CA node (kept when it exists, unless rotating; a CA
    copied from another environment by a clone is replaced)."""
    return _render("ca_init.sh.j2", rotate=rotate)


def prepare_ca() -> str:
    """On the CA node: the CA (kept when it exists) and the extra names typed for this layer, which
    may be certified for its nodes; one script, so one platform call."""
    return _render("prepare_ca.sh.j2")


def csr() -> str:
    """This node's requests for ``${this.scope}`` as one JSON line. ``${this.mode}``: ``install``
    (always), ``reissue`` (new keys, only nodes that already have certificates) or ``repair``
    (only nodes that have none)."""
    return _render("csr.sh.j2")


def ca_sign() -> str:
    """On the CA node: sign what the nodes asked for, under the CA's own policy (the node list is
    the platform's); one JSON line back. ``${this.previous}`` = yes during a CA rotation."""
    return _render("ca_sign.sh.j2")


def install_certs() -> str:
    """Install this node's certificates out of the CA node's answer (a node with no request in it
    has nothing to do)."""
    return _render("install_certs.sh.j2")


def ca_roots() -> str:
    """On the CA node right after ``ca init --rotate``: the new root and the one it retired (PEM)."""
    return _render("ca_roots.sh.j2")


def install_roots() -> str:
    """Make both roots of a CA rotation this node's root.crt (nodes without our certificates skip)."""
    return _render("install_roots.sh.j2")


def install_certs_reload() -> str:
    """After a re-issue, on one node in one script (one platform call): install this node's
    certificates as ``install_certs`` does, then make its server load them (PostgreSQL reloads,
    MySQL family and ProxySQL re-apply ``enable --stage offer``, Pgpool-II and upstream mode
    restart). The caller runs it one node at a time."""
    return _render("install_certs_reload.sh.j2")


def enable(sealed: bool) -> str:
    """``enable --stage ${this.stage}`` on one node (or several: ``${this.nodeId}`` may be a list).
    With ``sealed``, the passwords sealed to this node's one-run key reach the agent on stdin."""
    return _render("enable.sh.j2", sealed=sealed)


def seal_recipient() -> str:
    """Make this node's one-run key pair; the output is its PUBLIC key only."""
    return _render("seal_recipient.sh.j2")


def seal() -> str:
    """Seal the passwords this node knows to the recipient key the manifest carries; one opaque
    blob line out."""
    return _render("seal.sh.j2")


def status_line() -> str:
    """One human line for this node (the caller prefixes the node id)."""
    return _render("status_line.sh.j2")


def disable(*, remove_certs: bool = True, remove_ca: bool = False, stage: str = "all") -> str:
    """Restore this node's configuration and, by default, remove its certificates (and the CA on
    the CA node). The agent and its state stay for ``replication wait`` and ``cleanup``. A node with
    our state but no agent is an error, never a silent skip: its backups are the only way back.
    ``stage="require"`` (PostgreSQL): only stop requiring TLS/SCRAM; TLS stays offered."""
    if stage != "all":
        remove_certs = remove_ca = False
    return _render("disable.sh.j2", remove_certs=remove_certs, remove_ca=remove_ca, stage=stage)


def cleanup() -> str:
    """The end of an uninstall on this node: the agent, its state (backups included: every file is
    restored by then) and the lines the add-on added to redeploy.conf go."""
    return _render("cleanup.sh.j2")


def replication_wait() -> str:
    """Wait until this node's replication streams again (a primary: its standbys/replicas; a
    standby/replica: its own channel, restarting a MariaDB IO thread that waits for its retry)."""
    return _render("replication_wait.sh.j2")


def replication_wait_status() -> str:
    """``replication_wait`` then this node's ``status_line``, in one script: a database node's
    report line once its replication streams again (one platform call instead of two)."""
    return _render("replication_wait_status.sh.j2")


def preflight() -> str:
    """What enabling TLS changes for this node's logins, sessions and replication; changes nothing."""
    return _render("preflight.sh.j2")


def start_if_stopped() -> str:
    """Start a new PostgreSQL node that could not start on its own: a standby made by scale-out
    clones the primary's configuration, which already asks for server/server.crt, which exists only
    once this add-on has issued it."""
    return _render("start_if_stopped.sh.j2")


#: A certificate is due for renewal when it ends within this many days (the renew action, the status).
RENEW_WITHIN_DAYS = 30
#: What ``certs plan --show`` answers for the manifest.
RENEW_QUESTIONS = ("summary", "work", "scope")


def certs_due(text: bool = False) -> str:
    """This node's renewal report (``certs due``: JSON, or with ``text`` one line for the status
    button); nothing from a node without the agent."""
    return _render("certs_due.sh.j2", within_days=RENEW_WITHIN_DAYS, text=text)


def renew_plan(show: str) -> str:
    """On the CA node: the layer's renewal plan from the reports in ``${globals.dueReports}`` and
    ``${globals.caReport}``, as ``show`` asks (``summary`` text, ``work`` yes/no, ``scope``)."""
    if show not in RENEW_QUESTIONS:
        raise ValueError(show)
    return _render("renew_plan.sh.j2", within_days=RENEW_WITHIN_DAYS, show=show)


def renew_ca_node() -> str:
    """On the CA node: ``user-cert`` for every due user certificate, then ``kit build`` for every
    due kit the plan names (a kit of a ``user-cert`` user copies that user's new certificate; the
    agent checks the names); one summary line."""
    return _render("renew_ca_node.sh.j2", within_days=RENEW_WITHIN_DAYS)


def has_tls() -> str:
    """``yes`` (no newline) when this node carries our certificates and agent, else ``no``."""
    return _render("has_tls.sh.j2")


def client_kit() -> str:
    """On the CA node: the client kit of the form's user (certificate, key in PEM, PKCS#8 and PKCS#12,
    option file, README), and a short summary for the dashboard."""
    return _render("client_kit.sh.j2")


def require_client_cert() -> str:
    """MySQL family: make one account log in with a client certificate (the CA node issues it)."""
    return _render("require_client_cert.sh.j2")


# -- MySQL family behind ProxySQL: drain a backend around its restart ------------------------------


def restart_expected() -> str:
    """``yes`` (no newline) when this node's next ``${this.step}`` restarts the server, so ProxySQL
    must drain it first; ``no`` when nothing restarts. Unsure (agent error): ``yes``."""
    return _render("restart_expected.sh.j2")


def proxysql_backend(state: str) -> str:
    """On every ProxySQL node: ``offline-soft`` (then wait for the drain) or ``online`` for the
    backend named by ``${this.addresses}``. A failed offline-soft is a warning (the restart goes
    ahead undrained, as without ProxySQL); a failed online fails the step."""
    if state not in ("offline-soft", "online"):
        raise ValueError(state)
    return _render("proxysql_backend.sh.j2", state=state)


def proxysql_backends_recover() -> str:
    """Backends an earlier, unfinished run left OFFLINE_SOFT go back ONLINE (nothing recorded: no-op)."""
    return _render("proxysql_backends_recover.sh.j2")


def deferred(script: str) -> str:
    """Run ``script`` but exit 0 whatever it does, keeping its exit code and stderr on the node for
    ``step_result``: the actions after it (ProxySQL ``online``) must run even when it failed."""
    if "DBTLS_STEP" in script:
        raise ValueError("the script already contains the deferred-step delimiter")
    return _render("deferred.sh.j2", script=script.rstrip())


def step_result() -> str:
    """The exit code and stderr of the last ``deferred`` step on this node, replayed."""
    return _render("step_result.sh.j2")


# -- the automatic renewal trigger (docs/renewal.md) ---------------------------------------------


def renew_install() -> str:
    """Keep the platform script's URL (from stdin) and this node's own token (drawn by the agent,
    0600), write the daily cron job; the output is the agent's JSON with the token's SHA-256, never
    the token: the platform records both a cmd's text and a node's output."""
    return _render("renew_install.sh.j2")


def renew_remove() -> str:
    """Remove the cron job, the token and the URL (also when the agent is already gone)."""
    return _render("renew_remove.sh.j2", renew_cron=RENEW_CRON)
