// Reading a Hugging Face tokenizer.json (and tokenizer_config.json /
// special_tokens_map.json beside it) into the pipeline of hf-tokenizer.cpp,
// and load_tokenizer, which picks GGUF or tokenizer.json by the file's content.
//
// Anything the pipeline cannot reproduce exactly is refused with
// FormatError "unsupported <what> '<type>' (tokenizer.json: <json path>)"
// rather than approximated: silently different ids would skew every metric.
//
// Damaged entries: the llama-spm test copy stores token 31353 as "" (the
// original is a CJK character). An empty piece can never be produced by
// BPE, so it is kept at its id (the id space stays the model's), typed
// kUnused, decodes to nothing and is not a merge or lookup target; text with
// the lost character falls back to <0xNN> bytes instead.
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <simdjson.h>

#include "memskew/error.h"
#include "format/json-util.h"
#include "memskew/tokenizer-config.h"
#include "memskew/tokenizer.h"
#include "tokenizer/hf-tokenizer.h"
#include "tokenizer/tokenizer-impl.h"
#include "tokenizer/unicode-util.h"

namespace fs = std::filesystem;

namespace memskew {

namespace {

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;
using namespace detail::hf;
using format::json_type_name;

[[noreturn]] void wrong_type(const element& e, const std::string& path, const char* expected) {
    throw FormatError(fmt::format("tokenizer.json: {} must be {}, not {}", path, expected, json_type_name(e)));
}

[[noreturn]] void unsupported(const std::string& what, const std::string& type, const std::string& path,
                              const std::string& hint) {
    throw FormatError(fmt::format("unsupported {} '{}' (tokenizer.json: {})", what, type, path), hint);
}

object as_object(const element& e, const std::string& path) {
    if (!e.is_object()) wrong_type(e, path, "an object");
    return object(e);
}
array as_array(const element& e, const std::string& path) {
    if (!e.is_array()) wrong_type(e, path, "an array");
    return array(e);
}
std::string as_string(const element& e, const std::string& path) {
    if (!e.is_string()) wrong_type(e, path, "a string");
    return std::string(std::string_view(e));
}
bool as_bool(const element& e, const std::string& path) {
    if (!e.is_bool()) wrong_type(e, path, "a boolean");
    return bool(e);
}
int64_t as_int(const element& e, const std::string& path) {
    if (e.is_int64()) return int64_t(e);
    if (e.is_uint64()) return static_cast<int64_t>(std::min<uint64_t>(uint64_t(e), INT64_MAX));
    wrong_type(e, path, "an integer");
}

// The member `key`, or nullopt when absent or null (HF treats both alike).
std::optional<element> member(const object& o, const char* key) {
    element e;
    if (o.at_key(key).get(e) != simdjson::SUCCESS || e.is_null()) return std::nullopt;
    return e;
}
bool bool_or(const object& o, const char* key, const std::string& path, bool fallback) {
    const auto e = member(o, key);
    return e ? as_bool(*e, path + "." + key) : fallback;
}
std::string string_or(const object& o, const char* key, const std::string& path, const std::string& fallback) {
    const auto e = member(o, key);
    return e ? as_string(*e, path + "." + key) : fallback;
}
std::string required_string(const object& o, const char* key, const std::string& path) {
    const auto e = member(o, key);
    if (!e) throw FormatError(fmt::format("tokenizer.json: {} has no '{}'", path, key));
    return as_string(*e, path + "." + key);
}

// {"String": "x"} or {"Regex": "x"} (Split, Replace).
struct Pattern {
    std::string text;
    bool is_regex;
};
Pattern read_pattern(const object& o, const std::string& path) {
    const auto p = member(o, "pattern");
    if (!p) throw FormatError(fmt::format("tokenizer.json: {} has no 'pattern'", path));
    const object po = as_object(*p, path + ".pattern");
    if (const auto s = member(po, "String")) return {as_string(*s, path + ".pattern.String"), false};
    if (const auto r = member(po, "Regex")) return {as_string(*r, path + ".pattern.Regex"), true};
    throw FormatError(fmt::format("tokenizer.json: {}.pattern must hold \"String\" or \"Regex\"", path));
}

SplitBehavior read_behavior(const object& o, const std::string& path, SplitBehavior fallback) {
    const auto e = member(o, "behavior");
    if (!e) return fallback;
    const std::string b = as_string(*e, path + ".behavior");
    if (b == "Removed") return SplitBehavior::kRemoved;
    if (b == "Isolated") return SplitBehavior::kIsolated;
    if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
    if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
    if (b == "Contiguous") return SplitBehavior::kContiguous;
    unsupported("split behavior", b, path + ".behavior",
                "supported: Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
}

// ------------------------------------------------------------ normalizers

std::unique_ptr<Normalizer> read_normalizer(const element& e, const std::string& path) {
    const object o = as_object(e, path);
    const std::string type = required_string(o, "type", path);
    if (type == "Sequence") {
        std::vector<std::unique_ptr<Normalizer>> stages;
        const auto list = member(o, "normalizers");
        if (!list) throw FormatError(fmt::format("tokenizer.json: {} has no 'normalizers'", path));
        size_t i = 0;
        for (element child : as_array(*list, path + ".normalizers")) {
            stages.push_back(read_normalizer(child, fmt::format("{}.normalizers[{}]", path, i++)));
        }
        return make_sequence_normalizer(std::move(stages));
    }
    if (type == "NFC") return make_unicode_normalizer(UnicodeForm::kNfc);
    if (type == "NFD") return make_unicode_normalizer(UnicodeForm::kNfd);
    if (type == "NFKC") return make_unicode_normalizer(UnicodeForm::kNfkc);
    if (type == "NFKD") return make_unicode_normalizer(UnicodeForm::kNfkd);
    if (type == "Lowercase") return make_lowercase_normalizer();
    if (type == "Prepend") return make_prepend_normalizer(required_string(o, "prepend", path));
    if (type == "Replace") {
        const Pattern p = read_pattern(o, path);
        return make_replace_normalizer(p.text, p.is_regex, required_string(o, "content", path));
    }
    if (type == "Strip") {
        return make_strip_normalizer(bool_or(o, "strip_left", path, true), bool_or(o, "strip_right", path, true));
    }
    unsupported("normalizer", type, path + ".type",
                "supported normalizers: NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace, Strip, Sequence");
}

// ------------------------------------------------------------ pre-tokenizers

void read_pre_tokenizer(const element& e, const std::string& path,
                        std::vector<std::unique_ptr<PreTokenizerStage>>& stages) {
    const object o = as_object(e, path);
    const std::string type = required_string(o, "type", path);
    if (type == "Sequence") {
        const auto list = member(o, "pretokenizers");
        if (!list) throw FormatError(fmt::format("tokenizer.json: {} has no 'pretokenizers'", path));
        size_t i = 0;
        for (element child : as_array(*list, path + ".pretokenizers")) {
            read_pre_tokenizer(child, fmt::format("{}.pretokenizers[{}]", path, i++), stages);
        }
    } else if (type == "ByteLevel") {
        // HF's ByteLevel::default(): add_prefix_space and use_regex both true.
        stages.push_back(make_byte_level_stage(bool_or(o, "add_prefix_space", path, true),
                                               bool_or(o, "use_regex", path, true)));
    } else if (type == "Split") {
        const Pattern p = read_pattern(o, path);
        const SplitBehavior b = read_behavior(o, path, SplitBehavior::kIsolated);
        const bool invert = bool_or(o, "invert", path, false);
        stages.push_back(p.is_regex ? make_split_regex_stage(p.text, b, invert)
                                    : make_split_string_stage(p.text, b, invert));
    } else if (type == "Digits") {
        stages.push_back(make_digits_stage(bool_or(o, "individual_digits", path, false)));
    } else if (type == "Punctuation") {
        stages.push_back(make_punctuation_stage(read_behavior(o, path, SplitBehavior::kIsolated)));
    } else if (type == "Whitespace") {
        stages.push_back(make_whitespace_stage());
    } else if (type == "WhitespaceSplit") {
        stages.push_back(make_whitespace_split_stage());
    } else if (type == "CharDelimiterSplit") {
        const std::string d = required_string(o, "delimiter", path);
        size_t n = 0;
        const uint32_t cp = d.empty() ? unicode::kInvalidCodepoint : unicode::decode_utf8(d, 0, n);
        if (cp == unicode::kInvalidCodepoint || n != d.size()) {
            throw FormatError(fmt::format("tokenizer.json: {}.delimiter must be one character", path));
        }
        stages.push_back(make_char_delimiter_stage(cp));
    } else if (type == "Metaspace") {
        const std::string replacement = string_or(o, "replacement", path, "\xE2\x96\x81");
        PrependScheme scheme = PrependScheme::kAlways;
        if (const auto s = member(o, "prepend_scheme")) {
            const std::string v = as_string(*s, path + ".prepend_scheme");
            if (v == "first") {
                scheme = PrependScheme::kFirst;
            } else if (v == "always") {
                scheme = PrependScheme::kAlways;
            } else if (v == "never") {
                scheme = PrependScheme::kNever;
            } else {
                unsupported("Metaspace prepend_scheme", v, path + ".prepend_scheme", "supported: first, always, never");
            }
        } else if (!bool_or(o, "add_prefix_space", path, true)) {
            scheme = PrependScheme::kNever;  // the older format
        }
        stages.push_back(make_metaspace_stage(replacement, scheme, bool_or(o, "split", path, true)));
    } else {
        unsupported("pre-tokenizer", type, path + ".type",
                    "supported pre-tokenizers: ByteLevel, Split, Digits, Punctuation, Metaspace, Whitespace, "
                    "WhitespaceSplit, CharDelimiterSplit, Sequence");
    }
}

// ------------------------------------------------------------ decoders

std::unique_ptr<Decoder> read_decoder(const element& e, const std::string& path, bool& byte_level_only) {
    const object o = as_object(e, path);
    const std::string type = required_string(o, "type", path);
    byte_level_only = false;
    if (type == "Sequence") {
        std::vector<std::unique_ptr<Decoder>> stages;
        const auto list = member(o, "decoders");
        if (!list) throw FormatError(fmt::format("tokenizer.json: {} has no 'decoders'", path));
        size_t i = 0;
        bool ignored = false;
        for (element child : as_array(*list, path + ".decoders")) {
            stages.push_back(read_decoder(child, fmt::format("{}.decoders[{}]", path, i++), ignored));
        }
        byte_level_only = false;
        return make_sequence_decoder(std::move(stages));
    }
    if (type == "ByteLevel") {
        byte_level_only = true;
        return make_byte_level_decoder();
    }
    if (type == "Metaspace") {
        bool strip = bool_or(o, "add_prefix_space", path, true);
        if (const auto s = member(o, "prepend_scheme")) strip = as_string(*s, path + ".prepend_scheme") != "never";
        return make_metaspace_decoder(string_or(o, "replacement", path, "\xE2\x96\x81"), strip);
    }
    if (type == "Replace") {
        const Pattern p = read_pattern(o, path);
        if (p.is_regex) unsupported("decoder pattern", "Regex", path + ".pattern", "only String patterns are supported in decoders");
        return make_replace_decoder(p.text, required_string(o, "content", path));
    }
    if (type == "ByteFallback") return make_byte_fallback_decoder();
    if (type == "Fuse") return make_fuse_decoder();
    if (type == "Strip") {
        const auto start = member(o, "start"), stop = member(o, "stop");
        return make_strip_decoder(required_string(o, "content", path),
                                  start ? static_cast<size_t>(std::max<int64_t>(0, as_int(*start, path + ".start"))) : 0,
                                  stop ? static_cast<size_t>(std::max<int64_t>(0, as_int(*stop, path + ".stop"))) : 0);
    }
    unsupported("decoder", type, path + ".type",
                "supported decoders: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence");
}

// ------------------------------------------------------------ post-processor

// Which special tokens encode(add_special_tokens=True) puts around a single
// sequence; names are resolved to ids by the caller.
struct PostProcess {
    std::vector<int32_t> before, after;
};

void read_post_processor(const element& e, const std::string& path,
                         const std::function<int32_t(const std::string&, const std::string&)>& id_of,
                         PostProcess& pp) {
    const object o = as_object(e, path);
    const std::string type = required_string(o, "type", path);
    if (type == "ByteLevel") return;  // offsets only
    if (type == "Sequence") {
        const auto list = member(o, "processors");
        if (!list) throw FormatError(fmt::format("tokenizer.json: {} has no 'processors'", path));
        size_t i = 0;
        for (element child : as_array(*list, path + ".processors")) {
            read_post_processor(child, fmt::format("{}.processors[{}]", path, i++), id_of, pp);
        }
        return;
    }
    if (type == "RobertaProcessing" || type == "BertProcessing") {
        // "cls": ["<s>", 0], "sep": ["</s>", 2]
        for (const char* key : {"cls", "sep"}) {
            const auto v = member(o, key);
            if (!v) throw FormatError(fmt::format("tokenizer.json: {} has no '{}'", path, key));
            const std::string p = path + "." + key;
            const array a = as_array(*v, p);
            element id;
            if (a.at(1).get(id) != simdjson::SUCCESS) throw FormatError(fmt::format("tokenizer.json: {} must be [token, id]", p));
            (std::string(key) == "cls" ? pp.before : pp.after).push_back(static_cast<int32_t>(as_int(id, p + "[1]")));
        }
        return;
    }
    if (type == "TemplateProcessing") {
        std::map<std::string, std::vector<int32_t>> specials;
        if (const auto st = member(o, "special_tokens")) {
            for (auto [key, value] : as_object(*st, path + ".special_tokens")) {
                const std::string p = fmt::format("{}.special_tokens[\"{}\"]", path, std::string(key));
                const object so = as_object(value, p);
                std::vector<int32_t>& ids = specials[std::string(key)];
                if (const auto list = member(so, "ids")) {
                    for (element id : as_array(*list, p + ".ids")) ids.push_back(static_cast<int32_t>(as_int(id, p + ".ids")));
                }
            }
        }
        const auto single = member(o, "single");
        if (!single) throw FormatError(fmt::format("tokenizer.json: {} has no 'single'", path));
        bool seen_sequence = false;
        size_t i = 0;
        for (element item : as_array(*single, path + ".single")) {
            const std::string p = fmt::format("{}.single[{}]", path, i++);
            const object io = as_object(item, p);
            if (member(io, "Sequence")) {
                seen_sequence = true;
            } else if (const auto sp = member(io, "SpecialToken")) {
                const std::string name = required_string(as_object(*sp, p + ".SpecialToken"), "id", p + ".SpecialToken");
                std::vector<int32_t> ids;
                if (auto it = specials.find(name); it != specials.end()) {
                    ids = it->second;
                } else {
                    ids.push_back(id_of(name, p + ".SpecialToken.id"));
                }
                auto& dst = seen_sequence ? pp.after : pp.before;
                dst.insert(dst.end(), ids.begin(), ids.end());
            } else {
                throw FormatError(fmt::format("tokenizer.json: {} must hold \"Sequence\" or \"SpecialToken\"", p));
            }
        }
        return;
    }
    unsupported("post-processor", type, path + ".type",
                "supported post-processors: TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, "
                "Sequence (they decide which special tokens encode adds)");
}

// ------------------------------------------------------------ JSON errors

// simdjson reports what is wrong but not where; nlohmann's parser (run only
// on this error path) gives the byte offset.
[[noreturn]] void throw_json_error(const std::string& text, simdjson::error_code code) {
    size_t byte = 0;
    try {
        const auto parsed = nlohmann::json::parse(text);
        (void)parsed;
    } catch (const nlohmann::json::parse_error& e) {
        byte = e.byte;
    } catch (const std::exception&) {
    }
    if (byte == 0) {
        throw FormatError(fmt::format("invalid JSON: {}", simdjson::error_message(code)),
                          "the file is not valid JSON (truncated download?)");
    }
    const size_t at = std::min(byte > 0 ? byte - 1 : 0, text.size());
    size_t line = 1, column = 1;
    for (size_t i = 0; i < at; ++i) {
        if (text[i] == '\n') {
            ++line;
            column = 1;
        } else {
            ++column;
        }
    }
    throw FormatError(fmt::format("invalid JSON at byte {} (line {}, column {}): {}", at, line, column,
                                  simdjson::error_message(code)),
                      "the file is not valid JSON (truncated download?)");
}

std::string read_whole_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw IoError("cannot open " + path, "check the path and permissions");
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw IoError("cannot read " + path);
    return s;
}

// ------------------------------------------------------------ the whole file

std::unique_ptr<Tokenizer> parse_tokenizer_json(const std::string& text, const std::string& folder) {
    simdjson::dom::parser parser;
    element root;
    const simdjson::padded_string padded(text);
    if (const auto err = parser.parse(padded).get(root); err != simdjson::SUCCESS) throw_json_error(text, err);
    const object top = as_object(root, "(top level)");

    // --- model
    const auto model_e = member(top, "model");
    if (!model_e) throw FormatError("missing model (tokenizer.json: model)", "this is not a tokenizer.json");
    const object model = as_object(*model_e, "model");
    std::string model_type = "BPE";
    if (const auto t = member(model, "type")) {
        model_type = as_string(*t, "model.type");
    } else if (!member(model, "merges")) {
        // Files from before `type` was written: BPE is the one with merges.
        model_type = member(model, "vocab") ? "(untyped, without merges)" : "(untyped)";
    }
    if (model_type != "BPE") {
        unsupported("tokenizer model", model_type, "model.type",
                    "only BPE models are supported (byte-level like GPT-2/Llama-3/Qwen2, or SentencePiece-converted "
                    "with byte_fallback like Llama-2); WordPiece, Unigram and WordLevel are not");
    }
    if (const auto d = member(model, "dropout")) {
        const double dropout = d->is_number() ? double(*d) : (wrong_type(*d, "model.dropout", "a number"), 0.0);
        if (dropout != 0.0) {
            unsupported("BPE dropout", fmt::format("{}", dropout), "model.dropout",
                        "dropout makes encoding random; set it to null for deterministic ids");
        }
    }
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
        const std::string v = string_or(model, key, "model", "");
        if (!v.empty()) {
            unsupported(std::string("BPE ") + key, v, std::string("model.") + key,
                        "only BPE without subword prefixes/suffixes is supported");
        }
    }

