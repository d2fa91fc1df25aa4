// Whole-run analysis of a results store (`memskew analyze RUN.db`): METHOD
// M5 (skew), M6 (sampling bias, bootstrap), M7 (hazard decomposition and the
// independence check), M8 (Spearman against the other metric columns), M9
// (term-wise vs sequence-level optimal predictors from a trie over the
// references) and M11 (checkpoint trends and paired Wilcoxon tests).
//
// The numbers come from the stats layer (memskew/stats.h); this part selects
// the data, guards the preconditions and collects the results in one struct
// with a stable JSON form (docs/analysis-json.md, kAnalysisSchemaVersion).
//
// Conventions of the result
//   - A section that cannot be computed keeps `skipped` non-empty with the
//     reason ("needs token arrays", "one sample: ...") and its other fields
//     empty; JSON writes {"skipped": "reason"} plus the always-present counts.
//   - A single statistic that cannot be computed (skewness of constant data,
//     adjusted kurtosis of 3 samples) is NaN here, `null` in JSON, and its
//     reason is listed in the section's `null_reasons` (field name -> reason).
//   - Samples whose n_pre is NULL in the store (-1 in RunColumns) are left out
//     of every statistic and counted in AnalysisResult::n_samples_without_n_pre.
//   - Everything random (bootstrap, permutation tests) is seeded by
//     AnalyzeParams::seed: the same store and params give the same document.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "memskew/stats.h"
#include "memskew/store-similarity.h"
#include "memskew/store.h"

