"""Pgpool-II: no client-initiated TLS renegotiation, through an OpenSSL configuration of its own.

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
"""

import os
import re
import shutil
from typing import Any, Dict, List, Optional, Sequence

from dbtls_agent import fsio, nodeos, state
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


def plan(run: cipherorder.Runner) -> Dict[str, str]:
    """Paths and texts of both files, or ``{"skip": reason}``."""
    binary = shutil.which("pgpool") or "/usr/bin/pgpool"
    code, out, err = run(["ldd", binary])
    version = libssl_version(out) if code == 0 else None
    if not needs_option(version):
        what = "libssl {}".format(".".join(map(str, version))) if version else "no dynamic libssl ({})".format(
            (err or out).strip()[:80] or binary)
        return {"skip": "{}: nothing to add ({})".format(binary, what)}
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
            "conf_text": cipherorder.render_openssl_conf(system, sections, OPTIONS, WHY),
            "dropin_text": cipherorder.render_dropin(conf, WHY)}


def write_files(cs: state.ChangeSet, before: Dict[str, Optional[bytes]],
                run: cipherorder.Runner = nodeos.run_status) -> Dict[str, Any]:
    """Write both files through ``cs`` (backed up, atomic, root 0644); their bytes before this run
    go to ``before`` (the pgpool role's rollback). ``changed``: Pgpool must restart to read them."""
    wanted = plan(run)
    if "skip" in wanted:
        return {"changed": False, "skip": wanted["skip"]}
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
    return {"changed": changed, "unit": wanted["unit"], "openssl_conf": wanted["conf"]}


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
