"""A tiny random-weight BERT with a real WordPiece tokenizer, saved as a Hugging Face directory.

For tests and smoke runs: it loads wherever a hub id or encoder directory is accepted, trains in
seconds on CPU, and exports through the same path as a real encoder. It classifies nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_DEFAULT_ALPHABET = (
    "的一是了我不人在他有这个上们来到时大地为子中你说生国年着就那和要她出也得里后自以会家可下而过天去能对小多然于心学么之都好看起发当没成只如事把还用第样道想作种开美总从无情己面最女但现前些所同日手又行意动方期它头经长儿回位分爱老因很给名法间斯知世什两次使身者被高已亲其进此话常与活正感"
    "哈草啊吧呢吗嘛哦嗯呜awsl泪目高能打卡爷青回前方弹幕视频up主点赞投币收藏关注"
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    "!?,.:;'\"()[]-_/+=*&%$#@~^<>，。！？、：；（）《》…—～"
)


def build_tokenizer(corpus: Iterable[str] = ()) -> PreTrainedTokenizerFast:
    """A character-level WordPiece tokenizer (BERT-Chinese style) over a small alphabet + ``corpus``."""
    alphabet = dict.fromkeys(_DEFAULT_ALPHABET)
    for text in corpus:
        alphabet.update(dict.fromkeys(char for char in text if not char.isspace()))
    vocab = {token: index for index, token in enumerate((*SPECIAL_TOKENS, *alphabet))}
    backend = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=False)
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.BertPreTokenizer(), pre_tokenizers.Split("", behavior="isolated")]
    )
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    backend.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "attention_mask", "token_type_ids"],
    )


def build_tiny_encoder(
    directory: Path | str,
    *,
    corpus: Iterable[str] = (),
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int | None = None,
    max_positions: int = 128,
    seed: int = 0,
) -> Path:
    """Write a tiny random BERT + tokenizer to ``directory`` and return it."""
    import torch

    directory = Path(directory)
    tokenizer = build_tokenizer(corpus)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size or hidden_size * 2,
        max_position_embeddings=max_positions,
        type_vocab_size=2,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = BertModel(config, add_pooling_layer=False)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory
