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
    static Result<std::unique_ptr<Database>> Open(const std::string& path);

    Status Exec(std::string_view sql);
    std::string LastError() const { return sqlite3_errmsg(db_); }
    sqlite3* handle() { return db_; }

  private:
    sqlite3* db_ = nullptr;
};

}  // namespace beacon::store::sqlite
