"""Pgpool-II: no client-initiated TLS renegotiation and the TLS minimum, through an OpenSSL configuration of its own.

OpenSSL before 3.0 lets a client start a renegotiation at will, a cheap way to make the server
spend CPU (testssl's ``secure_client_renego``). PostgreSQL switches it off in its own code;
Pgpool-II (4.1 on OpenSSL 1.1.1, seen with testssl) does not and has no setting for it. OpenSSL
1.1.1 applies ``Options = NoRenegotiation`` from the configuration's ``system_default`` section to
every context, so the agent gives the Pgpool service its own ``OPENSSL_CONF``, exactly as
:mod:`dbtls_agent.roles.mysql.cipherorder` does for mysqld: a file that ``.include`` s the system configuration and
adds the option, handed to that one service by a systemd drop-in (the simulator's service shim
reads the same drop-in). Both files live in the unit's drop-in folder under /etc/systemd/system
(root's; systemd reads only ``*.conf`` there, the OpenSSL file is ``.cnf``); disable deletes them.

Only where Pgpool's libssl is 1.1.x: OpenSSL 3 already refuses client-initiated renegotiation,
and 1.0.x reads no such option (nothing is written there, and the result says why).

The TLS minimum: Pgpool-II has no setting for it (up to 4.7 it only refuses SSLv2 and SSLv3 in
its code and never sets a minimum of its own), so a minimum of TLSv1.3 goes into the same file as
``MinProtocol = TLSv1.3``, which OpenSSL 1.1.1 and 3 apply to every context Pgpool makes (its
connections to the backends too). TLSv1.2, the default, writes nothing: the system configuration
decides (Debian's sets ``MinProtocol = TLSv1.2``). Where the file cannot be used (libssl 1.0.x,
no dynamic libssl), :func:`min_tls_note` says so.
"""

import os
import re
import shutil
from typing import Any, Dict, List, Optional, Sequence, Tuple

from dbtls_agent import fsio, nodeos, state, vocab
from dbtls_agent.roles.mysql import cipherorder

OPTIONS = ("NoRenegotiation",)
WHY = "client-initiated renegotiation off"
#: Pgpool-II's unit in pgpool.net's packages (4.1+), their older name, Debian's.
UNITS = ("pgpool.service", "pgpool-II.service", "pgpool2.service")
CONF_NAME = "dbtls-openssl.cnf"
DROPIN_NAME = "dbtls-openssl.conf"


def libssl_version(ldd_output: str) -> Optional[Sequence[int]]:
    """(major, minor) of the libssl a binary links (``libssl.so.1.1 => ...``, ``libssl.so.3``)."""
    match = re.search(r"libssl\.so\.(\d+)(?:\.(\d+))?", ldd_output)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2) or 0)


def needs_option(version: Optional[Sequence[int]]) -> bool:
    """OpenSSL 1.1.x: renegotiation by clients is on unless refused; 3.x refuses it already."""
    return version is not None and tuple(version[:2]) == (1, 1)


def reads_min_protocol(version: Optional[Sequence[int]]) -> bool:
    """OpenSSL 1.1.x and 3.x: ``MinProtocol`` (not 1.0.x, whose Red Hat soname is ``libssl.so.10``)."""
    return version is not None and (tuple(version[:2]) == (1, 1) or 3 <= version[0] < 10)


def wanted_settings(version: Optional[Sequence[int]], min_tls: Optional[str]) -> List[Tuple[str, str]]:
    """``MinProtocol`` for a minimum above the default, where this libssl reads it."""
    if vocab.tls_versions(min_tls) is None or not reads_min_protocol(version):
        return []
    return [("MinProtocol", "TLSv1.3")]


def min_tls_note(min_tls: Optional[str], wanted: Dict[str, str]) -> Optional[str]:
    """One line when the minimum asked for is not in Pgpool's OpenSSL configuration (None when it is,
    or when the default, TLSv1.2, leaves it to the system configuration)."""
    if vocab.tls_versions(min_tls) is None or "MinProtocol = TLSv1.3" in wanted.get("conf_text", ""):
        return None
    return ("Pgpool-II has no TLS minimum setting and its OpenSSL cannot take one here ({}): it accepts the "
            "TLS versions its OpenSSL allows, TLSv1.3 is not enforced".format(wanted.get("skip", "")))


