"""Build the simulated platform's images without a container registry.

The base image of each Debian release comes from ``debootstrap --variant=minbase`` imported with
``docker import`` (or from ``debian:<release>`` when the user has a registry and sets
``DBTLS_BASE_FROM_REGISTRY=1``). Node images are ordinary ``docker build`` s on top of it, so
docker's own layer cache makes a second build cheap.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import docker
import docker.errors

from dbtls.sim.errors import SimError

IMAGES_DIR = Path(__file__).parent / "images"
RELEASES = ("bullseye", "bookworm", "trixie")
DEFAULT_RELEASE = "bookworm"
ROLE_IMAGES = ("postgres", "pgpool", "mariadb", "proxysql", "client")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Debian's python3 per release: the ProxySQL double's compiled wheels must match it.
RELEASE_PYTHON = {"bullseye": "3.9", "bookworm": "3.11", "trixie": "3.13"}

Progress = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def repo_root() -> Path:
    """The checkout the generator runs from (the ProxySQL double's sources live in tests/)."""
    env = os.environ.get("DBTLS_REPO")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists() and (parent / "node-scripts").is_dir():
            return parent
    raise SimError("cannot find the dbtls repository; set DBTLS_REPO to its path")


def debian_mirror() -> str:
    """The Debian mirror this machine's apt already uses, so debootstrap goes where apt may go."""
    if os.environ.get("DBTLS_DEBIAN_MIRROR"):
        return os.environ["DBTLS_DEBIAN_MIRROR"]
    candidates = [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        mirror = mirror_from_sources(text)
        if mirror:
            return mirror
    return DEFAULT_MIRROR


def mirror_from_sources(text: str) -> str | None:
    """First main-archive URI in a deb822 ``.sources`` or one-line ``sources.list`` text."""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("URIs:"):
            for uri in line.split()[1:]:
                if not uri.rstrip("/").endswith("-security"):
                    return uri.rstrip("/")
        elif line.startswith("deb ") and "-security" not in line:
            parts = [p for p in line.split() if not p.startswith("[")]
            if len(parts) >= 2:
                return parts[1].rstrip("/")
    return None


def base_tag(release: str) -> str:
    return f"dbtls/base:{release}"


def role_tag(role: str, release: str) -> str:
    return f"dbtls/{role}:{release}"


def _image_exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def ensure_base(client: docker.DockerClient, release: str, progress: Progress = _stderr) -> str:
    """Create ``dbtls/base:<release>`` once; later calls find it and return at once."""
    if release not in RELEASES:
        raise SimError(f"unknown release {release!r}; choose one of {', '.join(RELEASES)}")
    tag = base_tag(release)
    if _image_exists(client, tag):
        return tag
    if os.environ.get("DBTLS_BASE_FROM_REGISTRY") == "1":
        progress(f"pulling debian:{release} for {tag}")
        image = client.images.pull("debian", tag=release)
        image.tag("dbtls/base", tag=release)
        return tag
    if not shutil.which("debootstrap"):
        raise SimError("debootstrap is not installed (apt-get install debootstrap), "
                       "or set DBTLS_BASE_FROM_REGISTRY=1 to use debian:<release>")
    mirror = debian_mirror()
    progress(f"debootstrap --variant=minbase {release} from {mirror} (once per release)")
    with tempfile.TemporaryDirectory(prefix=f"dbtls-rootfs-{release}-", dir="/var/tmp") as root:
        run = subprocess.run(
            ["debootstrap", "--variant=minbase", release, root, mirror],
            capture_output=True, text=True, check=False,
        )
        if run.returncode != 0:
            tail = (run.stdout + run.stderr).strip().splitlines()[-5:]
            raise SimError(f"debootstrap {release} failed: {' | '.join(tail)}")
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(["docker", "import", "-", tag], stdin=tar.stdout,
                             capture_output=True, text=True, check=False)
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
        if imp.returncode != 0 or tar.returncode != 0:
            raise SimError(f"docker import of {release} failed: {imp.stderr.strip()}")
    return tag


def _build(client: docker.DockerClient, context: Path, tag: str, buildargs: dict[str, str],
           progress: Progress) -> None:
    """docker build with streamed progress; a failed step raises with the step's last output."""
    progress(f"building {tag}")
    last: list[str] = []
    for chunk in client.api.build(path=str(context), tag=tag, buildargs=buildargs, rm=True,
                                  forcerm=True, decode=True):
        if "stream" in chunk:
            for line in chunk["stream"].splitlines():
                if line.strip():
                    last = (last + [line])[-15:]
                    if line.startswith("Step "):
                        progress(f"  {tag}: {line.strip()}")
        if "error" in chunk:
            detail = "\n".join(last)
            raise SimError(f"building {tag} failed: {chunk['error'].strip()}\n{detail}")


def _wheelhouse(release: str, progress: Progress) -> Path:
    """Wheels for the ProxySQL admin double, downloaded once per release on the host.

    mysql-mimic ships compiled wheels per CPython version, so each release gets the wheels of its
    own python3; the containers then install them offline.
    """
    root = repo_root()
    cache = root / ".cache" / "wheels" / release
    requirements = root / "tests" / "doubles" / "requirements.txt"
    stamp = cache / ".requirements"
    wanted = requirements.read_text()
    if stamp.exists() and stamp.read_text() == wanted:
        return cache
    progress(f"downloading wheels for the ProxySQL admin double (python {RELEASE_PYTHON[release]})")
    if cache.exists():
        shutil.rmtree(cache)
    cache.mkdir(parents=True)
    run = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--no-deps",
         "--python-version", RELEASE_PYTHON[release], "--platform", f"manylinux2014_{os.uname().machine}",
         "-d", str(cache), "-r", str(requirements)],
        capture_output=True, text=True, check=False,
    )
    if run.returncode != 0:
        raise SimError(f"pip download for the ProxySQL double failed: {run.stderr.strip()[-400:]}")
    stamp.write_text(wanted)
    return cache


def _context_for(role: str, release: str, progress: Progress, workdir: Path) -> Path:
    """Assemble a build context: the role's folder, plus the double's code and wheels for proxysql."""
    context = workdir / role
    shutil.copytree(IMAGES_DIR / role, context)
    if role == "proxysql":
        root = repo_root()
        shutil.copytree(root / "tests" / "doubles" / "proxysql_admin_double",
                        context / "proxysql_admin_double",
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(_wheelhouse(release, progress), context / "wheels",
                        ignore=shutil.ignore_patterns(".requirements"))
    return context


def ensure_images(client: docker.DockerClient, release: str, roles: Iterable[str],
                  progress: Progress = _stderr) -> dict[str, str]:
    """Build (or reuse from docker's cache) the node images of ``roles`` for ``release``."""
    base = ensure_base(client, release, progress)
    common = role_tag("node-common", release)
    tags: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="dbtls-build-") as tmp:
        work = Path(tmp)
        _build(client, _context_for("common", release, progress, work), common, {"BASE": base}, progress)
        for role in dict.fromkeys(roles):
            if role not in ROLE_IMAGES:
                raise SimError(f"unknown node role {role!r}")
            tag = role_tag(role, release)
            _build(client, _context_for(role, release, progress, work), tag, {"COMMON": common}, progress)
            tags[role] = tag
    return tags
