// Record readers: turn a file's bytes into flat records of named fields, one at
// a time, without knowing what the fields mean (dataset.cpp maps them).
// Private to src/data.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "memskew/data.h"

namespace memskew::data_detail {

enum class ValueType { kString, kNull, kNumber, kBool, kArray, kObject };
std::string_view value_type_name(ValueType type);

// One turn of a chat array, as read. Type problems are recorded, not thrown,
// so that a reader can always finish the record it is in.
struct RawTurn {
    bool is_object = true;
    std::string_view role_key, content_key;  // "role"/"from", "content"/"value"; empty if absent
    ValueType role_type = ValueType::kNull, content_type = ValueType::kNull;
    std::string_view role, content;  // when strings
    bool bad_utf8 = false;           // role or content held invalid UTF-8
};

struct RawField {
    std::string_view key;
    ValueType type = ValueType::kNull;
    std::string_view text;  // unescaped string, or the raw number / literal text
    bool bad_utf8 = false;
    size_t bad_utf8_offset = 0;  // byte offset in the file of the first invalid byte
    // Chat arrays (only for keys the reader was asked to expand).
    size_t turn_begin = 0, turn_end = 0;
};

struct RawRecord {
    size_t index = 0;  // position of the record in the file (0-based)
    size_t line = 0;   // 1-based line where it starts
    // The record's bytes in the file buffer, [byte_begin, byte_end): a JSONL
    // line or CSV row with its line ending (none at the end of the file), a
    // JSON array element without the separators around it.
    size_t byte_begin = 0, byte_end = 0;
    std::vector<RawField> fields;
    std::vector<RawTurn> turns;
    const RawField* find(std::string_view key) const {
        for (const auto& f : fields)
            if (f.key == key) return &f;
        return nullptr;
    }
    void clear() {
        fields.clear();
        turns.clear();
    }
};

// A record that could not be read (JSON syntax error, CSV field count); the
// reader has already moved past it, so the caller may skip it.
struct RecordSyntaxError {
    size_t index = 0;
    size_t line = 0;
    std::string message;
    size_t byte_begin = 0, byte_end = 0;  // as RawRecord's
};

class RecordReader {
public:
    virtual ~RecordReader() = default;
    // Reads the next record into rec; false at the end. Throws
    // RecordSyntaxError for a skippable bad record and FormatError when the
    // rest of the file cannot be read.
    virtual bool next(RawRecord& rec) = 0;
    // Offset just past the CSV header row (its line ending included); 0 for
    // the JSON kinds. The header starts at FileBuffer::start.
    virtual size_t header_end() const { return 0; }
};

// The file in memory, with simdjson's padding after it. Invalid UTF-8 bytes
// are replaced by '?' (same length, so offsets and lines stay) and their
// offsets kept, so a reader can report the field that held them.
struct FileBuffer {
    std::string path;
    std::unique_ptr<char[]> data;
    size_t size = 0;
    size_t capacity = 0;
    size_t start = 0;                 // after a UTF-8 BOM, if any
    std::vector<size_t> bad_offsets;  // sorted
    std::vector<char> bad_bytes;      // the file's bytes at bad_offsets, before they became '?'

    std::string_view view() const { return {data.get() + start, size - start}; }
    // First invalid byte in [begin, end), or npos.
    size_t first_bad_in(size_t begin, size_t end) const;
};

FileBuffer read_file_buffer(const std::string& path);  // throws IoError

// chat_keys: fields whose arrays hold chat turns and are expanded into
// RawRecord::turns.
std::unique_ptr<RecordReader> make_jsonl_reader(const FileBuffer& buf,
                                                std::vector<std::string> chat_keys);
std::unique_ptr<RecordReader> make_json_array_reader(const FileBuffer& buf,
                                                     std::vector<std::string> chat_keys);
std::unique_ptr<RecordReader> make_csv_reader(const FileBuffer& buf);

// By extension, then content (a ".json" file of JSON Lines is JSONL).
FileKind detect_file_kind(const FileBuffer& buf, FileKind requested);

// What load_dataset does before reading records (defined in dataset.cpp):
// reads the file, refuses a blank one (FormatError) and detects its kind
// under params.file_kind.
FileBuffer read_dataset_buffer(const std::string& path, const DatasetParams& params, FileKind& kind);
// The reader load_dataset uses for a kind (chat keys from params), so every
// caller numbers records as load_dataset does.
std::unique_ptr<RecordReader> make_record_reader(const FileBuffer& buf, FileKind kind, const DatasetParams& params);

}  // namespace memskew::data_detail
