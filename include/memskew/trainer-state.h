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

TrainerState parse_trainer_state(const std::string& json, const std::string& source = "trainer_state.json");
TrainerState load_trainer_state(const std::string& folder_or_file);
// Only keys of transformers' TrainerState dataclass (it rejects unknown ones).
std::string trainer_state_to_json(const TrainerState& state);
void save_trainer_state(const TrainerState& state, const std::string& path);


}  // namespace memskew
