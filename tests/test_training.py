"""`python -m rag.answer.train` reproduces a weights file the answerer loads, from labelled data alone."""

import json

from rag.answer.scoring import WEIGHTS_FILE, AnswererModel
from rag.answer.train import _half, main

S002 = "002_f2e8e39dc4325990.txt"
S004 = "004_936fb12f57722203.txt"
ANSWERABLE = [
    ("How many senators support the bipartisan sanctions bill?", S002,
     "A bipartisan bill on sanctions against Russia has the support of 82 senators ."),
    ("What tariff does the sanctions bill propose?", S002,
     "The document proposes a 500% tariff on imports from countries that buy Russian oil, petroleum products, "
     "natural gas and uranium ."),
    ("What did Lavrov tell Rubio about a ceasefire?", S004,
     "At a press conference in Moscow, Lavrov said he had informed Rubio that Russia's position - that a peace "
     "agreement must precede a ceasefire in the war with Ukraine - remained unchanged ."),
]
UNANSWERABLE = ["Who won the Super Bowl?", "What is the capital of Australia?", "how tall is mount logan"]


def _rows(texts, fitted, prefix):
    """Benchmark-style rows whose ids fall in the half the trainer fits on (or the other half)."""
    rows, n = [], 0
    for text in texts:
        while _half(f"{prefix}{n}") is not fitted:
            n += 1
        rows.append((f"{prefix}{n}", text))
        n += 1
    return rows


def test_training_reproduces_a_loadable_weights_file(tmp_path, corpus, capsys):
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "corpus").symlink_to(corpus, target_is_directory=True)
    lines = []
    for fitted in (True, False):
        for (row_id, (question, source, sentence)) in _rows(ANSWERABLE, fitted, f"a{fitted}"):
            lines.append({"id": row_id, "question": question, "answer": sentence, "reference_answers": [sentence],
                          "facts": [], "sources": [source], "answerable": True, "selected_sentences": [[sentence]]})
        lines += [{"id": row_id, "question": q, "answer": "", "facts": [], "sources": [], "answerable": False}
                  for row_id, q in _rows(UNANSWERABLE, fitted, f"u{fitted}")]
    (bench / "gold.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    own = tmp_path / "own.jsonl"
    own.write_text(json.dumps({"id": "o1", "question": "Where will Rubio and Lavrov meet?", "answer": "Malaysia.",
                               "facts": [["malaysia"]], "sources": [S004], "answerable": True, "split": "dev"}) + "\n" +
                   json.dumps({"id": "o2", "question": "What did Macron say?", "answer": "", "facts": [],
                               "sources": [], "answerable": False, "split": "dev"}) + "\n")
    out = tmp_path / "answerer.json"
    assert main(["--bench", str(bench), "--gold", str(own), "--corpus", str(corpus), "--out", str(out),
                 "--compare", str(WEIGHTS_FILE)]) == 0
    data = json.loads(out.read_text())
    # The shipped weights are reported on the same questions, before the refitted ones.
    printed = capsys.readouterr().out
    shipped, refitted = printed.split("refitted:")
    assert str(WEIGHTS_FILE) in shipped and '"bench (held out)"' in shipped and '"bench (held out)"' in refitted
    model = AnswererModel.load(out)
    assert model.answer_threshold == 0.5 and 0 < model.include_threshold < 1
    assert data["fitted_on"] == {"bench": 6, "own-gold": 2}
    assert {"bench (fitted)", "bench (held out)", "own-gold (fitted)"} <= set(data["report"])
    # The sentence model learned something: the labelled answers outscore the rest.
    assert data["rows"]["answering"] >= 3
