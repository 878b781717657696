"""One ONNX Runtime session per bundle: tokenise -> forward -> postprocess.

``OnnxModel.load`` refuses a bundle whose graph does not match its ``bundle.json`` (input names,
output names, output widths), naming the file and the problem. Tokenisation uses the bundle's own
``tokenizer.json`` through the ``tokenizers`` library, after the bundle's text preprocessing, so a
comment is encoded exactly as in training (``training.export.onnx_bundle.encode_texts``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from service.activations import activate
from service.bundle import FEATURES_INPUT, Bundle, BundleError, BundleMetadata, Head
from service.text import preprocess, text_features

logger = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"

_NUMPY_TYPES: dict[str, type[np.generic]] = {
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
}

# One comment's probabilities: head name -> one probability per label of that head.
Prediction = dict[str, np.ndarray]


class ProviderUnavailable(RuntimeError):
    """The execution provider asked for is not in this onnxruntime build (or sees no device)."""


@dataclass(frozen=True, slots=True)
class EncodedText:
    """One comment, preprocessed and tokenised (no padding), plus its text features if the model takes them."""

    ids: tuple[int, ...]
    type_ids: tuple[int, ...]
    features: tuple[float, ...] | None = None

    @property
    def length(self) -> int:
        return len(self.ids)


def choose_providers(requested: str, available: Sequence[str]) -> list[str]:
    """Execution providers for ``requested`` (auto | cpu | cuda | tensorrt), CPU always last."""
    if requested == "cpu":
        return [CPU]
    if requested == "auto":
        return [CUDA, CPU] if CUDA in available else [CPU]
    wanted = {"cuda": [CUDA], "tensorrt": [TENSORRT, CUDA]}[requested]
    missing = [provider for provider in wanted if provider not in available]
    if missing:
        raise ProviderUnavailable(
            f"DANMAKU_EXECUTION_PROVIDER={requested} needs {missing}, but this onnxruntime offers {list(available)} "
            "(install the 'gpu' extra, onnxruntime-gpu, on a machine with CUDA)"
        )
    return [*wanted, CPU]


def _dim(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


class OnnxModel:
    """A bundle's tokenizer and ONNX Runtime session; thread-safe ``predict`` on encoded comments."""

    def __init__(self, bundle: Bundle, session: ort.InferenceSession, tokenizer: Tokenizer) -> None:
        self.bundle = bundle
        self.metadata: BundleMetadata = bundle.metadata
        self.session = session
        self.tokenizer = tokenizer
        self.pad_token_id = bundle.metadata.tokenizer.pad_token_id
        self._input_types = {node.name: _NUMPY_TYPES.get(node.type, np.int64) for node in session.get_inputs()}
        self._output_names = [head.output for head in self.metadata.heads]
        self._takes_features = FEATURES_INPUT in self.metadata.inputs

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def version(self) -> str:
        return self.metadata.version

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    @classmethod
    def load(
        cls,
        bundle: Bundle,
        *,
        providers: Sequence[str] = (CPU,),
        intra_op_threads: int = 0,
        inter_op_threads: int = 0,
    ) -> OnnxModel:
        """Open the bundle's tokenizer and graph and check the graph against bundle.json."""
        tokenizer = _load_tokenizer(bundle)
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle ORT threads spin by default, burning the cores the event loop and tokeniser need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: ORT's warnings about unused providers are noise
        try:
            session = ort.InferenceSession(str(bundle.onnx_path), sess_options=options, providers=list(providers))
        except Exception as exc:  # onnxruntime raises its own types for corrupt or unsupported graphs
            raise BundleError(bundle.onnx_path, f"ONNX Runtime cannot load it: {exc}") from exc
        check_graph(bundle, session)
        if any(provider != CPU for provider in providers) and session.get_providers() == [CPU]:
            logger.warning("%s: asked for %s, running on CPU (no usable GPU)", bundle.onnx_path, list(providers))
        return cls(bundle, session, tokenizer)

    # --- encode (event-loop side, cheap) -------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> list[EncodedText]:
        """Preprocess and tokenise (truncating to the bundle's max length); text features if needed."""
        cleaned = [preprocess(text, self.metadata.preprocessing) for text in texts]
        encodings = self.tokenizer.encode_batch(cleaned)
        return [
            EncodedText(
                ids=tuple(encoding.ids),
                type_ids=tuple(encoding.type_ids),
                features=tuple(text_features(text)) if self._takes_features else None,
            )
            for text, encoding in zip(cleaned, encodings, strict=True)
        ]

    # --- forward (worker thread) ---------------------------------------------------------------
    def feeds(self, batch: Sequence[EncodedText]) -> dict[str, np.ndarray]:
        """Pad ``batch`` to its longest comment and build the graph's inputs."""
        rows = len(batch)
        longest = max(item.length for item in batch)
        input_ids = np.full((rows, longest), self.pad_token_id, dtype=np.int64)
        attention_mask = np.zeros((rows, longest), dtype=np.int64)
        token_type_ids = np.zeros((rows, longest), dtype=np.int64)
        for row, item in enumerate(batch):
            input_ids[row, : item.length] = item.ids
            attention_mask[row, : item.length] = 1
            token_type_ids[row, : item.length] = item.type_ids
        arrays: dict[str, np.ndarray] = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
        }
        if self._takes_features:
            arrays[FEATURES_INPUT] = np.array([item.features for item in batch], dtype=np.float32)
        return {name: arrays[name].astype(self._input_types[name], copy=False) for name in self.metadata.inputs}

    def predict(self, batch: Sequence[EncodedText]) -> list[Prediction]:
        """One forward pass; per comment, each head's probabilities (the head's activation applied)."""
        if not batch:
            return []
        outputs = self.session.run(self._output_names, self.feeds(batch))
        per_head: dict[str, np.ndarray] = {}
        for head, logits in zip(self.metadata.heads, outputs, strict=True):
            expected = (len(batch), len(head.labels))
            if tuple(logits.shape) != expected:
                raise BundleError(
                    self.bundle.onnx_path,
                    f"output {head.output!r} has shape {tuple(logits.shape)}, expected {expected} "
                    f"(batch, {len(head.labels)} labels of head {head.name!r} in bundle.json)",
                )
            per_head[head.name] = activate(np.asarray(logits), head.activation)
        return [{name: probabilities[row] for name, probabilities in per_head.items()} for row in range(len(batch))]

    def warm_up(self, *, runs: int, batch_sizes: Sequence[int]) -> None:
        """Run every (batch size, short/long comment) shape ``runs`` times; checks output widths too."""
        short = self.encode(["预热 warm-up"])[0]
        long_text = "预热" * self.metadata.max_sequence_length
        long = self.encode([long_text])[0]
        for _ in range(max(1, runs)):
            for size in sorted(set(batch_sizes)):
                for item in (short, long):
                    self.predict([item] * size)


