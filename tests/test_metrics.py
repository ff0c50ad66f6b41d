"""Metrics against values worked out by hand, baselines, and the model-index round trip."""

from __future__ import annotations

import math
import sqlite3

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from ofa_plus import metrics
from ofa_plus.metrics import (
    METRICS,
    baseline_name,
    best_constant_baseline,
    box_iou,
    compute_metrics,
    normalize_vqa_answer,
    parse_sudoku,
    trivial_baseline,
)
from ofa_plus.model_card import eval_results, model_card_metadata_yaml, model_index


def score(name, predictions, references, rows=None):
    return compute_metrics([name], predictions, references, rows)[name]


# --------------------------------------------------------------------------------------------------
# registry and argument checks
# --------------------------------------------------------------------------------------------------


def test_registry_entries_are_consistent():
    assert {
        "accuracy",
        "exact_match",
        "vqa_accuracy",
        "cider",
        "bleu4",
        "rouge_l",
        "iou_acc",
        "sql_execution_match",
        "sudoku_solved",
    } <= set(METRICS)
    for name, metric in METRICS.items():
        assert metric.name == name and metric.description
        assert metric.higher_is_better == (name not in ("wer", "mcd")), name  # error rates: lower is better
    assert METRICS["sql_execution_match"].needs_columns == ("db_path",)
    assert METRICS["sudoku_solved"].needs_columns == ("puzzle",)


def test_unknown_metric_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown metric.*'bleu'.*known metrics:.*bleu4.*vqa_accuracy"):
        compute_metrics(["accuracy", "bleu"], ["a"], ["a"])


def test_length_mismatches_raise():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        compute_metrics(["accuracy"], ["a", "b"], ["a"])
    with pytest.raises(ValueError, match="1 predictions but 2 rows"):
        compute_metrics(["accuracy"], ["a"], ["a"], rows=[{}, {}])
    with pytest.raises(ValueError, match="no predictions"):
        compute_metrics(["accuracy"], [], [])


def test_none_predictions_score_zero_for_every_metric(tmp_path):
    db = tmp_path / "none.sqlite"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE t (x INTEGER)")
    references = {
        "accuracy": "a",
        "exact_match": "a",
        "vqa_accuracy": ["a", "a", "a"],
        "cider": "a b",
        "bleu4": "a b",
        "rouge_l": "a b",
        "iou_acc": (0, 0, 1, 1),
        "sql_execution_match": "SELECT x FROM t",
        "sudoku_solved": "1:2:3:4|3:4:1:2|2:1:4:3|4:3:2:1",
        "wer": "a b",
        "mcd": {"path": "/usr/share/sounds/alsa/Front_Center.wav"},
    }
    rows = [{"db_path": str(db), "puzzle": None}] * 2
    for name in METRICS:
        # the first prediction is None; the second is right (so a corpus-level metric has something to do)
        right = references[name] if name not in ("vqa_accuracy",) else "a"
        result = compute_metrics([name], [None, None], [references[name]] * 2, rows)[name]
        with_right = compute_metrics([name], [None, right], [references[name]] * 2, rows)[name]
        if METRICS[name].higher_is_better:
            assert result == 0.0, name
            assert with_right < 100.0, name
        else:  # error metrics: None is an empty transcript / silence, worse than the right answer
            assert result > with_right > 0.0, name
    assert compute_metrics(["wer"], [None], ["a b"])["wer"] == 100.0


# --------------------------------------------------------------------------------------------------
# accuracy, exact_match
# --------------------------------------------------------------------------------------------------


def test_accuracy_normalises_lightly_and_accepts_any_reference():
    predictions = ["  Yes ", "no", "New  York", "maybe", 3]
    references = ["yes", ["yes", "NO"], "new york", "no", "3"]
    # right: 1 (case/space), 2 (second reference), 3 (collapsed space), 5 (int vs "3"); wrong: 4
    assert score("accuracy", predictions, references) == pytest.approx(80.0)
    # punctuation is not normalised away by accuracy
    assert score("accuracy", ["yes."], ["yes"]) == 0.0


