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

Statement& Statement::BindDouble(int index, double value) {
    sqlite3_bind_double(stmt_, index, value);
    return *this;
}

Statement& Statement::BindBlob(int index, std::string_view bytes) {
    sqlite3_bind_blob(stmt_, index, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
    return *this;
}

double Statement::Double(int column) const { return sqlite3_column_double(stmt_, column); }

std::string Statement::Blob(int column) const {
    const void* p = sqlite3_column_blob(stmt_, column);
    return p ? std::string(static_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(stmt_, column)))
             : std::string();
}

int Statement::Step() { return sqlite3_step(stmt_); }

void Statement::Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
}

std::string Statement::Text(int column) const {
    const auto* p = sqlite3_column_text(stmt_, column);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(stmt_, column)))
             : std::string();
}

int64_t Statement::Int(int column) const { return sqlite3_column_int64(stmt_, column); }

Database::~Database() { sqlite3_close_v2(db_); }

Result<std::unique_ptr<Database>> Database::Open(const std::string& path, int* error_code) {
    auto db = std::unique_ptr<Database>(new Database());
    int rc = sqlite3_open_v2(path.c_str(), &db->db_,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                             nullptr);
    if (rc != SQLITE_OK) {
        if (error_code) *error_code = rc & 0xff;
        std::string msg = db->db_ ? sqlite3_errmsg(db->db_) : sqlite3_errstr(rc);
        return Error{"cannot open " + path + ": " + msg};
    }
    // Another process (the CLI) may write while the server reads: wait rather than fail.
    sqlite3_busy_timeout(db->db_, 5000);
    if (auto s = db->Exec("PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;"); !s) {
        if (error_code) *error_code = db->last_error_code_;
        return s.error();
    }
    return db;
}

