// Files as bytes (the format layer): whole small files in and out, atomic
// replacement, content hashes. Every layer that reads or writes a file by
// itself uses these instead of its own stream loop.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace memskew {

// The whole file. IoError naming the path (and "is a directory").
std::string read_text_file(const std::string& path);
// Writes `path` atomically: fill(put) streams the content, put(data, n) at a
// time, into `path.tmp-<pid>`, which is fsynced and renamed into place, so
// readers (and a crash) see the old file or the new one, never a part.
// IoError naming the path; on any failure, also one thrown by fill, the
// temporary file is removed and the target left as it was.
using ByteSink = std::function<void(const void* data, size_t n)>;
void write_file_atomic(const std::string& path, const std::function<void(const ByteSink& put)>& fill);
// write_file_atomic() of one string.
void write_text_file_atomic(const std::string& path, const std::string& text);
// XXH3-64 of the files' bytes in order (streamed, 1 MiB at a time), a NUL
// byte between consecutive files; 16 hex digits. IoError naming an
// unreadable file.
std::string file_content_hash(const std::vector<std::string>& paths);
inline std::string file_content_hash(const std::string& path) { return file_content_hash(std::vector<std::string>{path}); }

}  // namespace memskew
