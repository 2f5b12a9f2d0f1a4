"""Translation scores: sacreBLEU and chrF with signatures, and BLEU by source-length third."""

import pytest
import sacrebleu

from zoo.train.data import Bundle, bleu_by_length


def _bundle(metric):
    return Bundle(example_batch={}, train_iterator=None, eval_batches=None, vocab={},
                  tokenizer=None, metric=metric)


SOURCES = ["a", "a b", "a b c", "a b c d", "a b c d e", "a b c d e f"]
REFERENCES = ["the cat sat on the mat today", "a dog ran in the park at noon",
              "she reads a long book every night", "we walk to the old bridge slowly",
              "they sing songs by the warm fire", "he paints the small blue boat again"]


def test_translation_scores_carry_signatures_and_length_thirds():
    wrong_long = REFERENCES[:4] + ["no match here at all", "nothing alike in this one"]
    scores = _bundle("bleu").score(wrong_long, REFERENCES, SOURCES)
    assert scores["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(wrong_long, [REFERENCES]).score)
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(wrong_long, [REFERENCES]).score)
    assert scores["bleu_signature"].startswith("nrefs:1|")
    assert scores["chrf_signature"].startswith("nrefs:1|")
    assert scores["exact_match"] == pytest.approx(4 / 6)
    # Thirds by source words: (1, 2), (3, 4), (5, 6); only the longest two are wrong.
    assert scores["bleu_shortest_third"] == pytest.approx(100.0)
    assert scores["bleu_middle_third"] == pytest.approx(100.0)
    assert scores["bleu_longest_third"] < 5.0
    assert scores["length_thirds"] == "1-2 / 3-4 / 5-6 words"


def test_generated_tasks_score_exact_match_only_and_thirds_need_three_sentences():
    assert _bundle("exact_match").score(["x", "y"], ["x", "z"], ["1", "2"]) == {
        "exact_match": 0.5}
    assert bleu_by_length(["a", "b"], ["x", "y"], ["x", "y"]) == {}
    with pytest.raises(ValueError, match="as long as each other"):
        bleu_by_length(["a", "b", "c"], ["x"], ["x", "y", "z"])