def test_exact_match_ignores_case_and_spacing_of_free_text():
    predictions = ["select count ( * ) from singer ;", "SELECT name FROM singer", "SELECT age FROM singer"]
    references = ["SELECT count(*) FROM singer", ["SELECT name  FROM singer"], "SELECT name FROM singer"]
    assert score("exact_match", predictions, references) == pytest.approx(200 / 3)


# --------------------------------------------------------------------------------------------------
# vqa_accuracy
# --------------------------------------------------------------------------------------------------


def test_vqa_answer_normalisation():
    assert normalize_vqa_answer("Two dogs.") == "2 dogs"  # number word, period
    assert normalize_vqa_answer("The cat") == "cat"  # article
    assert normalize_vqa_answer("black/white") == "black white"  # punctuation between words -> space
    assert normalize_vqa_answer("yes !") == "yes"  # punctuation next to a space -> removed
    assert normalize_vqa_answer("1,000") == "1000"  # digit-comma-digit -> removed
    assert normalize_vqa_answer("3.5") == "3.5"  # decimal point kept
    assert normalize_vqa_answer("dont") == "don't"  # contraction restored


def test_vqa_accuracy_leave_one_out_by_hand():
    # 10 annotators, 2 of them said "2" ("two" after normalisation). Leaving out one of those 2
    # leaves 1 match -> 1/3; leaving out one of the other 8 leaves 2 matches -> 2/3.
    # (2 * 1/3 + 8 * 2/3) / 10 = 18/30 = 0.6
    references = ["2", "two"] + ["3"] * 8
    assert score("vqa_accuracy", ["Two"], [references]) == pytest.approx(60.0)
    # 3 matches: 3 subsets see 2 (2/3), 7 see 3 (1) -> (2 + 7) / 10 = 0.9
    assert score("vqa_accuracy", ["2"], [["2"] * 3 + ["3"] * 7]) == pytest.approx(90.0)
    # 4 or more matches: every subset sees >= 3 -> 1
    assert score("vqa_accuracy", ["2"], [["2"] * 4 + ["3"] * 6]) == pytest.approx(100.0)
    # no match -> 0
    assert score("vqa_accuracy", ["5"], [references]) == 0.0
    # mean over questions: (0.6 + 0.9) / 2 = 0.75
    assert score("vqa_accuracy", ["2", "2"], [references, ["2"] * 3 + ["3"] * 7]) == pytest.approx(75.0)


def test_vqa_accuracy_single_reference_is_exact_match_after_normalisation():
    assert score("vqa_accuracy", ["the circle.", "red"], ["circle", "blue"]) == pytest.approx(50.0)


# --------------------------------------------------------------------------------------------------
# cider, bleu4, rouge_l
# --------------------------------------------------------------------------------------------------


def test_cider_two_image_corpus_by_hand():
    # Corpus: image A refs ["a b"], image B refs ["c d"]; N = 2 images, so idf = log 2 - log df and
    # every reference n-gram has df = 1 -> weight log 2. An exact 2-word candidate has cosine 1 for
    # 1- and 2-grams and 0 for 3- and 4-grams (none exist): mean(1, 1, 0, 0) * 10 = 5.0.
    references = [["a b"], ["c d"]]
    assert score("cider", ["a b", "c d"], references) == pytest.approx(500.0)
    # Candidate "A, C." -> tokens "a c" for image A: unigram vector (log2, log2) against the
    # reference's (a: log2, b: log2): dot = log2^2, norms sqrt2 log2 each -> 1/2; bigram "a c" is
    # not in the reference -> 0; same length, no penalty: mean(0.5, 0, 0, 0) * 10 = 1.25.
    # Corpus: (1.25 + 5.0) / 2 = 3.125 -> 312.5
    assert score("cider", ["A, C.", "c d"], references) == pytest.approx(312.5)
    # A disjoint candidate scores 0 for its image: (0 + 5) / 2 -> 250
    assert score("cider", ["x y", "c d"], references) == pytest.approx(250.0)


def test_cider_single_image_corpus_is_zero():
    # idf = log(1) - log(1) = 0 for every n-gram: documented caveat
    assert score("cider", ["a b"], ["a b"]) == 0.0


