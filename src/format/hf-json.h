// Reading Hugging Face JSON side files (config.json, tokenizer_config.json,
// adapter_config.json, trainer_state.json) with simdjson: typed field access
// whose errors name the file and the field. The format layer's one home for
// it; the model, tokenizer and training readers of those files use it.
#pragma once

#include <simdjson.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "format/json-util.h"
#include "memskew/error.h"

namespace memskew::format {

namespace fs = std::filesystem;

// --- JSON reading helpers -------------------------------------------------------

inline bool is_number(const simdjson::dom::element& e) {
    const auto t = e.type();
    return t == simdjson::dom::element_type::INT64 || t == simdjson::dom::element_type::UINT64 ||
           t == simdjson::dom::element_type::DOUBLE;
}

// An integer, also from an integral double ("32000.0"); nullopt otherwise.
inline std::optional<int64_t> to_int(const simdjson::dom::element& e) {
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
inline std::string side_file_path(const std::string& folder_or_file, const char* name) {
    const bool json = folder_or_file.size() >= 5 && folder_or_file.compare(folder_or_file.size() - 5, 5, ".json") == 0;
    std::error_code ec;
    if (json && !fs::is_directory(folder_or_file, ec)) return folder_or_file;
    return (fs::path(folder_or_file) / name).string();
}

// By value: ranging over `e.get_object().value_unsafe()` directly would range
// over a member of a destroyed temporary.
inline simdjson::dom::object object_of(const simdjson::dom::element& e) { return e.get_object().value_unsafe(); }
inline simdjson::dom::array array_of(const simdjson::dom::element& e) { return e.get_array().value_unsafe(); }

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
inline std::string widen_big_integers(const std::string& json) {
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

}  // namespace memskew::format
