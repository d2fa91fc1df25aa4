// Files as bytes (the format layer): whole small files in and out, atomic
// replacement, content hashes. Every layer that reads or writes a file by
// itself uses these instead of its own stream loop.
#pragma once

#include <string>
#include <vector>

namespace memskew {

// The whole file. IoError naming the path (and "is a directory").
std::string read_text_file(const std::string& path);
// Writes to `path.tmp-<pid>`, fsyncs and renames into place: readers see the
// old file or the new one, never a part. IoError naming the path; the
// temporary file is removed on failure.
void write_text_file_atomic(const std::string& path, const std::string& text);
// XXH3-64 of the files' bytes in order (streamed, 1 MiB at a time), a NUL
// byte between consecutive files; 16 hex digits. IoError naming an
// unreadable file.
std::string file_content_hash(const std::vector<std::string>& paths);
inline std::string file_content_hash(const std::string& path) { return file_content_hash(std::vector<std::string>{path}); }

}  // namespace memskew