def test_bleu4_by_hand():
    # candidate "the cat sat on a mat" (6 tokens), reference "the cat sat on the mat today" (7)
    # clipped n-gram precisions: 1-grams 5/6 (all but "a"), 2-grams 3/5 (the cat, cat sat, sat on),
    # 3-grams 2/4 (the cat sat, cat sat on), 4-grams 1/3 (the cat sat on)
    # geometric mean (5/6 * 3/5 * 2/4 * 1/3) ** (1/4) = (1/12) ** 0.25
    # brevity penalty exp(1 - 7/6)
    expected = 100 * (1 / 12) ** 0.25 * math.exp(1 - 7 / 6)
    bleu = score("bleu4", ["The cat sat on a mat."], ["the cat sat on the mat today"])
    assert bleu == pytest.approx(expected, rel=1e-6)  # about 45.48
    assert score("bleu4", ["a b c d e"], [["x y", "a b c d e"]]) == pytest.approx(100.0, rel=1e-6)


def test_rouge_l_by_hand():
    # LCS("the cat on mat", "the cat sat on the mat") = "the cat on mat" = 4
    # P = 4/4, R = 4/6 -> F = 2PR / (P + R) = (4/3) / (5/3) = 0.8
    assert score("rouge_l", ["the cat on mat"], ["the cat sat on the mat"]) == pytest.approx(80.0)
    # LCS("mat the cat", "the cat sat") = "the cat" = 2 -> P = R = F = 2/3; best of two references
    # (the other shares nothing) -> (0.8 + 2/3) / 2
    assert score(
        "rouge_l", ["the cat on mat", "mat the cat"], ["the cat sat on the mat", ["dog", "the cat sat"]]
    ) == pytest.approx((80.0 + 200 / 3) / 2)
    # non-ASCII words count (rouge-score's own tokenizer would drop them)
    assert score("rouge_l", ["café crème"], ["Café crème!"]) == pytest.approx(100.0)


# --------------------------------------------------------------------------------------------------
# iou_acc
# --------------------------------------------------------------------------------------------------


def test_box_iou_by_hand():
    a = (0, 0, 10, 10)  # area 100
    # (5, 0, 15, 10): area 100, overlap x 5..10 by y 0..10 = 50, union 150 -> 1/3
    assert box_iou(a, (5, 0, 15, 10)) == pytest.approx(1 / 3)
    # (0, 0, 10, 20): area 200, overlap 100, union 200 -> 1/2 exactly
    assert box_iou(a, (0, 0, 10, 20)) == 0.5
    # (2, 2, 12, 12): overlap 8 * 8 = 64, union 200 - 64 = 136 -> 0.4706
    assert box_iou(a, (2, 2, 12, 12)) == pytest.approx(64 / 136)
    assert box_iou(a, (20, 20, 30, 30)) == 0.0  # disjoint
    assert box_iou((1, 1, 1, 1), (1, 1, 1, 1)) == 0.0  # empty union


def test_iou_acc_counts_iou_of_at_least_half():
    reference = (0, 0, 10, 10)
    predictions = [
        (0, 0, 10, 20),  # IoU 0.5 -> hit (>= 0.5)
        (2, 2, 12, 12),  # 0.47 -> miss
        "1 0 11 10",  # string of 4 numbers: overlap 90, union 110 -> 0.82 hit
        None,  # failed generation -> miss
        "not a box",
    ]  # -> miss
    assert score("iou_acc", predictions, [reference] * 5) == pytest.approx(40.0)
    # several acceptable boxes (a list of boxes): the best one counts
    assert score("iou_acc", [[20, 20, 30, 30]], [[reference, (20, 20, 30, 31)]]) == 100.0


# --------------------------------------------------------------------------------------------------
# sql_execution_match
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def singer_db(tmp_path):
    path = tmp_path / "concert singer.sqlite"  # a space: the read-only URI must quote it
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)")
        connection.executemany(
            "INSERT INTO singer VALUES (?, ?, ?)", [(1, "Ann", 25), (2, "Bob", 40), (3, "Cid", 35), (4, "Dee", 40)]
        )
    connection.close()
    return str(path)


