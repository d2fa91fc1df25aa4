// Hugging Face config.json: parse into HfConfig (transformers' defaults per
// architecture) and write back in the key spelling transformers expects.
//
// Also the other Hugging Face side files: tokenizer_config.json,
// special_tokens_map.json, generation_config.json, PEFT adapter_config.json and
// trainer_state.json, sharing one set of JSON helpers (JsonObject).
//
// Parsing uses simdjson's DOM API (runtime-dispatched kernel); writing uses
// nlohmann-json.
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
#include "memskew/hf-config.h"

namespace memskew {

namespace fs = std::filesystem;

namespace {

// --- JSON reading helpers -------------------------------------------------------

const char* json_type_name(const simdjson::dom::element& e) {
    switch (e.type()) {
        case simdjson::dom::element_type::ARRAY: return "a list";
        case simdjson::dom::element_type::OBJECT: return "an object";
        case simdjson::dom::element_type::INT64:
        case simdjson::dom::element_type::UINT64: return "an integer";
        case simdjson::dom::element_type::DOUBLE: return "a number";
        case simdjson::dom::element_type::STRING: return "a string";
        case simdjson::dom::element_type::BOOL: return "a boolean";
        case simdjson::dom::element_type::NULL_VALUE: return "null";
    }
    return "an unknown value";
}

bool is_number(const simdjson::dom::element& e) {
    const auto t = e.type();
    return t == simdjson::dom::element_type::INT64 || t == simdjson::dom::element_type::UINT64 ||
           t == simdjson::dom::element_type::DOUBLE;
}

// An integer, also from an integral double ("32000.0"); nullopt otherwise.
std::optional<int64_t> to_int(const simdjson::dom::element& e) {
    switch (e.type()) {
        case simdjson::dom::element_type::INT64: return e.get_int64().value_unsafe();
        case simdjson::dom::element_type::UINT64: {
            const uint64_t v = e.get_uint64().value_unsafe();
            if (v <= static_cast<uint64_t>(INT64_MAX)) return static_cast<int64_t>(v);
            return std::nullopt;
        }
        case simdjson::dom::element_type::DOUBLE: {
            const double v = e.get_double().value_unsafe();
            if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9.0e18) return static_cast<int64_t>(v);
            return std::nullopt;
        }
        default: return std::nullopt;
    }
}

// A folder's side file, or the file itself when given a path ending in .json
// (a missing folder then names the file that was looked for).
std::string side_file_path(const std::string& folder_or_file, const char* name) {
    const bool json = folder_or_file.size() >= 5 && folder_or_file.compare(folder_or_file.size() - 5, 5, ".json") == 0;
    std::error_code ec;
    if (json && !fs::is_directory(folder_or_file, ec)) return folder_or_file;
    return (fs::path(folder_or_file) / name).string();
}

// By value: ranging over `e.get_object().value_unsafe()` directly would range
// over a member of a destroyed temporary.
simdjson::dom::object object_of(const simdjson::dom::element& e) { return e.get_object().value_unsafe(); }
simdjson::dom::array array_of(const simdjson::dom::element& e) { return e.get_array().value_unsafe(); }

// Typed access to one JSON object; errors name the file and the dotted key
// ("config.json: field 'rope_scaling.factor' is a string, expected a number").
class JsonObject {
public:
    JsonObject(simdjson::dom::object obj, std::string source, std::string prefix = {})
        : obj_(obj), source_(std::move(source)), prefix_(std::move(prefix)) {}

    const std::string& source() const { return source_; }
    const simdjson::dom::object& raw() const { return obj_; }
    std::string name(const std::string& key) const { return prefix_ + key; }

    // Present, possibly null.
    bool present(const std::string& key) const {
        simdjson::dom::element e;
        return obj_[key].get(e) == simdjson::SUCCESS;
    }
    // Present and not null.
    std::optional<simdjson::dom::element> get(const std::string& key) const {
        simdjson::dom::element e;
        if (obj_[key].get(e) != simdjson::SUCCESS || e.is_null()) return std::nullopt;
        return e;
    }
    [[noreturn]] void wrong_type(const std::string& key, const simdjson::dom::element& e, const char* expected) const {
        throw FormatError(fmt::format("{}: field '{}' is {}, expected {}", source_, name(key), json_type_name(e),
                                      expected));
    }
    [[noreturn]] void missing(const std::string& key) const {
        throw FormatError(fmt::format("{}: missing required field '{}'", source_, name(key)));
    }
    simdjson::dom::element required(const std::string& key) const {
        const auto e = get(key);
        if (!e) missing(key);
        return *e;
    }