namespace memskew {

// Version of the JSON document's layout ("schema_version"). Bumped on any
// change that renames or removes a field or changes its meaning; new fields
// may appear without a bump. 2: train_loss is the epoch's mean training loss
// (it was the last logged step's, now train_loss_last_step).
inline constexpr int kAnalysisSchemaVersion = 2;

struct AnalyzeParams {
    // The run analysed in M5–M9. Absent: the store's only run; with several
    // runs, the last checkpoint (largest checkpoint_step, then epoch, then run_id).
    std::optional<int64_t> run_id;
    std::size_t top_k = 10;          // M5 top-k list
    std::size_t n_bootstrap = 1000;  // M6 resamples (>= 1000 recommended by METHOD)
    uint64_t seed = 0;               // bootstrap and permutation tests
    double confidence = 0.95;        // bootstrap intervals and hazard bands
    // M6 curve: subset sizes z = ceil(fraction * M), and the top-k sizes.
    std::vector<double> subset_fractions{0.01, 0.02, 0.05, 0.10, 0.20, 0.50};
    std::vector<int64_t> miss_top_k{1, 5, 10};
    std::vector<double> miss_deltas{0.05, 0.01};  // subset size for confidence 1 - delta
    // M7 independence check: permutations per position (0: skip the check).
    std::size_t n_permutations = 1000;
    bool hazard_fits = true;  // M7 geometric / linear-hazard fits
    bool predictors = true;   // M9 (streams token arrays and prompt texts)
    bool trends = true;       // M11 over the store's other runs
    bool similarity = true;   // M10 figures and the M12 triage
    // M12 triage: k values beside top_k, as fractions of the samples.
    std::vector<double> triage_fractions{0.01, 0.05};
};

// ---- M5 ---------------------------------------------------------------------

struct TopSample {
    std::string sample_id;
    double value = 0;
};

struct DistributionSection {
    std::string skipped;  // empty: computed
    stats::NPreSummary summary;          // of n_pre (absolute) and n_pre / L (normalized)
    std::vector<TopSample> top;          // summary.absolute.top with sample ids
    std::vector<TopSample> top_normalized;
    int64_t total_memorized_tokens = 0;  // sum of n_pre
    std::map<std::string, std::string> null_reasons;
};

// ---- M6 ---------------------------------------------------------------------

struct MissPoint {
    double fraction = 0;       // requested z / M
    int64_t subset_size = 0;   // z = ceil(fraction * M), at least 1
    int64_t k = 0;
    double p_miss = 0;         // P(a random subset of size z misses all top-k samples)
};

struct SubsetSizeNeeded {
    int64_t k = 0;
    double delta = 0;
    int64_t subset_size = 0;   // smallest z with P(miss top-k) <= delta
    double fraction = 0;       // subset_size / M
};

struct SamplingSection {
    std::string skipped;
    int64_t n_samples = 0;               // M
    std::vector<MissPoint> p_miss;       // fractions x k; k > M left out
    std::vector<SubsetSizeNeeded> needed;
    std::optional<stats::BootstrapResult> bootstrap;  // mean, quantile (p99), max
    std::map<std::string, std::string> null_reasons;
};

// ---- M7 ---------------------------------------------------------------------

struct HazardSection {
    std::string skipped;
    std::vector<stats::PositionHazard> positions;  // j = 1..max L
    std::optional<stats::ModelFit> geometric;
    std::optional<stats::ModelFit> linear_hazard;
    // Per position j >= 2, from the per-token match arrays (c_j).
    std::vector<stats::PositionDependence> independence;
    std::string independence_skipped;     // empty: computed
    int64_t n_samples_with_tokens = 0;    // token arrays found for the run's samples
    // Samples whose stored match array disagrees with n_pre (first 0 at n_pre + 1).
    int64_t n_match_inconsistent = 0;
    std::map<std::string, std::string> null_reasons;
};

// ---- M8 ---------------------------------------------------------------------

struct CorrelationEntry {
    std::string metric;                // metric column name
    std::size_t n_used = 0;            // samples where both n_pre and the metric are finite
    stats::CorrelationResult spearman; // statistic / p_value NaN when not computable
    std::string null_reason;           // why statistic or p_value is null, if so
};

// A run's training loss in words, for the terminal: "mean of the epoch 1.23
// (last step 1.1)"; for a run that recorded only the last step's loss (a
// store from before schema version 3, or no loss logged in the checkpoint's
// epoch) "last step 1.1 (no epoch mean recorded)"; "" when neither is known.
std::string train_loss_text(const std::optional<double>& epoch_mean, const std::optional<double>& last_step,
                            int precision = 4);

// The metrics users compare n_pre against, in the order `memskew analyze`'s
// terminal summary leads with them: loss, min-k%, min-k%++, zlib, Pythia
// score, ROUGE-L, Levenshtein similarity (store column names; the generation
// ones need `probe --generate`). The other columns follow.
inline constexpr const char* kM8LeadMetrics[] = {"loss",         "min_k_prob", "min_k_plus_plus", "zlib_ratio",
                                                 "pythia_score", "rouge_l",    "lev_sim_tokens"};

struct CorrelationSection {
    std::string skipped;
    std::vector<CorrelationEntry> entries;  // schema order; all-NaN columns left out
    std::vector<std::string> skipped_columns;  // all-NaN (never computed) columns
};

// ---- M9 ---------------------------------------------------------------------

struct DivergenceCounts {
    int64_t data_ambiguous = 0;  // r_j is not the unique majority continuation (or a tie)
    int64_t model = 0;           // r_j is the unique majority, the model chose otherwise
};

struct PredictorSection {
    std::string skipped;
    // How prompts were identified: "prompt_text" (xxh3-64 of the stored
    // prompt text; samples without one are their own prompt) — the store
    // keeps no prompt token ids.
    std::string prompt_key;
    int64_t n_samples = 0;              // samples with token arrays
    int64_t n_prompts = 0;              // distinct prompt keys
    int64_t n_shared_prompts = 0;       // prompts held by >= 2 samples
    int64_t n_samples_shared_prompt = 0;
    int64_t n_samples_without_prompt = 0;
    int64_t n_positions = 0;            // reference positions over all samples
    int64_t n_majority = 0;             // positions where r_j is M_t's choice (unique majority)
    int64_t n_tie = 0;                  // positions whose context has a tied majority
    int64_t n_model_agrees = 0;         // positions where argmax == M_t's choice (no tie)
    int64_t n_ambiguous_contexts = 0;   // distinct shared contexts with >= 2 continuations
    int64_t n_diverged = 0;             // samples with n_pre < L
    DivergenceCounts divergence;        // of those, by cause
    // M_b: the most frequent full reference per prompt.
    int64_t n_mb_majority = 0;          // samples whose reference is its prompt's unique M_b
    int64_t n_mb_exact = 0;             // of those, reproduced verbatim (exact)
    int64_t n_exact_not_mb = 0;         // reproduced verbatim although not M_b
    // Among samples with a data-ambiguous divergence: up to top_k examples.
    std::vector<std::string> ambiguous_examples;  // sample ids
    // Per sample (RunColumns order; -1 without token arrays): the leading
    // reference positions whose r_j is the unique majority continuation, the
    // longest prefix greedy decoding could reproduce if the model learned the
    // data's term-wise majority. A triage signal (M12); not in the JSON.
    std::vector<int64_t> unambiguous_prefix;
};

// ---- M10 and the data side of M12 ----------------------------------------------

// One run's global similarity (the S table per checkpoint).
struct RunSimilarityRow {
    int64_t run_id = 0;
    std::optional<int64_t> step, epoch;
    double s_input = NAN, s_full = NAN, delta_s = NAN;
    int64_t n_samples = 0;
    std::string knn_method;
    double knn_recall = NAN;
};

struct SimilarityCorrelation {
    std::string figure;     // knn_sim_prompt, knn_sim_full, knn_sim_delta, cluster_size, ...
    std::size_t n_used = 0;
    stats::CorrelationResult spearman;  // of n_pre with the figure
    std::string null_reason;
};

// n_pre of the samples whose figure falls in [lo, hi] (a quantile bucket of
// the per-sample ΔS, or a cluster-size class).
struct SimilarityBucket {
    std::string label;
    double lo = NAN, hi = NAN;
    int64_t n = 0;
    double mean_n_pre = NAN, p90_n_pre = NAN;
    int64_t max_n_pre = 0;
    int64_t n_exact = 0;
};

struct ClusterMember {
    std::string sample_id;
    int64_t n_pre = -1;  // -1: no n_pre
};

struct ClusterSummary {
    int64_t cluster = 0;   // sample_index of its first sample
    int64_t size = 0;
    double mean_n_pre = NAN;
    int64_t max_n_pre = 0;
    std::vector<ClusterMember> members;  // by n_pre descending, at most AnalyzeParams::top_k
};

// How well one cheap signal finds the tail: the samples ranked by the signal
// (ties in sample order), its top k against the true tail.
struct TriagePoint {
    int64_t k = 0;
    int64_t hits = 0;         // of the signal's top k, how many are in the true tail
    double precision = NAN;   // hits / k
    double recall = NAN;      // hits / |true tail|
};

struct TriageSignal {
    std::string signal;     // a metric or similarity column
    std::string direction;  // "higher" or "lower": which end is ranked riskier
    std::size_t n_used = 0; // samples with a value (the others rank last)
    std::vector<TriagePoint> points;
};

struct TriageSection {
    std::string skipped;
    // The true tail at each k: the samples whose n_pre is at least the k-th
    // largest n_pre and at least 1 (ties included, so it may hold more than k
    // samples; fewer when fewer have n_pre >= 1).
    std::vector<int64_t> ks;
    std::vector<int64_t> tail_sizes;       // per k
    std::vector<int64_t> tail_thresholds;  // per k: the least n_pre in the tail
    std::vector<double> random_precision;  // per k: |tail| / M, what a random ranking scores
    std::vector<TriageSignal> signals;
};

struct SimilaritySection {
    std::string skipped;  // e.g. how to get the figures
    std::optional<RunSimilarity> run;         // the selected run's figures
    std::vector<RunSimilarityRow> checkpoints;  // every run with figures, in checkpoint order
    std::vector<SimilarityCorrelation> correlations;
    std::vector<SimilarityBucket> by_delta;         // quintiles of per-sample ΔS
    std::vector<SimilarityBucket> by_cluster_size;  // 1, 2, 3-4, 5-9, 10+
    std::vector<ClusterSummary> largest_clusters;   // at most top_k
    // The paper's remark checked on this run: "holds", "does not hold",
    // "inconclusive" or "" (no embeddings), with the sentence saying why.
    std::string claim;
    std::string claim_text;
    // Per sample (RunColumns order, NaN when absent): ΔS_i, for the report's scatter.
    std::vector<double> sample_delta;
    TriageSection triage;
};

// ---- M11 --------------------------------------------------------------------

struct CheckpointSummary {
    int64_t run_id = 0;
    std::optional<int64_t> step, epoch;
    std::optional<double> train_loss;            // the epoch's mean (RunSpec::train_loss)
    std::optional<double> train_loss_last_step;  // the last logged step's
    int64_t n_samples = 0;  // samples with n_pre
    double mean = NAN, p99 = NAN, max = NAN;  // NaN (null) when n_samples = 0
    int64_t n_exact = 0;
};

struct PairedComparison {
    int64_t run_a = 0, run_b = 0;   // run_a earlier
    std::string relation;           // "consecutive", "first_vs_last" or "pair"
    int64_t n_shared = 0;           // sample ids in both runs with n_pre in both
    // Paired Wilcoxon signed-rank test of n_pre(b) against n_pre(a) on the
    // shared samples (two-sided; z > 0 when b is larger).
    std::optional<stats::WilcoxonResult> wilcoxon;
    double mean_a = NAN, mean_b = NAN;  // mean n_pre over the shared samples
    double mean_difference = NAN;   // mean of n_pre(b) - n_pre(a) over shared samples
    std::string skipped;            // e.g. "no shared samples", "all differences are zero"
};

// Checkpoint order: by step, then epoch, then run_id (absent first).
bool checkpoint_before(const RunInfo& a, const RunInfo& b);
// The run analyze picks by default: the last checkpoint.
std::size_t last_checkpoint_index(const std::vector<RunInfo>& runs);

// The one M11 implementation, used by analyze and by the study report.
// One run's n_pre figures: samples with n_pre, mean, p99 (Hyndman-Fan type 7),
// max and the verbatim count (n_pre == L, L the stored length, else the
// reference token count).
CheckpointSummary summarize_checkpoint(const RunInfo& info, const RunColumns& columns);
// Two runs' n_pre paired by sample id (a earlier, b later); relation is left empty.
PairedComparison compare_checkpoints(const RunInfo& a_info, const RunColumns& a, const RunInfo& b_info,
                                     const RunColumns& b);

// Mean of a metric column's finite values; NaN when the column is absent or
// holds none.
double metric_mean(const RunColumns& columns, std::string_view metric);
// The run's columns with n_pre taken from another integer metric column
// (n_pre_generated, guard_n_pre: the n_pre of an output), so that
// summarize_checkpoint and compare_checkpoints apply to generated outputs.
RunColumns with_n_pre_from(const RunColumns& columns, std::string_view metric);

struct TrendSection {
    std::string skipped;  // e.g. "one run"
    std::vector<CheckpointSummary> checkpoints;  // by step, epoch, run_id
    std::vector<PairedComparison> comparisons;   // all pairs if <= 10 runs
};

// ---- M12: mitigation applied to the run -------------------------------------------

// The greedy outputs of a run, unguarded or guarded.
struct OutputSummary {
    int64_t n = 0;                    // samples with this output
    double mean_n_pre = NAN, p99_n_pre = NAN, max_n_pre = NAN;  // n_pre of the output
    int64_t n_exact = 0;
    double approx_share = NAN;        // within 10% normalised edit distance of the reference
    double mean_lcs = NAN;            // longest common substring with the reference (tokens)
    double mean_rouge_l = NAN;
    double mean_logprob = NAN;        // the model's mean log-probability of the emitted tokens
};

// A run's greedy outputs summarised: the unguarded ones (n_pre_generated and
// the gen_* columns) or, with `guarded`, the guard's (guard_* columns).
OutputSummary summarize_outputs(const RunInfo& info, const RunColumns& columns, bool guarded);

struct MitigationSection {
    // What was applied, in words with parameters: "decoding guard n = 10",
    // "Goldfish loss k = 4, h = 13" (from the run's options). Empty: nothing.
    std::vector<std::string> applied;
    std::string skipped;              // no generation in the run: why the rest is empty
    OutputSummary greedy;             // unguarded greedy outputs
    std::optional<OutputSummary> guarded;
    int64_t blocked_steps = 0;        // over all samples
    // Paired Wilcoxon signed-rank test of the guarded outputs' n_pre against
    // the unguarded ones' (b = guarded), on the samples with both.
    std::optional<PairedComparison> guard_test;
};

// ---- result -------------------------------------------------------------------

struct AnalysisResult {
    int schema_version = kAnalysisSchemaVersion;
    std::string store_path;
    RunInfo run;                         // the run of M5–M9
    int64_t n_runs = 0;                  // runs in the store
    int64_t n_samples = 0;               // samples of the run
    int64_t n_samples_without_n_pre = 0; // NULL n_pre: left out
    uint64_t seed = 0;
    // Plain-language findings, most important first (the summary's first lines).
    std::vector<std::string> findings;
    DistributionSection distribution;    // M5
    SamplingSection sampling;            // M6
    HazardSection hazard;                // M7
    CorrelationSection correlations;     // M8
    PredictorSection predictors;         // M9
    SimilaritySection similarity;        // M10 and the data side of M12 (risk triage)
    MitigationSection mitigation;        // M12: what was applied, guarded vs unguarded outputs
    TrendSection trends;                 // M11
    std::vector<std::string> warnings;
    std::map<std::string, double> seconds;  // wall time per section ("load", "m5", ...)
};

// ---- entry points ---------------------------------------------------------------

// Streams (sample_id, tokens) of one run; ResultReader::for_each_tokens fits.
using TokenVisitor = std::function<void(const std::string& sample_id, const StoredTokens& tokens)>;
using TokenStream = std::function<void(const TokenVisitor& visit)>;

// One run as already loaded data (tests, benchmarks, other front ends).
struct RunInput {
    RunInfo info;
    RunColumns columns;  // only sample_id and n_pre are needed for M11 trend runs
    TokenStream tokens;  // empty: no token arrays (M7 independence and M9 skipped)
    // Prompt text per sample, parallel to columns.sample_id (M9's prompt key);
    // empty vector: prompts unknown; nullopt entries: that sample's is missing.
    std::vector<std::optional<std::string>> prompts;
    // M10: the run's figures (nullopt: not computed) and, for the selected
    // run, its per-sample figures (any order; matched by sample id).
    std::optional<RunSimilarity> similarity;
    std::vector<SampleSimilarity> sample_similarity;
};

// Analyses runs[selected] in full and all runs for M11. Throws InvalidInput for
// an empty `runs` or an out-of-range index, and when the selected run has no
// samples (nothing to analyse: the message says so).
AnalysisResult analyze_runs(const std::vector<RunInput>& runs, std::size_t selected,
                            const AnalyzeParams& params = {});


// The JSON document (docs/analysis-json.md). NaN/inf become null.
nlohmann::json to_json(const AnalysisResult& result);
// A run's similarity figures as JSON (the "similarity" object of the probe's
// --json summary and of the M10 section's "run").
nlohmann::json to_json(const RunSimilarity& run);

// The terminal summary: findings first, then one line per section, at most
// at most ~40 lines, each ending in "\n".
std::string format_summary(const AnalysisResult& result);

}  // namespace memskew
