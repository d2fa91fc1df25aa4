#include "memskew/demo.h"
#include "memskew/pipeline.h"

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <unordered_set>

#include "memskew/data.h"
#include "memskew/engine.h"
#include "memskew/error.h"
#include "memskew/filter.h"
#include "memskew/probe.h"
#include "memskew/report.h"
#include "memskew/tokenizer.h"
#include "memskew/train.h"

namespace memskew {

namespace fs = std::filesystem;

namespace {

struct TailFigures {
    double max = 0;
    int64_t exact = 0, exact_kept = 0;
};

// max n_pre and verbatim counts of a run's samples; exact_kept over `kept` only.
TailFigures tail_of(const RunColumns& c, const std::unordered_set<std::string>& removed) {
    TailFigures t;
    for (std::size_t i = 0; i < c.size(); ++i) {
        if (c.n_pre[i] < 0) continue;
        t.max = std::max(t.max, static_cast<double>(c.n_pre[i]));
        const bool exact = c.n_pre[i] == c.length[i];
        t.exact += exact;
        if (!removed.count(c.sample_id[i])) t.exact_kept += exact;
    }
    return t;
}

// The data-side loop a user runs: filter, retrain the same way, probe again.
void filter_loop(const DemoParams& p, const TrainParams& first, const std::string& init_dir, DemoSummary& s,
                 const std::function<void(const std::string&)>& log) {
    const fs::path out(p.out_dir);
    FilterParams fp;
    fp.data_path = s.data_path;
    fp.store_path = s.store_path;
    fp.out_path = (out / "data.filtered.jsonl").string();
    fp.max_per_cluster = 1;
    const FilterReport fr = run_filter(fp);
    s.filtered_data_path = fr.out_path;
    s.manifest_path = fr.manifest_path;
    s.n_removed = fr.n_removed;
    const std::unordered_set<std::string> removed(fr.removed_ids.begin(), fr.removed_ids.end());

    auto model = Model::load(init_dir, {});
    TrainParams tp = first;
    tp.data_path = fr.out_path;
    tp.out_dir = (out / "checkpoints-filtered").string();
    const TrainSummary ts = train_model(*model, tp, {});
    // The last checkpoint of each training, on every original sample.
    ProbeParams pp;
    pp.model_path = init_dir;
    pp.adapters = {list_checkpoints(tp.out_dir).back()};
    pp.data_path = s.data_path;
    pp.out_path = (out / "filtered.db").string();
    s.filtered_store_path = pp.out_path;
    run_probes(pp);
    const ResultReader before_reader = ResultReader::open(s.store_path, false);
    const auto before_runs = before_reader.runs();
    const TailFigures before =
        tail_of(before_reader.load_columns(before_runs[last_checkpoint_index(before_runs)].run_id), removed);
    const ResultReader after_reader = ResultReader::open(pp.out_path, false);
    const TailFigures after = tail_of(after_reader.load_columns(after_reader.only_run().run_id), removed);
    s.filtered = true;
    s.max_before = before.max;
    s.max_after = after.max;
    s.exact_before = before.exact;
    s.exact_after = after.exact;
    s.exact_kept_before = before.exact_kept;
    s.exact_kept_after = after.exact_kept;
    log(fmt::format("[5/5] filter: removed {} near-duplicates (one sample per cluster stays) -> {}; retrained {} "
                    "epochs (mean loss of the last epoch {:.3f}) and probed again -> {}",
                    fr.n_removed, fr.out_path, p.epochs, ts.epochs.empty() ? NAN : ts.epochs.back().loss,
                    pp.out_path));
}

}  // namespace

DemoSummary run_demo(const DemoParams& p, const std::function<void(const std::string&)>& log_fn) {
    const auto t0 = std::chrono::steady_clock::now();
    auto log = [&](const std::string& line) {
        if (log_fn) log_fn(line);
    };
    std::error_code ec;
    fs::create_directories(p.out_dir, ec);
    if (ec) throw IoError(fmt::format("cannot create folder '{}': {}", p.out_dir, ec.message()));
    DemoSummary s;
    const fs::path out(p.out_dir);
    s.data_path = (out / "data.jsonl").string();
    s.store_path = (out / "memskew.db").string();
    s.report_path = (out / "report.html").string();
    // A fresh demo every time: old results would make the store refuse the run.
    for (const char* stale : {"memskew.db", "memskew.db-wal", "memskew.db-shm", "checkpoints", "model-init",
                              "filtered.db", "filtered.db-wal", "filtered.db-shm", "checkpoints-filtered",
                              "data.filtered.jsonl", "data.filtered.jsonl.manifest.jsonl"})
        fs::remove_all(out / stale, ec);

    SyntheticParams sp;
    sp.n_samples = p.n_samples;
    sp.seed = p.seed;
    s.n_samples = write_synthetic_sft(s.data_path, sp);
    log(fmt::format("[1/{}] dataset: {} synthetic samples (fictional patient records and support tickets, with "
                    "canaries, repeated records and near-duplicate prompts) -> {}",
                    p.filter_loop ? 5 : 4, s.n_samples, s.data_path));

    ModelConfig cfg;
    cfg.name = "memskew-demo-llama";
    cfg.dim = 128;
    cfg.n_layers = 3;
    cfg.n_heads = 4;
    cfg.n_kv_heads = 2;
    cfg.ffn_dim = 320;
    cfg.max_ctx = 256;
    auto model = Model::random_llama(cfg, make_byte_vocab(), p.seed, {});
    s.n_params = model->config().n_params();
    const std::string init_dir = (out / "model-init").string();
    model->save_hf(init_dir);

    TrainParams tp;
    tp.data_path = s.data_path;
    tp.mode = TrainMode::kFull;
    tp.epochs = p.epochs;
    tp.batch_size = 16;
    tp.lr = 3e-3;
    tp.warmup_steps = 10;
    tp.weight_decay = 0.01;
    tp.seed = p.seed;
    tp.out_dir = (out / "checkpoints").string();
    log(fmt::format("[2/{}] training a {:.2f}M-parameter Llama from scratch (byte-level tokenizer) for {} epochs, "
                    "one checkpoint per epoch",
                    p.filter_loop ? 5 : 4, s.n_params / 1e6, p.epochs));
    const TrainSummary ts = train_model(*model, tp, {});
    for (const auto& e : ts.epochs) log(fmt::format("      epoch {:>2}  mean loss {:.3f}", e.epoch, e.loss));

    ProbeParams pp;
    pp.model_path = init_dir;
    pp.adapters = {tp.out_dir};
    pp.data_path = s.data_path;
    pp.out_path = s.store_path;
    pp.generate = true;
    log(fmt::format("[3/{}] probing every checkpoint on all {} training samples (teacher forcing, checked against "
                    "greedy generation) -> {}",
                    p.filter_loop ? 5 : 4, s.n_samples, s.store_path));
    const auto runs = run_probes(pp);
    size_t disagreements = 0;
    for (const auto& r : runs) disagreements += r.disagreements.size();
    if (disagreements > 0)
        log(fmt::format("      note: greedy generation disagreed with teacher forcing on {} samples", disagreements));

    AnalyzeParams ap;
    ap.seed = p.seed;
    s.analysis = analyze_store(s.store_path, ap);
    for (const auto& c : s.analysis.trends.checkpoints) {
        DemoEpoch e;
        e.epoch = c.epoch.value_or(0);
        e.train_loss = c.train_loss.value_or(NAN);
        e.mean_n_pre = c.mean;
        e.p99_n_pre = c.p99;
        e.max_n_pre = c.max;
        e.n_exact = c.n_exact;
        s.epochs.push_back(e);
    }
    write_report_file(s.store_path, s.report_path, ap, {});
    log(fmt::format("[4/{}] analysis and report -> {}", p.filter_loop ? 5 : 4, s.report_path));
    if (p.filter_loop) filter_loop(p, tp, init_dir, s, log);
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return s;
}

}  // namespace memskew
