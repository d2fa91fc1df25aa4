// load_dataset: reader -> format detection -> field mapping -> samples ->
// duplicate ids -> limit / subset / shard. Every record-level problem is
// either an error naming file:line and the field, or a counted skip.
#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <chrono>
#include <optional>
#include <random>
#include <unordered_map>

#include <fmt/format.h>

#include "memskew/data.h"
#include "memskew/error.h"
#include "record-reader.h"

namespace memskew {

using data_detail::RawField;
using data_detail::RawRecord;
using data_detail::RawTurn;
using data_detail::RecordSyntaxError;
using data_detail::ValueType;
using data_detail::value_type_name;

std::string_view file_kind_name(FileKind kind) {
    switch (kind) {
        case FileKind::kAuto: return "auto";
        case FileKind::kJsonl: return "jsonl";
        case FileKind::kJson: return "json";
        case FileKind::kCsv: return "csv";
    }
    return "?";
}

FileKind parse_file_kind(std::string_view name) {
    for (FileKind k : {FileKind::kAuto, FileKind::kJsonl, FileKind::kJson, FileKind::kCsv})
        if (name == file_kind_name(k)) return k;
    if (name == "ndjson") return FileKind::kJsonl;
    throw InvalidInput("unknown file kind '" + std::string(name) + "'", "use auto, jsonl, json or csv");
}

std::string_view record_format_name(RecordFormat format) {
    switch (format) {
        case RecordFormat::kAuto: return "auto";
        case RecordFormat::kAlpaca: return "alpaca";
        case RecordFormat::kGpteacher: return "gpteacher";
        case RecordFormat::kPromptCompletion: return "prompt-completion";
        case RecordFormat::kQuestionAnswer: return "question-answer";
        case RecordFormat::kChat: return "chat";
        case RecordFormat::kText: return "text";
    }
    return "?";
}

RecordFormat parse_record_format(std::string_view name) {
    for (RecordFormat f : {RecordFormat::kAuto, RecordFormat::kAlpaca, RecordFormat::kGpteacher,
                           RecordFormat::kPromptCompletion, RecordFormat::kQuestionAnswer, RecordFormat::kChat,
                           RecordFormat::kText})
        if (name == record_format_name(f)) return f;
    if (name == "qa") return RecordFormat::kQuestionAnswer;
    if (name == "messages" || name == "sharegpt") return RecordFormat::kChat;
    throw InvalidInput("unknown record format '" + std::string(name) + "'",
                       "use auto, alpaca, gpteacher, prompt-completion, question-answer (qa), chat "
                       "(messages, sharegpt) or text");
}

std::string content_hash_id(const Sample& s) {
    // Unit/record separators keep ("ab","c") and ("a","bc") apart.
    std::string buf;
    if (s.format == RecordFormat::kText) {
        buf = s.text;
    } else if (s.format == RecordFormat::kChat) {
        for (const auto& t : s.turns) {
            buf += t.role;
            buf += '\x1e';
            buf += t.content;
            buf += '\x1e';
        }
        buf += '\x1f';
        buf += s.reference;
    } else {
        buf += s.system;
        buf += '\x1e';
        buf += s.instruction;
        buf += '\x1e';
        buf += s.input;
        buf += '\x1f';
        buf += s.reference;
    }
    return fmt::format("{:016x}", XXH3_64bits(buf.data(), buf.size()));
}

std::pair<size_t, size_t> parse_shard(std::string_view text) {
    const std::string t(text);
    size_t i = 0, n = 0;
    char slash = 0, extra = 0;
    if (std::sscanf(t.c_str(), "%zu%c%zu%c", &i, &slash, &n, &extra) != 3 || slash != '/' || n == 0 || i >= n ||
        t.find('-') != std::string::npos)
        throw InvalidInput(fmt::format("shard '{}' is not of the form i/n with 0 <= i < n", t),
                           "e.g. --shard 0/4 ... --shard 3/4, then `memskew merge`");
    return {i, n};
}

size_t shard_of(std::string_view id, size_t n_shards) {
    if (n_shards <= 1) return 0;
    return static_cast<size_t>(XXH3_64bits(id.data(), id.size()) % n_shards);
}

namespace {

enum class Problem { kMalformed, kMissingField, kWrongType, kInvalidUtf8, kEmptyReference };

struct RecordError {
    Problem problem;
    std::string message;
};

std::string_view problem_hint(Problem p) {
    switch (p) {
        case Problem::kMalformed:
            return "fix the record, or skip malformed records with skip_bad (--skip-bad)";
        case Problem::kMissingField:
            return "set the record format or map the fields (prompt_field, input_field, response_field, "
                   "messages_field), or skip such records with skip_bad (--skip-bad)";
        case Problem::kWrongType:
            return "the field must be a JSON string; fix the data or skip such records with skip_bad (--skip-bad)";
        case Problem::kInvalidUtf8:
            return "re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8), or skip such records with "
                   "skip_bad (--skip-bad)";
        case Problem::kEmptyReference:
            return "drop these records, or skip them with skip_empty_reference (--skip-empty)";
    }
    return "";
}

bool is_blank(std::string_view s) {
    for (char c : s)
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return false;
    return true;
}

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) {
        if (!out.empty()) out += ", ";
        out += s;
    }
    return out.empty() ? "none" : out;
}

