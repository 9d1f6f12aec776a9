#include "broadcast/spool.h"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>

#include "store/sqlite/sqlite_store.h"

namespace beacon::broadcast {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using store::sqlite::Database;
using store::sqlite::Statement;

namespace {

constexpr char kSep = '\x1f';
// Bytes a row costs beyond its body and destination list (keys, header, index entry).
constexpr int64_t kRowOverhead = 48;

constexpr std::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS records(
  seq INTEGER PRIMARY KEY,
  created_ms INTEGER NOT NULL,
  dests TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS records_created ON records(created_ms);
CREATE TABLE IF NOT EXISTS cursors(
  destination TEXT PRIMARY KEY,
  seq INTEGER NOT NULL) WITHOUT ROWID;
)sql";

bool IsCorruption(int code) { return code == SQLITE_CORRUPT || code == SQLITE_NOTADB; }

// A row's size against the bound, in SQL, as SpoolRowBytes computes it (length() of a blob reads
// only the row header). The `bytes` column is the caller's accounting of the record instead.
const std::string& RowBytesSql() {
    static const std::string sql = "length(body) + length(dests) + " + std::to_string(kRowOverhead);
    return sql;
}

int64_t NowUnixMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// The WAL size at which it is checkpointed: a quarter of the bound, at most 64 MiB.
int64_t WalLimit(int64_t max_bytes) { return std::min<int64_t>(int64_t{64} << 20, max_bytes / 4); }

int64_t FileSize(const std::string& path) {
    std::error_code ec;
    auto n = fs::file_size(path, ec);
    return ec ? 0 : static_cast<int64_t>(n);
}

std::string_view SyncPragma(SpoolSync s) {
    switch (s) {
        case SpoolSync::kOff:
            return "PRAGMA synchronous=OFF;";
        case SpoolSync::kFull:
            return "PRAGMA synchronous=FULL;";
        case SpoolSync::kNormal:
            break;
    }
    return "PRAGMA synchronous=NORMAL;";
}

// A failure that says whether the file itself is damaged.
struct OpenError {
    std::string message;
    bool corrupt = false;
};

Result<std::unique_ptr<Database>, OpenError> OpenConnection(const std::string& path, SpoolSync sync,
                                                            int64_t max_bytes) {
    int code = SQLITE_OK;
    auto db = Database::Open(path, &code);
    if (!db) return OpenError{db.error().message, IsCorruption(code)};
    // SQLite's own checkpoints (every 1000 pages by default) would copy rows that are about to
    // be deleted; CheckpointIfLarge does it at WalLimit instead.
    // Rows are written once and read once (if ever): a small page cache per connection (256
    // KiB, not SQLite's 2 MiB) is enough and keeps Beacon's memory down.
    const std::string pragmas = std::string(SyncPragma(sync)) +
                                "PRAGMA journal_size_limit=4194304;PRAGMA cache_size=-256;"
                                "PRAGMA wal_autocheckpoint=" +
                                std::to_string(WalLimit(max_bytes) / 4096 + 1) + ";";
    if (auto s = (*db)->Exec(pragmas); !s) {
        return OpenError{s.error().message, IsCorruption((*db)->last_error_code())};
    }
    return std::move(db.value());
}

}  // namespace

std::string JoinDestinations(const std::vector<std::string>& ids) {
    std::string out(1, kSep);
    for (const auto& id : ids) {
        out += id;
        out.push_back(kSep);
    }
    return out;
}

int64_t SpoolRowBytes(std::string_view body, std::string_view dests) {
    return static_cast<int64_t>(body.size() + dests.size()) + kRowOverhead;
}

bool ListsDestination(std::string_view dests, std::string_view id) {
    std::string needle;
    needle.reserve(id.size() + 2);
    needle.push_back(kSep);
    needle += id;
    needle.push_back(kSep);
    return dests.find(needle) != std::string_view::npos;
}

Spool::~Spool() = default;

Result<std::unique_ptr<Spool>> Spool::Open(SpoolOptions options) {
    auto spool = std::unique_ptr<Spool>(new Spool());
    spool->options_ = std::move(options);
    std::error_code ec;
    fs::create_directories(fs::path(spool->options_.path).parent_path(), ec);
    if (auto s = spool->Prepare(); !s) return s.error();
    return spool;
}

Status Spool::Prepare() {
    for (int tries = 0;; ++tries) {
        Status status = Status::Ok();
        bool corrupt = false;
        [&] {
            auto w = OpenConnection(options_.path, options_.sync, options_.max_bytes);
            if (!w) {
                status = Error{w.error().message};
                corrupt = w.error().corrupt;
                return;
            }
            writer_ = std::move(w.value());
            // A damaged page anywhere must be found now, not in the middle of a delivery.
            Statement check(writer_->handle(), "PRAGMA quick_check(1)");
            const int rc = check.Step();
            if (rc != SQLITE_ROW) {
                status = Error{"quick_check: " + writer_->LastError()};
                corrupt = IsCorruption(rc) || rc == SQLITE_ERROR;
                return;
            }
            if (std::string verdict = check.Text(0); verdict != "ok") {
                status = Error{"quick_check: " + verdict};
                corrupt = true;
                return;
            }
            if (auto s = writer_->Exec(kSchema); !s) {
                status = s;
                corrupt = IsCorruption(writer_->last_error_code());
                return;
            }
            auto r = OpenConnection(options_.path, options_.sync, options_.max_bytes);
            if (!r) {
                status = Error{r.error().message};
                corrupt = r.error().corrupt;
                return;
            }
            std::lock_guard lock(reader_mu_);
            reader_ = std::move(r.value());
        }();
        if (status && !corrupt) {
            // Counts, cursors and the next sequence number come from what the file holds.
            Statement totals(writer_->handle(), "SELECT COUNT(*), COALESCE(SUM(" + RowBytesSql() +
                                                    "), 0), COALESCE(MAX(seq), 0) FROM records");
            Statement cursors(writer_->handle(), "SELECT destination, seq FROM cursors");
            int rc = totals.Step();
            if (rc == SQLITE_ROW) {
                std::lock_guard lock(stats_mu_);
                records_ = totals.Int(0);
                bytes_ = totals.Int(1);
                last_seq_ = std::max(last_seq_, totals.Int(2));
                stored_cursors_.clear();  // under stats_mu_, as TakeStoredCursor reads them
                while ((rc = cursors.Step()) == SQLITE_ROW) {
                    stored_cursors_[cursors.Text(0)] = cursors.Int(1);
                    last_seq_ = std::max(last_seq_, cursors.Int(1));
                }
            }
            if (rc == SQLITE_DONE) return Status::Ok();
            status = Error{"reading the spool: " + writer_->LastError()};
            corrupt = IsCorruption(rc);
        }
        if (!corrupt || tries > 0) {
            writer_.reset();
            std::lock_guard lock(reader_mu_);
            reader_.reset();
            return Error{"cannot open the spool " + options_.path + ": " + status.error().message};
        }
        if (auto s = SetAside(status.error().message); !s) return s;
    }
}

Status Spool::SetAside(const std::string& why) {
    writer_.reset();
    {
        std::lock_guard lock(reader_mu_);
        reader_.reset();
    }
    const std::string aside = options_.path + ".corrupt-" + std::to_string(NowUnixMs());
    for (const char* suffix : {"", "-wal", "-shm"}) {
        std::error_code ec;
        const std::string from = options_.path + suffix;
        if (!fs::exists(from, ec)) continue;
        fs::rename(from, aside + suffix, ec);
        if (ec) {
            return Error{"the spool " + from + " is damaged (" + why +
                         ") and cannot be moved aside: " + ec.message()};
        }
    }
    std::lock_guard lock(stats_mu_);
    ++corrupt_set_aside_;
    records_ = 0;
    bytes_ = 0;
    spdlog::error(
        "spool {} is damaged ({}); moved aside to {} and started a new one; its undelivered "
        "records are lost",
        options_.path, why, aside);
    return Status::Ok();
}

Result<Spool::CommitResult> Spool::Commit(const std::vector<NewRecord>& records,
                                          const std::map<std::string, int64_t>& cursors,
                                          int64_t handled_upto) {
    for (int tries = 0;; ++tries) {
        int code = SQLITE_OK;
        CommitResult out;
        int64_t seq, records_n, bytes_n;
        {
            std::lock_guard lock(stats_mu_);
            seq = last_seq_;
            records_n = records_;
            bytes_n = bytes_;
        }
        auto fail = [&](int rc) {
            code = rc & 0xff;
            return Error{"spool write failed: " + writer_->LastError()};
        };
        if (!writer_ && Clock::now() - last_reopen_ > std::chrono::seconds(5)) {
            // A spool set aside at run time that could not be recreated: try again now and then.
            last_reopen_ = Clock::now();
            if (auto p = Prepare(); !p) spdlog::error("{}", p.error().message);
        }
        auto run = [&]() -> Status {
            if (!writer_) return Error{"spool is not open"};
            if (auto s = writer_->Exec("BEGIN IMMEDIATE"); !s) {
                code = writer_->last_error_code();
                return s;
            }
            Statement insert(writer_->handle(),
                             "INSERT INTO records(seq, created_ms, dests, bytes, body) "
                             "VALUES(?, ?, ?, ?, ?)");
            for (const auto& r : records) {
                const int64_t bytes = SpoolRowBytes(r.body, r.dests);
                seq = r.seq ? r.seq : seq + 1;
                insert.Reset();
                insert.Bind(1, seq).Bind(2, r.created_ms).Bind(3, r.dests);
                insert.Bind(4, r.bytes ? r.bytes : bytes);
                insert.BindBlob(5, r.body);
                if (int rc = insert.Step(); rc != SQLITE_DONE) return fail(rc);
                if (!out.first_seq) out.first_seq = seq;
                ++records_n;
                bytes_n += bytes;
            }
            if (auto s = writer_->Exec("DELETE FROM cursors"); !s) {
                code = writer_->last_error_code();
                return s;
            }
            Statement put(writer_->handle(), "INSERT INTO cursors(destination, seq) VALUES(?, ?)");
            seq = std::max(seq, handled_upto);
            int64_t done = seq;  // with no destination, nothing is waited for
            for (const auto& [id, c] : cursors) {
                put.Reset();
                put.Bind(1, id).Bind(2, c);
                if (int rc = put.Step(); rc != SQLITE_DONE) return fail(rc);
                done = std::min(done, c);
            }
            Statement sum(writer_->handle(), "SELECT COUNT(*), COALESCE(SUM(" + RowBytesSql() +
                                                 "), 0) FROM records WHERE seq <= ?");
            sum.Bind(1, done);
            if (int rc = sum.Step(); rc != SQLITE_ROW) return fail(rc);
            if (sum.Int(0) > 0) {
                records_n -= sum.Int(0);
                bytes_n -= sum.Int(1);
                Statement del(writer_->handle(), "DELETE FROM records WHERE seq <= ?");
                del.Bind(1, done);
                if (int rc = del.Step(); rc != SQLITE_DONE) return fail(rc);
            }
            // The size bound: the oldest rows go first, whoever still wanted them.
            while (bytes_n > options_.max_bytes && records_n > 0) {
                Statement oldest(writer_->handle(), "SELECT seq, created_ms, dests, bytes, " +
                                                        RowBytesSql() +
                                                        " FROM records ORDER BY seq LIMIT 256");
                int64_t upto = 0;
                int rc;
                while (bytes_n > options_.max_bytes && (rc = oldest.Step()) == SQLITE_ROW) {
                    SpoolRow row;
                    row.seq = oldest.Int(0);
                    row.created_ms = oldest.Int(1);
                    row.dests = oldest.Text(2);
                    row.bytes = oldest.Int(3);
                    upto = row.seq;
                    bytes_n -= oldest.Int(4);
                    --records_n;
                    out.evicted.push_back(std::move(row));
                }
                if (!upto) break;
                Statement del(writer_->handle(), "DELETE FROM records WHERE seq <= ?");
                del.Bind(1, upto);
                if (int rc2 = del.Step(); rc2 != SQLITE_DONE) return fail(rc2);
            }
            return Status::Ok();
        };
        // Every statement is finalised before COMMIT: one still open would keep a read
        // transaction, and the WAL could never be checkpointed.
        Status s = run();
        if (s) {
            if (s = writer_->Exec("COMMIT"); !s) code = writer_->last_error_code();
        }
        if (s) CheckpointIfLarge();
        if (s) {
            std::lock_guard lock(stats_mu_);
            last_seq_ = seq;
            records_ = records_n;
            bytes_ = bytes_n;
            evicted_ += static_cast<int64_t>(out.evicted.size());
            stored_ += static_cast<int64_t>(records.size());
            out.last_seq = seq;
            return out;
        }
        if (writer_) writer_->Exec("ROLLBACK");
        if (IsCorruption(code) && tries == 0) {
            if (auto aside = SetAside(s.error().message); !aside) return aside.error();
            if (auto p = Prepare(); !p) return p.error();
            continue;
        }
        return s.error();
    }
}

Result<std::vector<SpoolRow>> Spool::Read(int64_t after, int64_t upto, int limit,
                                          std::string_view destination) {
    std::lock_guard gate(gate_mu_);
    std::lock_guard lock(reader_mu_);
    if (!reader_) return Error{"spool is not open"};
    Statement q(reader_->handle(),
                "SELECT seq, created_ms, dests, bytes, body FROM records "
                "WHERE seq > ? AND seq <= ? AND instr(dests, ?) > 0 ORDER BY seq LIMIT ?");
    q.Bind(1, after).Bind(2, upto).Bind(3, JoinDestinations({std::string(destination)}));
    q.Bind(4, int64_t{limit});
    std::vector<SpoolRow> rows;
    int rc;
    while ((rc = q.Step()) == SQLITE_ROW) {
        SpoolRow row;
        row.seq = q.Int(0);
        row.created_ms = q.Int(1);
        row.dests = q.Text(2);
        row.bytes = q.Int(3);
        row.body = q.Blob(4);
        rows.push_back(std::move(row));
    }
    if (rc != SQLITE_DONE) return Error{"spool read failed: " + reader_->LastError()};
    return rows;
}

Result<std::pair<int64_t, int64_t>> Spool::Backlog(std::string_view destination, int64_t after) {
    std::lock_guard gate(gate_mu_);
    std::lock_guard lock(reader_mu_);
    if (!reader_) return Error{"spool is not open"};
    Statement q(reader_->handle(),
                "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM records "
                "WHERE seq > ? AND instr(dests, ?) > 0");
    q.Bind(1, after).Bind(2, JoinDestinations({std::string(destination)}));
    if (q.Step() != SQLITE_ROW) return Error{"spool read failed: " + reader_->LastError()};
    return std::pair{q.Int(0), q.Int(1)};
}

Result<std::optional<int64_t>> Spool::FirstSeqSince(int64_t since_ms) {
    std::lock_guard gate(gate_mu_);
    std::lock_guard lock(reader_mu_);
    if (!reader_) return Error{"spool is not open"};
    Statement q(reader_->handle(), "SELECT MIN(seq) FROM records WHERE created_ms >= ?");
    q.Bind(1, since_ms);
    if (q.Step() != SQLITE_ROW) return Error{"spool read failed: " + reader_->LastError()};
    if (q.Int(0) == 0) return std::optional<int64_t>{};  // NULL: no such row
    return std::optional<int64_t>{q.Int(0)};
}

void Spool::CheckpointIfLarge() {
    // The WAL is folded back into the database and truncated here, so the disk use stays near
    // the size bound. Rarely: in steady state most rows are inserted and deleted again within
    // one WAL's span, and a page written many times in the WAL reaches the database once.
    if (FileSize(options_.path + "-wal") < WalLimit(options_.max_bytes)) return;
    if (auto s = writer_->Exec("PRAGMA wal_checkpoint(TRUNCATE)"); !s) {
        spdlog::warn("spool: checkpoint failed: {}", s.error().message);
    }
}

std::optional<int64_t> Spool::TakeStoredCursor(const std::string& destination) {
    std::lock_guard lock(stats_mu_);
    auto it = stored_cursors_.find(destination);
    if (it == stored_cursors_.end()) return std::nullopt;
    const int64_t c = it->second;
    stored_cursors_.erase(it);
    return c;
}

int64_t Spool::corrupt_set_aside() const {
    std::lock_guard lock(stats_mu_);
    return corrupt_set_aside_;
}

int64_t Spool::last_seq() const {
    std::lock_guard lock(stats_mu_);
    return last_seq_;
}

SpoolStats Spool::Stats() const {
    SpoolStats s;
    s.path = options_.path;
    s.max_bytes = options_.max_bytes;
    s.file_bytes = FileSize(options_.path) + FileSize(options_.path + "-wal");
    std::lock_guard lock(stats_mu_);
    s.records = records_;
    s.bytes = bytes_;
    s.stored = stored_;
    s.evicted = evicted_;
    s.corrupt_set_aside = corrupt_set_aside_;
    s.last_seq = last_seq_;
    return s;
}

}  // namespace beacon::broadcast
