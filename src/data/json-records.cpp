// File buffers, file-kind detection and the JSON readers (JSON Lines and JSON
// arrays), on simdjson's On Demand API: values are read straight from the
// file buffer and only the fields a record has are unescaped.
#include <simdjson.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "memskew/error.h"
#include "record-reader.h"

namespace memskew::data_detail {

namespace od = simdjson::ondemand;

std::string_view value_type_name(ValueType type) {
    switch (type) {
        case ValueType::kString: return "string";
        case ValueType::kNull: return "null";
        case ValueType::kNumber: return "number";
        case ValueType::kBool: return "boolean";
        case ValueType::kArray: return "array";
        case ValueType::kObject: return "object";
    }
    return "?";
}

size_t FileBuffer::first_bad_in(size_t begin, size_t end) const {
    auto it = std::lower_bound(bad_offsets.begin(), bad_offsets.end(), begin);
    if (it != bad_offsets.end() && *it < end) return *it;
    return std::string::npos;
}

namespace {

// Offsets of the bytes that are not part of a valid UTF-8 sequence (overlongs,
// surrogates and code points above U+10FFFF included). Only run when simdjson's
// fast validator has already said the file is invalid.
std::vector<size_t> find_invalid_utf8(const unsigned char* s, size_t n) {
    std::vector<size_t> bad;
    size_t i = 0;
    while (i < n) {
        const unsigned char c = s[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t len = 0;
        unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        }
        bool ok = len > 0 && i + len <= n && s[i + 1] >= lo && s[i + 1] <= hi;
        for (size_t k = 2; ok && k < len; ++k) ok = (s[i + k] & 0xC0) == 0x80;
        if (ok) {
            i += len;
        } else {
            bad.push_back(i);
            ++i;
        }
    }
    return bad;
}

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_ws(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_ws(s.back())) s.remove_suffix(1);
    return s;
}

ValueType to_value_type(od::json_type t) {
    switch (t) {
        case od::json_type::array: return ValueType::kArray;
        case od::json_type::object: return ValueType::kObject;
        case od::json_type::number: return ValueType::kNumber;
        case od::json_type::string: return ValueType::kString;
        case od::json_type::boolean: return ValueType::kBool;
        case od::json_type::null: return ValueType::kNull;
    }
    return ValueType::kNull;
}

// Reads one object's fields into rec. Throws simdjson_error on syntax errors.
class ObjectReader {
public:
    ObjectReader(const FileBuffer& buf, std::vector<std::string> chat_keys)
        : buf_(buf), chat_keys_(std::move(chat_keys)) {}

    template <typename Obj>
    void read(Obj&& obj, RawRecord& rec) {
        for (auto field_result : obj) {
            od::field field = std::move(field_result);
            RawField f;
            f.key = field.unescaped_key();
            od::value v = field.value();
            f.type = to_value_type(v.type());
            switch (f.type) {
                case ValueType::kString: read_string(v, f.text, f.bad_utf8, f.bad_utf8_offset); break;
                case ValueType::kNumber:
                case ValueType::kBool: f.text = trim(v.raw_json_token()); break;
                case ValueType::kArray:
                    if (is_chat_key(f.key)) {
                        f.turn_begin = rec.turns.size();
                        read_turns(v.get_array(), rec);
                        f.turn_end = rec.turns.size();
                    }
                    break;
                default: break;  // null, objects: nothing to keep (skipped by On Demand)
            }
            rec.fields.push_back(f);
        }
    }

private:
    bool is_chat_key(std::string_view key) const {
        for (const auto& k : chat_keys_)
            if (k == key) return true;
        return false;
    }

    void read_string(od::value& v, std::string_view& out, bool& bad, size_t& bad_offset) {
        if (!buf_.bad_offsets.empty()) {
            const std::string_view raw = v.raw_json_token();
            const size_t begin = static_cast<size_t>(raw.data() - buf_.data.get());
            const size_t off = buf_.first_bad_in(begin, begin + raw.size());
            if (off != std::string::npos) {
                bad = true;
                bad_offset = off;
            }
        }
        out = v.get_string();
    }

