"""The Python module against the command line and hand calculations.

Independent sources: the memskew CLI's own outputs (`memskew export` read with
Python's csv module, `memskew score --json`, `memskew analyze --json`), and
closed forms computed here from the per-token arrays (n_pre is the length of
the leading run of matches; loss is the mean negative log-probability;
perplexity its exponential).

Run by ctest (label python) with PYTHONPATH=<build>/python and MEMSKEW=<the
memskew binary>.
"""

import csv
import io
import json
import math
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

import memskew

MEMSKEW = os.environ.get("MEMSKEW", "memskew")


def cli(*args, check=True):
    r = subprocess.run([MEMSKEW, *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"memskew {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A tiny Llama (byte tokenizer) trained a few epochs on 12 QA samples, and the data."""
    d = tmp_path_factory.mktemp("tiny")
    data = d / "qa.jsonl"
    with open(data, "w") as f:
        for i in range(12):
            f.write(json.dumps({"id": f"q{i}", "question": f"What is item {i}?",
                                "answer": f"Item {i} weighs {10 + 7 * i} grams."}) + "\n")
    cli("train", "--init", "dim=64,layers=2,heads=4,kv_heads=2,ffn=128,ctx=128", "-d", str(data),
        "--epochs", "4", "--lr", "3e-3", "-o", str(d / "train"), "-q")
    return {"model": str(d / "train" / "checkpoint-8"), "data": str(data), "dir": d}


@pytest.fixture(scope="session")
def store(tiny):
    out = str(tiny["dir"] / "run.db")
    calls = []
    summary = memskew.probe(tiny["model"], tiny["data"], out, generate=True, batch_size=4, progress=calls.append)
    return {"path": out, "summary": summary, "progress": calls}


def test_probe_summary_and_progress(store):
    s = store["summary"]
    assert s["samples"] == 12 and s["probed"] == 12
    assert s["store"] == store["path"]
    calls = store["progress"]
    assert len(calls) == 3  # 12 samples in batches of at most 4
    assert [c["done"] for c in calls] == sorted(c["done"] for c in calls)
    assert calls[-1]["done"] == calls[-1]["total"] == 12


def test_samples_match_the_cli_export(store):
    df = memskew.Store(store["path"]).samples()
    text = cli("export", store["path"], "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(df.columns) == list(rows[0].keys())  # the export's columns, in its order
    assert len(df) == len(rows) == 12
    for col in ["sample_id", "n_pre", "length", "loss", "min_k_prob", "min_k_plus_plus", "zlib_ratio", "rouge_l",
                "lev_sim_tokens", "pythia_score"]:
        for got, want in zip(df[col], (r[col] for r in rows)):
            if col == "sample_id":
                assert got == want
            elif want == "":
                assert got is None or (isinstance(got, float) and math.isnan(got))
            else:
                assert float(got) == float(want), (col, got, want)


def test_token_arrays_agree_with_the_table(store):
    s = memskew.Store(store["path"])
    df = s.samples()
    for sample_id, n_pre, length in zip(df["sample_id"], df["n_pre"], df["length"]):
        a = s.token_arrays(sample_id)
        assert a["reference"].dtype == np.int32 and len(a["reference"]) == length
        assert np.array_equal(a["match"], a["argmax"] == a["reference"])
        # n_pre: the leading run of matches (hand rule).
        lead = int(np.argmin(a["match"])) if not a["match"].all() else len(a["match"])
        assert lead == n_pre
        assert "generated" in a  # probed with generate=True
    with pytest.raises(ValueError, match="no sample 'nope'"):
        s.token_arrays("nope")


def test_runs_table(store):
    runs = memskew.Store(store["path"]).runs()
    assert list(runs["run_id"]) == [store["summary"]["run_id"]]
    assert runs["n_samples"][0] == 12
    assert runs["status"][0] == "done"
    assert runs["options"][0]["generate"] is True


def test_analyze_is_the_cli_json(store, tmp_path):
    got = memskew.analyze(store["path"])
    want = json.loads(cli("analyze", store["path"], "--json", "-").stdout)
    got.pop("seconds"), want.pop("seconds")  # the analysis' own timings
    assert got == want


def test_report_writes_html(store, tmp_path):
    out = tmp_path / "r.html"
    memskew.report(store["path"], out)
    assert out.read_text().lstrip().lower().startswith("<!doctype html")
    with pytest.raises(FileNotFoundError):
        memskew.report(tmp_path / "missing.db", tmp_path / "x.html")


def test_model_score_matches_the_cli_and_closed_forms(tiny):
    m = memskew.Model(tiny["model"], dtype="f32")
    prompt, reference = "What is item 3?", "Item 3 weighs 31 grams."
    s = m.score(prompt, reference, generate=True)
    want = json.loads(cli("score", "-m", tiny["model"], "-p", prompt, "-r", reference, "--json").stdout)
    assert s["n_pre"] == want["n_pre"]
    assert list(s["reference_ids"]) == want["reference_ids"]
    assert list(s["argmax"]) == [t["argmax"] for t in want["tokens"]]
    np.testing.assert_allclose(s["logprob"], [t["logprob"] for t in want["tokens"]], rtol=0, atol=1e-6)
    lead = int(np.argmin(s["match"])) if not s["match"].all() else len(s["match"])
    assert s["n_pre"] == lead
    loss = -float(np.mean(s["logprob"].astype(np.float64)))
    assert s["metrics"]["loss"] == pytest.approx(loss, rel=1e-6)
    assert s["metrics"]["perplexity"] == pytest.approx(math.exp(loss), rel=1e-6)
    assert s["metrics"]["n_pre"] == s["n_pre"]
    assert s["metrics"]["rouge_l"] is not None  # generated


def test_model_generate_and_tokenize(tiny):
    m = memskew.Model(tiny["model"], dtype="f32")
    ids = m.tokenize("What is item 3?")
    assert m.detokenize(ids) == "What is item 3?"
    g = m.generate("What is item 3?", 12, stop_at_eos=False)
    assert len(g["ids"]) == 12 and len(g["logprobs"]) == 12
    assert m.detokenize(g["ids"]) == g["text"]
    want = json.loads(cli("generate", "-m", tiny["model"], "--prompt", "What is item 3?", "--max-new-tokens", "12",
                          "--ignore-eos", "--json").stdout)
    assert g["text"] == want["text"]


def test_errors_map_to_python_exceptions(tiny, tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        memskew.Model(tmp_path / "none.gguf", dtype="f32")
    assert "none.gguf" in str(e.value)
    with pytest.raises(ValueError, match="dtype"):
        memskew.Model(tiny["model"], dtype="f16x")
    with pytest.raises(ValueError, match="this LibTorch build has no CUDA"):
        memskew.Model(tiny["model"], device="cuda")
    with pytest.raises(TypeError, match="dtype must be a str"):
        memskew.Model(tiny["model"], dtype=32)
    out = str(tmp_path / "x.db")
    with pytest.raises(TypeError, match="unexpected keyword argument 'batch_tokenz'"):
        memskew.probe(tiny["model"], tiny["data"], out, batch_tokenz=4)
    with pytest.raises(ValueError, match="--batch-tokens"):
        memskew.probe(tiny["model"], tiny["data"], out, batch_tokens=-1)
    with pytest.raises(TypeError, match="option batch_tokens must be"):
        memskew.probe(tiny["model"], tiny["data"], out, batch_tokens={"a": 1})
    with pytest.raises(TypeError, match="unexpected keyword argument 'json'"):
        memskew.probe(tiny["model"], tiny["data"], out, json=True)
    with pytest.raises(ValueError, match="nproc"):
        memskew.probe(tiny["model"], tiny["data"], out, nproc=2)
    with pytest.raises(FileNotFoundError) as e:
        memskew.probe(tiny["model"], tmp_path / "missing.jsonl", out)
    assert e.value.hint  # the command line's hint travels too
    with pytest.raises(TypeError, match="run must be an int"):
        memskew.analyze(out, run="1")
    assert not os.path.exists(out)  # nothing written by any refused call


def test_ctrl_c_stops_between_batches_and_resume_completes(tiny, store, tmp_path):
    out = str(tmp_path / "interrupted.db")

    def interrupt(p):
        if p["done"] >= 4:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: Python's handler runs at the next check

    with pytest.raises(KeyboardInterrupt):
        memskew.probe(tiny["model"], tiny["data"], out, generate=True, batch_size=4, progress=interrupt)
    partial = memskew.Store(out).samples()
    assert 0 < len(partial) < 12  # what was committed stays
    memskew.probe(tiny["model"], tiny["data"], out, generate=True, batch_size=4, resume=True)
    got = memskew.Store(out).samples().drop(columns=["run_id"])
    want = memskew.Store(store["path"]).samples().drop(columns=["run_id"])
    assert got.equals(want)  # the same table as the uninterrupted probe


def test_store_reads_while_a_probe_writes(tiny, tmp_path):
    out = str(tmp_path / "live.db")
    seen = []

    def read_now(p):
        seen.append((p["done"], len(memskew.Store(out).samples())))

    memskew.probe(tiny["model"], tiny["data"], out, batch_size=4, progress=read_now)
    assert seen == [(4, 4), (8, 8), (12, 12)]  # each committed batch visible, nothing half-written


def test_probe_releases_the_gil(tiny, tmp_path):
    out = str(tmp_path / "gil.db")
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)
            stop.wait(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    memskew.probe(tiny["model"], tiny["data"], out, batch_size=1, generate=True)
    stop.set()
    t.join()
    assert len(ticks) > 5  # the other thread ran while the probe worked


def test_without_pandas_tables_are_dicts_of_numpy_arrays(store):
    code = (
        "import sys; sys.modules['pandas'] = None\n"
        "import memskew, numpy as np\n"
        f"t = memskew.Store({store['path']!r}).samples()\n"
        "assert isinstance(t, dict), type(t)\n"
        "assert t['n_pre'].dtype == np.int64 and len(t['sample_id']) == 12\n"
        "print('ok', sorted(t)[:3])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok")
