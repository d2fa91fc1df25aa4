// The study's results and their page (the report layer's part of
// `memskew study`; the pipeline gathers the numbers, see memskew/study.h).
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "memskew/analysis.h"
#include "memskew/stats.h"

namespace memskew {

// n samples of one dataset in an arm's training set.
struct StudySource {
    std::string dataset;
    int64_t n = 0;    // 0: every sample
    std::string key;  // where the config says so ("arms[1].data[0]"), for messages
};

// One checkpoint of one arm, as the store holds it.
struct StudyPoint {
    int64_t run_id = 0;
    int64_t step = 0;
    int64_t epoch = 0;
    // The mean of the epoch's logged step losses (RunSpec::train_loss; for a
    // store from before it was recorded, computed from the arm's
    // trainer_state.json), and the last logged step's loss.
    double train_loss = NAN;
    double train_loss_last_step = NAN;
    int64_t n_samples = 0;
    double mean_n_pre = NAN, p99_n_pre = NAN, max_n_pre = NAN;
    int64_t n_exact = 0;
    // [study] held_out: mean teacher-forced loss on the held-out samples.
    double held_out_loss = NAN;
    // With generation: the greedy outputs (approximate memorization, M12:
    // outputs within 10% normalised edit distance of the reference).
    std::optional<OutputSummary> greedy;
    // An arm probed with the decoding guard: the guarded outputs, and the mean
    // blocked steps per sample. The guard's cost is the difference of the two
    // summaries' mean log-probabilities.
    std::optional<OutputSummary> guarded;
    double guard_blocked = NAN;
};

struct StudyArmResult {
    std::string name;
    // What the arm applies against memorization (METHOD M12), e.g.
    // "Goldfish loss k = 4, h = 13" or "decoding guard n = 10"; empty: none.
    std::string mitigation;
    std::vector<StudySource> sources;
    uint64_t seed = 0;            // the arm's training seed (arms of one dataset and seed form a size series)
    int64_t n_train_samples = 0;
    bool trained_now = false;     // trained (or continued) by this invocation
    int64_t runs_probed = 0;      // runs probed or continued by this invocation
    int64_t runs_skipped = 0;     // runs already done in the store
    std::vector<StudyPoint> points;  // by epoch
};

struct StudyComparisonResult {
    std::string a, b;
    int64_t epoch = 0;
    int64_t n_shared = 0;
    double mean_a = NAN, mean_b = NAN, mean_difference = NAN;  // b - a
    std::optional<stats::WilcoxonResult> wilcoxon;
    std::string skipped;  // why no test ("all differences are zero", ...)
};

struct StudySummary {
    std::string name;   // [study] name
    std::string model;  // the base model's path, or "from scratch, <init>"
    std::string out_dir, store_path, report_path, json_path;
    std::vector<StudyArmResult> arms;
    std::vector<StudyComparisonResult> comparisons;  // every epoch both arms reached
    double seconds = 0.0;
};

// "medquad 500 + alpaca 100".
std::string study_sources_text(const std::vector<StudySource>& sources);

// The self-contained HTML page of a study (tables and SVG charts).
std::string render_study_report(const StudySummary& summary);

}  // namespace memskew