// The field names each role reads, after the explicit mapping flags.
struct FieldMap {
    RecordFormat format = RecordFormat::kAuto;
    std::string prompt;    // instruction / prompt / question / text
    std::string input;     // optional; "" = none
    std::string response;  // output / response / completion / answer
    std::string system;    // optional
    std::string id;
    std::vector<std::string> messages;  // chat: candidates, first present wins
};

std::vector<std::string> chat_keys(const DatasetParams& p) {
    if (!p.messages_field.empty()) return {p.messages_field};
    return {"messages", "conversations"};
}

FieldMap field_map(RecordFormat format, const DatasetParams& p) {
    FieldMap m;
    m.format = format;
    m.id = p.id_field;
    m.system = p.system_field.empty() ? "system" : p.system_field;
    m.messages = chat_keys(p);
    auto pick = [](const std::string& override_name, const char* def) {
        return override_name.empty() ? std::string(def) : override_name;
    };
    switch (format) {
        case RecordFormat::kAlpaca:
            m.prompt = pick(p.prompt_field, "instruction");
            m.input = pick(p.input_field, "input");
            m.response = pick(p.response_field, "output");
            break;
        case RecordFormat::kGpteacher:
            m.prompt = pick(p.prompt_field, "instruction");
            m.input = pick(p.input_field, "input");
            m.response = pick(p.response_field, "response");
            break;
        case RecordFormat::kPromptCompletion:
            m.prompt = pick(p.prompt_field, "prompt");
            m.input = p.input_field;
            m.response = pick(p.response_field, "completion");
            break;
        case RecordFormat::kQuestionAnswer:
            m.prompt = pick(p.prompt_field, "question");
            m.input = p.input_field;
            m.response = pick(p.response_field, "answer");
            break;
        case RecordFormat::kText: m.prompt = pick(p.prompt_field, "text"); break;
        case RecordFormat::kChat:
        case RecordFormat::kAuto: break;
    }
    return m;
}

RecordFormat detect_format(const std::vector<std::string>& keys, const DatasetParams& p, const std::string& path) {
    auto has = [&](const std::string& k) { return std::find(keys.begin(), keys.end(), k) != keys.end(); };
    for (const auto& k : chat_keys(p))
        if (has(k)) return RecordFormat::kChat;
    for (RecordFormat f : {RecordFormat::kAlpaca, RecordFormat::kGpteacher, RecordFormat::kPromptCompletion,
                           RecordFormat::kQuestionAnswer}) {
        const FieldMap m = field_map(f, p);
        if (has(m.prompt) && has(m.response)) return f;
    }
    if (has(field_map(RecordFormat::kText, p).prompt)) return RecordFormat::kText;
    if (!p.prompt_field.empty() && !p.response_field.empty() && has(p.prompt_field) && has(p.response_field))
        return p.input_field.empty() ? RecordFormat::kPromptCompletion : RecordFormat::kAlpaca;
    throw FormatError(path + ": cannot tell the record format from the fields of the first records (" + join(keys) +
                          ")",
                      "expected instruction/input/output (alpaca), instruction/input/response (gpteacher), "
                      "prompt/completion, question/answer, messages or conversations (chat), or text; set the "
                      "format or map the fields with prompt_field and response_field");
}

