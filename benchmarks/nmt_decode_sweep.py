"""Chooses a finished translation run's beam size and length penalty on validation, then
scores the test split once with the choice.

    python benchmarks/nmt_decode_sweep.py runs/de_en_transformer
    python benchmarks/nmt_decode_sweep.py runs/es_en_transformer --beams 1 4 --penalties 0.6 1.0

Every (beam, length penalty) pair decodes the whole validation split with the
run's best checkpoint (by validation BLEU, ``train.best_metric``); the pair
with the highest validation sacreBLEU is then used on the test split, which
nothing else here reads. Writes the grid to ``<workdir>/eval/decode_sweep.json``
and the scores of every decoding (``eval/*.json`` and the translations) as
``train.py --eval_only`` does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from zoo.train.translation import evaluate_split, save_evaluation  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workdir")
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--penalties", type=float, nargs="+", default=[0.6, 1.0])
    args = parser.parse_args()

    grid = []
    for beam in args.beams:
        for penalty in args.penalties if beam > 1 else args.penalties[:1]:  # greedy: no penalty
            result = evaluate_split(args.workdir, split="validation", beam_size=beam,
                                    length_penalty=penalty)
            save_evaluation(args.workdir, result)
            key = "bleu" if "bleu" in result else "exact_match"  # generated tasks: exact match
            grid.append({"beam_size": beam, "length_penalty": penalty, "step": result["step"],
                         key: result[key], "chrf": result.get("chrf")})
            print(f"validation beam {beam} length penalty {penalty}: {key} {result[key]:.4g}",
                  flush=True)
    chosen = max(grid, key=lambda row: row[key])
    test = evaluate_split(args.workdir, split="test", beam_size=chosen["beam_size"],
                          length_penalty=chosen["length_penalty"])
    path = save_evaluation(args.workdir, test)
    with open(os.path.join(args.workdir, "eval", "decode_sweep.json"), "w") as f:
        json.dump({"validation": grid, "chosen": chosen, "test": path}, f, indent=1)
    print(f"chosen on validation: beam {chosen['beam_size']}, length penalty "
          f"{chosen['length_penalty']}; test (step {test['step']}): {key} {test[key]:.4g}"
          + (f", chrF {test['chrf']:.2f}, BLEU by source-length third " + " / ".join(
              f"{test[f'bleu_{t}_third']:.1f}" for t in ("shortest", "middle", "longest"))
             if key == "bleu" else ""))


if __name__ == "__main__":
    main()
