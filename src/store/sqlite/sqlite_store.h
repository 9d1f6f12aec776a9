// A thin RAII layer over the SQLite C API, shared by the store and (later) the spool.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"

namespace beacon::store::sqlite {

class Statement {
  public:
    Statement(sqlite3* db, std::string_view sql);
    ~Statement();
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    bool ok() const { return stmt_ != nullptr; }
    Statement& Bind(int index, std::string_view text);
    Statement& Bind(int index, int64_t value);
    Statement& BindDouble(int index, double value);
    Statement& BindBlob(int index, std::string_view bytes);
    // SQLITE_ROW, SQLITE_DONE or an error code.
    int Step();
    // Ready to run again with new bindings.
    void Reset();
    std::string Text(int column) const;
    int64_t Int(int column) const;
    double Double(int column) const;
    std::string Blob(int column) const;

  private:
    sqlite3_stmt* stmt_ = nullptr;
};

class Database {
  public:
    ~Database();
    // `error_code` (optional) receives SQLite's primary result code of a failure, e.g.
    // SQLITE_NOTADB for a file that is not a database.
    static Result<std::unique_ptr<Database>> Open(const std::string& path,
                                                  int* error_code = nullptr);

    Status Exec(std::string_view sql);
    // The primary result code of the last failed Exec (SQLITE_OK when none failed).
    int last_error_code() const { return last_error_code_; }
    std::string LastError() const { return sqlite3_errmsg(db_); }
    sqlite3* handle() { return db_; }

  private:
    sqlite3* db_ = nullptr;
    int last_error_code_ = SQLITE_OK;
};

}  // namespace beacon::store::sqlite
