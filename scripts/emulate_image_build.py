"""Run the Dockerfile's builder stage (CPU variant) on this machine, without Docker, from the Dockerfile's own text.

Docker cannot run here. This executes the real ENV / WORKDIR / COPY / RUN instructions of the stages the builder
is made of (`base-cpu` -> `base` -> `builder`) with `/bin/sh -c`, as Docker would, but with the image's absolute
paths (/opt/venv, /wheels, /src, ...) moved under a scratch folder and the host's python3 standing in for the
python:3.11-slim base. It therefore exercises: the wheel build, the `.[cpu]` install into the venv, and
deploy/docker/verify_image.py. With --serve-models it then starts the installed `danmaku-serve` with the image's
CMD arguments (host/port changed to loopback) and runs the image's HEALTHCHECK script against it.

Needs network access to PyPI (pip resolves the dependencies), so it is a script, not a test:
    python scripts/emulate_image_build.py [--keep] [--serve-models models/]
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dockerfile_parse import DockerfileParser

REPO = Path(__file__).resolve().parents[1]
# The image paths the builder stage writes to; each is moved under the scratch root.
IMAGE_PATHS = ("/opt/venv", "/wheels", "/src", "/usr/local/share/danmaku")
STAGES = ("base-cpu", "base", "builder")
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def relocate(text: str, root: Path) -> str:
    """Prefix every image path in ``text`` with ``root``."""
    for path in IMAGE_PATHS:
        text = re.sub(rf"(?<![\w/]){re.escape(path)}(?=/|\b|$)", f"{root}{path}", text)
    return text


def expand(text: str, variables: dict[str, str]) -> str:
    """Dockerfile-style ${VAR} substitution (ENV and ARG values)."""
    return _VARIABLE.sub(lambda match: variables.get(match.group(1) or match.group(2), ""), text)


def stage_instructions(dockerfile: Path, wanted: tuple[str, ...]) -> list[dict[str, str]]:
    """The instructions of the named stages, in file order."""
    parser = DockerfileParser(path=str(dockerfile))
    current = None
    selected = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            words = instruction["value"].split()
            current = words[-1] if len(words) >= 3 and words[-2].upper() == "AS" else None
            continue
        if current in wanted and instruction["instruction"] in {"ENV", "WORKDIR", "COPY", "RUN", "ARG"}:
            selected.append(instruction)
    return selected


def copy(source: Path, target: Path, *, into_folder: bool) -> None:
    """Docker COPY semantics: a folder's content goes into the target; a file into it, or onto it."""
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    elif into_folder:
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / source.name)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def run_builder(root: Path, variant: str) -> dict[str, str]:
    """Execute the builder stage under ``root``; return the environment it ends with."""
    variables = {"VARIANT": variant, "PATH": os.environ["PATH"]}
    environment = dict(os.environ)
    workdir = root
    for instruction in stage_instructions(REPO / "Dockerfile", STAGES):
        kind, value = instruction["instruction"], instruction["value"]
        if kind == "ENV":
            for pair in shlex.split(value):
                key, _, raw = pair.partition("=")
                variables[key] = relocate(expand(raw, variables), root)
                environment[key] = variables[key]
        elif kind == "ARG":
            key, _, default = value.partition("=")
            variables.setdefault(key, default)
        elif kind == "WORKDIR":
            workdir = Path(relocate(value, root))
            workdir.mkdir(parents=True, exist_ok=True)
        elif kind == "COPY":
            *sources, destination = shlex.split(expand(value, variables))
            target = Path(relocate(destination, root))
            target = target if target.is_absolute() else workdir / target
            into_folder = destination.endswith("/") or len(sources) > 1
            for source in sources:
                copy(REPO / source, target, into_folder=into_folder)
        elif kind == "RUN":
            command = relocate(value, root)
            print(f"+ RUN {command}", flush=True)
            subprocess.run(["/bin/sh", "-c", command], cwd=workdir, env=environment | variables, check=True)
    return environment | variables


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_and_check(environment: dict[str, str], models: Path) -> None:
    """Start `danmaku-serve` the way the image's CMD does, wait for the HEALTHCHECK to pass, then SIGTERM it."""
    port = free_port()
    venv = Path(environment["VIRTUAL_ENV"])
    command = [str(venv / "bin" / "danmaku-serve"), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--models-dir", str(models)]
    print(f"+ {shlex.join(command)}", flush=True)
    server = subprocess.Popen(command, env=environment)
    check = [str(venv / "bin" / "python"), str(REPO / "deploy" / "docker" / "healthcheck.py")]
    health_env = environment | {"DANMAKU_HEALTHCHECK_URL": f"http://127.0.0.1:{port}/healthz"}
    try:
        deadline = time.monotonic() + 120
        while subprocess.run(check, env=health_env, check=False).returncode != 0:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"danmaku-serve did not become healthy (exit code {server.poll()})")
            time.sleep(1)
        print("healthcheck passed", flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
        print(f"danmaku-serve exited with {code} after SIGTERM", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder and print its path")
    parser.add_argument("--serve-models", type=Path, help="a models dir: start the built service on it")
    arguments = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="danmaku-image-"))
    try:
        environment = run_builder(root, "cpu")
        if arguments.serve_models is not None:
            serve_and_check(environment, arguments.serve_models.resolve())
    finally:
        if arguments.keep:
            print(f"scratch root kept at {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