    void read_turns(od::array arr, RawRecord& rec) {
        for (auto elem_result : arr) {
            od::value elem = std::move(elem_result);
            RawTurn turn;
            if (elem.type() != od::json_type::object) {
                turn.is_object = false;
                rec.turns.push_back(turn);
                continue;
            }
            od::object obj = elem.get_object();
            for (auto tf_result : obj) {
                od::field tf = std::move(tf_result);
                const std::string_view key = tf.unescaped_key();
                const bool is_role = key == "role" || key == "from";
                const bool is_content = key == "content" || key == "value";
                if (!is_role && !is_content) continue;
                if ((is_role && !turn.role_key.empty()) || (is_content && !turn.content_key.empty()))
                    continue;  // first of role/from (content/value) wins
                od::value tv = tf.value();
                const ValueType type = to_value_type(tv.type());
                std::string_view text;
                bool bad = false;
                size_t bad_offset = 0;
                if (type == ValueType::kString) read_string(tv, text, bad, bad_offset);
                turn.bad_utf8 = turn.bad_utf8 || bad;
                if (is_role) {
                    turn.role_key = key;
                    turn.role_type = type;
                    turn.role = text;
                } else {
                    turn.content_key = key;
                    turn.content_type = type;
                    turn.content = text;
                }
            }
            rec.turns.push_back(turn);
        }
    }

    const FileBuffer& buf_;
    std::vector<std::string> chat_keys_;
};

std::string json_error_text(const simdjson::simdjson_error& e) {
    return std::string("invalid JSON (") + simdjson::error_message(e.error()) + ")";
}

// --- JSON Lines ------------------------------------------------------------

class JsonlReader final : public RecordReader {
public:
    JsonlReader(const FileBuffer& buf, std::vector<std::string> chat_keys)
        : buf_(buf), objects_(buf, std::move(chat_keys)), pos_(buf.start) {}

    bool next(RawRecord& rec) override {
        const char* base = buf_.data.get();
        while (pos_ < buf_.size) {
            const char* nl = static_cast<const char*>(std::memchr(base + pos_, '\n', buf_.size - pos_));
            const size_t end = nl ? static_cast<size_t>(nl - base) : buf_.size;
            const size_t begin = pos_;
            const size_t line = ++line_;
            pos_ = nl ? end + 1 : buf_.size;
            const std::string_view text(base + begin, end - begin);
            if (trim(text).empty()) continue;  // blank lines are not records

            rec.clear();
            rec.index = index_++;
            rec.line = line;
            rec.byte_begin = begin;
            rec.byte_end = pos_;
            auto syntax_error = [&](std::string message) {
                return RecordSyntaxError{rec.index, line, std::move(message), begin, pos_};
            };
            try {
                // The rest of the file plus padding stays allocated after the
                // line, which is all On Demand needs to read it in place.
                od::document doc = parser_.iterate(base + begin, end - begin, buf_.capacity - begin);
                const od::json_type type = doc.type();
                if (type != od::json_type::object) {
                    throw syntax_error("expected a JSON object, found " +
                                       std::string(value_type_name(to_value_type(type))));
                }
                objects_.read(doc.get_object(), rec);
                // Trailing content after the object ("{...} x").
                auto loc = doc.current_location();
                if (!loc.error()) {
                    throw syntax_error("invalid JSON (unexpected content after the object)");
                }
            } catch (const simdjson::simdjson_error& e) {
                throw syntax_error(json_error_text(e));
            }
            return true;
        }
        return false;
    }

private:
    const FileBuffer& buf_;
    ObjectReader objects_;
    od::parser parser_;
    size_t pos_;
    size_t line_ = 0;
    size_t index_ = 0;
};

// --- JSON array --------------------------------------------------------------

// Reads the whole array up front (records hold views into the file and the
// parser's string buffer, a few dozen bytes each). A syntax error ends the
// array: it is raised, as a FormatError, when the reader gets to it.
class JsonArrayReader final : public RecordReader {
public:
    JsonArrayReader(const FileBuffer& buf, std::vector<std::string> chat_keys)
        : buf_(buf), objects_(buf, std::move(chat_keys)) {
        const char* base = buf.data.get();
        const char* counted = base + buf.start;  // newlines counted up to here
        size_t line = 1;
        const char* end = base + buf.size;
        bool started = false;  // doc_ is only safe to query once iterate() succeeded
        auto line_at = [&](const char* p) {
            p = std::min(p, end);
            if (p > counted) {
                line += static_cast<size_t>(std::count(counted, p, '\n'));
                counted = p;
            }
            return line;
        };
        try {
            doc_ = parser_.iterate(base + buf.start, buf.size - buf.start, buf.capacity - buf.start);
            started = true;
            const od::json_type type = doc_.type();
            if (type != od::json_type::array) {
                error_ = buf.path + ":1: expected a JSON array of records, found " +
                         std::string(value_type_name(to_value_type(type)));
                return;
            }
            for (auto elem_result : doc_.get_array()) {
                od::value elem = std::move(elem_result);
                RawRecord rec;
                rec.index = records_.size();
                const char* elem_begin = elem.raw_json_token().data();
                rec.line = line_at(elem_begin);
                rec.byte_begin = static_cast<size_t>(elem_begin - base);
                const od::json_type et = elem.type();
                if (et == od::json_type::object) {
                    objects_.read(elem.get_object(), rec);
                } else {
                    // Not fatal: the element is skipped by the iterator; the
                    // record reports it (no fields, type recorded).
                    RawField f;
                    f.key = kNotObject;
                    f.type = to_value_type(et);
                    rec.fields.push_back(f);
                }
                records_.push_back(std::move(rec));
            }
            auto loc = doc_.current_location();
            if (!loc.error()) {
                error_ = buf.path + ":" + std::to_string(line_at(loc.value())) +
                         ": invalid JSON (unexpected content after the array)";
            } else {
                set_element_ends(buf);
            }
        } catch (const simdjson::simdjson_error& e) {
            // Where the parser stopped, if it can say.
            size_t err_line = line;
            if (started) {
                auto loc = doc_.current_location();
                if (!loc.error() && loc.value() >= base) err_line = line_at(loc.value());
            }
            error_ = buf.path + ":" + std::to_string(err_line) + ": " + json_error_text(e) +
                     " in the record array (record " + std::to_string(records_.size() + 1) + ")";
        }
    }