std::string normalize_role(std::string_view role) {
    std::string r(role);
    for (auto& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (r == "human" || r == "user") return "user";
    if (r == "gpt" || r == "assistant" || r == "bot" || r == "model" || r == "chatgpt") return "assistant";
    return r;
}

class SampleBuilder {
public:
    SampleBuilder(FieldMap map, const DatasetParams& params) : map_(std::move(map)), params_(params) {}

    Sample build(const RawRecord& rec) {
        Sample s;
        s.index = rec.index;
        s.line = rec.line;
        s.format = map_.format;
        if (map_.format == RecordFormat::kChat) {
            build_chat(rec, s);
        } else if (map_.format == RecordFormat::kText) {
            s.text = std::string(get(rec, map_.prompt, true));
            if (is_blank(s.text)) {
                throw RecordError{Problem::kEmptyReference, "field '" + map_.prompt + "' (format text) is empty"};
            }
        } else {
            s.instruction = std::string(get(rec, map_.prompt, true));
            if (!map_.input.empty()) s.input = std::string(get(rec, map_.input, false));
            s.system = std::string(get(rec, map_.system, false));
            s.reference = std::string(get(rec, map_.response, true));
            if (is_blank(s.reference)) {
                throw RecordError{Problem::kEmptyReference, "the reference (field '" + map_.response + "', format " +
                                                                std::string(record_format_name(map_.format)) +
                                                                ") is empty"};
            }
        }
        if (map_.format != RecordFormat::kText) s.prompt = render_prompt(s, params_.prompt_template);

        s.id = get_id(rec);
        s.id_from_field = !s.id.empty();
        if (s.id.empty()) s.id = content_hash_id(s);  // before the end-of-turn marker: ids do not depend on it
        if (params_.prompt_template.reference_end_marker && map_.format != RecordFormat::kText)
            s.reference += end_of_turn_marker(params_.prompt_template.kind);
        return s;
    }

private:
    std::string present_fields(const RawRecord& rec) const {
        std::vector<std::string> keys;
        for (const auto& f : rec.fields) keys.emplace_back(f.key);
        return join(keys);
    }

    std::string format_name() const { return std::string(record_format_name(map_.format)); }

    // The string value of a field; "" for an absent/null optional field.
    std::string_view get(const RawRecord& rec, const std::string& key, bool required) const {
        const RawField* f = rec.find(key);
        if (!f || f->type == ValueType::kNull) {
            if (!required) return {};
            throw RecordError{Problem::kMissingField,
                              std::string(f ? "field '" + key + "' is null; it is" : "missing field '" + key + "'") +
                                  " required by format " + format_name() + " (fields present: " +
                                  present_fields(rec) + ")"};
        }
        if (f->type != ValueType::kString) {
            throw RecordError{Problem::kWrongType, "field '" + key + "': expected a string, found " +
                                                       std::string(value_type_name(f->type))};
        }
        if (f->bad_utf8) {
            throw RecordError{Problem::kInvalidUtf8, "field '" + key + "' holds invalid UTF-8 (byte offset " +
                                                         std::to_string(f->bad_utf8_offset) + " of the file)"};
        }
        return f->text;
    }

    std::string get_id(const RawRecord& rec) const {
        if (map_.id.empty()) return {};
        const RawField* f = rec.find(map_.id);
        if (!f || f->type == ValueType::kNull) return {};
        if (f->type == ValueType::kNumber) return std::string(f->text);
        if (f->type != ValueType::kString) {
            throw RecordError{Problem::kWrongType, "id field '" + map_.id + "': expected a string or a number, found " +
                                                       std::string(value_type_name(f->type))};
        }
        if (f->bad_utf8) {
            throw RecordError{Problem::kInvalidUtf8, "id field '" + map_.id + "' holds invalid UTF-8"};
        }
        return std::string(f->text);
    }

    void build_chat(const RawRecord& rec, Sample& s) const {
        const RawField* mf = nullptr;
        for (const auto& k : map_.messages)
            if ((mf = rec.find(k))) break;
        if (!mf || mf->type == ValueType::kNull) {
            throw RecordError{Problem::kMissingField, "missing field '" + join(map_.messages) +
                                                          "' required by format chat (fields present: " +
                                                          present_fields(rec) + ")"};
        }
        const std::string mk(mf->key);
        if (mf->type != ValueType::kArray) {
            throw RecordError{Problem::kWrongType, "field '" + mk + "': expected an array of turns, found " +
                                                       std::string(value_type_name(mf->type))};
        }
        std::vector<ChatTurn> turns;
        for (size_t i = mf->turn_begin; i < mf->turn_end; ++i) {
            const RawTurn& t = rec.turns[i];
            const std::string where = mk + "[" + std::to_string(i - mf->turn_begin) + "]";
            if (!t.is_object) throw RecordError{Problem::kWrongType, where + ": expected an object with role and content"};
            if (t.role_key.empty())
                throw RecordError{Problem::kMissingField, where + ": no 'role' (or ShareGPT 'from') field"};
            if (t.role_type != ValueType::kString) {
                throw RecordError{Problem::kWrongType, where + "." + std::string(t.role_key) +
                                                           ": expected a string, found " +
                                                           std::string(value_type_name(t.role_type))};
            }
            if (t.content_key.empty())
                throw RecordError{Problem::kMissingField, where + ": no 'content' (or ShareGPT 'value') field"};
            if (t.content_type != ValueType::kString && t.content_type != ValueType::kNull) {
                throw RecordError{Problem::kWrongType, where + "." + std::string(t.content_key) +
                                                           ": expected a string, found " +
                                                           std::string(value_type_name(t.content_type))};
            }
            if (t.bad_utf8) throw RecordError{Problem::kInvalidUtf8, where + " holds invalid UTF-8"};
            turns.push_back({normalize_role(t.role), std::string(t.content)});
        }
        size_t last = turns.size();
        for (size_t i = turns.size(); i-- > 0;) {
            if (turns[i].role == "assistant") {
                last = i;
                break;
            }
        }
        if (last == turns.size()) {
            std::vector<std::string> roles;
            for (const auto& t : turns) roles.push_back(t.role);
            throw RecordError{Problem::kMissingField,
                              "no assistant turn in '" + mk + "' to use as the reference (roles: " + join(roles) + ")"};
        }
        s.reference = std::move(turns[last].content);
        if (is_blank(s.reference)) {
            throw RecordError{Problem::kEmptyReference,
                              "the reference (last assistant turn, " + mk + "[" + std::to_string(last) + "]) is empty"};
        }
        turns.resize(last);  // turns after the last assistant turn are not part of the sample
        for (size_t i = last; i-- > 0;) {
            if (turns[i].role == "user") {
                s.instruction = turns[i].content;
                break;
            }
        }
        if (!turns.empty() && turns[0].role == "system") {
            s.system = turns[0].content;
        } else {
            s.system = std::string(get(rec, map_.system, false));
            // A separate system field becomes the leading turn, so every
            // template and the content hash see it the same way.
            if (!s.system.empty()) turns.insert(turns.begin(), ChatTurn{"system", s.system});
        }
        s.turns = std::move(turns);
    }

    FieldMap map_;
    const DatasetParams& params_;
};

// Uniform integer in [0, n) from mt19937_64 by rejection: the standard
// distributions differ between standard libraries, this does not.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = rng();
    while (x >= limit);
    return x % n;
}

}  // namespace

