// `memskew demo`: the whole audit on data and a model it makes itself, so it
// needs nothing from outside the repository: a synthetic SFT dataset
// (data.h: write_synthetic_sft), a tiny Llama trained from scratch with a
// byte-level tokenizer and a checkpoint per epoch, a probe of every checkpoint
// on the training set, the analysis and the HTML report; then the data-side
// loop: filter the dataset (`memskew filter`), retrain, probe again.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "memskew/analysis.h"

namespace memskew {

struct DemoParams {
    std::string out_dir = "memskew-demo";
    size_t n_samples = 240;
    int64_t epochs = 8;
    uint64_t seed = 7;
    bool filter_loop = true;  // also filter, retrain and probe again (about doubles the time)
};

struct DemoEpoch {
    int64_t epoch = 0;
    double train_loss = 0.0;
    double mean_n_pre = 0.0, p99_n_pre = 0.0, max_n_pre = 0.0;
    int64_t n_exact = 0;
};

struct DemoSummary {
    std::string data_path, store_path, report_path;
    size_t n_samples = 0;
    int64_t n_params = 0;
    std::vector<DemoEpoch> epochs;
    AnalysisResult analysis;  // of the last checkpoint (with M11 trends over all)
    // The data-side loop (M12): the dataset filtered to one sample per
    // near-duplicate cluster, the same training on it, and its last checkpoint
    // probed on the full original dataset again.
    bool filtered = false;
    std::string filtered_data_path, manifest_path, filtered_store_path;
    size_t n_removed = 0;
    // Last checkpoint before and after filtering, over every original sample
    // and over the samples the filter kept.
    double max_before = 0, max_after = 0;
    int64_t exact_before = 0, exact_after = 0;
    int64_t exact_kept_before = 0, exact_kept_after = 0;
    double seconds = 0.0;
};

// Runs the demo; `log` receives one line per step taken.
DemoSummary run_demo(const DemoParams& params, const std::function<void(const std::string&)>& log = {});

}  // namespace memskew