    int64_t as_int(const std::string& key, const simdjson::dom::element& e) const {
        const auto v = to_int(e);
        if (!v) wrong_type(key, e, "an integer");
        return *v;
    }
    int64_t required_int(const std::string& key) const { return as_int(key, required(key)); }
    int64_t required_int_any(std::initializer_list<const char*> keys) const {
        for (const char* k : keys) {
            if (const auto e = get(k)) return as_int(k, *e);
        }
        missing(*keys.begin());
    }
    int64_t int_or(const std::string& key, int64_t fallback) const {
        const auto e = get(key);
        return e ? as_int(key, *e) : fallback;
    }
    double as_number(const std::string& key, const simdjson::dom::element& e) const {
        if (!is_number(e)) wrong_type(key, e, "a number");
        return e.get_double().value_unsafe();
    }
    double required_number(const std::string& key) const { return as_number(key, required(key)); }
    double number_or(const std::string& key, double fallback) const {
        const auto e = get(key);
        return e ? as_number(key, *e) : fallback;
    }
    bool bool_or(const std::string& key, bool fallback) const {
        const auto e = get(key);
        if (!e) return fallback;
        if (e->type() != simdjson::dom::element_type::BOOL) wrong_type(key, *e, "true or false");
        return e->get_bool().value_unsafe();
    }
    std::string as_string(const std::string& key, const simdjson::dom::element& e) const {
        if (e.type() != simdjson::dom::element_type::STRING) wrong_type(key, e, "a string");
        return std::string(e.get_string().value_unsafe());
    }
    std::string string_or(const std::string& key, const std::string& fallback) const {
        const auto e = get(key);
        return e ? as_string(key, *e) : fallback;
    }
    std::optional<std::string> optional_string(const std::string& key) const {
        const auto e = get(key);
        if (!e) return std::nullopt;
        return as_string(key, *e);
    }
    // A list of strings; empty when absent or null.
    std::vector<std::string> strings(const std::string& key) const {
        std::vector<std::string> out;
        const auto e = get(key);
        if (!e) return out;
        if (e->type() != simdjson::dom::element_type::ARRAY) wrong_type(key, *e, "a list of strings");
        for (const auto x : array_of(*e)) {
            if (x.type() != simdjson::dom::element_type::STRING) wrong_type(key, x, "a list of strings");
            out.emplace_back(x.get_string().value_unsafe());
        }
        return out;
    }
    // An id or a list of ids (bos/eos_token_id); empty when absent or null.
    std::vector<int64_t> ids(const std::string& key) const {
        std::vector<int64_t> out;
        const auto e = get(key);
        if (!e) return out;
        if (e->type() == simdjson::dom::element_type::ARRAY) {
            for (const auto x : array_of(*e)) {
                const auto v = to_int(x);
                if (!v) wrong_type(key, x, "an integer or a list of integers");
                out.push_back(*v);
            }
            return out;
        }
        const auto v = to_int(*e);
        if (!v) wrong_type(key, *e, "an integer or a list of integers");
        out.push_back(*v);
        return out;
    }
    JsonObject object(const std::string& key) const {
        const auto e = required(key);
        if (e.type() != simdjson::dom::element_type::OBJECT) wrong_type(key, e, "an object");
        return JsonObject(object_of(e), source_, name(key) + ".");
    }

private:
    simdjson::dom::object obj_;
    std::string source_;
    std::string prefix_;
};

// simdjson rejects integers beyond uint64, but transformers writes
// int(1e30) as "model_max_length": 1000000000000000019884624838656. Appends
// ".0" to such literals (outside strings) so they parse as doubles.
std::string widen_big_integers(const std::string& json) {
    std::string out;
    out.reserve(json.size() + 16);
    bool in_string = false;
    for (size_t i = 0; i < json.size();) {
        const char ch = json[i];
        if (in_string) {
            out += ch;
            if (ch == '\\' && i + 1 < json.size()) {
                out += json[i + 1];
                i += 2;
                continue;
            }
            if (ch == '"') in_string = false;
            ++i;
            continue;
        }
        if (ch == '"') {
            in_string = true;
            out += ch;
            ++i;
            continue;
        }
        if (ch >= '0' && ch <= '9') {
            size_t j = i;
            while (j < json.size() && json[j] >= '0' && json[j] <= '9') ++j;
            out.append(json, i, j - i);
            const bool fraction = j < json.size() && (json[j] == '.' || json[j] == 'e' || json[j] == 'E');
            if (j - i >= 20 && !fraction) out += ".0";
            i = j;
            continue;
        }
        out += ch;
        ++i;
    }
    return out;
}

// Owns the parsed document; the root must be an object.
class JsonDocument {
public:
    JsonDocument(const std::string& json, const std::string& source) {
        simdjson::dom::element root;
        auto err = parser_.parse(json).get(root);
        if (err == simdjson::NUMBER_ERROR) {
            widened_ = widen_big_integers(json);
            err = parser_.parse(widened_).get(root);
        }
        if (err) {
            throw FormatError(fmt::format("{}: not valid JSON ({})", source, simdjson::error_message(err)));
        }
        if (root.type() != simdjson::dom::element_type::OBJECT) {
            throw FormatError(fmt::format("{}: the file holds {}, expected a JSON object", source,
                                          json_type_name(root)));
        }
        root_.emplace(object_of(root), source);
    }
    JsonDocument(const JsonDocument&) = delete;
    JsonDocument& operator=(const JsonDocument&) = delete;
    const JsonObject& root() const { return *root_; }

private:
    simdjson::dom::parser parser_;
    std::string widened_;
    std::optional<JsonObject> root_;
};

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

// --- tokenizer side files ---------------------------------------------------------

namespace {

// "<s>" or {"content": "<s>", "lstrip": false, ...} (AddedToken); nullopt for null.
std::optional<std::string> token_text(const JsonObject& obj, const std::string& key) {
    const auto e = obj.get(key);
    if (!e) return std::nullopt;
    if (e->type() == simdjson::dom::element_type::STRING) return std::string(e->get_string().value_unsafe());
    if (e->type() == simdjson::dom::element_type::OBJECT) {
        const JsonObject token = obj.object(key);
        return token.as_string("content", token.required("content"));
    }
    obj.wrong_type(key, *e, "a string or an object with \"content\"");
}

std::vector<std::string> token_texts(const JsonObject& obj, const std::string& key) {
    std::vector<std::string> out;
    const auto e = obj.get(key);
    if (!e) return out;
    if (e->type() != simdjson::dom::element_type::ARRAY) obj.wrong_type(key, *e, "a list of tokens");
    for (const auto x : array_of(*e)) {
        if (x.type() == simdjson::dom::element_type::STRING) {
            out.emplace_back(x.get_string().value_unsafe());
        } else if (x.type() == simdjson::dom::element_type::OBJECT) {
            const JsonObject token(object_of(x), obj.source(), obj.name(key) + "[].");
            out.push_back(token.as_string("content", token.required("content")));
        } else {
            obj.wrong_type(key, x, "a list of strings or {\"content\": ...} objects");
        }
    }
    return out;
}

void read_special_tokens(const JsonObject& obj, HfTokenizerConfig& out) {
    if (auto t = token_text(obj, "bos_token")) out.bos_token = t;
    if (auto t = token_text(obj, "eos_token")) out.eos_token = t;
    if (auto t = token_text(obj, "unk_token")) out.unk_token = t;
    if (auto t = token_text(obj, "pad_token")) out.pad_token = t;
    if (obj.get("additional_special_tokens")) out.additional_special_tokens = token_texts(obj, "additional_special_tokens");
}

// chat_template: a string, or a list of {"name", "template"} (multi-template tokenizers).
void read_chat_template(const JsonObject& obj, HfTokenizerConfig& out) {
    const auto e = obj.get("chat_template");
    if (!e) return;
    if (e->type() == simdjson::dom::element_type::STRING) {
        out.chat_template = std::string(e->get_string().value_unsafe());
        return;
    }
    if (e->type() != simdjson::dom::element_type::ARRAY) {
        obj.wrong_type("chat_template", *e, "a string or a list of {\"name\", \"template\"}");
    }
    for (const auto x : array_of(*e)) {
        if (x.type() != simdjson::dom::element_type::OBJECT) {
            obj.wrong_type("chat_template", x, "a list of {\"name\", \"template\"} objects");
        }
        const JsonObject t(object_of(x), obj.source(), "chat_template[].");
        const std::string name = t.as_string("name", t.required("name"));
        out.chat_templates[name] = t.as_string("template", t.required("template"));
    }
    const auto it = out.chat_templates.find("default");
    if (it != out.chat_templates.end()) out.chat_template = it->second;
}

}  // namespace

void parse_hf_tokenizer_config(const std::string& json, HfTokenizerConfig& out, const std::string& source) {
    JsonDocument doc(json, source);
    const JsonObject& obj = doc.root();
    read_special_tokens(obj, out);
    if (const auto e = obj.get("add_bos_token")) out.add_bos_token = obj.bool_or("add_bos_token", false);
    if (const auto e = obj.get("add_eos_token")) out.add_eos_token = obj.bool_or("add_eos_token", false);
    out.tokenizer_class = obj.string_or("tokenizer_class", out.tokenizer_class);
    if (const auto e = obj.get("model_max_length")) {
        // transformers writes int(1e30) (VERY_LARGE_INTEGER) for "no limit".
        const double v = obj.as_number("model_max_length", *e);
        if (v > 0 && v < 1e15) out.model_max_length = static_cast<int64_t>(v);
    }
    read_chat_template(obj, out);
}

void parse_hf_special_tokens_map(const std::string& json, HfTokenizerConfig& out, const std::string& source) {
    JsonDocument doc(json, source);
    read_special_tokens(doc.root(), out);
}

void parse_hf_generation_config(const std::string& json, HfTokenizerConfig& out, const std::string& source) {
    JsonDocument doc(json, source);
    const JsonObject& obj = doc.root();
    if (obj.get("bos_token_id")) out.bos_token_ids = obj.ids("bos_token_id");
    if (obj.get("eos_token_id")) out.eos_token_ids = obj.ids("eos_token_id");
    if (obj.get("pad_token_id")) {
        const auto ids = obj.ids("pad_token_id");
        if (!ids.empty()) out.pad_token_id = ids[0];
    }
}

HfTokenizerConfig load_hf_tokenizer_config(const std::string& folder) {
    HfTokenizerConfig out;
    std::error_code ec;
    const fs::path dir(folder);
    auto read_if = [&](const char* name, auto parse) {
        const fs::path p = dir / name;
        if (!fs::is_regular_file(p, ec)) return;
        parse(read_text_file(p.string()), out, p.string());
        out.files_read.push_back(name);
    };
    // special_tokens_map.json after tokenizer_config.json: its tokens win, as
    // in transformers' from_pretrained.
    read_if("tokenizer_config.json", parse_hf_tokenizer_config);
    read_if("special_tokens_map.json", parse_hf_special_tokens_map);
    read_if("generation_config.json", parse_hf_generation_config);
    // Newer transformers save the template beside the config; it takes precedence.
    const fs::path jinja = dir / "chat_template.jinja";
    if (fs::is_regular_file(jinja, ec)) {
        out.chat_template = read_text_file(jinja.string());
        out.files_read.push_back("chat_template.jinja");
    } else if (fs::is_regular_file(dir / "chat_template.json", ec)) {
        const std::string p = (dir / "chat_template.json").string();
        JsonDocument doc(read_text_file(p), p);
        HfTokenizerConfig tmp;
        read_chat_template(doc.root(), tmp);
        out.chat_template = tmp.chat_template;
        if (!tmp.chat_templates.empty()) out.chat_templates = tmp.chat_templates;
        out.files_read.push_back("chat_template.json");
    }
    return out;
}

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

// --- trainer_state.json ----------------------------------------------------------

std::optional<double> TrainerLogEntry::get(const std::string& key) const {
    const auto it = values.find(key);
    if (it == values.end()) return std::nullopt;
    return it->second;
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

// --- small files ----------------------------------------------------------------

std::string read_text_file(const std::string& path) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        throw IoError(fmt::format("cannot open '{}': is a directory, expected a file", path));
    }
    FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) throw IoError(fmt::format("cannot open '{}': {}", path, std::strerror(errno)));
    std::string text;
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    const bool failed = std::ferror(f) != 0;
    std::fclose(f);
    if (failed) throw IoError(fmt::format("cannot read '{}'", path));
    return text;
}

void write_text_file_atomic(const std::string& path, const std::string& text) {
    const std::string tmp = fmt::format("{}.tmp-{}", path, static_cast<long>(::getpid()));
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        throw IoError(fmt::format("cannot write '{}': {}", path, std::strerror(errno)),
                      "check that the folder exists and is writable");
    }
    const char* p = text.data();
    size_t left = text.size();
    int err = 0;
    while (left > 0 && err == 0) {
        const ssize_t k = ::write(fd, p, left);
        if (k < 0) {
            if (errno != EINTR) err = errno;
            continue;
        }
        p += k;
        left -= static_cast<size_t>(k);
    }
    if (err == 0 && ::fsync(fd) != 0) err = errno;
    if (::close(fd) != 0 && err == 0) err = errno;
    if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
    if (err != 0) {
        ::unlink(tmp.c_str());
        throw IoError(fmt::format("cannot write '{}': {}", path, std::strerror(err)));
    }
}

}  // namespace memskew
