"""memskew from Python: audit how much a fine-tuned language model memorized its
training data, per sample, and read the results as pandas DataFrames.

    import memskew
    summary = memskew.probe(model="model.gguf", data="train.jsonl", out="run.db", generate=True)
    store = memskew.Store("run.db")
    df = store.samples()                 # one row per sample, the columns of `memskew export`
    arrays = store.token_arrays(df.sample_id[0])
    result = memskew.analyze("run.db")   # the structure `memskew analyze --json` prints
    memskew.report("run.db", "report.html")

    m = memskew.Model("model.gguf", dtype="f32")
    m.score("Once upon a time", " there was a girl")["n_pre"]

Everything runs in memskew's C++ library (the extension module _memskew); the
GIL is released while models and stores work. Errors are ValueError (invalid
input or a malformed file), FileNotFoundError / OSError (a file that cannot be
read or written) and TypeError (an option probe() does not take), with the
command line's message and hint (also as the exception's ``hint``).
"""

import json as _json
import os as _os

# LibTorch's OpenMP threads should sleep, not spin, between parallel regions
# (the CLI re-executes itself with this; a module can only set it before the
# library loads).
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import _memskew  # noqa: E402

__version__ = _memskew.version
__all__ = ["Model", "Store", "probe", "analyze", "report", "__version__"]

try:  # optional: without pandas, tables are dicts of numpy arrays
    import pandas as _pd
except ImportError:  # pragma: no cover - exercised by the no-pandas test
    _pd = None

import numpy as _np  # noqa: E402


def _path(value, name):
    if isinstance(value, (str, _os.PathLike)):
        return _os.fspath(value)
    raise TypeError(f"{name} must be a path (str or os.PathLike), not {type(value).__name__}")


def _option_args(options):
    """Keyword options as the command line's: name_with_underscores=value ->
    --name-with-underscores value; True -> the flag; False/None -> left out;
    a list or tuple -> the option repeated."""
    args = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            args.append(flag)
        elif isinstance(value, (list, tuple)):
            for v in value:
                args += [flag, _scalar(name, v)]
        else:
            args += [flag, _scalar(name, value)]
    return args


def _scalar(name, value):
    if isinstance(value, bool):
        raise TypeError(f"option {name}: a flag (True/False) cannot be given inside a list")
    if isinstance(value, (int, float, str, _os.PathLike)) and not isinstance(value, bool):
        return _os.fspath(value) if isinstance(value, _os.PathLike) else str(value)
    raise TypeError(f"option {name} must be a number, a string or a path, not {type(value).__name__}")


# probe() options that belong to the command line's output only.
_CLI_ONLY = {"json", "quiet", "q"}


def probe(model, data, out, *, progress=None, **options):
    """Probe every sample of `data` on `model` into the results store `out`.

    Takes the options of ``memskew probe`` as keyword arguments, with the same
    defaults and checks (``memskew probe --help`` lists them): dashes become
    underscores (``batch_tokens=4096``), flags are booleans (``generate=True``,
    ``resume=True``), repeatable options take lists (``adapter=[...]``).
    ``progress``, when given, is called after every batch with a dict (done,
    total, tokens, seconds, run_index, n_runs, run_label). Ctrl-C stops the
    probe after the batch in flight; the store stays resumable
    (``resume=True``).

    Returns the run's summary (a dict, as ``memskew probe --json`` prints it),
    or a list of them when adapters/checkpoints were given.
    """
    for name in options:
        if name in _CLI_ONLY:
            raise TypeError(f"probe() got an unexpected keyword argument '{name}' (a command-line output option)")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable, not {type(progress).__name__}")
    args = ["--model", _path(model, "model"), "--data", _path(data, "data"), "--out", _path(out, "out")]
    args += _option_args(options)
    try:
        runs = _json.loads(_memskew.probe(args, progress))
    except TypeError as e:
        raise TypeError(_unexpected_option(str(e), options)) from None
    return runs if options.get("adapter") else runs[0]


def _unexpected_option(message, options):
    # CLI11 names the argument it did not expect ("--batch-tokenz"): name the keyword.
    for name in options:
        if "--" + name.replace("_", "-") in message:
            return f"probe() got an unexpected keyword argument '{name}'"
    return message


def analyze(store, run=None):
    """The analysis of a results store: the structure ``memskew analyze --json``
    prints (a dict). ``run`` picks a run id (default: the store's only run, or
    its last checkpoint)."""
    if run is not None and (isinstance(run, bool) or not isinstance(run, int)):
        raise TypeError(f"run must be an int run id, not {type(run).__name__}")
    store = store.path if isinstance(store, Store) else _path(store, "store")
    return _json.loads(_memskew.analyze(store, run))


def report(store, out, *, run=None, redact=False):
    """Writes the self-contained HTML report of a store (``memskew report``)."""
    if run is not None and (isinstance(run, bool) or not isinstance(run, int)):
        raise TypeError(f"run must be an int run id, not {type(run).__name__}")
    if not isinstance(redact, bool):
        raise TypeError(f"redact must be a bool, not {type(redact).__name__}")
    store = store.path if isinstance(store, Store) else _path(store, "store")
    _memskew.report(store, _path(out, "out"), run, redact)


