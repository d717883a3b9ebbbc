#include "sqlite.hpp"

namespace radprobe::results::sql {

Connection::Connection(const std::filesystem::path& path, bool create) : name_(path.string()) {
    const int flags =
        SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX;
    const int rc = sqlite3_open_v2(name_.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
        const std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        sqlite3_close(db_);
        db_ = nullptr;
        RADPROBE_CHECK(false, "results database ", name_, ": cannot open: ", message);
    }
    sqlite3_extended_result_codes(db_, 1);
    // Several radprobe processes may write one database; wait for the lock instead of failing.
    sqlite3_busy_timeout(db_, 30000);
}

Connection::~Connection() {
    sqlite3_close_v2(db_);
}

void Connection::check(int rc, const char* what) const {
    const int primary = rc & 0xff;
    if (primary == SQLITE_OK || primary == SQLITE_ROW || primary == SQLITE_DONE) {
        return;
    }
    if (primary == SQLITE_NOTADB) {
        RADPROBE_CHECK(false, "results database ", name_, ": not a SQLite database");
    }
    RADPROBE_CHECK(false, "results database ", name_, ": ", what, ": ", sqlite3_errmsg(db_));
}

void Connection::exec(const char* sql) {
    char* error = nullptr;
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &error);
    std::string message = error ? error : "";
    sqlite3_free(error);
    if ((rc & 0xff) == SQLITE_NOTADB) {
        RADPROBE_CHECK(false, "results database ", name_, ": not a SQLite database");
    }
    RADPROBE_CHECK(rc == SQLITE_OK, "results database ", name_, ": ", message);
}

Statement::Statement(Connection& db, const char* sql) : db_(db) {
    db_.check(sqlite3_prepare_v3(db.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr),
              "prepare");
}

Statement::~Statement() {
    sqlite3_finalize(stmt_);
}

void Statement::bind(int i, const std::string& text) {
    db_.check(
        sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT),
        "bind");
}

void Statement::bind(int i, std::int64_t value) {
    db_.check(sqlite3_bind_int64(stmt_, i, value), "bind");
}

void Statement::bind(int i, double value) {
    db_.check(sqlite3_bind_double(stmt_, i, value), "bind");
}

void Statement::bind(int i, const std::optional<double>& value) {
    if (value) {
        bind(i, *value);
    } else {
        bind_null(i);
    }
}

void Statement::bind(int i, const std::optional<std::int64_t>& value) {
    if (value) {
        bind(i, *value);
    } else {
        bind_null(i);
    }
}

void Statement::bind_null(int i) {
    db_.check(sqlite3_bind_null(stmt_, i), "bind");
}

void Statement::bind_text_or_null(int i, const std::string& text) {
    if (text.empty()) {
        bind_null(i);
    } else {
        bind(i, text);
    }
}

bool Statement::step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) {
        return true;
    }
    if (rc == SQLITE_DONE) {
        return false;
    }
    // Keep the message before reset() clears it.
    const std::string message = sqlite3_errmsg(db_.get());
    sqlite3_reset(stmt_);
    if ((rc & 0xff) == SQLITE_NOTADB) {
        RADPROBE_CHECK(false, "results database ", db_.name(), ": not a SQLite database");
    }
    RADPROBE_CHECK(false, "results database ", db_.name(), ": ", message);
    return false;
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

std::string Statement::text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    if (!p) {
        return {};
    }
    return std::string(reinterpret_cast<const char*>(p),
                       static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)));
}

std::int64_t Statement::int64(int col) const {
    return sqlite3_column_int64(stmt_, col);
}

std::optional<double> Statement::real_or_null(int col) const {
    if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) {
        return std::nullopt;
    }
    return sqlite3_column_double(stmt_, col);
}

std::optional<std::int64_t> Statement::int_or_null(int col) const {
    if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) {
        return std::nullopt;
    }
    return sqlite3_column_int64(stmt_, col);
}

Transaction::Transaction(Connection& db) : db_(db) {
    db_.exec("BEGIN IMMEDIATE");
}

Transaction::~Transaction() {
    if (!done_) {
        sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
}

void Transaction::commit() {
    db_.exec("COMMIT");
    done_ = true;
}

}  // namespace radprobe::results::sql
