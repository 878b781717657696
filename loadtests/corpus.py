"""The comments a load test sends: real danmaku when the shared data is there, a generated set otherwise.

Sources, in order of preference:

1. ``--texts-file``: any Parquet/CSV/JSONL file with a ``text`` column (e.g. a sample of your own traffic);
2. ``<danmaku dir>/dd_center_vtuber.csv.gz`` (column ``text``, 3.7M VTuber-stream comments) and the Bilibili XML
   files under ``<danmaku dir>/bilibili_xml`` (``<d p="...">text</d>``), half of the sample from each;
3. ``generate_texts``: danmaku-like comments built from phrases written for this project (no corpus excerpt).

Loaded once per process and sampled with a seed: every run of the same command sends the same pool.
"""

from __future__ import annotations

import math
import random
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DANMAKU_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "danmaku"
DD_CENTER_CSV = "dd_center_vtuber.csv.gz"
BILIBILI_XML_DIR = "bilibili_xml"


@dataclass(frozen=True)
class Corpus:
    texts: list[str]
    description: str


def clean(texts: Sequence[str | None], *, max_chars: int) -> list[str]:
    """Non-blank texts, cut to ``max_chars`` characters (the service refuses longer ones with a 422)."""
    return [text[:max_chars] for text in texts if text is not None and text.strip() and text[:max_chars].strip()]


def _sample(texts: list[str], size: int, rng: random.Random) -> list[str]:
    return texts if len(texts) <= size else rng.sample(texts, size)


def read_dd_center(path: Path, *, size: int, rng: random.Random) -> list[str | None]:
    """About ``size`` rows drawn at random (a few more, since blank ones are dropped later)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    column = pa_csv.read_csv(
        path,
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(include_columns=["text"], column_types={"text": pa.string()}),
    ).column("text")
    wanted = min(len(column), size + size // 10 + 10)
    # Only the drawn rows become Python strings (all 3.7M would take seconds).
    texts: list[str | None] = column.take(pa.array(rng.sample(range(len(column)), wanted))).to_pylist()
    return texts


def read_bilibili_xml(directory: Path) -> list[str | None]:
    texts: list[str | None] = []
    for path in sorted(directory.rglob("*.xml")):
        for _, element in ElementTree.iterparse(path):
            if element.tag == "d":
                texts.append(element.text)
            element.clear()
    return texts


def read_texts_file(path: Path) -> list[str | None]:
    from service.bulk.inputs import ChunkReader, discover_inputs

    texts: list[str | None] = []
    for file in discover_inputs(path):
        reader = ChunkReader(file, chunk_rows=100_000, text_column="text", id_column=None)
        for chunk in reader.chunks(lambda index: True):
            texts.extend(chunk.texts)
    return texts


def load_corpus(
    *,
    danmaku_dir: Path | None = DEFAULT_DANMAKU_DIR,
    texts_file: Path | None = None,
    size: int = 20_000,
    max_chars: int = 200,
    seed: int = 0,
) -> Corpus:
    if size < 1:
        raise ValueError(f"the corpus size must be at least 1, got {size}")
    rng = random.Random(seed)
    if texts_file is not None:
        texts = clean(read_texts_file(texts_file), max_chars=max_chars)
        if not texts:
            raise ValueError(f"{texts_file}: no non-blank text in column 'text'")
        return Corpus(_sample(texts, size, rng), f"{min(size, len(texts))} comments from {texts_file}")
    sources: list[tuple[str, list[str]]] = []
    if danmaku_dir is not None and (danmaku_dir / DD_CENTER_CSV).is_file():
        drawn = read_dd_center(danmaku_dir / DD_CENTER_CSV, size=math.ceil(size / 2), rng=rng)
        sources.append((DD_CENTER_CSV, clean(drawn, max_chars=max_chars)))
    if danmaku_dir is not None and (danmaku_dir / BILIBILI_XML_DIR).is_dir():
        xml_texts = clean(read_bilibili_xml(danmaku_dir / BILIBILI_XML_DIR), max_chars=max_chars)
        if xml_texts:
            sources.append((f"{BILIBILI_XML_DIR}/*.xml", xml_texts))
    if not sources:
        return Corpus(generate_texts(size, seed=seed), f"{size} generated comments (no danmaku under {danmaku_dir})")
    share = math.ceil(size / len(sources))
    pool: list[str] = []
    parts = []
    for name, texts in sources:
        picked = _sample(texts, share, rng)
        pool.extend(picked)
        parts.append(f"{len(picked)} from {name}")
    rng.shuffle(pool)
    return Corpus(pool[:size], "real danmaku: " + ", ".join(parts))


# --- the generated set: phrases written for this project, combined at random ---------------------

_REACTIONS = [
    "哈哈哈",
    "草",
    "awsl",
    "泪目",
    "好听",
    "前方高能",
    "来了来了",
    "打卡",
    "第一次看",
    "太可爱了",
    "好耶",
    "笑死",
    "绝了",
    "爷青回",
    "妙啊",
    "下次一定",
    "有内味了",
    "kksk",
    "nice",
    "lol",
]
_QUESTIONS = ["这是什么歌？", "BGM是什么", "有人吗", "up主是谁", "这是第几集？", "为什么会这样", "在哪里看全集"]
_INFORMATION = [
    "这首曲子出自{work}的原声",
    "{work}第{n}集的{minute}:{second:02d}有伏笔",
    "原作里这里其实是{n}年后的事",
    "参考 https://example.com/wiki/{n}",
    "这个技巧叫{term}，很多人不知道",
    "作者后来在采访里解释过这段",
]
_WORKS = ["这部番", "原作小说", "剧场版", "第二季", "游戏版"]
_TERMS = ["转调", "蒙太奇", "长镜头", "三连音", "叙述性诡计"]
_SOCIAL = ["大家晚上好", "主播加油", "我也是{n}年的老粉", "有没有一起看的", "弹幕护体", "前面的别走"]
_TAILS = ["", "", "", "！", "！！", "？", "~", " 2333", "hhh", "。。。", " (๑•̀ㅂ•́)و✧"]


def generate_texts(count: int, *, seed: int = 0) -> list[str]:
    """Danmaku-like comments: short reactions mostly, some questions, social talk and informative remarks."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        draw = rng.random()
        if draw < 0.55:
            text = rng.choice(_REACTIONS)
            if text in ("哈哈哈", "草"):
                text *= rng.randint(1, 6)
            if rng.random() < 0.15:
                text = "2333" + "3" * rng.randint(0, 8)
        elif draw < 0.7:
            text = rng.choice(_QUESTIONS)
        elif draw < 0.85:
            text = rng.choice(_SOCIAL).format(n=rng.randint(2, 12))
        else:
            text = rng.choice(_INFORMATION).format(
                work=rng.choice(_WORKS),
                n=rng.randint(1, 24),
                minute=rng.randint(0, 23),
                second=rng.randint(0, 59),
                term=rng.choice(_TERMS),
            )
        if rng.random() < 0.05:  # the occasional long comment
            text = "，".join([text, *rng.choices(_REACTIONS + _QUESTIONS, k=rng.randint(3, 10))])
        texts.append(text + rng.choice(_TAILS))
    return texts