namespace data_detail {

FileBuffer read_dataset_buffer(const std::string& path, const DatasetParams& params, FileKind& kind) {
    FileBuffer buf = read_file_buffer(path);
    if (is_blank(buf.view())) {
        throw FormatError(path + ": the file is empty (no records)", "pass a file with at least one record");
    }
    kind = detect_file_kind(buf, params.file_kind);
    return buf;
}

std::unique_ptr<RecordReader> make_record_reader(const FileBuffer& buf, FileKind kind, const DatasetParams& params) {
    switch (kind) {
        case FileKind::kJson: return make_json_array_reader(buf, chat_keys(params));
        case FileKind::kCsv: return make_csv_reader(buf);
        default: return make_jsonl_reader(buf, chat_keys(params));
    }
}

}  // namespace data_detail

Dataset load_dataset(const std::string& path, const DatasetParams& params) {
    const auto t0 = std::chrono::steady_clock::now();
    if (params.n_shards == 0 || params.shard_index >= params.n_shards) {
        throw InvalidInput("shard " + std::to_string(params.shard_index) + "/" + std::to_string(params.n_shards) +
                               " does not exist",
                           "n_shards must be at least 1 and shard_index in 0..n_shards-1");
    }
    if (params.prompt_template.kind == TemplateKind::kCustom) parse_template(params.prompt_template.custom);

    Dataset ds;
    LoadReport& rep = ds.report;
    rep.path = path;

    const data_detail::FileBuffer buf = data_detail::read_dataset_buffer(path, params, rep.file_kind);
    rep.n_bytes = buf.size;

    auto make_reader = [&]() { return data_detail::make_record_reader(buf, rep.file_kind, params); };
    // "file:line: ", plus the record number in JSON arrays, where many
    // records often share one line.
    auto where = [&](size_t line, size_t index) {
        std::string w = path + ":" + std::to_string(line);
        if (rep.file_kind == FileKind::kJson) w += " (record " + std::to_string(index + 1) + ")";
        return w + ": ";
    };
    auto syntax_error = [&](const RecordSyntaxError& e) {
        return FormatError(where(e.line, e.index) + e.message,
                           std::string(problem_hint(Problem::kMalformed)));
    };

    // Field names of the first good records decide the format (and are
    // reported either way).
    {
        constexpr size_t kDetectRecords = 16, kDetectAttempts = 1000;
        auto reader = make_reader();
        RawRecord rec;
        size_t n_good = 0;
        std::optional<RecordSyntaxError> first_error;
        for (size_t attempt = 0; attempt < kDetectAttempts && n_good < kDetectRecords; ++attempt) {
            try {
                if (!reader->next(rec)) break;
            } catch (const RecordSyntaxError& e) {
                if (!first_error) first_error = e;
                continue;
            }
            ++n_good;
            for (const auto& f : rec.fields) {
                if (std::find(rep.fields.begin(), rep.fields.end(), f.key) == rep.fields.end())
                    rep.fields.emplace_back(f.key);
            }
        }
        if (n_good == 0 && first_error && !params.skip_bad) throw syntax_error(*first_error);
        if (n_good == 0) {
            throw FormatError(path + ": no usable samples: none of the first records could be read",
                              "check the file kind (JSONL, JSON array, CSV) and its content");
        }
    }
    rep.format = params.format == RecordFormat::kAuto ? detect_format(rep.fields, params, path) : params.format;

    SampleBuilder builder(field_map(rep.format, params), params);
    auto handle = [&](Problem p, size_t line, size_t index, const std::string& message) {
        const bool skip = p == Problem::kEmptyReference ? params.skip_empty_reference : params.skip_bad;
        const std::string at = where(line, index);
        if (!skip) throw FormatError(at + message, std::string(problem_hint(p)));
        switch (p) {
            case Problem::kMalformed: ++rep.n_malformed; break;
            case Problem::kMissingField: ++rep.n_missing_field; break;
            case Problem::kWrongType: ++rep.n_wrong_type; break;
            case Problem::kInvalidUtf8: ++rep.n_invalid_utf8; break;
            case Problem::kEmptyReference: ++rep.n_empty_reference; break;
        }
        if (rep.skip_reasons.size() < LoadReport::kMaxSkipReasons) rep.skip_reasons.push_back(at + message);
    };

    auto reader = make_reader();
    RawRecord rec;
    std::vector<Sample>& samples = ds.samples;
    while (params.limit == 0 || samples.size() < params.limit) {
        try {
            if (!reader->next(rec)) break;
        } catch (const RecordSyntaxError& e) {
            ++rep.n_records;
            handle(Problem::kMalformed, e.line, e.index, e.message);
            continue;
        }
        ++rep.n_records;
        try {
            samples.push_back(builder.build(rec));
        } catch (const RecordError& e) {
            handle(e.problem, rec.line, rec.index, e.message);
        }
    }
    if (samples.empty()) {
        throw FormatError(fmt::format("{}: no usable samples: {} record(s), all skipped ({} malformed, {} with "
                                      "missing fields, {} of the wrong type, {} with invalid UTF-8, {} with an "
                                      "empty reference); first: {}",
                                      path, rep.n_records, rep.n_malformed, rep.n_missing_field, rep.n_wrong_type,
                                      rep.n_invalid_utf8, rep.n_empty_reference,
                                      rep.skip_reasons.empty() ? "-" : rep.skip_reasons.front()),
                          "fix the records, or check the format and field mapping");
    }

    // Duplicate ids.
    {
        // Views into the samples' ids: the vector is not resized in this block.
        std::unordered_map<std::string_view, size_t> seen;
        seen.reserve(samples.size() * 2);
        std::vector<std::string> collisions;
        size_t n_collisions = 0;
        for (size_t i = 0; i < samples.size(); ++i) {
            auto [it, inserted] = seen.emplace(samples[i].id, i);
            if (inserted) continue;
            if (params.dedupe_ids) {
                std::string id;
                for (size_t k = 2;; ++k) {
                    id = samples[i].id + "#" + std::to_string(k);
                    if (!seen.count(std::string_view(id))) break;
                }
                samples[i].id = std::move(id);
                seen.emplace(samples[i].id, i);
                ++rep.n_renamed_ids;
                continue;
            }
            ++n_collisions;
            if (collisions.size() < 5) {
                const Sample& first = samples[it->second];
                if (rep.file_kind == FileKind::kJson) {
                    collisions.push_back(fmt::format("'{}' at records {} and {} (lines {} and {})", samples[i].id,
                                                     first.index + 1, samples[i].index + 1, first.line,
                                                     samples[i].line));
                } else {
                    collisions.push_back(
                        fmt::format("'{}' at lines {} and {}", samples[i].id, first.line, samples[i].line));
                }
            }
        }
        if (n_collisions > 0) {
            std::string list;
            for (const auto& c : collisions) list += (list.empty() ? "" : "; ") + c;
            const bool hashed = !samples.front().id_from_field;
            throw FormatError(fmt::format("{}: {} duplicate sample id(s): {}{}", path, n_collisions, list,
                                          n_collisions > collisions.size() ? "; ..." : ""),
                              hashed ? "identical records (same content hash); remove the duplicates, or "
                                       "disambiguate them with dedupe_ids (--dedupe-ids)"
                                     : "ids must be unique; choose another id_field (--id-field), or "
                                       "disambiguate them with dedupe_ids (--dedupe-ids)");
        }
    }
    rep.n_usable = samples.size();

    // Random subset: partial Fisher-Yates over indices, then back to file order.
    if (params.subset > 0 && params.subset < samples.size()) {
        std::vector<size_t> idx(samples.size());
        for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
        std::mt19937_64 rng(params.seed);
        for (size_t i = 0; i < params.subset; ++i) {
            const size_t j = i + static_cast<size_t>(uniform_below(rng, idx.size() - i));
            std::swap(idx[i], idx[j]);
        }
        idx.resize(params.subset);
        std::sort(idx.begin(), idx.end());
        std::vector<Sample> picked;
        picked.reserve(idx.size());
        for (size_t i : idx) picked.push_back(std::move(samples[i]));
        rep.n_not_in_subset = samples.size() - picked.size();
        samples = std::move(picked);
    }

    if (params.n_shards > 1) {
        const size_t before = samples.size();
        samples.erase(std::remove_if(samples.begin(), samples.end(),
                                     [&](const Sample& s) { return shard_of(s.id, params.n_shards) != params.shard_index; }),
                      samples.end());
        rep.n_other_shards = before - samples.size();
    }

    rep.n_samples = samples.size();
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return ds;
}

