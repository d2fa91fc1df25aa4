// memskew._memskew: the library as a Python extension (pybind11). Thin: every
// function calls the library (or, for probe's options, the CLI's one
// declaration of them, tools/memskew/probe-options.h) and converts. The
// Python package (python/memskew/__init__.py) shapes the results (dicts,
// DataFrames) and checks keyword arguments.
//
// The GIL is released around model and store work; progress callbacks take
// it back, and so do Ctrl-C checks (PyErr_CheckSignals) after every batch of
// a probe, so KeyboardInterrupt stops it between committed batches (the
// store stays resumable).
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <CLI/CLI.hpp>

#include <cctype>
#include <cstring>
#include <sstream>

#include "memskew/engine.h"
#include "memskew/error.h"
#include "memskew/model.h"
#include "memskew/adapter.h"
#include "memskew/pipeline.h"
#include "memskew/probe.h"
#include "memskew/process-group.h"
#include "memskew/sft-encoder.h"
#include "memskew/store.h"
#include "memskew/tokenizer.h"
#include "probe-options.h"

namespace py = pybind11;
using namespace memskew;

namespace {

template <typename T>
py::array_t<T> to_numpy(const std::vector<T>& v) {
    py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
    if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(T));
    return a;
}

// A memskew error as the Python exception a user expects, with the CLI's
// message and hint (also as the exception's `hint` attribute).
void raise_error(PyObject* type, const Error& e) {
    const std::string text = e.hint().empty() ? e.message() : e.message() + "\n  hint: " + e.hint();
    py::object exc = py::reinterpret_borrow<py::object>(type)(text);
    exc.attr("hint") = e.hint();
    PyErr_SetObject(type, exc.ptr());
}

void translate(std::exception_ptr p) {
    try {
        if (p) std::rethrow_exception(p);
    } catch (const IoError& e) {
        std::string lower = e.message();
        for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        const bool missing = lower.find("no such file") != std::string::npos ||
                             lower.find("not found") != std::string::npos;
        raise_error(missing ? PyExc_FileNotFoundError : PyExc_OSError, e);
    } catch (const Error& e) {
        raise_error(PyExc_ValueError, e);  // InvalidInput, FormatError
    }
}

// Calls back into Python after each batch: the progress callback (if any),
// then a Ctrl-C check. Either may raise; the exception unwinds the probe.
struct ProgressBridge {
    py::object callback;
    void operator()(const ProbeProgress& pr) const {
        py::gil_scoped_acquire gil;
        if (!callback.is_none()) {
            py::dict d;
            d["done"] = pr.done;
            d["total"] = pr.total;
            d["tokens"] = pr.tokens;
            d["seconds"] = pr.seconds;
            d["run_index"] = pr.run_index;
            d["n_runs"] = pr.n_runs;
            d["run_label"] = pr.run_label;
            callback(d);
        }
        if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    }
};

