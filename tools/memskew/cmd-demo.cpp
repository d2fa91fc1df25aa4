// `memskew demo`: the README's main command (the work is in src/pipeline/demo.cpp).
#include <fmt/format.h>

#include <cmath>

#include "cli.h"
#include "memskew/demo.h"

namespace memskew::cli {

void register_demo(CLI::App& app, Action& action) {
    auto p = std::make_shared<DemoParams>();
    auto* cmd = app.add_subcommand("demo", "Train a tiny model on a synthetic dataset and audit its memorization "
                                           "(needs no files from elsewhere)");
    cmd->footer("Example: memskew demo --out memskew-demo --epochs 4");
    cmd->add_option("--out", p->out_dir, "Folder for the demo's dataset, checkpoints, store and report");
    cmd->add_option("--epochs", p->epochs, "Training epochs")->check(CLI::Range(1, 100));
    cmd->add_option("--samples", p->n_samples, "Synthetic samples")->check(CLI::Range(20, 100000));
    cmd->add_option("--seed", p->seed, "Seed of the data, the model and the training");
    cmd->add_flag("--no-filter-loop{false}", p->filter_loop,
                  "Skip the data-side loop (filter near-duplicates, retrain, probe again)");
    cmd->callback([&action, p] {
        action = [p] {
            fmt::print("memskew demo: how much does a model memorize its fine-tuning data, and where?\n");
            const DemoSummary s = run_demo(*p, [](const std::string& line) {
                fmt::print("{}\n", line);
                std::fflush(stdout);
            });
            fmt::print("\nThe tail across training (n_pre = reference tokens reproduced verbatim before the first "
                       "miss, per sample; mean loss = the mean training loss of the epoch):\n");
            fmt::print("  {:>5}  {:>10}  {:>10}  {:>9}  {:>7}  {:>8}\n", "epoch", "mean loss", "mean n_pre",
                       "p99 n_pre", "max", "verbatim");
            for (const auto& e : s.epochs)
                fmt::print("  {:>5}  {:>10.3f}  {:>10.2f}  {:>9.1f}  {:>7.0f}  {:>8}\n", e.epoch, e.train_loss,
                           e.mean_n_pre, e.p99_n_pre, e.max_n_pre, e.n_exact);
            if (s.filtered)
                fmt::print("\nThe data-side fix (memskew filter --max-per-cluster 1, same training again; last "
                           "checkpoint on all {} original samples):\n"
                           "  removed {} near-duplicates -> {} (manifest {})\n"
                           "  max n_pre {:.0f} -> {:.0f}; verbatim {} -> {} ({} -> {} among the samples kept)\n",
                           s.n_samples, s.n_removed, s.filtered_data_path, s.manifest_path, s.max_before, s.max_after,
                           s.exact_before, s.exact_after, s.exact_kept_before, s.exact_kept_after);
            fmt::print("\nFindings (last checkpoint):\n");
            for (const auto& f : s.analysis.findings) fmt::print("  - {}\n", f);
            fmt::print("\nReport: {}\nResults store: {} (try: memskew analyze {})\nDone in {:.0f} s.\n", s.report_path,
                       s.store_path, s.store_path, s.seconds);
        };
    });
}

}  // namespace memskew::cli
