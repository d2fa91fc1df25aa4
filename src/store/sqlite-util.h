// A small RAII layer over SQLite's C API for the results store: a connection
// that knows its file name (so every error names it), prepared statements and
// transactions. Errors are mapped to memskew's typed errors once, here.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace memskew::store_detail {

// Hint shown with every "corrupted" error.
inline constexpr const char* kCorruptHint =
    "the file is damaged (disk error, or copied while a probe was writing it); re-run the probe into a "
    "new --out, or inspect it with: sqlite3 FILE 'PRAGMA integrity_check'";

// Throws the memskew error that matches an SQLite result code: corruption and
// "not a database" -> FormatError, I/O, permissions, locks -> IoError,
// constraint violations -> InvalidInput, anything else -> FormatError (a store
// whose tables are not what this build expects).
[[noreturn]] void throw_sqlite_error(sqlite3* db, int rc, const std::string& path, std::string_view what);

class Db {
public:
    enum class Mode { kReadOnly, kReadWrite, kCreate };
    Db(const std::string& path, Mode mode, int busy_timeout_ms = 5000);
    ~Db();
    Db(const Db&) = delete;
    Db& operator=(const Db&) = delete;

    sqlite3* handle() const { return db_; }
    const std::string& path() const { return path_; }
    // Runs one or more statements without results.
    void exec(std::string_view sql);
    [[noreturn]] void fail(int rc, std::string_view what) const { throw_sqlite_error(db_, rc, path_, what); }

private:
    sqlite3* db_ = nullptr;
    std::string path_;
};

class Statement {
public:
    Statement(const Db& db, std::string_view sql);
    ~Statement();
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    // Bind positions are 1-based, as in SQLite.
    void bind_null(int i);
    void bind_int(int i, int64_t v);
    void bind_double(int i, double v);
    void bind_text(int i, std::string_view v);
    void bind_blob(int i, const void* data, std::size_t n);
    void bind_value(int i, const sqlite3_value* v);
    // True when a row is available; false when done.
    bool step();
    // Steps a statement that returns no rows.
    void run();
    void reset();

    // Column positions are 0-based, as in SQLite.
    bool is_null(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }
    int64_t column_int(int i) const { return sqlite3_column_int64(stmt_, i); }
    double column_double(int i) const { return sqlite3_column_double(stmt_, i); }
    std::string column_text(int i) const;
    std::pair<const void*, std::size_t> column_blob(int i) const;
    sqlite3_value* column_value(int i) const { return sqlite3_column_value(stmt_, i); }
    int column_count() const { return sqlite3_column_count(stmt_); }
    sqlite3_stmt* handle() const { return stmt_; }

private:
    const Db& db_;
    sqlite3_stmt* stmt_ = nullptr;
    std::string sql_;
};

// BEGIN IMMEDIATE ... COMMIT; rolls back when destroyed uncommitted (an
// exception), so a batch is all or nothing.
class Transaction {
public:
    explicit Transaction(Db& db);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    void commit();

private:
    Db& db_;
    bool open_ = true;
};

}  // namespace memskew::store_detail
