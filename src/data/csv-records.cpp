// CSV reader (RFC 4180): a header row names the fields; fields separated by
// ',', records by LF or CRLF; quoted fields may hold commas, newlines and ""
// for a quote. Debian's C++-usable CSV packages were considered:
// libfccp-dev (fast-cpp-csv-parser) fixes the column count at compile time
// (io::CSVReader<N>) and, per its documentation, does not take line breaks
// inside quoted fields; libcsv-dev is a C callback API that would also need a
// CMake change. A small reader over the in-memory buffer was simpler. A stray
// quote inside an unquoted field is kept literally, as Python's csv module
// does.
#include <cstring>
#include <deque>

#include "memskew/error.h"
#include "record-reader.h"

namespace memskew::data_detail {

namespace {

class CsvReader final : public RecordReader {
public:
    explicit CsvReader(const FileBuffer& buf) : buf_(buf), pos_(buf.start) {
        size_t header_line = 0;
        if (!read_row(header_, header_line)) {
            throw FormatError(buf.path + ": the CSV file has no header row",
                              "the first row must name the fields, e.g. instruction,input,output");
        }
        header_end_ = pos_;
        header_names_.reserve(header_.size());
        for (auto& h : header_) header_names_.push_back(std::string(h.text));
        for (size_t i = 0; i < header_names_.size(); ++i) {
            if (header_names_[i].empty()) {
                throw FormatError(buf.path + ":" + std::to_string(header_line) + ": column " +
                                      std::to_string(i + 1) + " of the header row has no name",
                                  "every column needs a field name");
            }
        }
    }

    bool next(RawRecord& rec) override {
        std::vector<Cell> row;
        size_t line = 0;
        while (true) {
            if (!read_row(row, line)) return false;
            // A row that is one empty unquoted field is a blank line.
            if (row.size() == 1 && row[0].text.empty() && !row[0].quoted) continue;
            break;
        }
        rec.clear();
        rec.index = index_++;
        rec.line = line;
        rec.byte_begin = row_begin_;
        rec.byte_end = pos_;
        if (row.size() != header_names_.size()) {
            throw RecordSyntaxError{rec.index, line,
                                    "expected " + std::to_string(header_names_.size()) +
                                        " fields (as in the header row), found " + std::to_string(row.size()),
                                    rec.byte_begin, rec.byte_end};
        }
        for (size_t i = 0; i < row.size(); ++i) {
            RawField f;
            f.key = header_names_[i];
            f.type = ValueType::kString;
            f.text = row[i].text;
            if (row[i].bad_utf8 != std::string::npos) {
                f.bad_utf8 = true;
                f.bad_utf8_offset = row[i].bad_utf8;
            }
            rec.fields.push_back(f);
        }
        return true;
    }

    size_t header_end() const override { return header_end_; }

private:
    struct Cell {
        std::string_view text;
        bool quoted = false;
        size_t bad_utf8 = std::string::npos;
    };

    // Reads one row (which may span lines inside quotes). False at the end.
    bool read_row(std::vector<Cell>& row, size_t& start_line) {
        row.clear();
        storage_.clear();
        const char* s = buf_.data.get();
        const size_t n = buf_.size;
        if (pos_ >= n) return false;
        start_line = line_;
        row_begin_ = pos_;
        while (true) {
            Cell cell;
            const size_t cell_begin = pos_;
            if (pos_ < n && s[pos_] == '"') {
                cell.quoted = true;
                const size_t quote_line = line_;
                ++pos_;
                std::string value;
                bool closed = false;
                while (pos_ < n) {
                    const char c = s[pos_];
                    if (c == '"') {
                        if (pos_ + 1 < n && s[pos_ + 1] == '"') {
                            value.push_back('"');
                            pos_ += 2;
                            continue;
                        }
                        ++pos_;
                        closed = true;
                        break;
                    }
                    if (c == '\n') ++line_;
                    value.push_back(c);
                    ++pos_;
                }
                if (!closed) {
                    throw FormatError(buf_.path + ":" + std::to_string(quote_line) +
                                          ": quoted field is never closed (no matching '\"' before the end of the file)",
                                      "a quote inside a quoted field must be doubled (\"\")");
                }
                if (pos_ < n && s[pos_] != ',' && s[pos_] != '\n' && s[pos_] != '\r') {
                    throw FormatError(buf_.path + ":" + std::to_string(line_) + ": unexpected '" +
                                          std::string(1, s[pos_]) + "' after a closing quote",
                                      "a field is either fully quoted or not quoted; double quotes inside "
                                      "quoted fields (\"\")");
                }
                storage_.push_back(std::move(value));
                cell.text = storage_.back();
            } else {
                size_t end = pos_;
                while (end < n && s[end] != ',' && s[end] != '\n' && s[end] != '\r') ++end;
                cell.text = std::string_view(s + pos_, end - pos_);
                pos_ = end;
            }
            cell.bad_utf8 = buf_.first_bad_in(cell_begin, pos_);
            row.push_back(cell);
            if (pos_ >= n) return true;
            const char sep = s[pos_];
            if (sep == ',') {
                ++pos_;
                continue;
            }
            // End of record: LF, CRLF or a lone CR.
            if (sep == '\r') ++pos_;
            if (pos_ < n && s[pos_] == '\n') ++pos_;
            ++line_;
            return true;
        }
    }

    const FileBuffer& buf_;
    size_t pos_;
    size_t row_begin_ = 0;   // where the row read last starts
    size_t header_end_ = 0;  // just past the header row's line ending
    size_t line_ = 1;
    size_t index_ = 0;
    std::vector<Cell> header_;
    std::vector<std::string> header_names_;
    // Unescaped quoted fields of the current row; a deque keeps views valid.
    std::deque<std::string> storage_;
};

}  // namespace

std::unique_ptr<RecordReader> make_csv_reader(const FileBuffer& buf) { return std::make_unique<CsvReader>(buf); }

}  // namespace memskew::data_detail
