// `memskew probe`: audit a model against its SFT dataset, every sample
// (METHOD M1-M4, M8), into a resumable results store. This layer is the one
// place that connects data -> tokenizer -> engine -> metrics -> store.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "memskew/data.h"
#include "memskew/engine.h"
#include "memskew/metrics.h"
#include "memskew/sft-encoder.h"
#include "memskew/similarity-figures.h"
#include "memskew/store.h"

namespace memskew {

struct ProbeParams {
    std::string model_path;
    LoadParams load;                // dtype, threads
    std::string data_path;
    DatasetParams data;             // formats, template, limit/subset/shard, skip_bad...
    // Raw text mode: split each text at a token offset (METHOD M1, e.g. 32/32).
    std::optional<TextSplitParams> text_split;
    int64_t max_reference_tokens = 0;  // cap L (0: whole reference)
    TruncatePolicy truncate = TruncatePolicy::kReference;
    SamplingParams sampling;           // M4 transform
    SampleMetricsParams metrics;       // k, n tries, min-k fraction...
    bool generate = false;             // real greedy outputs and M8 overlap metrics
    bool store_text = true;            // keep prompt/reference/generated text in the store
    int64_t token_budget = 8192;       // padded tokens per engine batch
    int64_t max_batch_size = 64;
    std::string out_path;
    bool resume = false;
    // Adapters and checkpoints to probe, one run each, all in out_path (in the
    // order given; a Trainer output folder's checkpoints by step). Each entry
    // is expanded by expand_probe_targets(). Empty: probe model_path itself.
    std::vector<std::string> adapters;
    // A label of the run(s), stored in RunSpec::options["run_label"] (part of
    // the run key) when non-empty: e.g. the arm of a study, so the checkpoints
    // of differently trained arms stay apart in one store.
    std::string run_label;
    // Sample embeddings for the similarity figures (METHOD M10): by default
    // from the scoring pass of the model under test (no second pass); with
    // embed_model from that model instead (e.g. the base model when probing
    // fine-tuned checkpoints), in one pass of its own shared by every run;
    // none with embeddings = false (the near-duplicate and exact-duplicate
    // figures are computed all the same).
    bool embeddings = true;
    std::string embed_model;
    // Keep the vectors in the store after the figures are computed (float16,
    // 4 d bytes per sample and run); they are dropped otherwise.
    bool keep_embeddings = false;
    SimilarityParams similarity;  // k nearest neighbours, exact/approximate, near-duplicate parameters
    // Decoding guard (METHOD M12; needs generate): every sample is generated
    // a second time with greedy decoding that never completes an n-gram of
    // guard_data's references (read with guard_dataset, encoded as training
    // encodes them), and the guarded output's metrics are stored next to the
    // unguarded ones. Empty: no guard.
    std::string guard_data;
    DatasetParams guard_dataset;
    int64_t guard_n = 10;
};

// One run of a probe: a model, optionally with a PEFT adapter, and what is
// known about the training checkpoint it comes from.
struct ProbeTarget {
    std::string model_path;    // the model the run loads: the base, or a full-model checkpoint
    std::string adapter_path;  // "" for none
    std::optional<int64_t> checkpoint_step;
    std::optional<double> checkpoint_epoch;  // as trainer_state.json has it (stored rounded)
    // The checkpoint's training loss (checkpoint_loss, trainer-state.h): the
    // mean of the logged step losses of its epoch up to its step, and the
    // latest logged step loss.
    std::optional<double> train_loss;
    std::optional<double> train_loss_last_step;
    std::string label;                       // for progress lines: "checkpoint-500", the folder name
    // What the checkpoint's training applied against memorization, from its
    // memskew-train.json: {"goldfish_k": K, "goldfish_h": H}; null when nothing.
    // Stored in the run's options as "training", so reports can say so.
    nlohmann::json training;
};

// How the probe turns samples into ids (the one sample encoder's settings):
// the reference alone, no EOS, cut or skipped at the model's context.
EncodeParams probe_encode_params(const ProbeParams& params, int64_t max_context);
// The samples exactly as the probe scores them.
EncodedDataset encode_probe_set(const ProbeParams& params, const Tokenizer& tok, int64_t max_context);

// Expands ProbeParams::adapters against the base model `model_path`. Each entry is:
//   - a PEFT adapter folder (adapter_config.json): one run of the base model
//     with it; a trainer_state.json beside it (a checkpoint-<step> folder)
//     gives step, epoch and loss, else a "checkpoint-<N>" folder name gives the step;
//   - a Trainer output folder holding checkpoint-<step> folders: one run per
//     checkpoint, sorted by step (a final adapter at the top level is not
//     probed again); each checkpoint is an adapter folder or a full model;
//   - a full-model checkpoint (config.json, no adapter_config.json): a run of
//     that model (Model::load(folder)), without the base.
// IoError for a missing path; InvalidInput for a folder that is none of these.
std::vector<ProbeTarget> expand_probe_targets(const std::string& model_path, const std::vector<std::string>& adapters);

struct ProbeProgress {
    int64_t done = 0;        // samples finished (this invocation, this run)
    int64_t total = 0;       // samples to do (this invocation, this run)
    int64_t tokens = 0;      // prompt + reference tokens processed
    double seconds = 0.0;
    int64_t run_index = 0;   // which of n_runs (adapters / checkpoints), from 0
    int64_t n_runs = 1;
    std::string run_label;   // ProbeTarget::label; "" without adapters
};
using ProgressFn = std::function<void(const ProbeProgress&)>;

struct Disagreement {
    std::string sample_id;
    int64_t n_pre_teacher_forced = 0;
    int64_t n_pre_generated = 0;
};

struct ProbeSummary {
    std::string out_path;
    int64_t run_id = 0;
    bool resumed = false;
    ProbeTarget target;            // the model / adapter / checkpoint of the run
    LoadReport data_report;
    int64_t n_samples = 0;         // samples in the run after this invocation
    int64_t n_already_done = 0;    // skipped because a previous invocation stored them
    int64_t n_probed = 0;          // probed by this invocation
    int64_t n_truncated = 0;       // references cut to fit the context
    int64_t n_skipped_long = 0;    // left out under TruncatePolicy::kSkip
    int64_t n_skipped_short = 0;   // raw text too short to split
    int64_t n_skipped_empty = 0;   // prompt or reference encodes to nothing (--skip-empty)
    double mean_n_pre = 0.0;       // over the samples probed now
    int64_t max_n_pre = 0;
    std::string max_n_pre_id;
    int64_t n_exact = 0;
    int64_t tokens = 0;
    double seconds = 0.0;
    double padding_waste = 0.0;    // padded tokens / real tokens - 1
    // --generate: agreement of generated and teacher-forced n_pre (METHOD M3).
    int64_t n_generated = 0;
    std::vector<Disagreement> disagreements;
    bool guarded = false;          // generated with the decoding guard too
    // The run's similarity figures, computed when its last sample is stored;
    // absent for one shard of a run (`memskew merge` computes them) and when
    // similarity_note says why.
    std::optional<RunSimilarity> similarity;
    std::string similarity_note;
    // With the decoding guard (over the samples probed now): the guarded
    // outputs' max n_pre and verbatim count, the steps it blocked, and the
    // approximately memorized outputs with and without it.
    int64_t guard_max_n_pre = 0;
    int64_t guard_n_exact = 0;
    int64_t guard_blocked_steps = 0;
    int64_t guard_n_approx = 0;
    int64_t n_approx = 0;
};

class ProcessGroup;

// Probes every target of expand_probe_targets() (or model_path alone), one
// run each in params.out_path; returns one summary per run, in order.
//
// With `group` (process-group.h) of several ranks, every rank calls this with
// the same parameters: each checks that the others probe the same run (model,
// adapters, dataset, options: InvalidInput naming the fields otherwise),
// scores its share of the planned batches (spread by padded tokens), and
// sends the records to rank 0, which alone opens and writes the store and
// computes the similarity figures. The stored runs are those of one process:
// the same batches, so the same scores (bit-identical on CPU in fp32). Only
// rank 0's summaries hold the run's figures; a failure on any rank ends every
// rank with one error naming it, and whole batches stay committed, so
// --resume continues. The base
// model is loaded once; each adapter is attached for its run and unloaded
// after it (so the base weights are never changed). With params.resume each
// run resumes independently: finished runs are skipped without loading their
// adapter, an interrupted one continues, a missing one starts.
std::vector<ProbeSummary> run_probes(const ProbeParams& params, const ProgressFn& progress = {},
                                     ProcessGroup* group = nullptr);
// run_probes() for a probe of exactly one run (InvalidInput otherwise).
ProbeSummary run_probe(const ProbeParams& params, const ProgressFn& progress = {}, ProcessGroup* group = nullptr);

// One prompt and reference, scored as the probe scores a sample: the texts
// encoded as `memskew score` encodes them (encode_prompt, encode_reference),
// teacher forcing under p.sampling, greedy generation when p.generate, and
// the store's per-sample metrics with p.metrics. For front ends that score a
// single pair (the Python module's Model.score).
struct ScoredSample {
    std::vector<int32_t> prompt, reference;
    TokenScores scores;
    std::optional<GeneratedOutput> generated;
    MetricsRow metrics;
};
ScoredSample score_sample(const Model& model, const std::string& prompt, const std::string& reference,
                          const ProbeParams& p = {});

}  // namespace memskew
