#include "sqlite-util.h"

#include <fmt/format.h>

#include "memskew/error.h"

namespace memskew::store_detail {

void throw_sqlite_error(sqlite3* db, int rc, const std::string& path, std::string_view what) {
    const int primary = rc & 0xff;
    // sqlite3_errmsg describes the most recent failure of this connection; for
    // a failed open it may be the only description there is.
    const std::string detail = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    switch (primary) {
        case SQLITE_NOTADB:
            throw FormatError(fmt::format("{}: not a memskew results store (not an SQLite database, or its "
                                          "header is damaged)",
                                          path),
                              "pass the .db file written by `memskew probe --out`");
        case SQLITE_CORRUPT:
            throw FormatError(fmt::format("{}: the results store is corrupted ({}: {})", path, what, detail),
                              kCorruptHint);
        case SQLITE_CANTOPEN:
        case SQLITE_PERM:
        case SQLITE_READONLY:
            throw IoError(fmt::format("{}: cannot open or write the results store ({}: {})", path, what, detail),
                          "check that the file's folder exists and that you may write there");
        case SQLITE_IOERR:
        case SQLITE_FULL:
            throw IoError(fmt::format("{}: I/O error on the results store ({}: {})", path, what, detail),
                          "check free disk space and the storage device");
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
            throw IoError(fmt::format("{}: the results store is locked by another process ({}: {})", path,
                                      what, detail),
                          "wait for the other memskew process to finish, or write to another --out");
        case SQLITE_CONSTRAINT:
            throw InvalidInput(fmt::format("{}: {} violates the store's constraints: {}", path, what, detail));
        default:
            throw FormatError(fmt::format("{}: unexpected results store content ({}: {})", path, what, detail),
                              "was it written by another memskew version? check `memskew --version`");
    }
}

Db::Db(const std::string& path, Mode mode, int busy_timeout_ms) : path_(path) {
    int flags = SQLITE_OPEN_NOMUTEX;
    switch (mode) {
        case Mode::kReadOnly: flags |= SQLITE_OPEN_READONLY; break;
        case Mode::kReadWrite: flags |= SQLITE_OPEN_READWRITE; break;
        case Mode::kCreate: flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE; break;
    }
    const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
        // The handle exists even on failure and carries the message.
        std::string detail = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        sqlite3_close(db_);
        db_ = nullptr;
        throw IoError(fmt::format("{}: cannot open the results store: {}", path, detail),
                      mode == Mode::kCreate ? "check that the folder exists and is writable"
                                            : "check the path: is it the file written by `memskew probe --out`?");
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, busy_timeout_ms);
}

Db::~Db() {
    // sqlite3_close_v2 defers the close until the last statement is finalized,
    // so destruction order of statements does not matter.
    if (db_) sqlite3_close_v2(db_);
}

void Db::exec(std::string_view sql) {
    const std::string s(sql);
    const int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) fail(rc, s.substr(0, 60));
}

Statement::Statement(const Db& db, std::string_view sql) : db_(db), sql_(sql) {
    const int rc = sqlite3_prepare_v2(db.handle(), sql_.data(), static_cast<int>(sql_.size()), &stmt_, nullptr);
    if (rc != SQLITE_OK) db_.fail(rc, "preparing '" + sql_.substr(0, 60) + "'");
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

void Statement::bind_null(int i) { sqlite3_bind_null(stmt_, i); }
void Statement::bind_int(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
void Statement::bind_double(int i, double v) { sqlite3_bind_double(stmt_, i, v); }
void Statement::bind_text(int i, std::string_view v) {
    sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
}
void Statement::bind_blob(int i, const void* data, std::size_t n) {
    // A non-null pointer keeps an empty array a zero-length blob, not NULL.
    static const char kEmpty = 0;
    sqlite3_bind_blob64(stmt_, i, n ? data : &kEmpty, n, SQLITE_TRANSIENT);
}
void Statement::bind_value(int i, const sqlite3_value* v) { sqlite3_bind_value(stmt_, i, v); }

bool Statement::step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    db_.fail(rc, "running '" + sql_.substr(0, 60) + "'");
}

void Statement::run() {
    while (step()) {
    }
    reset();
}

void Statement::reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
}

std::string Statement::column_text(int i) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, i))) : std::string();
}

std::pair<const void*, std::size_t> Statement::column_blob(int i) const {
    const void* p = sqlite3_column_blob(stmt_, i);
    return {p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, i))};
}

Transaction::Transaction(Db& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }

Transaction::~Transaction() {
    if (open_) sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::commit() {
    db_.exec("COMMIT");
    open_ = false;
}

}  // namespace memskew::store_detail
