// PEFT's adapter_config.json, read and written as PEFT does
// (src/model/peft-config.cpp). FormatError naming the file and key.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace memskew {

// PEFT adapter_config.json (LoRA only).
struct PeftConfig {
    std::string peft_type = "LORA";
    std::string task_type = "CAUSAL_LM";
    std::string base_model_name_or_path;
    int64_t r = 8;
    double lora_alpha = 8.0;
    double lora_dropout = 0.0;
    // target_modules: a list of module-name suffixes, or (a string) a regex
    // matched against the full module name.
    std::vector<std::string> target_modules;
    std::string target_modules_regex;
    bool all_linear = false;  // target_modules "all-linear": every linear layer but the output
    std::vector<std::string> modules_to_save;
    bool fan_in_fan_out = false;  // weights stored [in, out] (GPT-2 Conv1D)
    std::string bias = "none";    // "none", "all", "lora_only"
    bool use_rslora = false;      // scaling alpha / sqrt(r) instead of alpha / r
    bool use_dora = false;        // parsed so callers can reject it
    bool inference_mode = true;
    std::map<std::string, int64_t> rank_pattern;  // module regex -> r
    std::map<std::string, double> alpha_pattern;  // module regex -> alpha
    std::vector<int64_t> layers_to_transform;     // empty: all layers

    double scaling() const;  // lora_alpha / r, or lora_alpha / sqrt(r) with rslora
    // Whether PEFT would wrap the module `name` ("model.layers.0.self_attn.q_proj"):
    // regex -> full match; list -> equal to an entry or ends with "." + entry.
    bool targets(const std::string& module_name) const;
    void validate(const std::string& source = "adapter_config.json") const;
};

PeftConfig parse_peft_config(const std::string& json, const std::string& source = "adapter_config.json");
PeftConfig load_peft_config(const std::string& folder_or_file);
std::string peft_config_to_json(const PeftConfig& config);  // loadable by peft.LoraConfig
void save_peft_config(const PeftConfig& config, const std::string& path);

}  // namespace memskew