def test_sql_execution_match(singer_db):
    gold = "SELECT name FROM singer WHERE age > 30"
    cases = [
        ("select s.name from singer as s where not s.age <= 30", True),  # equivalent SQL
        ("SELECT name FROM singer WHERE age > 30 ORDER BY name DESC", True),  # gold has no ORDER BY
        ("SELECT name FROM singer WHERE age >= 40", False),  # fewer rows
        ("SELECT name FROM singer", False),  # more rows
        ("SELECT id FROM singer WHERE age > 30", False),  # wrong column
        ("SELEC name FROM singer", False),  # syntax error
        ("DELETE FROM singer", False),  # write on a read-only db
        ("SELECT 1; SELECT 2", False),  # two statements
        ("", False),
        (None, False),
    ]
    predictions = [sql for sql, _ in cases]
    rows = [{"db_path": singer_db}] * len(cases)
    expected = 100.0 * sum(ok for _, ok in cases) / len(cases)
    assert score("sql_execution_match", predictions, [gold] * len(cases), rows) == pytest.approx(expected)
    # the DELETE did not go through
    with sqlite3.connect(singer_db) as connection:
        assert connection.execute("SELECT count(*) FROM singer").fetchone() == (4,)
    connection.close()


def test_sql_execution_match_respects_gold_order_and_counts_duplicates(singer_db):
    gold = "SELECT age FROM singer ORDER BY age"  # 25, 35, 40, 40
    predictions = [
        "SELECT age FROM singer ORDER BY age ASC",  # same order -> match
        "SELECT age FROM singer ORDER BY age DESC",  # reversed -> no match
        "SELECT DISTINCT age FROM singer ORDER BY age",
    ]  # loses a duplicate 40
    rows = [{"db_path": singer_db}] * 3
    assert score("sql_execution_match", predictions, [gold] * 3, rows) == pytest.approx(100 / 3)


def test_sql_execution_match_aborts_runaway_queries(singer_db, monkeypatch):
    monkeypatch.setattr(metrics, "SQL_TIMEOUT_S", 0.2)
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    assert score("sql_execution_match", [endless], ["SELECT count(*) FROM singer"], [{"db_path": singer_db}]) == 0.0


def test_sql_execution_match_needs_rows_and_valid_gold(singer_db):
    with pytest.raises(ValueError, match="db_path"):
        score("sql_execution_match", ["SELECT 1"], ["SELECT 1"])
    with pytest.raises(ValueError, match="gold query of row 0 fails"):
        score("sql_execution_match", ["SELECT 1"], ["SELECT nope FROM singer"], [{"db_path": singer_db}])


# --------------------------------------------------------------------------------------------------
# sudoku_solved
# --------------------------------------------------------------------------------------------------


def grid(rows):
    return " | ".join(" : ".join(str(d) for d in row) for row in rows)