    bool next(RawRecord& rec) override {
        if (next_ < records_.size()) {
            rec = std::move(records_[next_++]);
            if (rec.fields.size() == 1 && rec.fields[0].key == kNotObject) {
                const auto type = rec.fields[0].type;
                throw RecordSyntaxError{rec.index, rec.line,
                                        "expected a JSON object, found " + std::string(value_type_name(type)),
                                        rec.byte_begin, rec.byte_end};
            }
            return true;
        }
        if (!error_.empty()) {
            throw FormatError(error_,
                              "a syntax error inside a JSON array cannot be skipped; fix the file "
                              "(e.g. check it with `python -m json.tool`) or convert it to JSON Lines");
        }
        return false;
    }

private:
    // An element ends where the separator before the next one (whitespace, ',',
    // whitespace) or, for the last, the array's closing ']' begins: JSON values
    // never end in whitespace or ','. Only called for a well-formed array.
    void set_element_ends(const FileBuffer& buf) {
        const char* base = buf.data.get();
        auto skip_back_ws = [&](size_t p) {
            while (p > buf.start && is_ws(base[p - 1])) --p;
            return p;
        };
        for (size_t i = 0; i < records_.size(); ++i) {
            size_t p;
            if (i + 1 < records_.size()) {
                p = skip_back_ws(records_[i + 1].byte_begin);
                if (p > buf.start && base[p - 1] == ',') --p;
            } else {
                p = skip_back_ws(buf.size);
                if (p > buf.start && base[p - 1] == ']') --p;
            }
            records_[i].byte_end = std::max(skip_back_ws(p), records_[i].byte_begin);
        }
    }

    static constexpr std::string_view kNotObject = "\x01not-an-object";
    const FileBuffer& buf_;
    ObjectReader objects_;
    od::parser parser_;
    od::document doc_;
    std::vector<RawRecord> records_;
    size_t next_ = 0;
    std::string error_;
};

std::string lower_extension(const std::string& path) {
    std::string ext = std::filesystem::path(path).extension().string();
    for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return ext;
}

}  // namespace