// memskew.probe(): the CLI's probe options, parsed by the CLI's one
// declaration of them from `args` ("--model", "m.gguf", ...). Usage errors
// become TypeError (an option probe does not take) or ValueError (a value
// out of range); the run's errors as translate(). Returns the summaries as
// JSON text (what `memskew probe --json` prints, one per run).
std::string probe(const std::vector<std::string>& args, py::object progress) {
    CLI::App app{"memskew.probe"};
    auto* cmd = app.add_subcommand("probe");
    cli::ProbeOptions o;
    o.add_to(cmd);
    std::vector<std::string> argv{"probe"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::reverse(argv.begin(), argv.end());  // CLI11 takes the arguments reversed
    try {
        app.parse(argv);
    } catch (const CLI::ExtrasError& e) {
        throw py::type_error(std::string("probe() got an unexpected option: ") + e.what());
    } catch (const CLI::ParseError& e) {
        throw py::value_error(std::string("probe(): ") + e.what());
    }
    if (o.dist.launching())
        throw py::value_error("probe(): nproc is for the command line (memskew probe --nproc N); from Python, "
                              "start the script under torchrun instead");
    o.validate();
    ProbeParams p = o.params();
    ProgressBridge bridge{std::move(progress)};
    std::vector<ProbeSummary> runs;
    {
        py::gil_scoped_release release;
        // Under torchrun or srun the script is one rank of a job, as the CLI is.
        const DistEnv env = o.dist.env();
        if (env.distributed()) p.load.device = parse_device(rank_device(env, o.model.device));
        const auto group = ProcessGroup::connect(env);
        runs = run_probes(p, [&](const ProbeProgress& pr) { bridge(pr); }, group.get());
    }
    nlohmann::json out = nlohmann::json::array();
    for (const auto& s : runs) out.push_back(cli::probe_summary_json(s, o.generate, !o.adapters.empty()));
    return out.dump();
}

class PyModel {
public:
    PyModel(const std::string& path, const std::string& dtype, const std::optional<std::string>& adapter,
            const std::string& device, int threads) {
        LoadParams lp;
        lp.dtype = parse_dtype(dtype);
        lp.device = parse_device(device);
        lp.n_threads = threads;
        py::gil_scoped_release release;
        model_ = Model::load(path, lp);
        if (adapter) load_adapter(*model_, *adapter);
    }

    std::vector<int32_t> tokenize(const std::string& text, bool add_special) const {
        return model_->tokenizer().encode(text, add_special);
    }

    std::string detokenize(const std::vector<int32_t>& ids) const { return model_->tokenizer().decode(ids); }

    py::dict score(const std::string& prompt, const std::string& reference, bool generate, double temperature,
                   int64_t top_k, double top_p, double min_k) const {
        ProbeParams p;
        p.generate = generate;
        p.sampling = SamplingParams{temperature, top_k, top_p};
        p.metrics.min_k = min_k;
        ScoredSample s;
        {
            py::gil_scoped_release release;
            s = score_sample(*model_, prompt, reference, p);
        }
        const TokenScores& t = s.scores;
        py::dict d;
        d["prompt_ids"] = to_numpy(s.prompt);
        d["reference_ids"] = to_numpy(s.reference);
        std::vector<uint8_t> match(s.reference.size());
        for (size_t j = 0; j < match.size(); ++j) match[j] = t.argmax[j] == s.reference[j];
        d["match"] = to_numpy(match).attr("astype")("bool");
        d["argmax"] = to_numpy(t.argmax);
        d["logprob"] = to_numpy(t.logprob);
        d["rank"] = to_numpy(t.rank);
        d["entropy"] = to_numpy(t.entropy);
        d["top1_prob"] = to_numpy(t.top1_prob);
        if (!t.logprob_sampling.empty()) d["logprob_sampling"] = to_numpy(t.logprob_sampling);
        d["n_pre"] = t.n_pre;
        d["length"] = s.reference.size();
        d["exact"] = t.n_pre == static_cast<int32_t>(s.reference.size());
        if (s.generated) {
            d["generated_ids"] = to_numpy(s.generated->tokens);
            d["generated_text"] = s.generated->text.value_or("");
        }
        d["metrics"] = metrics_row_json(s.metrics).dump();  // the package parses it (export's column names)
        return d;
    }

    py::dict generate(const std::string& prompt, int32_t max_new_tokens, bool stop_at_eos) const {
        const Tokenizer& tok = model_->tokenizer();
        GenerateRequest req{encode_prompt(tok, prompt), {}, max_new_tokens};
        GenerateParams gp;
        gp.stop_at_eos = stop_at_eos;
        GenerateResult r;
        {
            py::gil_scoped_release release;
            r = Engine(model_).generate({req}, gp).front();
        }
        py::dict d;
        d["prompt_ids"] = to_numpy(req.prompt);
        d["ids"] = to_numpy(r.tokens);
        d["logprobs"] = to_numpy(r.logprobs);
        d["text"] = tok.decode(r.tokens);
        d["stop"] = std::string(stop_reason_name(r.reason));
        return d;
    }

    std::string info() const {
        const ModelConfig& c = model_->config();
        return nlohmann::json{{"path", model_->path()},
                              {"dtype", dtype_name(model_->dtype())},
                              {"device", model_->device()},
                              {"layers", c.n_layers},
                              {"dim", c.dim},
                              {"heads", c.n_heads},
                              {"vocab", c.n_vocab},
                              {"context", c.max_ctx}}
            .dump();
    }

private:
    std::shared_ptr<Model> model_;
};

class PyStore {
public:
    explicit PyStore(const std::string& path) : path_(path) {
        py::gil_scoped_release release;
        ResultReader::open(path_, false);  // fails here, not at first use
    }

    std::string runs() const {
        std::vector<RunInfo> runs;
        {
            py::gil_scoped_release release;
            runs = ResultReader::open(path_, false).runs();
        }
        nlohmann::json out = nlohmann::json::array();
        auto opt = [](const auto& v) { return v ? nlohmann::json(*v) : nlohmann::json(); };
        for (const auto& r : runs)
            out.push_back({{"run_id", r.run_id},
                           {"status", std::string(run_status_name(r.status))},
                           {"model_path", r.spec.model_path},
                           {"adapter_path", r.spec.adapter_path.empty() ? nlohmann::json() : nlohmann::json(r.spec.adapter_path)},
                           {"checkpoint_step", opt(r.spec.checkpoint_step)},
                           {"checkpoint_epoch", opt(r.spec.checkpoint_epoch)},
                           {"train_loss", opt(r.spec.train_loss)},
                           {"dataset_path", r.spec.dataset_path},
                           {"n_samples", r.n_samples},
                           {"n_samples_planned", r.spec.n_samples_planned},
                           {"started_at", r.started_at},
                           {"finished_at", opt(r.finished_at)},
                           {"memskew_version", r.memskew_version},
                           {"run_key", r.run_key},
                           {"options", r.spec.options}});
        return out.dump();
    }

    // The export's JSON Lines (the same columns as `memskew export`).
    std::string samples_jsonl(std::optional<int64_t> run) const {
        std::ostringstream out;
        {
            py::gil_scoped_release release;
            const auto reader = ResultReader::open(path_, false);
            ExportParams ep;
            ep.format = ExportFormat::kJsonl;
            ep.run_id = run;
            export_run(reader, ep, out);
        }
        return out.str();
    }

    py::dict token_arrays(const std::string& sample_id, std::optional<int64_t> run) const {
        std::optional<StoredTokens> t;
        {
            py::gil_scoped_release release;
            const auto reader = ResultReader::open(path_, false);
            const int64_t run_id = run ? *run : reader.only_run().run_id;
            reader.run(run_id);  // an unknown run id: InvalidInput listing the ids
            t = reader.load_tokens(run_id, sample_id);
        }
        if (!t)
            throw InvalidInput("no sample '" + sample_id + "' in " + path_ + (run ? " run " + std::to_string(*run) : ""),
                               "Store.samples() lists the sample ids");
        py::dict d;
        d["reference"] = to_numpy(t->reference);
        d["match"] = to_numpy(t->match).attr("astype")("bool");
        d["argmax"] = to_numpy(t->argmax);
        d["logprob"] = to_numpy(t->logprob);
        d["rank"] = to_numpy(t->rank);
        d["entropy"] = to_numpy(t->entropy);
        if (!t->logprob_sampling.empty()) d["logprob_sampling"] = to_numpy(t->logprob_sampling);
        if (t->generated) d["generated"] = to_numpy(*t->generated);
        return d;
    }

    const std::string& path() const { return path_; }

private:
    std::string path_;
};

std::string analyze(const std::string& store, std::optional<int64_t> run) {
    AnalyzeParams p;
    p.run_id = run;
    py::gil_scoped_release release;
    return to_json(analyze_store(store, p)).dump();
}

void report(const std::string& store, const std::string& out, std::optional<int64_t> run, bool redact) {
    AnalyzeParams ap;
    ap.run_id = run;
    ReportParams rp;
    rp.redact = redact;
    py::gil_scoped_release release;
    write_report_file(store, out, ap, rp);
}

}  // namespace