# Valid 4x4: rows, columns (1324, 2413, 3142, 4231) and 2x2 boxes (1234, 3412, 2143, 4321) all complete.
SOLVED_4 = [[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, 1]]
PUZZLE_4 = [[1, 0, 0, 4], [0, 0, 1, 0], [0, 1, 0, 0], [4, 0, 0, 1]]
# Rows and columns are permutations but the top-left box holds 1, 2, 2, 3.
LATIN_4 = [[1, 2, 3, 4], [2, 3, 4, 1], [3, 4, 1, 2], [4, 1, 2, 3]]
# The classic shifted pattern is a valid 9x9 sudoku.
SOLVED_9 = [[(3 * (r % 3) + r // 3 + c) % 9 + 1 for c in range(9)] for r in range(9)]


def test_sudoku_4x4_cases():
    relabelled = [[{1: 2, 2: 1}.get(d, d) for d in row] for row in SOLVED_4]  # valid, breaks the givens
    with_blank = [row[:] for row in SOLVED_4]
    with_blank[3][3] = 0
    predictions = [grid(SOLVED_4), grid(LATIN_4), grid(relabelled), grid(with_blank), "1 : 2 : 3 | 4", "garbage", None]
    rows = [{"puzzle": grid(PUZZLE_4)}] * len(predictions)
    # only the first is solved
    references = [grid(SOLVED_4)] * len(predictions)
    assert score("sudoku_solved", predictions, references, rows) == pytest.approx(100 / 7)


def test_sudoku_9x9_cases():
    puzzle = [[d if (r + c) % 3 == 0 else 0 for c, d in enumerate(row)] for r, row in enumerate(SOLVED_9)]
    swapped = [row[:] for row in SOLVED_9]
    swapped[0][0], swapped[0][1] = swapped[0][1], swapped[0][0]  # row still fine, columns broken
    relabelled = [[10 - d for d in row] for row in SOLVED_9]  # valid but contradicts the givens
    predictions = [grid(SOLVED_9), grid(swapped), grid(relabelled)]
    rows = [{"puzzle": grid(puzzle)}] * 3
    assert score("sudoku_solved", predictions, [grid(SOLVED_9)] * 3, rows) == pytest.approx(100 / 3)
    # a 4x4 answer to a 9x9 puzzle is not a solution
    assert score("sudoku_solved", [grid(SOLVED_4)], [grid(SOLVED_9)], [{"puzzle": grid(puzzle)}]) == 0.0


def test_sudoku_without_puzzle_column_uses_the_reference():
    relabelled = [[{1: 2, 2: 1}.get(d, d) for d in row] for row in SOLVED_4]
    assert score("sudoku_solved", [grid(SOLVED_4), grid(relabelled)], [grid(SOLVED_4)] * 2) == pytest.approx(50.0)


# --------------------------------------------------------------------------------------------------
# trivial baselines
# --------------------------------------------------------------------------------------------------


def test_baseline_most_frequent_answer_with_first_seen_tie_break():
    assert trivial_baseline(["no", "yes", "yes", "no", "maybe"], 3) == ["no", "no", "no"]  # 2-2 tie -> first
    assert trivial_baseline(["b", "a", "a"], 2) == ["a", "a"]
    # unhashable targets
    assert trivial_baseline([["x", "y"], ["z"], ["z"]], 1) == [["z"]]
    assert baseline_name(["yes", "no"]) == "best of the 10 most frequent answers"
    with pytest.raises(ValueError):
        trivial_baseline([], 1)


def test_best_constant_baseline_is_the_best_frequent_answer_on_these_references():
    train = ["cat"] * 5 + ["dog"] * 3 + ["fish"] * 2 + ["bird"]
    # "cat" is the most frequent training answer, but "dog" is right on 2 of these 4 rows, "fish" on 1
    scores, answer = best_constant_baseline(["accuracy"], train, ["dog", "fish", "dog", "eel"])
    assert answer == "dog" and scores == {"accuracy": pytest.approx(50.0)}
    # only the `candidates` most frequent answers are tried: with 1, the answer is "cat"
    scores, answer = best_constant_baseline(["accuracy"], train, ["dog", "fish", "dog", "eel"], candidates=1)
    assert answer == "cat" and scores["accuracy"] == 0.0
    # ties go to the more frequent answer; the first metric decides, every metric is reported
    scores, answer = best_constant_baseline(["accuracy", "exact_match"], train, ["fish", "cat"])
    assert answer == "cat" and set(scores) == {"accuracy", "exact_match"}
    # boxes: the median box is the only candidate
    boxes = [(0, 0, 10, 10), (2, 4, 6, 8), (1, 1, 20, 30)]
    scores, answer = best_constant_baseline(["iou_acc"], boxes, boxes)
    assert answer == (1.0, 1.0, 10.0, 10.0) and scores["iou_acc"] == pytest.approx(100 / 3)
    with pytest.raises(ValueError, match="at least one training target"):
        best_constant_baseline(["accuracy"], [], ["a"])


def test_baseline_median_box():
    boxes = [(0, 0, 10, 10), [2, 4, 6, 8], (1, 1, 20, 30)]
    # coordinate-wise medians: x0 of {0, 2, 1} = 1, y0 of {0, 4, 1} = 1, x1 of {10, 6, 20} = 10, y1 of {10, 8, 30} = 10
    assert trivial_baseline(boxes, 2) == [(1.0, 1.0, 10.0, 10.0)] * 2
    assert baseline_name(boxes) == "median box"
    # the baseline scores like any prediction
    assert score("iou_acc", trivial_baseline(boxes, 3), boxes) == pytest.approx(100 / 3)


# --------------------------------------------------------------------------------------------------
# model-index
# --------------------------------------------------------------------------------------------------

RESULTS = [
    {
        "task": "vqa",
        "task_type": "visual-question-answering",
        "dataset_name": "easy-vqa (default suite)",
        "dataset_type": "local/vqa",
        "split": "test",
        "metric": "vqa_accuracy",
        "value": 71.3,
        "baseline": 30.1,
    },
    {
        "task": "caption",
        "dataset_name": "emoji captions",
        "dataset_type": "local/caption",
        "split": "test",
        "metric": "cider",
        "value": 120.0,
        "baseline": 5.0,
        "baseline_name": "most frequent answer",
    },
    {
        "task": "grounding",
        "dataset_name": "sprite grounding",
        "dataset_type": "local/grounding",
        "split": "test",
        "metric": "iou_acc",
        "value": 42.0,
    },
    {
        "task": "vqa",
        "task_type": "visual-question-answering",
        "dataset_name": "easy-vqa (default suite)",
        "dataset_type": "local/vqa",
        "split": "test",
        "metric": "accuracy",
        "value": 70.0,
    },
]


def test_eval_results_map_metric_and_task_types():
    results = eval_results(RESULTS, "ofa-plus-tiny")
    # grouped by task/dataset: vqa's two metrics first
    assert [(r.task_name, r.metric_type) for r in results] == [
        ("vqa", "vqa_accuracy"),
        ("vqa", "accuracy"),
        ("caption", "cider"),
        ("grounding", "acc@0.5"),
    ]
    assert results[0].metric_value == 71.3 and "trivial baseline: 30.10" in results[0].metric_name
    assert results[2].task_type == "image-to-text"  # from TASK_TYPES
    assert results[2].metric_name == "CIDEr (trivial baseline: 5.00, most frequent answer)"


def test_model_index_round_trips_through_huggingface_hub():
    index = model_index(RESULTS, "ofa-plus-tiny")
    assert index[0]["name"] == "ofa-plus-tiny" and len(index[0]["results"]) == 3
    name, parsed = model_index_to_eval_results(index)
    assert name == "ofa-plus-tiny" and parsed == eval_results(RESULTS, "ofa-plus-tiny")

    yaml = model_card_metadata_yaml(RESULTS, "ofa-plus-tiny", library_name="transformers")
    card = ModelCard("---\n" + yaml + "\n---\n\n# ofa-plus-tiny\n")
    assert card.data.model_name == "ofa-plus-tiny" and card.data.library_name == "transformers"
    assert card.data.eval_results == eval_results(RESULTS, "ofa-plus-tiny")


def test_model_index_rejects_incomplete_or_clashing_results():
    with pytest.raises(ValueError, match="lacks value"):
        model_index([{**RESULTS[0], "value": None}], "m")
    clash = {**RESULTS[0], "task": "other_vqa", "dataset_name": "another"}  # same type/dataset type/split
    with pytest.raises(ValueError, match="distinct dataset_type"):
        eval_results([RESULTS[0], clash], "m")


def test_sudoku_grids_may_separate_cells_with_spaces():
    spaced = " | ".join(" ".join(str(d) for d in row) for row in SOLVED_4)  # the default suite's format
    assert parse_sudoku(spaced) == SOLVED_4
    assert score("sudoku_solved", [spaced], [grid(SOLVED_4)], [{"puzzle": grid(PUZZLE_4)}]) == 100.0


def test_swap_rows_moves_every_prediction_to_another_row():
    from ofa_plus.evaluation import swap_rows

    predictions = [f"p{i}" for i in range(50)]
    swapped = swap_rows(predictions)
    assert sorted(swapped) == sorted(predictions)  # nothing lost or repeated
    assert all(s != p for s, p in zip(swapped, predictions))  # none stays on its own row
    assert swap_rows(predictions) == swapped  # fixed seed
    assert swap_rows(["only"]) == ["only"]
