// Filtered copies of a dataset file: every record but the removed ones, in the
// input's own file kind, so the copy trains (and loads) like the original.
//
// Records are found by the readers load_dataset uses and numbered as it
// numbers them (Sample::index: 0-based, bad records counted, blank lines not).
// What is kept is copied byte for byte:
//   JSONL  each kept record's line with its own line ending (LF or CRLF).
//          Blank lines are dropped: they are not records, and the ones around
//          a removed record belong to neither neighbour.
//   JSON   the array's opening bytes (up to the first element) and closing
//          bytes (after the last), each kept element's bytes verbatim (key
//          order, values, escapes and inner indentation as written), joined by
//          the separator between the input's first two elements (",\n  " in
//          a pretty-printed file, "," in a compact one). Only the whitespace
//          between elements can change.
//   CSV    the header row, then each kept row's bytes with its line ending
//          (quoted fields with embedded newlines included). Blank rows are
//          dropped, as for JSONL.
// A UTF-8 byte order mark at the start of the input is kept. Records that
// load_dataset would skip as bad (malformed JSON, wrong CSV field count,
// missing fields, ...) are copied unless removed: the filter removes only what
// it names. A malformed JSON array or an unterminated CSV quote is fatal here
// as in load_dataset (FormatError): the records after it cannot be located.
//
// gzip: load_dataset reads files uncompressed only, so a gzip-compressed input
// (by its magic bytes) is refused with a FormatError, and an output named
// ".gz" with an InvalidInput.
#pragma once

#include <cstddef>
#include <string>
#include <unordered_set>

#include "memskew/data.h"

namespace memskew {

struct SubsetWriteReport {
    size_t n_records = 0;  // records in the input (same count and numbering as LoadReport::n_records / Sample::index)
    size_t n_written = 0;
    size_t n_removed = 0;  // records whose index was in `remove`
    FileKind file_kind = FileKind::kAuto;  // the input's kind as detected, which the output has too
};

// Writes every record of the dataset file `input_path` except those whose
// record index (Sample::index, as load_dataset numbers them under the same
// params) is in `remove`, to `output_path`, in the input's file kind (see
// above). Of params only file_kind and messages_field matter (the kind and how
// records are read); limit, subset and shard do not apply: indexes are
// positions in the whole file.
//
// Written atomically (write_file_atomic: temp file + rename); nothing is
// written when any check fails. Throws
//   InvalidInput  output_path is the input (same path, or the same file through
//                 a symbolic or hard link), its extension implies another file
//                 kind than the input's (.jsonl/.ndjson: JSONL; .json: a JSON
//                 array or JSONL, as load_dataset reads it; .csv: CSV; other
//                 extensions are read by content and accepted), it ends in
//                 ".gz", or an index in `remove` is not a record of the input
//                 (>= n_records); each names the paths involved, with a hint;
//   IoError       the input cannot be read, the output cannot be written;
//   FormatError   the input is empty, gzip-compressed, or cannot be split into
//                 records (as load_dataset would fail on it).
SubsetWriteReport write_dataset_subset(const std::string& input_path, const DatasetParams& params,
                                       const std::unordered_set<size_t>& remove, const std::string& output_path);

}  // namespace memskew
