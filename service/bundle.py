"""The model bundle: the one contract between ``training/`` (which writes it) and ``service/``.

A bundle is a directory::

    models/<name>/
        model.onnx        dynamic axes (batch, sequence); logits per head
        tokenizer.json    the fast tokenizer used at training time (+ its config files)
        bundle.json       ``BundleMetadata`` below

Two tasks: an ``emotion`` bundle (heads ``main`` and usually ``sub``) and an ``information`` bundle
(one sigmoid head labelled ``information``, taking the ``features`` input). An emotion bundle may also
carry the information head, named ``information``, on the same encoder (a *joint* bundle,
``carries_information_head``); it then takes the ``features`` input like an information bundle, and
the service needs no information bundle. A bundle takes ``features`` exactly when it has an
information head (``takes_features``).

``load_bundle`` refuses a bundle whose metadata is missing or inconsistent with a message that
names the file and the problem; every file it names (and ``bundle.json`` itself) must resolve inside
the bundle directory: an absolute name, a ``..`` or a symlink leading out is refused. Checks that
need ONNX Runtime (the graph's input names and output widths) live in ``service/model.py``;
everything checkable from files alone lives here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.text import TEXT_FEATURE_NAMES, Preprocessing

BUNDLE_FILE = "bundle.json"
SCHEMA_VERSION = 1
TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
FEATURES_INPUT = "features"
INFORMATION_HEAD = "information"


class BundleError(Exception):
    """A bundle on disk is missing, corrupt or inconsistent; the message names file and problem."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class Head(BaseModel):
    """One output of the network: a logits tensor of shape (batch, len(labels))."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Head name, e.g. 'main', 'sub' or 'information'.")
    output: str = Field(description="Name of the ONNX output holding this head's logits.")
    labels: list[str] = Field(min_length=1, description="Label of each logit column, in order.")
    activation: Literal["sigmoid", "softmax"] = Field(
        "sigmoid", description="sigmoid: independent (multi-label) probabilities; softmax: one of N."
    )
    default_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Decision threshold of every label.")
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="Per-label thresholds (e.g. tuned on validation) overriding the default."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Head:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"head {self.name!r} has duplicate labels: {self.labels}")
        unknown = sorted(set(self.thresholds) - set(self.labels))
        if unknown:
            raise ValueError(f"head {self.name!r} has thresholds for unknown labels {unknown}")
        bad = {label: value for label, value in self.thresholds.items() if not 0.0 <= value <= 1.0}
        if bad:
            raise ValueError(f"head {self.name!r} has thresholds outside [0, 1]: {bad}")
        return self

    def threshold(self, label: str) -> float:
        return self.thresholds.get(label, self.default_threshold)


class TokenizerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str = Field("tokenizer.json", description="Fast-tokenizer file, relative to the bundle.")
    pad_token_id: int = Field(ge=0, description="Id used to pad a batch to its longest sequence.")


class OnnxSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str = Field("model.onnx", description="ONNX graph, relative to the bundle.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the ONNX file.")
    opset: int = Field(ge=11)
    precision: Literal["fp32", "fp16", "int8"] = "fp32"
    parity_max_abs_diff: float | None = Field(
        None, description="Largest |PyTorch - ONNX| logit difference seen at export, if checked."
    )


class BundleMetadata(BaseModel):
    """Everything ``bundle.json`` holds. Written by ``training/export``, read by the service."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Bundle name, e.g. 'emotion'.")
    task: Literal["emotion", "information"]
    version: str = Field(min_length=1, description="Version string shown in responses and metrics.")
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    base_encoder: str = Field(description="Hub id or directory of the pretrained encoder fine-tuned.")
    inputs: list[str] = Field(description="ONNX input names, in order.")
    max_sequence_length: int = Field(ge=2, le=8192, description="Tokens per comment after truncation.")
    features: list[str] = Field(default_factory=list, description="Columns of the 'features' input.")
    heads: list[Head] = Field(min_length=1)
    preprocessing: Preprocessing
    tokenizer: TokenizerSpec
    onnx: OnnxSpec
    provenance: dict[str, Any] = Field(default_factory=dict, description="Training data and run.")
    metrics: dict[str, Any] = Field(default_factory=dict, description="Evaluation figures.")

    @model_validator(mode="after")
    def _consistent(self) -> BundleMetadata:
        for required in ("input_ids", "attention_mask"):
            if required not in self.inputs:
                raise ValueError(f"inputs must include {required!r}, got {self.inputs}")
        unknown = [name for name in self.inputs if name not in (*TOKEN_INPUTS, FEATURES_INPUT)]
        if unknown:
            raise ValueError(f"unknown inputs {unknown}; allowed: {[*TOKEN_INPUTS, FEATURES_INPUT]}")
        if (FEATURES_INPUT in self.inputs) != bool(self.features):
            raise ValueError("'features' must be listed in inputs exactly when feature names are given")
        if self.features and tuple(self.features) != TEXT_FEATURE_NAMES:
            raise ValueError(
                f"features {self.features} are not the features this code computes: {list(TEXT_FEATURE_NAMES)}"
            )
        names = [head.name for head in self.heads]
        outputs = [head.output for head in self.heads]
        if len(set(names)) != len(names) or len(set(outputs)) != len(outputs):
            raise ValueError(f"head names and outputs must be unique: {names}, {outputs}")
        if self.task == "emotion" and "main" not in names:
            raise ValueError(f"an emotion bundle needs a head named 'main', got {names}")
        joint = carries_information_head(self)
        if self.task == "information" or joint:
            head = information_head(self)
            if head.labels != ["information"] or head.activation != "sigmoid":
                raise ValueError(
                    f"the information head ({head.name!r}) is one sigmoid logit labelled 'information', "
                    f"got labels {head.labels} ({head.activation})"
                )
        if takes_features(self.task, self.heads) != (FEATURES_INPUT in self.inputs):
            if self.task == "information":
                raise ValueError("an information bundle takes the 'features' input")
            if joint:
                raise ValueError(
                    f"an emotion bundle with an {INFORMATION_HEAD!r} head (a joint bundle) takes the 'features' "
                    f"input and lists the feature names {list(TEXT_FEATURE_NAMES)}; its inputs are {self.inputs}"
                )
            raise ValueError(
                f"an emotion bundle takes the 'features' input only with an {INFORMATION_HEAD!r} head "
                f"(a joint bundle); its heads are {names}"
            )
        return self

    def head(self, name: str) -> Head:
        for head in self.heads:
            if head.name == name:
                return head
        raise KeyError(name)


