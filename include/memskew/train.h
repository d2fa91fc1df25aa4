// Supervised fine-tuning (METHOD M11): memskew trains models itself so the
// effect of epochs, dataset size and composition on memorization can be
// studied end to end.
//
// Loss: mean cross-entropy over reference tokens only (the prompt is context);
// with Goldfish (goldfish_k >= 2) over the reference tokens its hash keeps.
// Checkpoints: out_dir/checkpoint-<step>/ as a Hugging Face Trainer writes them
// (LoRA: PEFT adapter_config.json + adapter_model.safetensors; full: a Hugging
// Face model folder) plus trainer_state.json, and memskew's own
// optimizer/progress state for --resume.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "memskew/data.h"
#include "memskew/engine.h"
#include "memskew/goldfish.h"
#include "memskew/peft-config.h"
#include "memskew/trainer-state.h"
#include "memskew/sft-encoder.h"

namespace memskew {

enum class TrainMode { kLora, kFull };
enum class LrSchedule { kCosine, kLinear, kConstant };
LrSchedule parse_lr_schedule(const std::string& name);  // cosine | linear | constant

struct TrainParams {
    std::string data_path;
    DatasetParams data;                // format, template, limit/subset...
    int64_t max_reference_tokens = 0;  // cap L (0: whole reference)
    TruncatePolicy truncate = TruncatePolicy::kReference;  // samples longer than the context
    std::optional<TextSplitParams> text_split;  // raw text mode (as for probe)
    bool append_eos = true;            // train the model to stop after the reference
    TrainMode mode = TrainMode::kLora;
    PeftConfig lora;                   // rank, alpha, dropout, target modules
    int64_t epochs = 3;
    int64_t batch_size = 8;            // samples per micro-batch
    int64_t grad_accum = 1;            // micro-batches per optimizer step
    double lr = 2e-4;
    double weight_decay = 0.0;
    int64_t warmup_steps = 0;
    LrSchedule schedule = LrSchedule::kCosine;
    double max_grad_norm = 1.0;        // 0: no clipping
    uint64_t seed = 42;
    std::string out_dir;
    int64_t save_steps = 0;            // also checkpoint every N steps (0: per epoch only)
    bool resume = false;               // continue from the last checkpoint in out_dir
    // Monitor (METHOD M12): probe a fixed subset at every epoch and log the tail.
    bool monitor = false;
    int64_t monitor_samples = 0;       // 0: the smallest subset that catches one of the
                                       // top 10 with 95% confidence (METHOD M6)
    int64_t stop_when_max_npre = 0;    // stop once max n_pre on the subset reaches this (0: never)
    // Goldfish loss (include/memskew/goldfish.h): leave the reference tokens
    // whose h preceding ids hash to 0 mod k out of the loss (about 1 in k).
    // 0 or 1: off, training exactly as without it. A resume keeps k and h.
    int64_t goldfish_k = 0;
    int64_t goldfish_h = 13;           // context tokens hashed (the paper's 13)
};

struct TrainProgress {
    int64_t step = 0, total_steps = 0;
    double epoch = 0.0;  // fractional
    double loss = 0.0;   // of the last optimizer step
    double lr = 0.0;
    double tokens_per_s = 0.0;
    double eta_s = 0.0;
};

struct EpochRecord {
    int64_t epoch = 0;
    int64_t step = 0;
    // Mean of the epoch's step losses (each token-weighted over its step), as
    // the epoch-end checkpoint records it (checkpoint_loss, trainer-state.h).
    double loss = 0.0;
    std::string checkpoint;
    std::optional<int64_t> monitor_max_n_pre;
    std::optional<double> monitor_p99_n_pre;
    // Goldfish only: dropped / reference tokens (EOS included) of the samples
    // trained in the epoch, and dropped / eligible ones (past the first h - 1).
    std::optional<double> goldfish_drop_fraction;
    std::optional<double> goldfish_drop_fraction_eligible;
};

struct TrainSummary {
    std::vector<EpochRecord> epochs;
    int64_t steps = 0;
    int64_t n_samples = 0;
    EncodeCounts encode_counts;  // samples cut or left out by the sample encoder
    int64_t tokens = 0;
    GoldfishCounts goldfish;     // over the training set, each sample once (dropped = 0 when off)
    double seconds = 0.0;
    bool stopped_by_monitor = false;
    int64_t monitor_samples = 0;
    std::string last_checkpoint;
};

using TrainProgressFn = std::function<void(const TrainProgress&)>;

class ProcessGroup;

// Fine-tunes `model` in place (LoRA: attaches a trainable adapter; full: all
// weights train). Throws InvalidInput for a dataset with no usable samples, a
// LoRA target that names no module, or parameters out of range.
//
// With a group of several ranks (memskew/process-group.h), data parallel:
// every rank calls this with the same model, data and params; each trains its
// slice of every micro-batch, the gradients are summed over the ranks before
// each optimizer step (the same global batch as one process), rank 0 alone
// writes the checkpoints and calls `progress`. Null: one process.
TrainSummary train_model(Model& model, const TrainParams& params, const TrainProgressFn& progress = {},
                         ProcessGroup* group = nullptr);

// How training turns samples into ids: the one sample encoder with the same
// settings the probe uses for the same options, plus EOS after the reference
// (when append_eos and it fits the context).
EncodeParams train_encode_params(const TrainParams& params, int64_t max_context);
// The training set exactly as train_model() feeds it (before shuffling).
EncodedDataset encode_training_set(const TrainParams& params, const Tokenizer& tok, int64_t max_context);

// The step of a Trainer checkpoint folder name "checkpoint-<step>" (digits
// only); nullopt for any other name.
std::optional<int64_t> checkpoint_step_of(const std::string& folder_name);
// Lists out_dir's checkpoint-<step> folders, by step.
std::vector<std::string> list_checkpoints(const std::string& out_dir);

}  // namespace memskew
