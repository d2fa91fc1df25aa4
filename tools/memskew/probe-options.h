// The options of `memskew probe`, declared once: the CLI's probe command and
// the Python module's memskew.probe() both parse them here, so they take the
// same options with the same defaults and checks.
#pragma once

#include <nlohmann/json.hpp>

#include <vector>

#include "cli.h"
#include "memskew/probe.h"

namespace memskew::cli {

struct ProbeOptions {
    ModelOptions model;
    DatasetOptions data;
    DistCliOptions dist;
    std::string out;
    uint64_t seed = 0;
    int64_t batch_tokens = 8192, batch_size = 64;
    double temperature = 1.0, top_p = 1.0, min_k = 0.2, n_tries = 100;
    int64_t top_k = 0, k_extractable = 50;
    bool generate = false, resume = false, no_text = false;
    bool no_embeddings = false, keep_embeddings = false;
    std::string embed_model, guard;
    int neighbours = 10;
    int64_t guard_n = 10;
    std::vector<std::string> adapters;

    // Every probe option but the CLI's own output flags (--quiet, --json).
    void add_to(CLI::App* cmd);
    // What CLI11 cannot check; call after parsing.
    void validate() const;
    // The probe's parameters (for one process: the caller adjusts threads and
    // device for a rank of a job).
    ProbeParams params() const;
};

// A run's summary as `memskew probe --json` prints it (with the target when
// `with_target`: probes of adapters / checkpoints).
nlohmann::json probe_summary_json(const ProbeSummary& summary, bool generate, bool with_target);

}  // namespace memskew::cli
