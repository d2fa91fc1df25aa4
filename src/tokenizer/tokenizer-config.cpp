// tokenizer_config.json, special_tokens_map.json and generation_config.json beside a
// tokenizer: special tokens, add_bos/add_eos and the chat template.
#include <fmt/format.h>
#include <simdjson.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "format/hf-json.h"
#include "memskew/error.h"
#include "memskew/tokenizer-config.h"
#include "memskew/file-io.h"

namespace memskew {

namespace fs = std::filesystem;
using namespace format;

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

}  // namespace memskew