    BpeSpec spec;
    Vocab& vocab = spec.vocab;
    const auto vocab_e = member(model, "vocab");
    if (!vocab_e) throw FormatError("missing vocabulary (tokenizer.json: model.vocab)", "the file may be truncated");
    std::vector<std::pair<std::string, int64_t>> entries;
    int64_t max_id = -1;
    for (auto [key, value] : as_object(*vocab_e, "model.vocab")) {
        const std::string piece(key);
        const int64_t id = as_int(value, fmt::format("model.vocab[\"{}\"]", piece));
        if (id < 0 || id >= INT32_MAX) {
            throw FormatError(fmt::format("tokenizer.json: model.vocab[\"{}\"] = {} is not a valid token id", piece, id));
        }
        max_id = std::max(max_id, id);
        entries.emplace_back(piece, id);
    }
    if (entries.empty()) throw FormatError("empty vocabulary (tokenizer.json: model.vocab)");

    // --- added tokens (may extend the id space past the model's vocabulary)
    if (const auto added = member(top, "added_tokens")) {
        size_t i = 0;
        for (element item : as_array(*added, "added_tokens")) {
            const std::string p = fmt::format("added_tokens[{}]", i++);
            const object ao = as_object(item, p);
            AddedToken t;
            const auto id = member(ao, "id");
            if (!id) throw FormatError(fmt::format("tokenizer.json: {} has no 'id'", p));
            const int64_t v = as_int(*id, p + ".id");
            if (v < 0 || v >= INT32_MAX) throw FormatError(fmt::format("tokenizer.json: {}.id = {} is not a valid token id", p, v));
            t.id = static_cast<int32_t>(v);
            t.content = required_string(ao, "content", p);
            t.special = bool_or(ao, "special", p, false);
            t.single_word = bool_or(ao, "single_word", p, false);
            t.lstrip = bool_or(ao, "lstrip", p, false);
            t.rstrip = bool_or(ao, "rstrip", p, false);
            t.normalized = bool_or(ao, "normalized", p, !t.special);
            max_id = std::max<int64_t>(max_id, t.id);
            spec.added_tokens.push_back(std::move(t));
        }
    }
    const auto n_tokens = static_cast<size_t>(max_id + 1);
    vocab.tokens.assign(n_tokens, std::string());
    // Ids nobody names (gaps) stay "" and kUnused: never produced, decode to nothing.
    vocab.types.assign(n_tokens, static_cast<int32_t>(TokenType::kUnused));
    std::vector<bool> taken(n_tokens, false);
    for (auto& [piece, id] : entries) {
        const auto k = static_cast<size_t>(id);
        if (taken[k]) {
            throw FormatError(fmt::format("tokenizer.json: model.vocab gives id {} to both '{}' and '{}'", id,
                                          vocab.tokens[k], piece));
        }
        taken[k] = true;
        if (piece.empty()) continue;  // damaged entry: see the top of this file
        vocab.types[k] = static_cast<int32_t>(TokenType::kNormal);
        vocab.tokens[k] = std::move(piece);
    }
    for (const AddedToken& t : spec.added_tokens) {
        const auto k = static_cast<size_t>(t.id);
        vocab.tokens[k] = t.content;
        vocab.types[k] = static_cast<int32_t>(t.special ? TokenType::kControl : TokenType::kUserDefined);
    }
    for (size_t k = 0; k < n_tokens; ++k) {
        const std::string& p = vocab.tokens[k];
        if (vocab.types[k] == static_cast<int32_t>(TokenType::kNormal) && p.size() == 6 && p.compare(0, 3, "<0x") == 0 &&
            p[5] == '>') {
            vocab.types[k] = static_cast<int32_t>(TokenType::kByte);
        }
    }
    auto find_token = [&](const std::string& s) -> int32_t {
        for (const AddedToken& t : spec.added_tokens) {
            if (t.content == s) return t.id;
        }
        for (const auto& [piece, id] : entries) {
            (void)piece;
            if (vocab.tokens[static_cast<size_t>(id)] == s) return static_cast<int32_t>(id);
        }
        return -1;
    };