Status Database::Exec(std::string_view sql) {
    char* err = nullptr;
    std::string copy(sql);
    if (int rc = sqlite3_exec(db_, copy.c_str(), nullptr, nullptr, &err); rc != SQLITE_OK) {
        last_error_code_ = rc & 0xff;
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
    R"sql(
    CREATE TABLE broadcast_settings (
        workspace_id TEXT PRIMARY KEY REFERENCES workspaces(id),
        enabled INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE destinations (
        id TEXT PRIMARY KEY,
        workspace_id TEXT NOT NULL REFERENCES workspaces(id),
        type TEXT NOT NULL,
        name TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        privacy_mode INTEGER NOT NULL,
        sampling_rate REAL NOT NULL,
        api_key_ids TEXT NOT NULL,
        public_key TEXT NOT NULL,
        secret_sealed BLOB NOT NULL,
        base_url TEXT NOT NULL,
        transport TEXT NOT NULL,
        server_version TEXT NOT NULL,
        project_id TEXT NOT NULL,
        project_name TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX destinations_by_workspace ON destinations(workspace_id, created_at);
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

    Result<bool> GetBroadcastEnabled(std::string_view workspace_id) override {
        std::lock_guard lock(mu_);
        Statement st(db_->handle(),
                     "SELECT enabled FROM broadcast_settings WHERE workspace_id = ?");
        st.Bind(1, workspace_id);
        const int rc = st.Step();
        if (rc == SQLITE_ROW) return st.Int(0) != 0;
        if (rc != SQLITE_DONE) return Error{"sqlite: " + db_->LastError()};
        return false;
    }

    Status SetBroadcastEnabled(std::string_view workspace_id, bool enabled) override {
        std::lock_guard lock(mu_);
        Statement st(db_->handle(),
                     "INSERT INTO broadcast_settings (workspace_id, enabled, updated_at) "
                     "VALUES (?, ?, strftime('%s','now')) ON CONFLICT(workspace_id) DO UPDATE "
                     "SET enabled = excluded.enabled, updated_at = excluded.updated_at");
        st.Bind(1, workspace_id).Bind(2, int64_t{enabled ? 1 : 0});
        if (st.Step() != SQLITE_DONE) return Error{"sqlite: " + db_->LastError()};
        return Status::Ok();
    }

    Result<std::vector<std::string>> WorkspacesWithBroadcast() override {
        std::lock_guard lock(mu_);
        Statement st(db_->handle(),
                     "SELECT workspace_id FROM broadcast_settings WHERE enabled = 1");
        std::vector<std::string> out;
        int rc;
        while ((rc = st.Step()) == SQLITE_ROW) out.push_back(st.Text(0));
        if (rc != SQLITE_DONE) return Error{"sqlite: " + db_->LastError()};
        return out;
    }

    Result<std::vector<StoredDestination>> ListDestinations(
        std::string_view workspace_id) override {
        std::lock_guard lock(mu_);
        std::string sql = std::string(kSelectDestination);
        if (!workspace_id.empty()) sql += " WHERE workspace_id = ?";
        sql += " ORDER BY created_at, id";
        Statement st(db_->handle(), sql);
        if (!workspace_id.empty()) st.Bind(1, workspace_id);
        std::vector<StoredDestination> out;
        int rc;
        while ((rc = st.Step()) == SQLITE_ROW) out.push_back(DestinationRow(st));
        if (rc != SQLITE_DONE) return Error{"sqlite: " + db_->LastError()};
        return out;
    }

    Result<std::optional<StoredDestination>> GetDestination(std::string_view id) override {
        std::lock_guard lock(mu_);
        Statement st(db_->handle(), std::string(kSelectDestination) + " WHERE id = ?");
        st.Bind(1, id);
        const int rc = st.Step();
        if (rc == SQLITE_ROW) return std::optional<StoredDestination>(DestinationRow(st));
        if (rc != SQLITE_DONE) return Error{"sqlite: " + db_->LastError()};
        return std::optional<StoredDestination>();
    }

    Status PutDestination(const StoredDestination& d) override {
        std::lock_guard lock(mu_);
        Statement st(db_->handle(),
                     "INSERT OR REPLACE INTO destinations (id, workspace_id, type, name, enabled, "
                     "privacy_mode, sampling_rate, api_key_ids, public_key, secret_sealed, "
                     "base_url, transport, server_version, project_id, project_name, created_at, "
                     "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
        std::string keys;
        for (const auto& k : d.api_key_ids) keys += (keys.empty() ? "" : ",") + k;
        st.Bind(1, d.id)
            .Bind(2, d.workspace_id)
            .Bind(3, d.type)
            .Bind(4, d.name)
            .Bind(5, int64_t{d.enabled ? 1 : 0})
            .Bind(6, int64_t{d.privacy_mode ? 1 : 0})
            .BindDouble(7, d.sampling_rate)
            .Bind(8, keys)
            .Bind(9, d.public_key)
            .BindBlob(10, d.secret_sealed)
            .Bind(11, d.base_url)
            .Bind(12, d.transport)
            .Bind(13, d.server_version)
            .Bind(14, d.project_id)
            .Bind(15, d.project_name)
            .Bind(16, d.created_at)
            .Bind(17, d.updated_at);
        if (st.Step() != SQLITE_DONE) return Error{"sqlite: " + db_->LastError()};
        return Status::Ok();
    }

    Status DeleteDestination(std::string_view id) override {
        std::lock_guard lock(mu_);
        Statement st(db_->handle(), "DELETE FROM destinations WHERE id = ?");
        st.Bind(1, id);
        if (st.Step() != SQLITE_DONE) return Error{"sqlite: " + db_->LastError()};
        if (sqlite3_changes(db_->handle()) == 0) {
            return Error{"no destination " + std::string(id)};
        }
        return Status::Ok();
    }

  private:
    static constexpr std::string_view kSelectDestination =
        "SELECT id, workspace_id, type, name, enabled, privacy_mode, sampling_rate, api_key_ids, "
        "public_key, secret_sealed, base_url, transport, server_version, project_id, "
        "project_name, created_at, updated_at FROM destinations";

    static StoredDestination DestinationRow(const Statement& st) {
        StoredDestination d;
        d.id = st.Text(0);
        d.workspace_id = st.Text(1);
        d.type = st.Text(2);
        d.name = st.Text(3);
        d.enabled = st.Int(4) != 0;
        d.privacy_mode = st.Int(5) != 0;
        d.sampling_rate = st.Double(6);
        const std::string keys = st.Text(7);
        for (size_t start = 0; start < keys.size();) {
            size_t comma = keys.find(',', start);
            if (comma == std::string::npos) comma = keys.size();
            d.api_key_ids.push_back(keys.substr(start, comma - start));
            start = comma + 1;
        }
        d.public_key = st.Text(8);
        d.secret_sealed = st.Blob(9);
        d.base_url = st.Text(10);
        d.transport = st.Text(11);
        d.server_version = st.Text(12);
        d.project_id = st.Text(13);
        d.project_name = st.Text(14);
        d.created_at = st.Int(15);
        d.updated_at = st.Int(16);
        return d;
    }

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
