// trainer_state.json as transformers' Trainer writes it (step, epoch, log history).
#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "format/hf-json.h"
#include "memskew/error.h"
#include "memskew/trainer-state.h"
#include "memskew/file-io.h"

namespace memskew {

namespace fs = std::filesystem;
using namespace format;

// --- trainer_state.json ----------------------------------------------------------

std::optional<double> TrainerLogEntry::get(const std::string& key) const {
    const auto it = values.find(key);
    if (it == values.end()) return std::nullopt;
    return it->second;
}

CheckpointLoss checkpoint_loss(const std::vector<TrainerLogEntry>& log, int64_t global_step, double epoch) {
    // Epoch e covers (e - 1, e]: a checkpoint at epoch 2.0 ends the second
    // epoch, one at 1.5 is half-way through it. The tolerance absorbs
    // rounding in logged epochs (e.g. 3 / 3 steps written as 0.9999999999).
    constexpr double kEps = 1e-9;
    const double start = std::max(0.0, std::ceil(epoch - kEps) - 1.0);
    CheckpointLoss out;
    double sum = 0.0;
    for (const TrainerLogEntry& e : log) {
        if (e.step > global_step) continue;
        const auto loss = e.loss();
        if (!loss) continue;
        out.last_step = *loss;
        if (e.epoch <= start + kEps) continue;
        if (out.n_steps == 0) out.first_step = e.step;
        sum += *loss;
        ++out.n_steps;
    }
    if (out.n_steps > 0) out.mean = sum / static_cast<double>(out.n_steps);
    return out;
}

TrainerState parse_trainer_state(const std::string& json, const std::string& source) {
    JsonDocument doc(json, source);
    const JsonObject& obj = doc.root();
    TrainerState s;
    s.global_step = obj.required_int("global_step");
    s.epoch = obj.number_or("epoch", 0.0);
    s.max_steps = obj.int_or("max_steps", 0);
    s.num_train_epochs = obj.number_or("num_train_epochs", 0.0);
    // Steps may be saved as floats (ratios resolved to steps); keep whole steps.
    s.logging_steps = static_cast<int64_t>(obj.number_or("logging_steps", 500));
    s.eval_steps = static_cast<int64_t>(obj.number_or("eval_steps", 500));
    s.save_steps = static_cast<int64_t>(obj.number_or("save_steps", 500));
    s.train_batch_size = obj.int_or("train_batch_size", 0);
    s.total_flos = obj.number_or("total_flos", 0.0);
    if (obj.get("best_metric")) s.best_metric = obj.required_number("best_metric");
    s.best_model_checkpoint = obj.optional_string("best_model_checkpoint");
    if (const auto e = obj.get("log_history")) {
        if (e->type() != simdjson::dom::element_type::ARRAY) obj.wrong_type("log_history", *e, "a list of objects");
        size_t k = 0;
        for (const auto x : array_of(*e)) {
            if (x.type() != simdjson::dom::element_type::OBJECT) {
                obj.wrong_type("log_history", x, "a list of objects");
            }
            const JsonObject entry(object_of(x), source, fmt::format("log_history[{}].", k++));
            TrainerLogEntry le;
            le.epoch = entry.number_or("epoch", 0.0);
            le.step = entry.int_or("step", 0);
            for (const auto kv : entry.raw()) {
                if (kv.key == "epoch" || kv.key == "step" || !is_number(kv.value)) continue;
                le.values[std::string(kv.key)] = kv.value.get_double().value_unsafe();
            }
            s.log_history.push_back(std::move(le));
        }
    }
    return s;
}

TrainerState load_trainer_state(const std::string& folder_or_file) {
    std::error_code ec;
    const std::string path = side_file_path(folder_or_file, "trainer_state.json");
    if (!fs::exists(path, ec)) {
        throw IoError(fmt::format("cannot open '{}': no such file or folder", path),
                      "Hugging Face Trainer checkpoints (checkpoint-N/) hold trainer_state.json");
    }
    return parse_trainer_state(read_text_file(path), path);
}

std::string trainer_state_to_json(const TrainerState& s) {
    // Sorted keys, indent 2, as TrainerState.save_to_json writes.
    nlohmann::json j;
    if (s.best_metric) {
        j["best_metric"] = *s.best_metric;
    } else {
        j["best_metric"] = nullptr;
    }
    if (s.best_model_checkpoint) {
        j["best_model_checkpoint"] = *s.best_model_checkpoint;
    } else {
        j["best_model_checkpoint"] = nullptr;
    }
    j["epoch"] = s.epoch;
    j["eval_steps"] = s.eval_steps;
    j["global_step"] = s.global_step;
    j["is_hyper_param_search"] = false;
    j["is_local_process_zero"] = true;
    j["is_world_process_zero"] = true;
    nlohmann::json history = nlohmann::json::array();
    for (const TrainerLogEntry& e : s.log_history) {
        nlohmann::json entry;
        entry["epoch"] = e.epoch;
        entry["step"] = e.step;
        for (const auto& [k, v] : e.values) entry[k] = v;
        history.push_back(std::move(entry));
    }
    j["log_history"] = std::move(history);
    j["logging_steps"] = s.logging_steps;
    j["max_steps"] = s.max_steps;
    if (s.num_train_epochs == std::floor(s.num_train_epochs) && std::fabs(s.num_train_epochs) < 1e15) {
        j["num_train_epochs"] = static_cast<int64_t>(s.num_train_epochs);
    } else {
        j["num_train_epochs"] = s.num_train_epochs;
    }
    j["save_steps"] = s.save_steps;
    j["total_flos"] = s.total_flos;
    j["train_batch_size"] = s.train_batch_size;
    j["trial_name"] = nullptr;
    j["trial_params"] = nullptr;
    return j.dump(2) + "\n";
}

void save_trainer_state(const TrainerState& state, const std::string& path) {
    write_text_file_atomic(path, trainer_state_to_json(state));
}


}  // namespace memskew
