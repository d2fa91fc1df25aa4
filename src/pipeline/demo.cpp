#include "memskew/demo.h"
#include "memskew/pipeline.h"

#include <fmt/format.h>

#include <chrono>
#include <filesystem>

#include "memskew/data.h"
#include "memskew/engine.h"
#include "memskew/error.h"
#include "memskew/probe.h"
#include "memskew/report.h"
#include "memskew/tokenizer.h"
#include "memskew/train.h"

namespace memskew {

namespace fs = std::filesystem;

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
    for (const char* stale : {"memskew.db", "memskew.db-wal", "memskew.db-shm", "checkpoints", "model-init"})
        fs::remove_all(out / stale, ec);

    SyntheticParams sp;
    sp.n_samples = p.n_samples;
    sp.seed = p.seed;
    s.n_samples = write_synthetic_sft(s.data_path, sp);
    log(fmt::format("[1/4] dataset: {} synthetic samples (fictional patient records and support tickets, with "
                    "canaries, repeated records and near-duplicate prompts) -> {}",
                    s.n_samples, s.data_path));

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
    log(fmt::format("[2/4] training a {:.2f}M-parameter Llama from scratch (byte-level tokenizer) for {} epochs, "
                    "one checkpoint per epoch",
                    s.n_params / 1e6, p.epochs));
    const TrainSummary ts = train_model(*model, tp, {});
    for (const auto& e : ts.epochs) log(fmt::format("      epoch {:>2}  loss {:.3f}", e.epoch, e.loss));

    ProbeParams pp;
    pp.model_path = init_dir;
    pp.adapters = {tp.out_dir};
    pp.data_path = s.data_path;
    pp.out_path = s.store_path;
    pp.generate = true;
    log(fmt::format("[3/4] probing every checkpoint on all {} training samples (teacher forcing, checked against "
                    "greedy generation) -> {}",
                    s.n_samples, s.store_path));
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
    log(fmt::format("[4/4] analysis and report -> {}", s.report_path));
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return s;
}

}  // namespace memskew