def carries_information_head(metadata: BundleMetadata) -> bool:
    """An emotion bundle that also carries the information head (a joint bundle: one encoder, both tasks)."""
    return metadata.task == "emotion" and takes_features(metadata.task, metadata.heads)


def information_head(metadata: BundleMetadata) -> Head:
    """The head whose probability decides ``information``: an information bundle's first head, a joint
    bundle's ``information`` head; ``KeyError`` for an emotion bundle without one."""
    return metadata.heads[0] if metadata.task == "information" else metadata.head(INFORMATION_HEAD)


def takes_features(task: str, heads: Sequence[Head]) -> bool:
    """Whether a model of ``task`` with ``heads`` takes the text ``features`` input: exactly when it has an
    information head (an information model, or an emotion model carrying the ``information`` head)."""
    return task == "information" or any(head.name == INFORMATION_HEAD for head in heads)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Bundle(BaseModel):
    """A validated bundle on disk."""

    directory: Path
    metadata: BundleMetadata

    @property
    def onnx_path(self) -> Path:
        return self.directory / self.metadata.onnx.file

    @property
    def tokenizer_path(self) -> Path:
        return self.directory / self.metadata.tokenizer.file


def inside_bundle(directory: Path, name: str, role: str) -> Path:
    """``directory / name``, refused (naming the file) unless it resolves inside ``directory``."""
    path = directory / name
    if Path(name).is_absolute():
        raise BundleError(path, f"{role} must be a path relative to the bundle directory, got the absolute {name!r}")
    root = directory.resolve()
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise BundleError(
            path, f"{role} resolves to {resolved}, outside the bundle directory {root} ('..' or a symlink); refused"
        )
    return path


def read_metadata(directory: Path) -> BundleMetadata:
    path = inside_bundle(directory, BUNDLE_FILE, "bundle.json")
    if not path.is_file():
        raise BundleError(path, "missing: a bundle directory must hold bundle.json")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(path, f"not valid JSON ({exc})") from exc
    try:
        return BundleMetadata.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '<root>'}: {error['msg']}" for error in exc.errors()
        )
        raise BundleError(path, f"invalid metadata: {problems}") from exc


def load_bundle(directory: Path | str, *, verify_sha256: bool = True) -> Bundle:
    """Read and check a bundle directory; raise ``BundleError`` naming the file and the problem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(directory, "bundle directory does not exist")
    metadata = read_metadata(directory)
    bundle = Bundle(directory=directory, metadata=metadata)
    inside_bundle(directory, metadata.tokenizer.file, "the tokenizer file (tokenizer.file)")
    inside_bundle(directory, metadata.onnx.file, "the ONNX file (onnx.file)")
    if not bundle.tokenizer_path.is_file():
        raise BundleError(bundle.tokenizer_path, "tokenizer file named in bundle.json is missing")
    if not bundle.onnx_path.is_file():
        raise BundleError(bundle.onnx_path, "ONNX file named in bundle.json is missing")
    if verify_sha256:
        actual = sha256_of(bundle.onnx_path)
        if actual != metadata.onnx.sha256:
            raise BundleError(
                bundle.onnx_path,
                f"sha256 mismatch: bundle.json says {metadata.onnx.sha256}, file is {actual} "
                "(corrupt or replaced after export)",
            )
    return bundle


def write_metadata(directory: Path, metadata: BundleMetadata) -> Path:
    """Write ``bundle.json`` (used by the training export)."""
    path = directory / BUNDLE_FILE
    payload = json.loads(metadata.model_dump_json())
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path