def _load_tokenizer(bundle: Bundle) -> Tokenizer:
    try:
        tokenizer = Tokenizer.from_file(str(bundle.tokenizer_path))
    except Exception as exc:  # the tokenizers library raises a bare Exception on a bad file
        raise BundleError(bundle.tokenizer_path, f"not a valid tokenizers file: {exc}") from exc
    tokenizer.no_padding()  # the batcher pads per batch, to the batch's longest comment
    tokenizer.enable_truncation(max_length=bundle.metadata.max_sequence_length)
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    if bundle.metadata.tokenizer.pad_token_id >= vocab_size:
        raise BundleError(
            bundle.directory / "bundle.json",
            f"tokenizer.pad_token_id {bundle.metadata.tokenizer.pad_token_id} is outside the vocabulary "
            f"of {bundle.tokenizer_path.name} ({vocab_size} tokens)",
        )
    return tokenizer


def check_graph(bundle: Bundle, session: ort.InferenceSession) -> None:
    """Graph inputs and outputs must be the ones bundle.json describes."""
    metadata = bundle.metadata
    graph_inputs = {node.name: node for node in session.get_inputs()}
    if set(graph_inputs) != set(metadata.inputs):
        raise BundleError(
            bundle.onnx_path,
            f"graph inputs {sorted(graph_inputs)} do not match bundle.json inputs {sorted(metadata.inputs)}",
        )
    unsupported = {name: node.type for name, node in graph_inputs.items() if node.type not in _NUMPY_TYPES}
    if unsupported:
        raise BundleError(bundle.onnx_path, f"unsupported input types {unsupported}")
    if FEATURES_INPUT in graph_inputs:
        width = _dim(graph_inputs[FEATURES_INPUT].shape[-1])
        if width is not None and width != len(metadata.features):
            raise BundleError(
                bundle.onnx_path,
                f"input 'features' has width {width} but bundle.json lists {len(metadata.features)} features",
            )
    graph_outputs = {node.name: node for node in session.get_outputs()}
    for head in metadata.heads:
        _check_head(bundle, head, graph_outputs)


def _check_head(bundle: Bundle, head: Head, graph_outputs: Mapping[str, Any]) -> None:
    node = graph_outputs.get(head.output)
    if node is None:
        raise BundleError(
            bundle.onnx_path,
            f"head {head.name!r} reads output {head.output!r}, which the graph lacks (it has {sorted(graph_outputs)})",
        )
    shape = list(node.shape)
    if len(shape) != 2:
        raise BundleError(bundle.onnx_path, f"output {head.output!r} has rank {len(shape)}, expected (batch, labels)")
    width = _dim(shape[-1])
    if width is not None and width != len(head.labels):
        raise BundleError(
            bundle.onnx_path,
            f"output {head.output!r} has width {width} but bundle.json lists {len(head.labels)} labels "
            f"for head {head.name!r}",
        )
