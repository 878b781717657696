"""deploy/docker/verify_image.py: the build-time checks that fail a wrong serving image."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.deploy.conftest import load_module

ORT_GPU_CUDA13 = [
    "numpy>=1.21.6",
    'nvidia-cuda-runtime~=13.0; extra == "cuda"',
    'nvidia-cudnn-cu13~=9.0; extra == "cudnn"',
]
ORT_GPU_CUDA12 = ['nvidia-cuda-runtime-cu12~=12.0; extra == "cuda"']


@pytest.fixture(scope="module")
def verify() -> ModuleType:
    return load_module("deploy/docker/verify_image.py")


def environment(verify: ModuleType, **overrides: object) -> object:
    fields: dict[str, object] = {
        "installed": {"onnxruntime-gpu": ORT_GPU_CUDA13, "danmaku-classifier": []},
        "importable": frozenset(),
        "providers": ("CUDAExecutionProvider", "CPUExecutionProvider"),
        "cuda_version": "13.0.1",
        "console_scripts": frozenset({"danmaku-serve"}),
    }
    fields.update(overrides)
    return verify.Environment(**fields)


def test_cuda_major_is_read_from_either_requirement_style(verify: ModuleType) -> None:
    assert verify.cuda_major_required(ORT_GPU_CUDA13) == 13
    assert verify.cuda_major_required(ORT_GPU_CUDA12) == 12
    assert verify.cuda_major_required(["numpy", "protobuf"]) is None
    assert verify.cuda_major_of_image("13.0.1") == 13
    assert verify.cuda_major_of_image(None) is None


def test_a_correct_gpu_image_passes(verify: ModuleType) -> None:
    assert verify.find_problems("gpu", environment(verify)) == []


def test_a_cuda_mismatch_fails_the_build_with_the_fix(verify: ModuleType) -> None:
    problems = verify.find_problems("gpu", environment(verify, cuda_version="12.6.3"))
    assert len(problems) == 1 and "needs CUDA 13" in problems[0] and "CUDA_IMAGE" in problems[0]


def test_gpu_image_without_cuda_provider_or_cuda_base_fails(verify: ModuleType) -> None:
    problems = verify.find_problems("gpu", environment(verify, providers=("CPUExecutionProvider",), cuda_version=None))
    assert any("no CUDAExecutionProvider" in problem for problem in problems)
    assert any("CUDA_VERSION is not set" in problem for problem in problems)


def test_torch_or_both_onnxruntime_builds_fail(verify: ModuleType) -> None:
    installed = {"onnxruntime": [], "onnxruntime-gpu": ORT_GPU_CUDA13}
    problems = verify.find_problems(
        "cpu", environment(verify, installed=installed, importable=frozenset({"torch"}), cuda_version=None)
    )
    assert any(problem.startswith("torch is importable") for problem in problems)
    assert any("onnxruntime-gpu is installed beside onnxruntime" in problem for problem in problems)


def test_missing_or_broken_console_script_fails(verify: ModuleType) -> None:
    assert any(
        "not installed" in p for p in verify.find_problems("gpu", environment(verify, console_scripts=frozenset()))
    )
    broken = environment(verify, console_script_error="ModuleNotFoundError: No module named 'service.cli'")
    assert any("does not import" in problem for problem in verify.find_problems("gpu", broken))


def test_gather_reads_this_interpreter(verify: ModuleType) -> None:
    """The development venv is no serving image: it has torch (train extra) and must be reported as such."""
    pytest.importorskip("torch")
    gathered = verify.gather()
    assert "CPUExecutionProvider" in gathered.providers
    problems = verify.find_problems("cpu", gathered)
    assert any(problem.startswith("torch is importable") for problem in problems)
    assert verify.main(["--variant", "cpu"]) == 1