    // --- merges
    if (const auto merges = member(model, "merges")) {
        size_t i = 0;
        for (element m : as_array(*merges, "model.merges")) {
            const std::string p = fmt::format("model.merges[{}]", i++);
            if (m.is_string()) {
                // "a b": HF splits on the space and wants exactly two parts.
                const std::string line = std::string(std::string_view(m));
                const size_t sep = line.find(' ');
                if (sep == std::string::npos || sep == 0 || sep + 1 == line.size() ||
                    line.find(' ', sep + 1) != std::string::npos) {
                    throw FormatError(fmt::format("malformed merge {} '{}': expected two tokens separated by one space "
                                                  "(tokenizer.json: {})", p, line, p));
                }
                spec.merges.emplace_back(line.substr(0, sep), line.substr(sep + 1));
            } else if (m.is_array()) {
                // ["a", "b"]: the newer format, which allows spaces inside tokens.
                std::vector<std::string> parts;
                for (element part : array(m)) parts.push_back(as_string(part, p));
                if (parts.size() != 2) throw FormatError(fmt::format("malformed merge {}: expected two tokens (tokenizer.json: {})", p, p));
                spec.merges.emplace_back(std::move(parts[0]), std::move(parts[1]));
            } else {
                wrong_type(m, p, "a string \"a b\" or a pair [\"a\", \"b\"]");
            }
        }
    }
    spec.byte_fallback = bool_or(model, "byte_fallback", "model", false);
    spec.fuse_unk = bool_or(model, "fuse_unk", "model", false);
    spec.ignore_merges = bool_or(model, "ignore_merges", "model", false);
    if (const auto unk = member(model, "unk_token")) {
        const std::string name = as_string(*unk, "model.unk_token");
        spec.unk = find_token(name);
        if (spec.unk < 0) {
            throw FormatError(fmt::format("model.unk_token '{}' is not in the vocabulary (tokenizer.json: model.unk_token)", name));
        }
        vocab.unk = spec.unk;
        if (vocab.types[static_cast<size_t>(spec.unk)] == static_cast<int32_t>(TokenType::kNormal)) {
            vocab.types[static_cast<size_t>(spec.unk)] = static_cast<int32_t>(TokenType::kUnknown);
        }
    }