def _column(values):
    """A numpy array for one table column: numbers (None -> NaN, or an int
    column when none is missing), booleans, else objects (strings)."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        if len(present) == len(values):
            return _np.array(values, dtype=bool)
        return _np.array(values, dtype=object)
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        if len(present) == len(values) and all(isinstance(v, int) for v in present):
            return _np.array(values, dtype=_np.int64)
        return _np.array([_np.nan if v is None else v for v in values], dtype=_np.float64)
    return _np.array(values, dtype=object)


def _table(rows, columns):
    data = {c: _column([r.get(c) for r in rows]) for c in columns}
    if _pd is not None:
        return _pd.DataFrame(data, columns=columns)
    return data


class Store:
    """A results store written by probe (read-only here). Safe to open while a
    probe writes it: every call reads a consistent snapshot (SQLite WAL)."""

    def __init__(self, path):
        self._store = _memskew.Store(_path(path, "path"))

    @property
    def path(self):
        return self._store.path

    def runs(self):
        """The store's runs: a DataFrame (or a dict of arrays without pandas),
        one row per run. The probe options are in the ``options`` column (dicts)."""
        rows = _json.loads(self._store.runs())
        columns = list(rows[0].keys()) if rows else ["run_id"]
        return _table(rows, columns)

    def samples(self, run=None):
        """The per-sample table, with the columns of ``memskew export`` (every
        run, or one run id); ``extra_json`` holds dicts."""
        if run is not None and (isinstance(run, bool) or not isinstance(run, int)):
            raise TypeError(f"run must be an int run id, not {type(run).__name__}")
        text = self._store.samples_jsonl(run)
        rows = [_json.loads(line) for line in text.splitlines() if line]
        columns = list(rows[0].keys()) if rows else _EXPORT_COLUMNS_FALLBACK
        return _table(rows, columns)

    def token_arrays(self, sample_id, run=None):
        """One sample's per-token arrays as numpy arrays (reference, match,
        argmax, logprob, rank, entropy, and logprob_sampling / generated when
        stored). ``run`` is required when the store holds several runs."""
        if not isinstance(sample_id, str):
            raise TypeError(f"sample_id must be a str, not {type(sample_id).__name__}")
        if run is not None and (isinstance(run, bool) or not isinstance(run, int)):
            raise TypeError(f"run must be an int run id, not {type(run).__name__}")
        return self._store.token_arrays(sample_id, run)

    def __repr__(self):
        return f"memskew.Store({self.path!r})"


# Columns of an empty table (export writes no rows to learn them from).
_EXPORT_COLUMNS_FALLBACK = ["run_id", "checkpoint_step", "checkpoint_epoch", "sample_id", "sample_index",
                            "prompt_tokens", "reference_tokens"]


class Model:
    """A model loaded by memskew: a GGUF file or a Hugging Face folder,
    optionally with a PEFT adapter."""

    def __init__(self, path, dtype="bf16", adapter=None, device="cpu", threads=0):
        if not isinstance(dtype, str):
            raise TypeError(f"dtype must be a str ('f32' or 'bf16'), not {type(dtype).__name__}")
        if not isinstance(device, str):
            raise TypeError(f"device must be a str ('cpu', 'cuda', 'cuda:N'), not {type(device).__name__}")
        if isinstance(threads, bool) or not isinstance(threads, int):
            raise TypeError(f"threads must be an int, not {type(threads).__name__}")
        self.path = _path(path, "path")
        self.adapter = None if adapter is None else _path(adapter, "adapter")
        self._model = _memskew.Model(self.path, dtype, self.adapter, device, threads)
        self.info = _json.loads(self._model.info())

    def tokenize(self, text, add_special=False):
        """Token ids of `text` (BOS/EOS only with add_special=True)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        return _np.array(self._model.tokenize(text, bool(add_special)), dtype=_np.int32)

    def detokenize(self, ids):
        return self._model.detokenize([int(i) for i in ids])

    def score(self, prompt, reference, *, generate=False, temperature=1.0, top_k=0, top_p=1.0, min_k=0.2):
        """Teacher-forced scores of `reference` after `prompt`, as ``memskew
        score`` and the probe compute them: per-token numpy arrays (match,
        argmax, logprob, rank, entropy, top1_prob), ``n_pre``, ``length``,
        ``exact`` and ``metrics``, the per-sample metrics under the store's
        column names (loss, min_k_prob, min_k_plus_plus, zlib_ratio, ...;
        with generate=True also rouge_l, lev_sim_tokens, pythia_score, ...)."""
        for name, value in (("prompt", prompt), ("reference", reference)):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a str, not {type(value).__name__}")
        out = self._model.score(prompt, reference, bool(generate), float(temperature), int(top_k), float(top_p),
                                float(min_k))
        out["metrics"] = _json.loads(out["metrics"])
        return out

    def generate(self, prompt="", max_new_tokens=64, *, stop_at_eos=True):
        """Greedy continuation of `prompt`: text, ids, per-token log-probabilities."""
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, not {type(prompt).__name__}")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
        return self._model.generate(prompt, max_new_tokens, bool(stop_at_eos))

    def __repr__(self):
        return f"memskew.Model({self.path!r}, dtype={self.info['dtype']!r}, device={self.info['device']!r})"
