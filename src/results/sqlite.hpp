#pragma once
// A thin RAII layer over the SQLite C API: a connection, prepared statements with bound
// parameters (never SQL built from user data), and a transaction guard that rolls back unless
// committed.

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "radprobe/core/error.hpp"

namespace radprobe::results::sql {

class Connection {
public:
    Connection(const std::filesystem::path& path, bool create);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    sqlite3* get() const { return db_; }
    const std::string& name() const { return name_; }
    /// Runs SQL without parameters (schema, pragmas). Throws InputError naming the file.
    void exec(const char* sql);
    /// Throws InputError "file X: <what>: <sqlite message>" when rc is an error.
    void check(int rc, const char* what) const;

private:
    sqlite3* db_ = nullptr;
    std::string name_;
};

class Statement {
public:
    Statement(Connection& db, const char* sql);
    ~Statement();
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    /// Binders, 1-based; empty optionals bind NULL.
    void bind(int i, const std::string& text);
    void bind(int i, std::int64_t value);
    void bind(int i, double value);
    void bind(int i, const std::optional<double>& value);
    void bind(int i, const std::optional<std::int64_t>& value);
    void bind_null(int i);
    /// Binds NULL for an empty string, else the text.
    void bind_text_or_null(int i, const std::string& text);

    /// Steps once: true if a row is available, false when done.
    bool step();
    /// Steps a statement that returns no rows, then resets it.
    void run();
    void reset();

    std::string text(int col) const;
    std::int64_t int64(int col) const;
    std::optional<double> real_or_null(int col) const;
    std::optional<std::int64_t> int_or_null(int col) const;

private:
    Connection& db_;
    sqlite3_stmt* stmt_ = nullptr;
};

/// BEGIN IMMEDIATE (takes the write lock at once, so concurrent writers wait on the busy
/// timeout instead of failing late); rolls back in the destructor unless commit() was called.
class Transaction {
public:
    explicit Transaction(Connection& db);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    void commit();

private:
    Connection& db_;
    bool done_ = false;
};

}  // namespace radprobe::results::sql
