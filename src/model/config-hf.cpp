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
#include "memskew/file-io.h"

namespace memskew {

namespace fs = std::filesystem;

using namespace format;

namespace {

// --- config.json ------------------------------------------------------------------

struct ArchEntry {
    HfArch arch;
    const char* class_name;
    const char* model_type;
};

constexpr ArchEntry kArchs[] = {
    {HfArch::kLlama, "LlamaForCausalLM", "llama"},
    {HfArch::kMistral, "MistralForCausalLM", "mistral"},
    {HfArch::kQwen2, "Qwen2ForCausalLM", "qwen2"},
    {HfArch::kGptNeoX, "GPTNeoXForCausalLM", "gpt_neox"},
    {HfArch::kGpt2, "GPT2LMHeadModel", "gpt2"},
};

const ArchEntry& arch_entry(HfArch a) {
    for (const ArchEntry& e : kArchs) {
        if (e.arch == a) return e;
    }
    return kArchs[0];
}

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

HfArch detect_arch(const JsonObject& cfg, HfConfig& c) {
    c.model_type = cfg.string_or("model_type", "");
    const auto archs = cfg.get("architectures");
    if (archs) {
        const std::vector<std::string> names = cfg.strings("architectures");
        if (!names.empty()) {
            c.architecture = names[0];
            for (const ArchEntry& e : kArchs) {
                if (c.architecture == e.class_name) return e.arch;
            }
            throw FormatError(fmt::format("{}: unsupported architecture '{}' (config.json: architectures)",
                                          cfg.source(), c.architecture),
                              fmt::format("memskew supports {}", hf_supported_architectures()));
        }
    }
    if (c.model_type.empty()) {
        throw FormatError(fmt::format("{}: missing required field 'architectures' (and no 'model_type')", cfg.source()),
                          fmt::format("memskew supports {}", hf_supported_architectures()));
    }
    for (const ArchEntry& e : kArchs) {
        if (c.model_type == e.model_type) {
            c.architecture = e.class_name;
            return e.arch;
        }
    }
    throw FormatError(fmt::format("{}: unsupported architecture '{}' (config.json: model_type)", cfg.source(),
                                  c.model_type),
                      fmt::format("memskew supports {}", hf_supported_architectures()));
}

void parse_llama_family(const JsonObject& cfg, HfConfig& c) {
    c.vocab_size = cfg.required_int("vocab_size");
    c.hidden_size = cfg.required_int("hidden_size");
    c.intermediate_size = cfg.required_int("intermediate_size");
    c.num_hidden_layers = cfg.required_int("num_hidden_layers");
    c.num_attention_heads = cfg.required_int("num_attention_heads");
    c.num_key_value_heads = cfg.int_or("num_key_value_heads", c.num_attention_heads);
    const int64_t default_ctx = c.arch == HfArch::kMistral ? 4096 * 32 : c.arch == HfArch::kQwen2 ? 32768 : 2048;
    c.max_position_embeddings = cfg.int_or("max_position_embeddings", default_ctx);
    c.norm_eps = cfg.number_or("rms_norm_eps", 1e-6);
    c.hidden_act = cfg.string_or("hidden_act", "silu");
    c.rope_theta = cfg.number_or("rope_theta", 10000.0);
    c.partial_rotary_factor = cfg.number_or("partial_rotary_factor", 1.0);
    c.tie_word_embeddings = cfg.bool_or("tie_word_embeddings", false);
    if (c.arch == HfArch::kLlama) {
        c.attention_bias = cfg.bool_or("attention_bias", false);
        c.qkv_bias = c.o_bias = c.attention_bias;
        c.mlp_bias = cfg.bool_or("mlp_bias", false);
    } else if (c.arch == HfArch::kQwen2) {
        // Qwen2Attention hard-codes bias=True for q/k/v and False for o_proj.
        c.attention_bias = true;
        c.qkv_bias = true;
        c.o_bias = false;
        if (cfg.bool_or("use_sliding_window", false)) c.sliding_window = cfg.int_or("sliding_window", 4096);
    } else {  // Mistral: no biases; sliding_window null (v0.2+) means full attention
        c.sliding_window = cfg.present("sliding_window") ? cfg.int_or("sliding_window", 0) : 4096;
    }
}

void parse_gpt_neox(const JsonObject& cfg, HfConfig& c) {
    c.vocab_size = cfg.required_int("vocab_size");
    c.hidden_size = cfg.required_int("hidden_size");
    c.intermediate_size = cfg.required_int("intermediate_size");
    c.num_hidden_layers = cfg.required_int("num_hidden_layers");
    c.num_attention_heads = cfg.required_int("num_attention_heads");
    c.num_key_value_heads = c.num_attention_heads;
    c.max_position_embeddings = cfg.int_or("max_position_embeddings", 2048);
    c.norm_eps = cfg.number_or("layer_norm_eps", 1e-5);
    c.hidden_act = cfg.string_or("hidden_act", "gelu");
    // Newer transformers spell these rope_theta / partial_rotary_factor.
    c.rope_theta = cfg.number_or("rotary_emb_base", cfg.number_or("rope_theta", 10000.0));
    c.partial_rotary_factor = cfg.number_or("rotary_pct", cfg.number_or("partial_rotary_factor", 0.25));
    c.use_parallel_residual = cfg.bool_or("use_parallel_residual", true);
    c.tie_word_embeddings = cfg.bool_or("tie_word_embeddings", false);
    c.attention_bias = cfg.bool_or("attention_bias", true);
    c.qkv_bias = c.o_bias = c.attention_bias;
    c.mlp_bias = true;
}

void parse_gpt2(const JsonObject& cfg, HfConfig& c) {
    // GPT2Config's attribute_map also accepts the generic names.
    c.vocab_size = cfg.required_int("vocab_size");
    c.hidden_size = cfg.required_int_any({"n_embd", "hidden_size"});
    c.num_hidden_layers = cfg.required_int_any({"n_layer", "num_hidden_layers"});
    c.num_attention_heads = cfg.required_int_any({"n_head", "num_attention_heads"});
    c.num_key_value_heads = c.num_attention_heads;
    c.max_position_embeddings = cfg.int_or("n_positions", cfg.int_or("max_position_embeddings", 1024));
    c.intermediate_size = cfg.int_or("n_inner", 4 * c.hidden_size);  // null -> 4 * n_embd
    c.norm_eps = cfg.number_or("layer_norm_epsilon", 1e-5);
    c.hidden_act = cfg.string_or("activation_function", "gelu_new");
    c.rope_theta = 0.0;
    c.partial_rotary_factor = 0.0;  // learned absolute positions
    c.tie_word_embeddings = cfg.bool_or("tie_word_embeddings", true);
    c.attention_bias = c.qkv_bias = c.o_bias = c.mlp_bias = true;
    c.use_parallel_residual = false;
    // Variants of the attention arithmetic memskew does not implement.
    if (!cfg.bool_or("scale_attn_weights", true)) {
        throw FormatError(fmt::format("{}: scale_attn_weights=false is not supported", cfg.source()));
    }
    if (cfg.bool_or("scale_attn_by_inverse_layer_idx", false)) {
        throw FormatError(fmt::format("{}: scale_attn_by_inverse_layer_idx=true is not supported", cfg.source()));
    }
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

const char* hf_arch_name(HfArch a) { return arch_entry(a).class_name; }

std::string hf_supported_architectures() {
    std::string s;
    for (const ArchEntry& e : kArchs) {
        if (!s.empty()) s += ", ";
        s += e.class_name;
    }
    return s;
}

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
    if (arch != HfArch::kGpt2) {
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
    c.arch = detect_arch(cfg, c);
    if (c.model_type.empty()) c.model_type = arch_entry(c.arch).model_type;
    switch (c.arch) {
        case HfArch::kLlama:
        case HfArch::kMistral:
        case HfArch::kQwen2: parse_llama_family(cfg, c); break;
        case HfArch::kGptNeoX: parse_gpt_neox(cfg, c); break;
        case HfArch::kGpt2: parse_gpt2(cfg, c); break;
    }
    if (c.num_attention_heads > 0) {
        c.head_dim = c.arch == HfArch::kGpt2 || c.arch == HfArch::kGptNeoX
                         ? c.hidden_size / c.num_attention_heads
                         : cfg.int_or("head_dim", c.hidden_size / c.num_attention_heads);
        const bool explicit_head_dim = cfg.get("head_dim").has_value() && c.arch != HfArch::kGpt2 &&
                                       c.arch != HfArch::kGptNeoX;
        if (!explicit_head_dim && c.hidden_size % c.num_attention_heads != 0) {
            throw FormatError(fmt::format("{}: hidden_size {} is not a multiple of num_attention_heads {}", source,
                                          c.hidden_size, c.num_attention_heads));
        }
    }
    if (c.arch != HfArch::kGpt2) c.rope_scaling = parse_rope_scaling(cfg);
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
    nlohmann::ordered_json j;
    j["architectures"] = {c.architecture.empty() ? hf_arch_name(c.arch) : c.architecture};
    j["model_type"] = c.model_type.empty() ? arch_entry(c.arch).model_type : c.model_type;
    j["vocab_size"] = c.vocab_size;
    if (c.arch == HfArch::kGpt2) {
        j["n_embd"] = c.hidden_size;
        j["n_layer"] = c.num_hidden_layers;
        j["n_head"] = c.num_attention_heads;
        j["n_positions"] = c.max_position_embeddings;
        j["n_ctx"] = c.max_position_embeddings;
        if (c.intermediate_size == 4 * c.hidden_size) {
            j["n_inner"] = nullptr;
        } else {
            j["n_inner"] = c.intermediate_size;
        }
        j["layer_norm_epsilon"] = c.norm_eps;
        j["activation_function"] = c.hidden_act;
        j["tie_word_embeddings"] = c.tie_word_embeddings;
    } else {
        j["hidden_size"] = c.hidden_size;
        j["intermediate_size"] = c.intermediate_size;
        j["num_hidden_layers"] = c.num_hidden_layers;
        j["num_attention_heads"] = c.num_attention_heads;
        j["max_position_embeddings"] = c.max_position_embeddings;
        j["hidden_act"] = c.hidden_act;
        j["tie_word_embeddings"] = c.tie_word_embeddings;
        if (c.arch == HfArch::kGptNeoX) {
            j["layer_norm_eps"] = c.norm_eps;
            j["rotary_pct"] = c.partial_rotary_factor;
            j["rotary_emb_base"] = c.rope_theta;
            j["use_parallel_residual"] = c.use_parallel_residual;
            j["attention_bias"] = c.attention_bias;
        } else {
            j["num_key_value_heads"] = c.num_key_value_heads;
            if (c.num_attention_heads > 0 && c.head_dim != c.hidden_size / c.num_attention_heads) {
                j["head_dim"] = c.head_dim;
            }
            j["rms_norm_eps"] = c.norm_eps;
            j["rope_theta"] = c.rope_theta;
            if (c.partial_rotary_factor != 1.0) j["partial_rotary_factor"] = c.partial_rotary_factor;
            if (c.arch == HfArch::kLlama) {
                j["attention_bias"] = c.attention_bias;
                j["mlp_bias"] = c.mlp_bias;
            } else if (c.arch == HfArch::kMistral) {
                if (c.sliding_window > 0) {
                    j["sliding_window"] = c.sliding_window;
                } else {
                    j["sliding_window"] = nullptr;
                }
            } else {
                j["use_sliding_window"] = c.sliding_window > 0;
                if (c.sliding_window > 0) j["sliding_window"] = c.sliding_window;
            }
        }
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
