// write_dataset_subset: a dataset file less some records, in its own kind.
// Record boundaries come from the readers load_dataset uses (RawRecord's byte
// span), so numbering and boundaries have one home; this file only decides
// which bytes to copy.
#include "memskew/dataset-subset.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "memskew/error.h"
#include "memskew/file-io.h"
#include "record-reader.h"

namespace memskew {

namespace fs = std::filesystem;

namespace {

std::string lower_extension(const std::string& path) {
    std::string ext = fs::path(path).extension().string();
    for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return ext;
}

// The file kinds an output extension allows when the copy is read back with
// file kind auto; empty = any (other extensions are read by content).
std::vector<FileKind> kinds_for_extension(const std::string& ext) {
    if (ext == ".csv") return {FileKind::kCsv};
    if (ext == ".jsonl" || ext == ".ndjson") return {FileKind::kJsonl};
    if (ext == ".json") return {FileKind::kJson, FileKind::kJsonl};  // a .json file of JSON Lines is JSONL
    return {};
}

std::string_view kind_title(FileKind kind) {
    switch (kind) {
        case FileKind::kJsonl: return "JSON Lines";
        case FileKind::kJson: return "a JSON array";
        case FileKind::kCsv: return "CSV";
        case FileKind::kAuto: break;
    }
    return "?";
}

std::string_view kind_extension(FileKind kind) {
    switch (kind) {
        case FileKind::kJson: return ".json";
        case FileKind::kCsv: return ".csv";
        default: return ".jsonl";
    }
}

bool is_gzip(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    unsigned char magic[2] = {0, 0};
    if (!in.read(reinterpret_cast<char*>(magic), 2)) return false;  // unreadable or short: the reader reports it
    return magic[0] == 0x1f && magic[1] == 0x8b;
}

bool same_file(const std::string& a, const std::string& b) {
    std::error_code ec_a, ec_b;
    const fs::path pa = fs::absolute(a, ec_a).lexically_normal();
    const fs::path pb = fs::absolute(b, ec_b).lexically_normal();
    if (!ec_a && !ec_b && pa == pb) return true;
    // Symbolic and hard links; false (ec set) when either does not exist.
    std::error_code ec;
    return fs::equivalent(a, b, ec) && !ec;
}

struct Span {
    size_t begin = 0, end = 0;
};

}  // namespace

SubsetWriteReport write_dataset_subset(const std::string& input_path, const DatasetParams& params,
                                       const std::unordered_set<size_t>& remove, const std::string& output_path) {
    const std::string what = fmt::format("cannot write a filtered copy of '{}' to '{}'", input_path, output_path);

    if (lower_extension(output_path) == ".gz") {
        throw InvalidInput(what + ": gzip-compressed output is not supported",
                           "datasets are read uncompressed; drop the .gz (compress the copy afterwards if needed)");
    }
    if (same_file(input_path, output_path)) {
        throw InvalidInput(what + ": the output is the input file",
                           "the input is never overwritten; write the copy to another path, e.g. '" +
                               fs::path(input_path).stem().string() + ".filtered" +
                               fs::path(input_path).extension().string() + "'");
    }
    if (is_gzip(input_path)) {
        throw FormatError(what + ": the input is gzip-compressed, and datasets are read uncompressed",
                          "decompress it first (gunzip -k) and filter the decompressed file");
    }

    FileKind kind = FileKind::kAuto;
    const data_detail::FileBuffer buf = data_detail::read_dataset_buffer(input_path, params, kind);

    const std::vector<FileKind> allowed = kinds_for_extension(lower_extension(output_path));
    if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), kind) == allowed.end()) {
        throw InvalidInput(fmt::format("{}: the input is {}, the output's extension '{}' says {}", what,
                                       kind_title(kind), fs::path(output_path).extension().string(),
                                       kind_title(allowed.front())),
                           fmt::format("the copy keeps the input's file kind; name it with a {} extension",
                                       kind_extension(kind)));
    }

    // Every record's bytes, bad ones included, numbered as load_dataset numbers them.
    std::vector<Span> records;
    auto reader = data_detail::make_record_reader(buf, kind, params);
    {
        data_detail::RawRecord rec;
        while (true) {
            try {
                if (!reader->next(rec)) break;
                records.push_back({rec.byte_begin, rec.byte_end});
            } catch (const data_detail::RecordSyntaxError& e) {
                records.push_back({e.byte_begin, e.byte_end});
            }
        }
    }

    SubsetWriteReport report;
    report.file_kind = kind;
    report.n_records = records.size();
    {
        std::vector<size_t> beyond;
        for (size_t i : remove)
            if (i >= records.size()) beyond.push_back(i);
        if (!beyond.empty()) {
            std::sort(beyond.begin(), beyond.end());
            std::string list;
            for (size_t k = 0; k < beyond.size() && k < 5; ++k) list += (k ? ", " : "") + std::to_string(beyond[k]);
            if (beyond.size() > 5) list += ", ...";
            throw InvalidInput(fmt::format("{}: {} record index(es) to remove are not in the input ({}); it holds {} "
                                           "record(s), indexes 0..{}",
                                           what, beyond.size(), list, records.size(),
                                           records.empty() ? std::string("-") : std::to_string(records.size() - 1)),
                               "indexes are Sample::index values from load_dataset of this same file (0-based, "
                               "bad records counted, blank lines not)");
        }
    }
    report.n_removed = remove.size();
    report.n_written = records.size() - remove.size();

    const char* base = buf.data.get();
    write_file_atomic(output_path, [&](const ByteSink& put) {
        // Copies [begin, end) of the file as it is on disk: invalid UTF-8
        // bytes, replaced by '?' in the buffer, are put back.
        auto put_span = [&](size_t begin, size_t end) {
            auto it = std::lower_bound(buf.bad_offsets.begin(), buf.bad_offsets.end(), begin);
            for (; it != buf.bad_offsets.end() && *it < end; ++it) {
                if (*it > begin) put(base + begin, *it - begin);
                put(&buf.bad_bytes[static_cast<size_t>(it - buf.bad_offsets.begin())], 1);
                begin = *it + 1;
            }
            if (end > begin) put(base + begin, end - begin);
        };
        auto kept = [&](size_t i) { return remove.count(i) == 0; };

        if (kind == FileKind::kJson) {
            if (records.empty()) {
                put_span(0, buf.size);  // "[]": nothing to remove
                return;
            }
            put_span(0, records.front().begin);  // BOM, '[' and the whitespace before the first element
            const Span sep = records.size() >= 2 ? Span{records[0].end, records[1].begin} : Span{};
            bool first = true;
            for (size_t i = 0; i < records.size(); ++i) {
                if (!kept(i)) continue;
                if (!first) {
                    if (sep.end > sep.begin) {
                        put_span(sep.begin, sep.end);
                    } else {
                        put(",\n", 2);
                    }
                }
                first = false;
                put_span(records[i].begin, records[i].end);
            }
            put_span(records.back().end, buf.size);  // whitespace, ']' and what follows
            return;
        }
        // JSONL and CSV: the BOM, the CSV header row, then the kept records
        // with their own line endings (blank lines dropped).
        put_span(0, kind == FileKind::kCsv ? reader->header_end() : buf.start);
        for (size_t i = 0; i < records.size(); ++i)
            if (kept(i)) put_span(records[i].begin, records[i].end);
    });
    return report;
}

}  // namespace memskew