std::optional<TextSplit> split_text_tokens(const std::vector<int32_t>& ids, const TextSplitParams& p,
                                           TextSplitCounts* counts) {
    if (p.n_prompt == 0 || p.n_reference == 0) {
        throw InvalidInput("text split: n_prompt and n_reference must be positive (got " + std::to_string(p.n_prompt) +
                               "/" + std::to_string(p.n_reference) + ")",
                           "the usual protocols are 32/32 and 50/50");
    }
    const size_t n = ids.size();
    size_t n_ref = p.n_reference;
    bool truncated = false;
    if (n < p.n_prompt + p.n_reference) {
        const size_t min_ref = std::max<size_t>(p.min_reference, 1);
        if (p.short_policy == ShortTextPolicy::kSkip || n < p.n_prompt + min_ref) {
            if (counts) ++counts->n_skipped;
            return std::nullopt;
        }
        n_ref = n - p.n_prompt;
        truncated = true;
    }
    TextSplit split;
    split.prompt.assign(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(p.n_prompt));
    split.reference.assign(ids.begin() + static_cast<std::ptrdiff_t>(p.n_prompt),
                           ids.begin() + static_cast<std::ptrdiff_t>(p.n_prompt + n_ref));
    split.truncated = truncated;
    if (counts) ++(truncated ? counts->n_truncated : counts->n_full);
    return split;
}

}  // namespace memskew
