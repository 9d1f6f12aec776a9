#include "store/sqlite/sqlite_store.h"

#include <ctime>
#include <memory>
#include <mutex>

#include "base/ids.h"
#include "store/store.h"

namespace beacon::store::sqlite {

Statement::Statement(sqlite3* db, std::string_view sql) {
    if (sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr) !=
        SQLITE_OK) {
        stmt_ = nullptr;
    }
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::Bind(int index, std::string_view text) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    return *this;
}

Statement& Statement::Bind(int index, int64_t value) {
    sqlite3_bind_int64(stmt_, index, value);
    return *this;
}

int Statement::Step() { return sqlite3_step(stmt_); }

std::string Statement::Text(int column) const {
    const auto* p = sqlite3_column_text(stmt_, column);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(stmt_, column)))
             : std::string();
}

int64_t Statement::Int(int column) const { return sqlite3_column_int64(stmt_, column); }

Database::~Database() { sqlite3_close_v2(db_); }

Result<std::unique_ptr<Database>> Database::Open(const std::string& path) {
    auto db = std::unique_ptr<Database>(new Database());
    int rc = sqlite3_open_v2(path.c_str(), &db->db_,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                             nullptr);
    if (rc != SQLITE_OK) {
        std::string msg = db->db_ ? sqlite3_errmsg(db->db_) : sqlite3_errstr(rc);
        return Error{"cannot open " + path + ": " + msg};
    }
    // Another process (the CLI) may write while the server reads: wait rather than fail.
    sqlite3_busy_timeout(db->db_, 5000);
    if (auto s = db->Exec("PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;"); !s) return s.error();
    return db;
}

Status Database::Exec(std::string_view sql) {
    char* err = nullptr;
    std::string copy(sql);
    if (sqlite3_exec(db_, copy.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
        std::string msg = err ? err : "unknown error";
        sqlite3_free(err);
        return Error{"sqlite: " + msg};
    }
    return Status::Ok();
}

namespace {

// Each entry moves the schema from version i to i+1; never edit a released entry.
constexpr std::string_view kMigrations[] = {
    R"sql(
    CREATE TABLE workspaces (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    INSERT INTO workspaces (id, name, created_at) VALUES ('default', 'Default', strftime('%s','now'));
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        workspace_id TEXT NOT NULL REFERENCES workspaces(id),
        name TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        hint TEXT NOT NULL,
        management INTEGER NOT NULL DEFAULT 0,
        revoked INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    );
    )sql",
};

constexpr std::string_view kKeyPrefix = "sk-bcn-v1-";

class SqliteStore final : public Store {
  public:
    explicit SqliteStore(std::unique_ptr<Database> db) : db_(std::move(db)) {}

    Status Migrate() {
        std::lock_guard lock(mu_);
        Statement version(db_->handle(), "PRAGMA user_version");
        if (version.Step() != SQLITE_ROW) return Error{"sqlite: " + db_->LastError()};
        const int64_t current = version.Int(0);
        const int64_t target = static_cast<int64_t>(std::size(kMigrations));
        if (current > target) {
            return Error{"the store's schema (version " + std::to_string(current) +
                         ") is newer than this beacon understands (" + std::to_string(target) +
                         "); upgrade beacon"};
        }
        for (int64_t v = current; v < target; ++v) {
            std::string sql = "BEGIN IMMEDIATE;" + std::string(kMigrations[v]) +
                              "PRAGMA user_version=" + std::to_string(v + 1) + "; COMMIT;";
            if (auto s = db_->Exec(sql); !s) {
                db_->Exec("ROLLBACK;");
                return s;
            }
        }
        return Status::Ok();
    }

    Result<CreatedKey> CreateKey(std::string_view name, bool management) override {
        if (name.empty() || name.size() > 128) return Error{"key name: 1 to 128 characters"};
        CreatedKey out;
        out.secret = std::string(kKeyPrefix) + base::RandomHex(24);
        out.key.id = "key_" + base::RandomHex(8);
        out.key.name = std::string(name);
        out.key.workspace_id = std::string(kDefaultWorkspace);
        out.key.hint = out.secret.substr(0, kKeyPrefix.size() + 3) + "..." +
                       out.secret.substr(out.secret.size() - 4);
        out.key.management = management;
        out.key.created_at = static_cast<int64_t>(std::time(nullptr));
        std::lock_guard lock(mu_);
        Statement st(db_->handle(),
                     "INSERT INTO api_keys (id, workspace_id, name, hash, hint, management, "
                     "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)");
        st.Bind(1, out.key.id)
            .Bind(2, out.key.workspace_id)
            .Bind(3, out.key.name)
            .Bind(4, HashKeySecret(out.secret))
            .Bind(5, out.key.hint)
            .Bind(6, int64_t{management ? 1 : 0})
            .Bind(7, out.key.created_at);
        if (st.Step() != SQLITE_DONE) return Error{"sqlite: " + db_->LastError()};
        return out;
    }

    Result<std::vector<ApiKey>> ListKeys() override {
        std::lock_guard lock(mu_);
        Statement st(db_->handle(), std::string(kSelect) + " ORDER BY created_at, id");
        std::vector<ApiKey> keys;
        int rc;
        while ((rc = st.Step()) == SQLITE_ROW) keys.push_back(Row(st));
        if (rc != SQLITE_DONE) return Error{"sqlite: " + db_->LastError()};
        return keys;
    }

    Status RevokeKey(std::string_view id_or_name) override {
        std::lock_guard lock(mu_);
        Statement st(db_->handle(), "UPDATE api_keys SET revoked = 1 WHERE id = ? OR name = ?");
        st.Bind(1, id_or_name).Bind(2, id_or_name);
        if (st.Step() != SQLITE_DONE) return Error{"sqlite: " + db_->LastError()};
        if (sqlite3_changes(db_->handle()) == 0) {
            return Error{"no key with id or name \"" + std::string(id_or_name) + "\""};
        }
        return Status::Ok();
    }

    Result<std::optional<ApiKey>> FindKeyBySecret(std::string_view secret) override {
        std::lock_guard lock(mu_);
        Statement st(db_->handle(), std::string(kSelect) + " WHERE hash = ?");
        st.Bind(1, HashKeySecret(secret));
        int rc = st.Step();
        if (rc == SQLITE_ROW) return std::optional<ApiKey>(Row(st));
        if (rc != SQLITE_DONE) return Error{"sqlite: " + db_->LastError()};
        return std::optional<ApiKey>();
    }

  private:
    static constexpr std::string_view kSelect =
        "SELECT id, name, workspace_id, hint, management, revoked, created_at FROM api_keys";

    static ApiKey Row(const Statement& st) {
        ApiKey k;
        k.id = st.Text(0);
        k.name = st.Text(1);
        k.workspace_id = st.Text(2);
        k.hint = st.Text(3);
        k.management = st.Int(4) != 0;
        k.revoked = st.Int(5) != 0;
        k.created_at = st.Int(6);
        return k;
    }

    std::mutex mu_;
    std::unique_ptr<Database> db_;
};

}  // namespace
}  // namespace beacon::store::sqlite

namespace beacon::store {

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path) {
    auto db = sqlite::Database::Open(path);
    if (!db) return db.error();
    auto store = std::make_unique<sqlite::SqliteStore>(std::move(db.value()));
    if (auto s = store->Migrate(); !s) return s.error();
    return std::unique_ptr<Store>(std::move(store));
}

}  // namespace beacon::store