def plan(run: cipherorder.Runner, min_tls: Optional[str] = None) -> Dict[str, str]:
    """Paths and texts of both files, or ``{"skip": reason}``."""
    binary = shutil.which("pgpool") or "/usr/bin/pgpool"
    code, out, err = run(["ldd", binary])
    version = libssl_version(out) if code == 0 else None
    options = OPTIONS if needs_option(version) else ()
    settings = wanted_settings(version, min_tls)
    if not options and not settings:
        what = "libssl {}".format(".".join(map(str, version))) if version else "no dynamic libssl ({})".format(
            (err or out).strip()[:80] or binary)
        return {"skip": "{}: nothing to add ({})".format(binary, what)}
    why = ", ".join(([WHY] if options else []) + (["minimum " + settings[0][1]] if settings else []))
    code, out, _ = run(["openssl", "version", "-d"])
    directory = cipherorder.openssl_dir(out) if code == 0 else None
    candidates = [os.path.join(directory, "openssl.cnf")] if directory else []
    system = next((p for p in candidates + list(cipherorder.SYSTEM_CANDIDATES) if os.path.isfile(p)), None)
    text = fsio.read_text(system) if system else None
    sections = cipherorder.parse_config(text, system, fsio.read_text, os.listdir) if system and text else {}
    shown = []
    if os.path.isdir("/run/systemd/system"):
        for name in UNITS:
            code, out, _ = run(["systemctl", "show", "-p", "Id,LoadState,ActiveState", name])
            if code == 0:
                shown.append(cipherorder.parse_systemctl_show(out))
    loaded = [s["Id"] for s in shown if s.get("LoadState") == "loaded" and s.get("Id")]
    unit = loaded[0] if loaded else UNITS[0]
    unit_dir = os.path.join(cipherorder.SYSTEMD_DIR, unit + ".d")
    conf = os.path.join(unit_dir, CONF_NAME)
    return {"unit": unit, "unit_dir": unit_dir, "conf": conf, "dropin": os.path.join(unit_dir, DROPIN_NAME),
            "conf_text": cipherorder.render_openssl_conf(system, sections, options, why, settings),
            "dropin_text": cipherorder.render_dropin(conf, why)}


def write_files(cs: state.ChangeSet, before: Dict[str, Optional[bytes]],
                run: cipherorder.Runner = nodeos.run_status, min_tls: Optional[str] = None) -> Dict[str, Any]:
    """Write both files through ``cs`` (backed up, atomic, root 0644); their bytes before this run
    go to ``before`` (the pgpool role's rollback). ``changed``: Pgpool must restart to read them;
    ``min_tls_note``: the minimum asked for could not be applied, and why."""
    wanted = plan(run, min_tls)
    note = min_tls_note(min_tls, wanted)
    if "skip" in wanted:
        # An earlier run's file (say, for a minimum of TLSv1.3 no longer asked for) goes again.
        ours = [p for p in cs.paths() if os.path.basename(p) in (CONF_NAME, DROPIN_NAME)]
        for path in ours:
            before.setdefault(path, fsio.read_bytes(path))
            if cs.restore(path) != "foreign-edit":
                cs.forget(path)
        if ours:
            cipherorder.reload_units(run)
        return {"changed": bool(ours), "skip": wanted["skip"], "min_tls_note": note}
    if not os.path.isdir(wanted["unit_dir"]):
        fsio.ensure_dir(wanted["unit_dir"], 0o755)
    owner = (0, 0) if os.geteuid() == 0 else None
    changed = False
    for path, text in ((wanted["conf"], wanted["conf_text"]), (wanted["dropin"], wanted["dropin_text"])):
        old = fsio.read_bytes(path)
        if old != text.encode():
            before.setdefault(path, old)
        changed = cs.write(path, text.encode(), mode=0o644, owner=owner) or changed
    if changed:
        cipherorder.reload_units(run)
    return {"changed": changed, "unit": wanted["unit"], "openssl_conf": wanted["conf"], "min_tls_note": note}


def removed(files: List[Dict[str, Any]], run: cipherorder.Runner = nodeos.run_status) -> bool:
    """After disable restored the role's files: True when ours were deleted (Pgpool must restart);
    their drop-in folder goes too when it is empty."""
    ours = [f["path"] for f in files if os.path.basename(f["path"]) in (CONF_NAME, DROPIN_NAME)
            and f["result"] != "unchanged"]
    for folder in sorted({os.path.dirname(p) for p in ours}):
        try:
            os.rmdir(folder)
        except OSError:
            pass  # not empty: someone else's drop-ins live there too
    if ours:
        cipherorder.reload_units(run)
    return bool(ours)