FileBuffer read_file_buffer(const std::string& path) {
    FileBuffer buf;
    buf.path = path;
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
        throw IoError("cannot read '" + path + "': it is a directory",
                      "pass a .jsonl, .json or .csv file");
    }
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) {
        throw IoError("cannot open '" + path + "': " + std::strerror(errno),
                      "check the path and the file's permissions");
    }
    // One read into the padded buffer: no intermediate copies of large files.
    long end = -1;
    if (std::fseek(f, 0, SEEK_END) == 0) {
        end = std::ftell(f);
        std::rewind(f);
    } else {
        std::clearerr(f);  // not seekable (a pipe): read it in chunks below
    }
    size_t size = end > 0 ? static_cast<size_t>(end) : 0;
    buf.data.reset(new char[size + simdjson::SIMDJSON_PADDING]);
    size_t n_read = size > 0 ? std::fread(buf.data.get(), 1, size, f) : 0;
    // Files that grow while read, or report no size (pipes): read the rest in chunks.
    std::string rest;
    while (!std::ferror(f) && !std::feof(f)) {
        char chunk[1 << 16];
        const size_t n = std::fread(chunk, 1, sizeof chunk, f);
        if (n == 0) break;
        rest.append(chunk, n);
    }
    if (!rest.empty()) {
        std::unique_ptr<char[]> bigger(new char[n_read + rest.size() + simdjson::SIMDJSON_PADDING]);
        std::memcpy(bigger.get(), buf.data.get(), n_read);
        std::memcpy(bigger.get() + n_read, rest.data(), rest.size());
        buf.data = std::move(bigger);
        n_read += rest.size();
    }
    const bool failed = std::ferror(f) != 0;
    const int err = errno;
    std::fclose(f);
    if (failed) throw IoError("cannot read '" + path + "': " + std::strerror(err));

    buf.size = n_read;
    buf.capacity = buf.size + simdjson::SIMDJSON_PADDING;
    std::memset(buf.data.get() + buf.size, 0, simdjson::SIMDJSON_PADDING);
    if (buf.size >= 3 && std::memcmp(buf.data.get(), "\xEF\xBB\xBF", 3) == 0) buf.start = 3;

    if (!simdjson::validate_utf8(buf.data.get(), buf.size)) {
        buf.bad_offsets = find_invalid_utf8(reinterpret_cast<const unsigned char*>(buf.data.get()), buf.size);
        // Same length, so offsets and line numbers stay; the readers use the
        // offsets to name the field that held the bad bytes.
        buf.bad_bytes.reserve(buf.bad_offsets.size());
        for (size_t off : buf.bad_offsets) {
            buf.bad_bytes.push_back(buf.data[off]);
            buf.data[off] = '?';
        }
    }
    return buf;
}

FileKind detect_file_kind(const FileBuffer& buf, FileKind requested) {
    if (requested != FileKind::kAuto) return requested;
    const std::string ext = lower_extension(buf.path);
    if (ext == ".csv") return FileKind::kCsv;

    const std::string_view text = buf.view();
    size_t i = 0;
    while (i < text.size() && is_ws(text[i])) ++i;
    const char first = i < text.size() ? text[i] : '\0';
    // Content decides between the JSON kinds: an array is a JSON file whatever
    // its name, objects one per line are JSONL even in a ".json" file.
    if (first == '[') return FileKind::kJson;
    if (first == '{') {
        if (ext == ".jsonl" || ext == ".ndjson") return FileKind::kJsonl;
        const size_t nl = text.find('\n', i);
        const std::string_view first_line =
            text.substr(i, nl == std::string_view::npos ? std::string_view::npos : nl - i);
        simdjson::dom::parser parser;
        simdjson::dom::element element;
        if (!parser.parse(first_line.data(), first_line.size(), true).get(element) && element.is_object())
            return FileKind::kJsonl;
        throw FormatError(buf.path + ": the file holds a single JSON object spanning several lines",
                          "expected a JSON array of records or JSON Lines (one object per line)");
    }
    if (ext == ".json" || ext == ".jsonl" || ext == ".ndjson") {
        size_t line = 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + i, '\n'));
        throw FormatError(buf.path + ":" + std::to_string(line) + ": expected '[' or '{' to start the JSON, found '" +
                              std::string(1, first) + "'",
                          "the file is not JSON; for CSV use a .csv name or set the file kind");
    }
    return FileKind::kCsv;  // unknown extension, not JSON: a table
}

std::unique_ptr<RecordReader> make_jsonl_reader(const FileBuffer& buf, std::vector<std::string> chat_keys) {
    return std::make_unique<JsonlReader>(buf, std::move(chat_keys));
}

std::unique_ptr<RecordReader> make_json_array_reader(const FileBuffer& buf,
                                                     std::vector<std::string> chat_keys) {
    return std::make_unique<JsonArrayReader>(buf, std::move(chat_keys));
}

}  // namespace memskew::data_detail
