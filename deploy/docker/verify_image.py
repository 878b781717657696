"""Build-time checks of the serving image's virtualenv (run by the Dockerfile's builder stage).

A wrong image should fail `docker build`, not fall back to CPU in production. Checked:
- no torch / transformers (the serving image is ONNX Runtime only);
- exactly the ONNX Runtime build of the variant (`onnxruntime` for cpu, `onnxruntime-gpu` for gpu, never both);
- the gpu build has the CUDA execution provider compiled in, and the CUDA major version its wheel requires
  matches the CUDA major of the base image (``CUDA_VERSION``, set by the nvidia/cuda images);
- the `danmaku-serve` console script is installed and importable.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

FORBIDDEN_MODULES = ("torch", "transformers")
RUNTIME_DISTRIBUTION = {"cpu": "onnxruntime", "gpu": "onnxruntime-gpu"}
CONSOLE_SCRIPT = "danmaku-serve"
# `nvidia-cuda-runtime~=13.0` (CUDA 13 wheels) or `nvidia-cuda-runtime-cu12` (CUDA 12 wheels).
_CUDA_RUNTIME_REQUIREMENT = re.compile(
    r"^nvidia-cuda-runtime(?:-cu(?P<suffix>\d+))?\s*(?:\(?\s*(?:~=|==|>=)\s*(?P<version>\d+))?", re.IGNORECASE
)


@dataclass(frozen=True)
class Environment:
    """What the checks look at, gathered once so the checks stay pure (and testable outside an image)."""

    installed: Mapping[str, list[str]]  # distribution name (lower case) -> its Requires-Dist lines
    importable: frozenset[str]
    providers: tuple[str, ...]
    cuda_version: str | None
    console_scripts: frozenset[str] = field(default_factory=frozenset)
    console_script_error: str | None = None


def cuda_major_required(requirements: Iterable[str]) -> int | None:
    """CUDA major version an onnxruntime-gpu wheel needs, from its `nvidia-cuda-runtime*` requirement."""
    for requirement in requirements:
        match = _CUDA_RUNTIME_REQUIREMENT.match(requirement.strip())
        if match is None:
            continue
        major = match.group("suffix") or match.group("version")
        if major is not None:
            return int(major)
    return None


def cuda_major_of_image(cuda_version: str | None) -> int | None:
    """Major of ``CUDA_VERSION`` (e.g. ``13.0.1`` -> 13); None when unset or unparsable."""
    if not cuda_version:
        return None
    head = cuda_version.strip().split(".", 1)[0]
    return int(head) if head.isdigit() else None


def find_problems(variant: str, environment: Environment) -> list[str]:
    """Every reason the environment is not a valid serving image of ``variant`` (empty when it is)."""
    if variant not in RUNTIME_DISTRIBUTION:
        return [f"unknown variant {variant!r}: expected one of {sorted(RUNTIME_DISTRIBUTION)}"]
    problems = [
        f"{module} is importable: the serving image must not contain it (install only the `{variant}` extra)"
        for module in FORBIDDEN_MODULES
        if module in environment.importable
    ]
    wanted = RUNTIME_DISTRIBUTION[variant]
    for name in RUNTIME_DISTRIBUTION.values():
        if name == wanted and name not in environment.installed:
            problems.append(f"{name} is not installed (the `{variant}` extra should bring it)")
        if name != wanted and name in environment.installed:
            problems.append(f"{name} is installed beside {wanted}: the two builds clash, install one extra only")
    if variant == "gpu":
        if "CUDAExecutionProvider" not in environment.providers:
            problems.append(f"onnxruntime offers {list(environment.providers)}: no CUDAExecutionProvider")
        required = cuda_major_required(environment.installed.get(wanted, []))
        image = cuda_major_of_image(environment.cuda_version)
        if image is None:
            problems.append("CUDA_VERSION is not set: the gpu variant must build FROM an nvidia/cuda image")
        elif required is not None and required != image:
            problems.append(
                f"{wanted} needs CUDA {required} but the base image has CUDA {environment.cuda_version}: "
                f"set --build-arg CUDA_IMAGE to a CUDA {required}.x cudnn-runtime image (or pin {wanted})"
            )
    elif "CPUExecutionProvider" not in environment.providers:
        problems.append(f"onnxruntime offers {list(environment.providers)}: no CPUExecutionProvider")
    if CONSOLE_SCRIPT not in environment.console_scripts:
        problems.append(f"console script {CONSOLE_SCRIPT!r} is not installed")
    elif environment.console_script_error is not None:
        problems.append(f"console script {CONSOLE_SCRIPT!r} does not import: {environment.console_script_error}")
    return problems


def gather() -> Environment:
    """Read the facts the checks need from the running interpreter."""
    installed = {
        distribution.metadata["Name"].lower(): list(distribution.requires or [])
        for distribution in importlib.metadata.distributions()
    }
    importable = frozenset(name for name in FORBIDDEN_MODULES if importlib.util.find_spec(name) is not None)
    try:
        import onnxruntime

        providers = tuple(onnxruntime.get_available_providers())
    except ImportError:
        providers = ()
    scripts = importlib.metadata.entry_points(group="console_scripts", name=CONSOLE_SCRIPT)
    error = None
    for script in scripts:
        try:
            script.load()
        except Exception as exc:  # any import failure is a broken image
            error = f"{type(exc).__name__}: {exc}"
    return Environment(
        installed=installed,
        importable=importable,
        providers=providers,
        cuda_version=os.environ.get("CUDA_VERSION"),
        console_scripts=frozenset(script.name for script in scripts),
        console_script_error=error,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--variant", required=True, choices=sorted(RUNTIME_DISTRIBUTION))
    arguments = parser.parse_args(argv)
    problems = find_problems(arguments.variant, gather())
    for problem in problems:
        print(f"verify_image: {problem}", file=sys.stderr)
    if not problems:
        print(f"verify_image: {arguments.variant} image OK")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
