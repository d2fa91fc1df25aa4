// trainer_state.json as transformers' Trainer writes it
// (src/train/trainer-state.cpp). FormatError naming the file and key.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace memskew {

// Hugging Face Trainer's trainer_state.json.
struct TrainerLogEntry {
    double epoch = 0.0;
    int64_t step = 0;
    // Every other numeric field of the entry: loss, learning_rate, grad_norm,
    // eval_loss, train_runtime, ... (non-numeric fields are dropped).
    std::map<std::string, double> values;
    std::optional<double> get(const std::string& key) const;
    std::optional<double> loss() const { return get("loss"); }
    std::optional<double> learning_rate() const { return get("learning_rate"); }
};

struct TrainerState {
    int64_t global_step = 0;
    double epoch = 0.0;
    int64_t max_steps = 0;
    double num_train_epochs = 0.0;
    int64_t logging_steps = 500;
    int64_t eval_steps = 500;
    int64_t save_steps = 500;
    int64_t train_batch_size = 0;
    double total_flos = 0.0;
    std::optional<double> best_metric;
    std::optional<std::string> best_model_checkpoint;
    std::vector<TrainerLogEntry> log_history;
};

// The training loss of a checkpoint, from its log_history.
//   mean:      the mean of the per-step "loss" values logged for the steps of
//              the checkpoint's epoch up to and including its step: the whole
//              epoch for a checkpoint at an epoch's end, the epoch's steps so
//              far for one saved mid-epoch (--save-steps). The epoch of a log
//              entry is its "epoch" value: epoch e covers (e - 1, e]. A step
//              whose loss had no token (Goldfish only) logs no "loss" and is
//              left out. Hugging Face's Trainer logs a "loss" every
//              logging_steps steps (each the mean of its window), so for its
//              checkpoints this is the mean of the windows logged in the epoch.
//   last_step: the latest logged "loss" at or before the checkpoint's step.
struct CheckpointLoss {
    std::optional<double> mean;
    std::optional<double> last_step;
    int64_t n_steps = 0;     // logged losses in the mean
    int64_t first_step = 0;  // step of the first of them (0: none)
};
CheckpointLoss checkpoint_loss(const std::vector<TrainerLogEntry>& log, int64_t global_step, double epoch);
inline CheckpointLoss checkpoint_loss(const TrainerState& s) { return checkpoint_loss(s.log_history, s.global_step, s.epoch); }

TrainerState parse_trainer_state(const std::string& json, const std::string& source = "trainer_state.json");
TrainerState load_trainer_state(const std::string& folder_or_file);
// Only keys of transformers' TrainerState dataclass (it rejects unknown ones).
std::string trainer_state_to_json(const TrainerState& state);
void save_trainer_state(const TrainerState& state, const std::string& path);


}  // namespace memskew