    // --- pipeline
    if (const auto n = member(top, "normalizer")) spec.normalizer = read_normalizer(*n, "normalizer");
    if (const auto p = member(top, "pre_tokenizer")) read_pre_tokenizer(*p, "pre_tokenizer", spec.pre_tokenizer);
    if (const auto d = member(top, "decoder")) spec.decoder = read_decoder(*d, "decoder", spec.decoder_byte_level_only);
    PostProcess pp;
    if (const auto p = member(top, "post_processor")) {
        read_post_processor(*p, "post_processor",
                            [&](const std::string& name, const std::string& path) {
                                const int32_t id = find_token(name);
                                if (id < 0) throw FormatError(fmt::format("special token '{}' is not in the vocabulary (tokenizer.json: {})", name, path));
                                return id;
                            },
                            pp);
    }
    bool byte_level = false;
    for (const auto& s : spec.pre_tokenizer) byte_level |= s->is_byte_level();
    vocab.model = byte_level ? "gpt2" : "llama";
    vocab.pre = "tokenizer.json";
    vocab.add_space_prefix = false;  // the normalizer / pre-tokenizer decide here

    // --- special tokens: the post-processor says what encode adds; the config
    // files beside tokenizer.json name BOS/EOS and may override add_bos/add_eos
    // (transformers rebuilds Llama's post-processor from add_bos_token).
    if (pp.before.size() > 1 || pp.after.size() > 1) {
        unsupported("post-processor template", "more than one special token on a side", "post_processor.single",
                    "encode adds at most one BOS and one EOS");
    }
    vocab.bos = pp.before.empty() ? -1 : pp.before[0];
    vocab.eos = pp.after.empty() ? -1 : pp.after[0];
    vocab.add_bos = vocab.bos >= 0;
    vocab.add_eos = vocab.eos >= 0;
    HfTokenizerConfig cfg;
    if (!folder.empty()) cfg = load_hf_tokenizer_config(folder);
    auto resolve = [&](const std::optional<std::string>& name, const char* key) -> int32_t {
        if (!name || name->empty()) return -1;
        const int32_t id = find_token(*name);
        if (id < 0) {
            throw FormatError(fmt::format("{} '{}' (tokenizer_config.json / special_tokens_map.json) is not in "
                                          "tokenizer.json's vocabulary", key, *name),
                              "the config files belong to a different tokenizer");
        }
        return id;
    };
    if (const int32_t id = resolve(cfg.bos_token, "bos_token"); id >= 0) vocab.bos = id;
    if (const int32_t id = resolve(cfg.eos_token, "eos_token"); id >= 0) vocab.eos = id;
    if (const int32_t id = resolve(cfg.pad_token, "pad_token"); id >= 0) vocab.pad = id;
    if (vocab.eos < 0 && !cfg.eos_token_ids.empty() && cfg.eos_token_ids[0] >= 0 &&
        cfg.eos_token_ids[0] < static_cast<int64_t>(n_tokens)) {
        vocab.eos = static_cast<int32_t>(cfg.eos_token_ids[0]);
    }
    // Without config files: the conventional names (GPT-2 uses <|endoftext|> for both).
    if (vocab.eos < 0) {
        for (const char* name : {"<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>"}) {
            if ((vocab.eos = find_token(name)) >= 0) break;
        }
    }
    if (vocab.bos < 0) {
        for (const char* name : {"<s>", "<|begin_of_text|>", "<bos>", "<|endoftext|>"}) {
            if ((vocab.bos = find_token(name)) >= 0) break;
        }
    }
    if (cfg.add_bos_token) vocab.add_bos = *cfg.add_bos_token && vocab.bos >= 0;
    if (cfg.add_eos_token) vocab.add_eos = *cfg.add_eos_token && vocab.eos >= 0;

