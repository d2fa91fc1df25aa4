// PEFT adapter_config.json: LoRA settings read and written as PEFT does.
#include <fmt/format.h>
#include <simdjson.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <re2/re2.h>

#include "format/hf-json.h"
#include "memskew/error.h"
#include "memskew/peft-config.h"
#include "memskew/file-io.h"

namespace memskew {

namespace fs = std::filesystem;
using namespace format;

// --- PEFT adapter_config.json -----------------------------------------------------

double PeftConfig::scaling() const {
    if (r <= 0) return 0.0;
    return use_rslora ? lora_alpha / std::sqrt(static_cast<double>(r)) : lora_alpha / static_cast<double>(r);
}

bool PeftConfig::targets(const std::string& module_name) const {
    if (all_linear) {
        // PEFT's "all-linear" wraps every linear layer except the output head.
        const std::string head = "lm_head";
        return !(module_name == head ||
                 (module_name.size() > head.size() &&
                  module_name.compare(module_name.size() - head.size() - 1, head.size() + 1, "." + head) == 0));
    }
    if (!target_modules_regex.empty()) {
        const RE2 re(target_modules_regex, RE2::Quiet);
        return re.ok() && RE2::FullMatch(module_name, re);
    }
    for (const std::string& t : target_modules) {
        if (module_name == t) return true;
        if (module_name.size() > t.size() && module_name[module_name.size() - t.size() - 1] == '.' &&
            module_name.compare(module_name.size() - t.size(), t.size(), t) == 0) {
            return true;
        }
    }
    return false;
}

void PeftConfig::validate(const std::string& source) const {
    if (peft_type != "LORA") {
        throw FormatError(fmt::format("{}: unsupported peft_type '{}' (adapter_config.json: peft_type)", source,
                                      peft_type),
                          "memskew loads LoRA adapters (peft_type LORA)");
    }
    if (r <= 0) throw FormatError(fmt::format("{}: r must be positive, got {}", source, r));
    if (!(lora_dropout >= 0 && lora_dropout < 1)) {
        throw FormatError(fmt::format("{}: lora_dropout must be in [0, 1), got {}", source, lora_dropout));
    }
    if (bias != "none" && bias != "all" && bias != "lora_only") {
        throw FormatError(fmt::format("{}: bias is '{}', expected none, all or lora_only", source, bias));
    }
    if (!target_modules_regex.empty()) {
        const RE2 re(target_modules_regex, RE2::Quiet);
        if (!re.ok()) {
            throw FormatError(fmt::format("{}: target_modules regex '{}' is invalid: {}", source,
                                          target_modules_regex, re.error()));
        }
    }
    if (target_modules.empty() && target_modules_regex.empty() && !all_linear) {
        throw FormatError(fmt::format("{}: missing required field 'target_modules'", source),
                          "list the modules the adapter wraps, e.g. [\"q_proj\", \"v_proj\"]");
    }
}

PeftConfig parse_peft_config(const std::string& json, const std::string& source) {
    JsonDocument doc(json, source);
    const JsonObject& obj = doc.root();
    PeftConfig c;
    c.peft_type = obj.as_string("peft_type", obj.required("peft_type"));
    if (c.peft_type != "LORA") c.validate(source);  // the clearest error first
    c.task_type = obj.string_or("task_type", "");
    c.base_model_name_or_path = obj.string_or("base_model_name_or_path", "");
    c.r = obj.int_or("r", 8);
    c.lora_alpha = obj.number_or("lora_alpha", 8.0);
    c.lora_dropout = obj.number_or("lora_dropout", 0.0);
    if (const auto e = obj.get("target_modules")) {
        if (e->type() == simdjson::dom::element_type::STRING) {
            const std::string t(e->get_string().value_unsafe());
            if (t == "all-linear") {
                c.all_linear = true;
            } else {
                c.target_modules_regex = t;
            }
        } else {
            c.target_modules = obj.strings("target_modules");
        }
    }
    c.modules_to_save = obj.strings("modules_to_save");
    c.fan_in_fan_out = obj.bool_or("fan_in_fan_out", false);
    c.bias = obj.string_or("bias", "none");
    c.use_rslora = obj.bool_or("use_rslora", false);
    c.use_dora = obj.bool_or("use_dora", false);
    c.inference_mode = obj.bool_or("inference_mode", true);
    if (obj.get("rank_pattern")) {
        const JsonObject p = obj.object("rank_pattern");
        for (const auto kv : p.raw()) c.rank_pattern[std::string(kv.key)] = p.as_int(std::string(kv.key), kv.value);
    }
    if (obj.get("alpha_pattern")) {
        const JsonObject p = obj.object("alpha_pattern");
        for (const auto kv : p.raw()) {
            c.alpha_pattern[std::string(kv.key)] = p.as_number(std::string(kv.key), kv.value);
        }
    }
    c.layers_to_transform = obj.ids("layers_to_transform");
    c.validate(source);
    return c;
}

PeftConfig load_peft_config(const std::string& folder_or_file) {
    std::error_code ec;
    const std::string path = side_file_path(folder_or_file, "adapter_config.json");
    if (!fs::exists(path, ec)) {
        throw IoError(fmt::format("cannot open '{}': no such file or folder", path),
                      "a PEFT adapter folder holds adapter_config.json and adapter_model.safetensors");
    }
    return parse_peft_config(read_text_file(path), path);
}

std::string peft_config_to_json(const PeftConfig& c) {
    // Sorted keys and 2-space indent, as PEFT's save_pretrained writes. Keys
    // that are at their default and unknown to older PEFT are left out, since
    // older LoraConfig(**json) rejects unknown keys.
    nlohmann::json j;
    j["alpha_pattern"] = c.alpha_pattern;
    j["auto_mapping"] = nullptr;
    j["base_model_name_or_path"] = c.base_model_name_or_path;
    j["bias"] = c.bias;
    j["fan_in_fan_out"] = c.fan_in_fan_out;
    j["inference_mode"] = c.inference_mode;
    j["init_lora_weights"] = true;
    j["layers_pattern"] = nullptr;
    if (c.layers_to_transform.empty()) {
        j["layers_to_transform"] = nullptr;
    } else {
        j["layers_to_transform"] = c.layers_to_transform;
    }
    if (c.lora_alpha == std::floor(c.lora_alpha) && std::fabs(c.lora_alpha) < 1e15) {
        j["lora_alpha"] = static_cast<int64_t>(c.lora_alpha);  // PEFT types it as int
    } else {
        j["lora_alpha"] = c.lora_alpha;
    }
    j["lora_dropout"] = c.lora_dropout;
    if (c.modules_to_save.empty()) {
        j["modules_to_save"] = nullptr;
    } else {
        j["modules_to_save"] = c.modules_to_save;
    }
    j["peft_type"] = c.peft_type;
    j["r"] = c.r;
    j["rank_pattern"] = c.rank_pattern;
    j["revision"] = nullptr;
    if (c.all_linear) {
        j["target_modules"] = "all-linear";
    } else if (!c.target_modules_regex.empty()) {
        j["target_modules"] = c.target_modules_regex;
    } else {
        j["target_modules"] = c.target_modules;
    }
    if (c.task_type.empty()) {
        j["task_type"] = nullptr;
    } else {
        j["task_type"] = c.task_type;
    }
    if (c.use_rslora) j["use_rslora"] = true;
    if (c.use_dora) j["use_dora"] = true;
    return j.dump(2) + "\n";
}

void save_peft_config(const PeftConfig& config, const std::string& path) {
    config.validate(path);
    write_text_file_atomic(path, peft_config_to_json(config));
}

}  // namespace memskew
