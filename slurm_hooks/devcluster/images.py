"""Build the dev cluster's images, tagged with a hash of their inputs (cached builds are free).

* ``foresight-base:<suite>-<hash>``: ``debootstrap --variant=minbase <suite>`` + ``docker import``
  (no registry is needed or used);
* ``foresight-slurm:<version>-<hash>``: every Slurm role (``docker/slurm/Dockerfile``);
* ``foresight-service:<version>-<hash>``: this project installed with ``pip install .``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path

from predictor.state import PROJECT_ROOT

from .docker import DockerError, DockerUnavailable, docker, image_exists

DOCKER_DIR = PROJECT_ROOT / "docker"
MIRROR = "http://deb.debian.org/debian"
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
#: Slurm version -> Debian suite whose ``slurm-wlm`` package carries it.
SUITES: dict[str, str] = {"22.05": "bookworm", "24.11": "trixie"}
#: What goes into the service image: the project's packages and its metadata.
SERVICE_SOURCES = (
    "pyproject.toml", "setup.py", "README.md", "predictor", "policies", "energy", "slurm_hooks"
)

Progress = Callable[[str], None]


def _hash_files(paths: Iterable[Path], extra: str = "") -> str:
    """A short content hash over files (recursively for folders), skipping caches."""
    h = hashlib.sha256(extra.encode())
    for root in paths:
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for f in files:
            if not f.is_file() or "__pycache__" in f.parts or f.suffix in (".pyc", ".so"):
                continue
            h.update(str(f.relative_to(PROJECT_ROOT)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


def suite_for(version: str) -> str:
    """The Debian suite for a Slurm version; ValueError naming the known ones otherwise."""
    try:
        return SUITES[version]
    except KeyError:
        raise ValueError(f"unknown Slurm version {version!r}; known: {', '.join(SUITES)}") from None


def base_tag(suite: str) -> str:
    """Tag of the debootstrap base image for ``suite``."""
    recipe = f"debootstrap --variant=minbase {suite} {MIRROR}"
    return f"foresight-base:{suite}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def slurm_tag(version: str) -> str:
    """Tag of the Slurm image for ``version`` (hash of base tag, Dockerfile and entrypoints)."""
    digest = _hash_files(
        [DOCKER_DIR / "slurm" / "Dockerfile", DOCKER_DIR / "entrypoints"],
        extra=base_tag(suite_for(version)),
    )
    return f"foresight-slurm:{version}-{digest}"


def service_tag(version: str) -> str:
    """Tag of the service image (hash of the Slurm tag, its Dockerfile and the project source)."""
    sources = [PROJECT_ROOT / s for s in SERVICE_SOURCES if (PROJECT_ROOT / s).exists()]
    digest = _hash_files([DOCKER_DIR / "service" / "Dockerfile", *sources], slurm_tag(version))
    return f"foresight-service:{version}-{digest}"


def build_base(suite: str, progress: Progress = print) -> str:
    """Build (or reuse) the debootstrap base image for ``suite``; return its tag."""
    tag = base_tag(suite)
    if image_exists(tag):
        return tag
    if shutil.which("debootstrap") is None:
        raise DockerUnavailable("debootstrap is not installed (run scripts/install-docker.sh)")
    progress(f"debootstrap --variant=minbase {suite} (about a minute)")
    with tempfile.TemporaryDirectory(prefix=f"foresight-{suite}-") as tmp:
        root = Path(tmp) / "root"
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", suite, str(root), MIRROR],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.splitlines()[-5:] + proc.stderr.splitlines()[-5:])
            raise DockerError(f"debootstrap {suite} failed (is {MIRROR} reachable?):\n{tail}")
        progress(f"docker import -> {tag}")
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(
            ["docker", "import", "-", tag],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
        if imp.returncode != 0 or tar.returncode != 0:
            raise DockerError(f"docker import of the {suite} base failed: {imp.stderr.strip()}")
    return tag


def _build(
    tag: str, dockerfile: Path, context: Path, build_args: dict[str, str], progress: Progress
) -> None:
    progress(f"docker build {tag}")
    args = ["build", "--network", "host", "--force-rm", "-q", "-f", str(dockerfile), "-t", tag]
    for key, value in build_args.items():
        args += ["--build-arg", f"{key}={value}"]
    docker(*args, str(context), timeout=1800)


def build_slurm(version: str, progress: Progress = print) -> str:
    """Build (or reuse) the Slurm image for ``version``; return its tag."""
    tag = slurm_tag(version)
    if image_exists(tag):
        return tag
    base = build_base(suite_for(version), progress)
    _build(tag, DOCKER_DIR / "slurm" / "Dockerfile", DOCKER_DIR, {"BASE": base}, progress)
    return tag


def build_service(version: str, progress: Progress = print) -> str:
    """Build (or reuse) the Foresight service image (``pip install .`` of this tree)."""
    tag = service_tag(version)
    if image_exists(tag):
        return tag
    slurm = build_slurm(version, progress)
    with tempfile.TemporaryDirectory(prefix="foresight-service-") as tmp:
        ctx = Path(tmp)
        src = ctx / "src"
        src.mkdir()
        for name in SERVICE_SOURCES:
            path = PROJECT_ROOT / name
            if path.is_dir():
                skip = shutil.ignore_patterns("__pycache__", "*.so")  # built here, not there
                shutil.copytree(path, src / name, ignore=skip)
            elif path.exists():
                shutil.copy2(path, src / name)
        if not (src / "README.md").exists():  # pyproject names it as the readme
            (src / "README.md").write_text("Foresight\n")
        (ctx / "requirements.txt").write_text("\n".join(requirements()) + "\n")
        ca = ctx / "ca"
        ca.mkdir()
        for cert in HOST_CA_DIR.glob("*.crt"):  # so pip trusts what the host trusts
            shutil.copy2(cert, ca / cert.name)
        _build(tag, DOCKER_DIR / "service" / "Dockerfile", ctx, {"SLURM_IMAGE": slurm}, progress)
    remove_stale(f"foresight-service:{version}-", keep=[tag])  # each source change adds one
    return tag


def requirements() -> list[str]:
    """The project's runtime dependencies, from ``pyproject.toml``."""
    with (PROJECT_ROOT / "pyproject.toml").open("rb") as fh:
        return list(tomllib.load(fh)["project"]["dependencies"])


def remove_stale(prefix: str, keep: Iterable[str]) -> list[str]:
    """Untag images named ``prefix*`` except ``keep`` (in-use ones stay); return those removed."""
    keep = set(keep)
    out = docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    stale = [t for t in out if t.startswith(prefix) and t not in keep]
    return [t for t in stale if docker("rmi", t, check=False).returncode == 0]