    detail::validate_vocab(vocab);
    return make_bpe_tokenizer(std::move(spec));
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer_json(const std::string& path) {
    std::error_code ec;
    std::string file = path;
    if (fs::is_directory(path, ec)) {
        file = (fs::path(path) / "tokenizer.json").string();
        if (!fs::exists(file, ec)) {
            throw IoError("no tokenizer.json in folder '" + path + "'",
                          "pass the tokenizer.json file or a model folder holding one");
        }
    }
    return with_context("error loading tokenizer from " + file, [&] {
        const std::string text = read_whole_file(file);
        const fs::path folder = fs::path(file).parent_path();
        return parse_tokenizer_json(text, folder.empty() ? std::string(".") : folder.string());
    });
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
    static const char* const kHint = "pass a tokenizer.json, a GGUF file, or a model folder holding tokenizer.json";
    std::error_code ec;
    if (!fs::exists(path, ec)) throw IoError("cannot open tokenizer '" + path + "': no such file or folder", kHint);
    if (fs::is_directory(path, ec)) {
        if (fs::exists(fs::path(path) / "tokenizer.json", ec)) return load_tokenizer_json(path);
        throw IoError("no tokenizer.json in folder '" + path + "'", kHint);
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw IoError("cannot read tokenizer '" + path + "': " + std::strerror(errno), "check the file's permissions");
    }
    char head[4] = {};
    in.read(head, 4);
    if (in.gcount() == 4 && std::string_view(head, 4) == "GGUF") return load_tokenizer_gguf(path);
    char first = 0;
    in.clear();
    in.seekg(0);
    while (in.get(first) && std::isspace(static_cast<unsigned char>(first))) {
    }
    if (fs::path(path).extension() == ".json" || first == '{') return load_tokenizer_json(path);
    throw FormatError("error loading tokenizer from " + path + ": neither a GGUF file nor a tokenizer.json", kHint);
}

}  // namespace memskew
