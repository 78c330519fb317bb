"""`choreograph image`: an OCI image of the team repository on the choreograph base image,
built without a container engine, as the repository's Dockerfile builds it with one.

The base image (`make image` in choreograph's repository, or `skopeo copy
docker://REGISTRY/choreograph:V oci:base:V`) is an OCI layout; this adds one layer: the team's
wheel installed into the base's venv (pip in the image's own root filesystem, so compiled
dependencies match its Python), and the team's contracts, processes and policies in place of the
reference ones. The image runs `python -m <service>`; the service module is its command, so a
chart can run any other service of the repository from the same image.

Needs root (file owners in the layer), umoci and chroot, as the base image build does.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from choreograph.project import Project, ProjectError, require_project

BASE_ENV = "CHOREOGRAPH_BASE_IMAGE"
CONTENT = ("schemas", "processes", "policies")


class ImageError(Exception):
    """The image cannot be built; says what to change."""


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser(
        "image", help="an OCI image of this repository's services, on the choreograph base image"
    )
    parser.add_argument(
        "--base",
        default=os.environ.get(BASE_ENV),
        help=f"the base image as OCI_LAYOUT:TAG, e.g. base:0.1.0 ({BASE_ENV})",
    )
    parser.add_argument("--out", type=Path, default=Path("dist/image"), help="OCI layout to write")
    parser.add_argument("--tag", help="the image's tag (default: the repository's version)")
    parser.add_argument(
        "--service",
        help="the module the image runs, e.g. acme_loyalty.loyalty (default: the "
        "repository's only service)",
    )
    parser.add_argument(
        "--wheels", type=Path, help="a folder of wheels for dependencies the base image lacks"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(run=run_image)


def run_image(args: argparse.Namespace) -> int:
    try:
        project = require_project("image")
        layout, base_tag = _base(args.base)
        service = args.service or _only_service(project)
        tag = args.tag or _version(project)
        _tools()
        built = build(project, layout, base_tag, args.out, tag, service, args.wheels)
    except (ProjectError, ImageError) as err:
        print(f"choreograph image: {err}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps({"layout": str(built), "tag": tag, "runs": service}))
        return 0
    print(f"built {built}:{tag} (runs python -m {service})")
    print(f"push it: skopeo copy oci:{built}:{tag} docker://REGISTRY/{project.root.name}:{tag}")
    return 0


def _base(spec: str | None) -> tuple[Path, str]:
    if not spec:
        raise ImageError(
            f"which base image? pass --base OCI_LAYOUT:TAG (or set {BASE_ENV}); get one with "
            "`skopeo copy docker://REGISTRY/choreograph:VERSION oci:base:VERSION`"
        )
    path, _, tag = spec.rpartition(":")
    if not path or not tag:
        raise ImageError(f"--base {spec}: give it as OCI_LAYOUT:TAG, e.g. base:0.1.0")
    layout = Path(path)
    if not (layout / "index.json").is_file():
        raise ImageError(f"{layout} is not an OCI image layout (it has no index.json)")
    return layout, tag


def _only_service(project: Project) -> str:
    found = sorted(
        main.parent for main in project.services.glob("*/__main__.py") if main.parent.is_dir()
    )
    if len(found) != 1:
        names = ", ".join(project.module_of(f) for f in found) or "none yet"
        raise ImageError(
            f"which service does the image run? pass --service MODULE (services here: {names})"
        )
    return project.module_of(found[0])


def _version(project: Project) -> str:
    data = tomllib.loads((project.root / "pyproject.toml").read_text())
    return str(data.get("project", {}).get("version", "latest"))


def _tools() -> None:
    missing = [tool for tool in ("umoci", "chroot") if shutil.which(tool) is None]
    if missing:
        raise ImageError(f"missing {', '.join(missing)} (Debian packages umoci, coreutils)")
    if os.geteuid() != 0:
        raise ImageError("run as root: the image's files keep their owners only then")


def _run(*command: str, what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise ImageError(f"{what} failed: {(done.stderr or done.stdout).strip()[-2000:]}")


def build(
    project: Project,
    layout: Path,
    base_tag: str,
    out: Path,
    tag: str,
    service: str,
    wheels: Path | None,
) -> Path:
    """The OCI layout at `out` holding `tag`: `base_tag` of `layout` plus the team's layer."""
    with tempfile.TemporaryDirectory(prefix="choreograph-image.") as scratch:
        work = Path(scratch)
        _run(
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(work / "wheels"),
            str(project.root),
            what="building the repository's wheel",
        )
        (wheel,) = sorted((work / "wheels").glob("*.whl"))
        if out.resolve() != layout.resolve():
            shutil.rmtree(out, ignore_errors=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(layout, out)
        bundle = work / "bundle"
        _run(
            "umoci",
            "unpack",
            "--image",
            f"{out}:{base_tag}",
            str(bundle),
            what=f"unpacking {layout}:{base_tag}",
        )
        rootfs = bundle / "rootfs"
        if not (rootfs / "app/venv/bin/pip").exists():
            raise ImageError(f"{layout}:{base_tag} is not a choreograph base image (no /app/venv)")
        inside = rootfs / "tmp/team-wheels"
        shutil.copytree(work / "wheels", inside)
        if wheels is not None:
            for extra in wheels.glob("*.whl"):
                shutil.copy2(extra, inside)
        _run(
            "chroot",
            str(rootfs),
            "/usr/bin/env",
            "-i",
            "PATH=/usr/bin:/bin",
            "/app/venv/bin/pip",
            "install",
            "--quiet",
            "--no-index",
            "--no-cache-dir",
            "--find-links",
            "/tmp/team-wheels",
            f"/tmp/team-wheels/{wheel.name}",
            what="installing the repository into the image (a dependency the base image "
            "lacks needs --wheels)",
        )
        shutil.rmtree(inside)
        for folder in CONTENT:
            target = rootfs / "app" / folder
            shutil.rmtree(target, ignore_errors=True)
            source = project.root / folder
            if source.is_dir():
                shutil.copytree(source, target)
        _run("umoci", "repack", "--image", f"{out}:{tag}", str(bundle), what="packing the layer")
        _run(
            "umoci",
            "config",
            "--image",
            f"{out}:{tag}",
            "--config.entrypoint",
            "python",
            "--config.entrypoint",
            "-m",
            "--config.cmd",
            service,
            "--config.label",
            f"org.opencontainers.image.title={project.root.name}",
            "--config.label",
            f"org.opencontainers.image.version={tag}",
            what="configuring the image",
        )
        if tag != base_tag:
            _run("umoci", "rm", "--image", f"{out}:{base_tag}", what="dropping the base tag")
        _run("umoci", "gc", "--layout", str(out), what="collecting unused blobs")
    return out