PYBIND11_MODULE(_memskew, m) {
    m.doc() = "memskew's C++ library (use the memskew package, not this module)";
    py::register_exception_translator(&translate);
    m.attr("version") = MEMSKEW_VERSION;
    m.def("probe", &probe, py::arg("args"), py::arg("progress") = py::none());
    m.def("analyze", &analyze, py::arg("store"), py::arg("run") = py::none());
    m.def("report", &report, py::arg("store"), py::arg("out"), py::arg("run") = py::none(), py::arg("redact") = false);
    py::class_<PyModel>(m, "Model")
        .def(py::init<const std::string&, const std::string&, const std::optional<std::string>&, const std::string&,
                      int>(),
             py::arg("path"), py::arg("dtype"), py::arg("adapter"), py::arg("device"), py::arg("threads"))
        .def("tokenize", &PyModel::tokenize, py::arg("text"), py::arg("add_special"))
        .def("detokenize", &PyModel::detokenize, py::arg("ids"))
        .def("score", &PyModel::score, py::arg("prompt"), py::arg("reference"), py::arg("generate"),
             py::arg("temperature"), py::arg("top_k"), py::arg("top_p"), py::arg("min_k"))
        .def("generate", &PyModel::generate, py::arg("prompt"), py::arg("max_new_tokens"), py::arg("stop_at_eos"))
        .def("info", &PyModel::info);
    py::class_<PyStore>(m, "Store")
        .def(py::init<const std::string&>(), py::arg("path"))
        .def("runs", &PyStore::runs)
        .def("samples_jsonl", &PyStore::samples_jsonl, py::arg("run"))
        .def("token_arrays", &PyStore::token_arrays, py::arg("sample_id"), py::arg("run"))
        .def_property_readonly("path", &PyStore::path);
}
