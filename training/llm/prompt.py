"""The reference labelling prompt: the schema, JSON-only rules, and one batch of comments.

Comments are numbered 1..N inside a batch (``comment_id``): short ids cost fewer output tokens
than text hashes and small models copy them reliably; the labeller maps them back. The example
in the rules uses id "0", which no batch contains, so an echoed or copied example is ignored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from training.taxonomy import MAIN_LABELS, SCHEMA, SUB_LABELS

# v2: the annotation guide's conventions (when a remark is information, which markers an emotion needs).
PROMPT_VERSION = "danmaku-labels-v2"

_SCHEMA_LINES = "\n".join(f"- {main}: {', '.join(subs)}" for main, subs in SCHEMA.items())

SYSTEM_PROMPT = f"""You label Chinese danmaku: short bullet-screen comments shown over Bilibili videos.

Categories (main label: its sub-categories):
{_SCHEMA_LINES}

Definitions:
- information: facts, knowledge, context, an explanation, a source, or a substantive opinion or remark about the video.
- emotions_positive: admiration, encouragement, gratitude, joy or amusement (哈哈哈, 笑死, 草 as laughter, 233), \
empathy, being moved (泪目), relief.
- emotions_negative: criticism or complaint, worry, shock or disbelief, sad recollection.
- social: addressing viewers or the uploader: presence (打卡, 来了, 前排), self-report (我刚下班), interaction \
(@, 弹幕护体, 前方高能), curiosity or questions (这是什么歌？), confusion (？？？, 没看懂).
- others: none of the above: spam, meaningless strings, unclear, off-topic, emoticons with no clear feeling.
Slang: awsl and 爷青回 are positive; 6666 is admiration; 好家伙 is mild shock. A question about the content is \
social/curiosity; an answer to one is information/situated_knowledge. Judge each comment alone.

Conventions (keep labels consistent with them):
- A remark about what happens or is shown in the video, a nickname, a meme quote, a joke or a pun with NO explicit \
feeling word or laughter marker is information: video_relevant_remarks; a personal judgement of the content is \
subjective_opinion; a fact or explanation is domain_knowledge or situated_knowledge; naming a song, game, work or \
source is external_sources.
- emotions_positive needs an explicit marker: joy needs laughter or joy (233, hhh, 哈哈, 草 as laughter, 笑死, 好耶, \
www, （笑）); admiration needs praise (好听, 厉害, 神, 666, 可爱, awsl). emotions_negative needs an explicit negative \
feeling: criticism, worry, shock (卧槽, 好家伙, 吓死), sadness.
- A question is social/curiosity; ？？？ or 没看懂 is social/confusion; talking to other viewers or the uploader is \
social/interaction; "I am / I did / I was ..." is social/self_report; 打卡, 前排, 来了 are social/social_presence.
- others only for spam, meaningless strings, unreadable text or pure emoticons.

Rules:
- Label EVERY comment. Usually one main label, at most two when clearly both.
- Give one sub-category for each main label, taken from that label's list; others has sub-category other.
- rationale: at most 10 words, in English.
- Answer with JSON only: no prose, no code fences, nothing before or after. Format:
{{"comments": [{{"comment_id": "0", "labels": ["emotions_positive"], "subcategories": ["joy"], \
"rationale": "laughter"}}]}}"""


def user_prompt(texts: Sequence[str]) -> str:
    """The user turn for one batch: the comments as a JSON array with ids 1..N."""
    numbered = [{"comment_id": str(index), "text": text} for index, text in enumerate(texts, start=1)]
    lines = ",\n".join(json.dumps(item, ensure_ascii=False) for item in numbered)
    return f"Label these {len(texts)} comments:\n[\n{lines}\n]"


def build_messages(texts: Sequence[str]) -> list[dict[str, str]]:
    """Chat messages for one batch."""
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user_prompt(texts)}]


def answer_json_schema(batch_size: int) -> dict[str, Any]:
    """JSON schema of the answer, for servers with structured output (vLLM, llama.cpp, OpenAI)."""
    item = {
        "type": "object",
        "properties": {
            "comment_id": {"type": "string"},
            "labels": {"type": "array", "items": {"type": "string", "enum": list(MAIN_LABELS)}, "minItems": 1},
            "subcategories": {"type": "array", "items": {"type": "string", "enum": list(SUB_LABELS)}},
            "rationale": {"type": "string"},
        },
        "required": ["comment_id", "labels", "subcategories", "rationale"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"comments": {"type": "array", "items": item, "maxItems": batch_size}},
        "required": ["comments"],
        "additionalProperties": False,
    }
