// Hugging Face config.json: parse into HfConfig (transformers' defaults per
// architecture) and write back in the key spelling transformers expects.
// The other side files live with their owners (tokenizer/tokenizer-config.cpp,
// model/peft-config.cpp, train/trainer-state.cpp); all read JSON through
// format/hf-json.h. Parsing uses simdjson's DOM API; writing nlohmann-json.
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <simdjson.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <re2/re2.h>

#include "memskew/error.h"
#include "format/hf-json.h"
#include "memskew/hf-config.h"
#include "model/arch/arch.h"
#include "memskew/file-io.h"

namespace memskew {

namespace fs = std::filesystem;

using namespace format;

namespace {

// --- config.json ------------------------------------------------------------------

// Activations the architectures above use; anything else would need new code.
constexpr const char* kActivations[] = {"silu", "swish", "gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh",
                                        "relu"};

std::optional<HfRopeScaling> parse_rope_scaling(const JsonObject& cfg) {
    const auto e = cfg.get("rope_scaling");
    if (!e) return std::nullopt;
    const JsonObject rs = cfg.object("rope_scaling");
    std::string type = rs.string_or("rope_type", "");
    if (type.empty()) type = rs.string_or("type", "");
    if (type.empty()) throw FormatError(fmt::format("{}: rope_scaling has no 'rope_type'", cfg.source()));
    if (type == "default") return std::nullopt;
    HfRopeScaling s;
    s.type = type;
    if (type == "linear" || type == "dynamic") {
        s.factor = rs.required_number("factor");
        s.original_max_position_embeddings = rs.int_or("original_max_position_embeddings", 0);
    } else if (type == "llama3") {
        s.factor = rs.required_number("factor");
        s.low_freq_factor = rs.required_number("low_freq_factor");
        s.high_freq_factor = rs.required_number("high_freq_factor");
        s.original_max_position_embeddings = rs.required_int("original_max_position_embeddings");
        if (!(s.high_freq_factor > s.low_freq_factor)) {
            throw FormatError(fmt::format("{}: rope_scaling high_freq_factor {} must exceed low_freq_factor {}",
                                          cfg.source(), s.high_freq_factor, s.low_freq_factor));
        }
        if (s.original_max_position_embeddings <= 0) {
            throw FormatError(fmt::format("{}: rope_scaling original_max_position_embeddings must be positive, got {}",
                                          cfg.source(), s.original_max_position_embeddings));
        }
    } else {
        throw FormatError(fmt::format("{}: unsupported rope_scaling type '{}' (config.json: rope_scaling.rope_type)",
                                      cfg.source(), type),
                          "memskew supports rope_scaling types linear, dynamic and llama3");
    }
    if (!(s.factor > 0)) {
        throw FormatError(fmt::format("{}: rope_scaling factor must be positive, got {}", cfg.source(), s.factor));
    }
    return s;
}

// The family and class of config.json: architectures[0], else model_type.
const ArchSpec& detect_arch(const JsonObject& cfg, HfConfig& c) {
    c.model_type = cfg.string_or("model_type", "");
    if (cfg.get("architectures")) {
        const std::vector<std::string> names = cfg.strings("architectures");
        if (!names.empty()) c.architecture = names[0];
    }
    if (c.architecture.empty() && c.model_type.empty()) {
        throw FormatError(fmt::format("{}: missing required field 'architectures' (and no 'model_type')", cfg.source()),
                          fmt::format("memskew supports {}", hf_supported_architectures()));
    }
    const HfClass* cls = nullptr;
    const ArchSpec* spec = arch_for_hf(c.architecture, c.model_type, &cls);
    if (!spec) {
        const bool by_class = !c.architecture.empty();
        throw FormatError(fmt::format("{}: unsupported architecture '{}' (config.json: {})", cfg.source(),
                                      by_class ? c.architecture : c.model_type, by_class ? "architectures" : "model_type"),
                          fmt::format("memskew supports {}", hf_supported_architectures()));
    }
    c.architecture = cls->class_name;
    if (c.model_type.empty()) c.model_type = cls->model_type;
    c.arch = spec->key;
    return *spec;
}

// One id or a list of ids, for bos/eos in the file.
void put_ids(nlohmann::ordered_json& j, const char* key, const std::vector<int64_t>& ids) {
    if (ids.size() == 1) {
        j[key] = ids[0];
    } else if (!ids.empty()) {
        j[key] = ids;
    }
}

}  // namespace

int64_t HfConfig::rotary_dim() const {
    return static_cast<int64_t>(static_cast<double>(head_dim) * partial_rotary_factor);
}

void HfConfig::validate(const std::string& source) const {
    auto positive = [&](const char* what, int64_t v) {
        if (v <= 0) throw FormatError(fmt::format("{}: {} must be positive, got {}", source, what, v));
    };
    positive("vocab_size", vocab_size);
    positive("hidden_size", hidden_size);
    positive("num_hidden_layers", num_hidden_layers);
    positive("num_attention_heads", num_attention_heads);
    positive("num_key_value_heads", num_key_value_heads);
    positive("head_dim", head_dim);
    positive("intermediate_size", intermediate_size);
    positive("max_position_embeddings", max_position_embeddings);
    if (num_attention_heads % num_key_value_heads != 0) {
        throw FormatError(fmt::format("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", source,
                                      num_attention_heads, num_key_value_heads));
    }
    if (!(norm_eps > 0)) throw FormatError(fmt::format("{}: norm epsilon must be positive, got {}", source, norm_eps));
    if (!arch_spec(arch).learned_positions) {
        if (!(rope_theta > 0)) {
            throw FormatError(fmt::format("{}: rope_theta must be positive, got {}", source, rope_theta));
        }
        if (!(partial_rotary_factor > 0 && partial_rotary_factor <= 1)) {
            throw FormatError(fmt::format("{}: rotary fraction must be in (0, 1], got {}", source,
                                          partial_rotary_factor));
        }
        if (rotary_dim() % 2 != 0 || rotary_dim() == 0) {
            throw FormatError(fmt::format("{}: rotary dimension {} (head_dim {} x {}) must be even and positive",
                                          source, rotary_dim(), head_dim, partial_rotary_factor));
        }
    }
    bool known_act = false;
    for (const char* a : kActivations) known_act = known_act || hidden_act == a;
    if (!known_act) {
        throw FormatError(fmt::format("{}: unsupported activation '{}'", source, hidden_act),
                          "memskew supports silu, gelu, gelu_new, gelu_fast, gelu_pytorch_tanh and relu");
    }
}

HfConfig parse_hf_config(const std::string& json, const std::string& source) {
    JsonDocument doc(json, source);
    const JsonObject& cfg = doc.root();
    HfConfig c;
    const ArchSpec& spec = detect_arch(cfg, c);
    spec.parse_hf(cfg, c);
    if (c.num_attention_heads > 0 && c.head_dim == 0) {
        // No explicit head_dim: the hidden size split over the heads.
        if (c.hidden_size % c.num_attention_heads != 0) {
            throw FormatError(fmt::format("{}: hidden_size {} is not a multiple of num_attention_heads {}", source,
                                          c.hidden_size, c.num_attention_heads));
        }
        c.head_dim = c.hidden_size / c.num_attention_heads;
    }
    if (!spec.learned_positions) c.rope_scaling = parse_rope_scaling(cfg);
    c.torch_dtype = cfg.string_or("torch_dtype", cfg.string_or("dtype", ""));
    c.bos_token_ids = cfg.ids("bos_token_id");
    c.eos_token_ids = cfg.ids("eos_token_id");
    if (cfg.get("pad_token_id")) c.pad_token_id = cfg.required_int("pad_token_id");
    c.validate(source);
    return c;
}

HfConfig load_hf_config(const std::string& folder_or_file) {
    std::error_code ec;
    const std::string path = side_file_path(folder_or_file, "config.json");
    if (!fs::exists(path, ec)) {
        throw IoError(fmt::format("cannot open '{}': no such file or folder", path),
                      "a Hugging Face model folder holds config.json next to the weights");
    }
    return parse_hf_config(read_text_file(path), path);
}

std::string hf_config_to_json(const HfConfig& c) {
    const ArchSpec& spec = arch_spec(c.arch);
    nlohmann::ordered_json j;
    j["architectures"] = {c.architecture.empty() ? spec.hf_classes.front().class_name : c.architecture};
    j["model_type"] = c.model_type.empty() ? spec.hf_classes.front().model_type : c.model_type;
    j["vocab_size"] = c.vocab_size;
    spec.write_hf(c, j);
    if (!spec.learned_positions) {
        if (c.rope_scaling) {
            nlohmann::ordered_json rs;
            rs["rope_type"] = c.rope_scaling->type;
            rs["factor"] = c.rope_scaling->factor;
            if (c.rope_scaling->type == "llama3") {
                rs["low_freq_factor"] = c.rope_scaling->low_freq_factor;
                rs["high_freq_factor"] = c.rope_scaling->high_freq_factor;
            }
            if (c.rope_scaling->original_max_position_embeddings > 0) {
                rs["original_max_position_embeddings"] = c.rope_scaling->original_max_position_embeddings;
            }
            j["rope_scaling"] = std::move(rs);
        } else {
            j["rope_scaling"] = nullptr;
        }
    }
    if (!c.torch_dtype.empty()) j["torch_dtype"] = c.torch_dtype;
    put_ids(j, "bos_token_id", c.bos_token_ids);
    put_ids(j, "eos_token_id", c.eos_token_ids);
    if (c.pad_token_id) j["pad_token_id"] = *c.pad_token_id;
    return j.dump(2) + "\n";
}

void save_hf_config(const HfConfig& config, const std::string& path) {
    write_text_file_atomic(path, hf_config_to_json(config));
}

}  // namespace memskew
