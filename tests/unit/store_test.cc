#include "store/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "base/crypto.h"
#include "base/ids.h"

namespace beacon::store {
namespace {

namespace fs = std::filesystem;

class StoreTest : public testing::Test {
  protected:
    void SetUp() override {
        std::random_device rd;
        dir_ = fs::temp_directory_path() /
               ("beacon_store_test_" + std::to_string(rd()) + std::to_string(rd()));
        fs::create_directories(dir_);
        path_ = (dir_ / "beacon.db").string();
        store_ = Open();
    }
    void TearDown() override {
        store_.reset();
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    std::unique_ptr<Store> Open() {
        auto s = OpenSqliteStore(path_);
        EXPECT_TRUE(s) << s.error().message;
        return s ? std::move(s.value()) : nullptr;
    }

    // Every byte SQLite keeps for this database: the file, its WAL and shared memory.
    std::string AllDatabaseBytes() const {
        std::string all;
        for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
            std::ifstream in(path_ + suffix, std::ios::binary);
            all.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        }
        return all;
    }

    fs::path dir_;
    std::string path_;
    std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, CreateKeyShapes) {
    // Verifies the secret, id and hint formats of a new key and its stored fields.
    auto created = store_->CreateKey("ci", false);
    ASSERT_TRUE(created) << created.error().message;
    const std::string& secret = created->secret;
    ASSERT_EQ(secret.rfind("sk-bcn-v1-", 0), 0u) << secret;
    EXPECT_TRUE(base::IsLowerHex(secret.substr(10), 48)) << secret;
    EXPECT_EQ(created->key.id.rfind("key_", 0), 0u);
    EXPECT_TRUE(base::IsLowerHex(created->key.id.substr(4), 16)) << created->key.id;
    EXPECT_EQ(created->key.name, "ci");
    EXPECT_EQ(created->key.workspace_id, "default");
    EXPECT_EQ(created->key.hint, secret.substr(0, 13) + "..." + secret.substr(secret.size() - 4));
    EXPECT_FALSE(created->key.management);
    EXPECT_FALSE(created->key.revoked);
    EXPECT_GT(created->key.created_at, 1600000000);
}

TEST_F(StoreTest, CreateKeyRejectsBadNames) {
    // Verifies that key names must have 1 to 128 characters.
    EXPECT_EQ(store_->CreateKey("", false).error().message, "key name: 1 to 128 characters");
    EXPECT_EQ(store_->CreateKey(std::string(129, 'n'), false).error().message,
              "key name: 1 to 128 characters");
    EXPECT_TRUE(store_->CreateKey(std::string(128, 'n'), false));
}

TEST_F(StoreTest, ListKeys) {
    // Verifies that listed keys carry what was created, secrets excluded.
    auto a = store_->CreateKey("alpha", false);
    auto b = store_->CreateKey("admin", true);
    ASSERT_TRUE(a && b);
    auto list = store_->ListKeys();
    ASSERT_TRUE(list) << list.error().message;
    ASSERT_EQ(list->size(), 2u);
    std::set<std::string> ids;
    for (const auto& k : *list) {
        ids.insert(k.id);
        const auto& expected = k.id == a->key.id ? a->key : b->key;
        EXPECT_EQ(k.name, expected.name);
        EXPECT_EQ(k.hint, expected.hint);
        EXPECT_EQ(k.management, expected.management);
        EXPECT_EQ(k.workspace_id, "default");
        EXPECT_EQ(k.created_at, expected.created_at);
        EXPECT_FALSE(k.revoked);
    }
    EXPECT_EQ(ids, (std::set<std::string>{a->key.id, b->key.id}));
}

TEST_F(StoreTest, EmptyStoreListsNothing) {
    // Verifies that a new store has no keys.
    auto list = store_->ListKeys();
    ASSERT_TRUE(list);
    EXPECT_TRUE(list->empty());
}

TEST_F(StoreTest, FindKeyBySecret) {
    // Verifies lookup by secret, and that unknown or near-miss secrets find nothing.
    auto a = store_->CreateKey("a", false);
    auto b = store_->CreateKey("b", true);
    ASSERT_TRUE(a && b);
    auto found = store_->FindKeyBySecret(b->secret);
    ASSERT_TRUE(found) << found.error().message;
    ASSERT_TRUE(found->has_value());
    EXPECT_EQ((*found)->id, b->key.id);
    EXPECT_TRUE((*found)->management);

    for (const std::string& wrong :
         {std::string(), std::string("sk-bcn-v1-"), a->secret + "x", a->secret.substr(1),
          HashKeySecret(a->secret), a->key.hint, a->key.id}) {
        auto r = store_->FindKeyBySecret(wrong);
        ASSERT_TRUE(r);
        EXPECT_FALSE(r->has_value()) << wrong;
    }
}

TEST_F(StoreTest, RevokeById) {
    // Verifies revocation by id: the key is kept, marked revoked, and others are untouched.
    auto a = store_->CreateKey("a", false);
    auto b = store_->CreateKey("b", false);
    ASSERT_TRUE(a && b);
    ASSERT_TRUE(store_->RevokeKey(a->key.id));
    auto fa = store_->FindKeyBySecret(a->secret);
    ASSERT_TRUE(fa && fa->has_value());
    EXPECT_TRUE((*fa)->revoked);
    auto fb = store_->FindKeyBySecret(b->secret);
    ASSERT_TRUE(fb && fb->has_value());
    EXPECT_FALSE((*fb)->revoked);
    auto list = store_->ListKeys();
    ASSERT_TRUE(list);
    EXPECT_EQ(list->size(), 2u);
}

TEST_F(StoreTest, RevokeByName) {
    // Verifies revocation by name.
    auto a = store_->CreateKey("laptop", false);
    auto b = store_->CreateKey("server", false);
    ASSERT_TRUE(a && b);
    ASSERT_TRUE(store_->RevokeKey("laptop"));
    EXPECT_TRUE((*store_->FindKeyBySecret(a->secret))->revoked);
    EXPECT_FALSE((*store_->FindKeyBySecret(b->secret))->revoked);
}

TEST_F(StoreTest, RevokeUnknownKeyIsAnError) {
    // Verifies that revoking an unknown id or name is an error naming it.
    ASSERT_TRUE(store_->CreateKey("a", false));
    Status s = store_->RevokeKey("key_doesnotexist");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().message, "no key with id or name \"key_doesnotexist\"");
    EXPECT_FALSE(store_->RevokeKey(""));
}

TEST_F(StoreTest, StoresOnlyAHashOfTheSecret) {
    // Verifies that the hash differs from the secret, and that no SQLite file contains the
    // secret (while the hash is found, which shows the bytes read are the store's).
    auto a = store_->CreateKey("a", false);
    ASSERT_TRUE(a);
    const std::string hash = HashKeySecret(a->secret);
    EXPECT_NE(hash, a->secret);
    EXPECT_EQ(hash, base::Sha256Hex(a->secret));
    EXPECT_TRUE(base::IsLowerHex(hash, 64));
    EXPECT_EQ(hash, HashKeySecret(a->secret));  // deterministic
    EXPECT_NE(hash, HashKeySecret(a->secret + " "));

    const std::string bytes = AllDatabaseBytes();
    ASSERT_FALSE(bytes.empty());
    EXPECT_NE(bytes.find(hash), std::string::npos);
    EXPECT_EQ(bytes.find(a->secret), std::string::npos);
    EXPECT_EQ(bytes.find(a->secret.substr(10)), std::string::npos);  // the random part
    // The hint shows 7 of the 48 random hex digits; no longer run of the secret is stored.
    EXPECT_EQ(bytes.find(a->secret.substr(10, 12)), std::string::npos);
}

TEST_F(StoreTest, ReopeningKeepsKeysAndMigrationIsIdempotent) {
    // Verifies that keys survive closing and reopening (the migration runs again and is a no-op)
    // and that the schema version is recorded.
    auto a = store_->CreateKey("a", true);
    ASSERT_TRUE(a);
    ASSERT_TRUE(store_->RevokeKey("a"));
    auto b = store_->CreateKey("b", false);
    ASSERT_TRUE(b);
    store_.reset();
    for (int i = 0; i < 2; ++i) {
        store_ = Open();
        ASSERT_NE(store_, nullptr);
        auto list = store_->ListKeys();
        ASSERT_TRUE(list) << list.error().message;
        ASSERT_EQ(list->size(), 2u);
        auto fa = store_->FindKeyBySecret(a->secret);
        ASSERT_TRUE(fa && fa->has_value());
        EXPECT_TRUE((*fa)->revoked);
        EXPECT_TRUE((*fa)->management);
        store_.reset();
    }
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    EXPECT_EQ(sqlite3_column_int(st, 0), 2);  // one per migration
    sqlite3_finalize(st);
    sqlite3_close(db);
}

TEST_F(StoreTest, RefusesNewerSchema) {
    // Verifies that a store written by a newer Beacon is refused with a message saying so.
    store_.reset();
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
    auto r = OpenSqliteStore(path_);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("newer than this beacon understands"), std::string::npos)
        << r.error().message;
}

TEST_F(StoreTest, OpenFailsInMissingDirectory) {
    // Verifies that an unopenable path is an error naming it.
    const std::string bad = (dir_ / "missing" / "sub" / "beacon.db").string();
    auto r = OpenSqliteStore(bad);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find(bad), std::string::npos) << r.error().message;
}

// --- KeyCache ----------------------------------------------------------------------------------

// Forwards to a real store and counts lookups, to see when the cache answers by itself.
class CountingStore final : public Store {
  public:
    explicit CountingStore(Store& inner) : inner_(inner) {}
    Result<CreatedKey> CreateKey(std::string_view name, bool management) override {
        return inner_.CreateKey(name, management);
    }
    Result<std::vector<ApiKey>> ListKeys() override { return inner_.ListKeys(); }
    Status RevokeKey(std::string_view id_or_name) override { return inner_.RevokeKey(id_or_name); }
    Result<std::optional<ApiKey>> FindKeyBySecret(std::string_view secret) override {
        ++finds;
        return inner_.FindKeyBySecret(secret);
    }
    Result<bool> GetBroadcastEnabled(std::string_view w) override {
        return inner_.GetBroadcastEnabled(w);
    }
    Status SetBroadcastEnabled(std::string_view w, bool on) override {
        return inner_.SetBroadcastEnabled(w, on);
    }
    Result<std::vector<std::string>> WorkspacesWithBroadcast() override {
        return inner_.WorkspacesWithBroadcast();
    }
    Result<std::vector<StoredDestination>> ListDestinations(std::string_view w) override {
        return inner_.ListDestinations(w);
    }
    Result<std::optional<StoredDestination>> GetDestination(std::string_view id) override {
        return inner_.GetDestination(id);
    }
    Status PutDestination(const StoredDestination& d) override { return inner_.PutDestination(d); }
    Status DeleteDestination(std::string_view id) override { return inner_.DeleteDestination(id); }
    int finds = 0;

  private:
    Store& inner_;
};

void WaitPast(std::chrono::steady_clock::time_point t) {
    while (std::chrono::steady_clock::now() <= t) {
    }
}

TEST_F(StoreTest, KeyCacheAnswersActiveKeysFromMemory) {
    // Verifies that within the TTL a lookup is answered without a store query, and unknown
    // secrets are cached as misses.
    auto a = store_->CreateKey("a", false);
    ASSERT_TRUE(a);
    CountingStore counting(*store_);
    KeyCache cache(counting, std::chrono::hours(1));
    for (int i = 0; i < 3; ++i) {
        auto r = cache.Lookup(a->secret);
        ASSERT_TRUE(r);
        ASSERT_TRUE(r->has_value());
        EXPECT_EQ((*r)->id, a->key.id);
    }
    EXPECT_EQ(counting.finds, 1);
    for (int i = 0; i < 3; ++i) {
        auto r = cache.Lookup("sk-bcn-v1-unknown");
        ASSERT_TRUE(r);
        EXPECT_FALSE(r->has_value());
    }
    EXPECT_EQ(counting.finds, 2);
}

TEST_F(StoreTest, KeyCacheTellsManyKeysApart) {
    // Verifies that the per-thread memo of secret digests (64 slots) never answers one key for
    // another: more keys than slots, each looked up several times in turn, plus near misses
    // (same length, one byte changed) that must stay unknown.
    std::vector<CreatedKey> keys;
    for (int i = 0; i < 100; ++i) {
        auto k = store_->CreateKey("k" + std::to_string(i), false);
        ASSERT_TRUE(k);
        keys.push_back(*k);
    }
    KeyCache cache(*store_, std::chrono::hours(1));
    for (int round = 0; round < 3; ++round) {
        for (const auto& k : keys) {
            auto r = cache.Lookup(k.secret);
            ASSERT_TRUE(r);
            ASSERT_TRUE(r->has_value()) << k.key.name;
            EXPECT_EQ((*r)->id, k.key.id);
            std::string near = k.secret;
            near.back() = near.back() == 'A' ? 'B' : 'A';
            auto miss = cache.Lookup(near);
            ASSERT_TRUE(miss);
            EXPECT_FALSE(miss->has_value()) << near;
        }
    }
}

TEST_F(StoreTest, KeyCacheHidesRevokedKeys) {
    // Verifies that a key revoked before the first lookup is never returned.
    auto a = store_->CreateKey("a", false);
    ASSERT_TRUE(a);
    ASSERT_TRUE(store_->RevokeKey(a->key.id));
    KeyCache cache(*store_, std::chrono::hours(1));
    auto r = cache.Lookup(a->secret);
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->has_value());
}

TEST_F(StoreTest, KeyCacheSeesRevocationAfterTtl) {
    // Verifies that a key revoked after it was cached stays usable until the TTL expires (the
    // documented bound) and is hidden afterwards.
    auto a = store_->CreateKey("a", false);
    ASSERT_TRUE(a);
    CountingStore counting(*store_);
    const auto ttl = std::chrono::milliseconds(1);
    KeyCache cache(counting, ttl);
    KeyCache long_cache(*store_, std::chrono::hours(1));
    ASSERT_TRUE(long_cache.Lookup(a->secret)->has_value());
    auto before = cache.Lookup(a->secret);
    ASSERT_TRUE(before && before->has_value());
    const auto cached_at = std::chrono::steady_clock::now();

    ASSERT_TRUE(store_->RevokeKey(a->key.id));
    // Still cached by the long-lived cache: revocation is eventually visible, not instant.
    EXPECT_TRUE(long_cache.Lookup(a->secret)->has_value());

    WaitPast(cached_at + ttl);
    auto after = cache.Lookup(a->secret);
    ASSERT_TRUE(after);
    EXPECT_FALSE(after->has_value());
    EXPECT_EQ(counting.finds, 2);
}

TEST_F(StoreTest, DestinationsRoundTrip) {
    // Verifies destinations and the Broadcast switch are stored, listed per workspace, replaced
    // by id and deleted.
    StoredDestination d;
    d.id = "dst_1";
    d.workspace_id = "default";
    d.type = "langfuse";
    d.name = "prod";
    d.sampling_rate = 0.25;
    d.api_key_ids = {"key_a", "key_b"};
    d.public_key = "pk-lf-1";
    d.secret_sealed = std::string("\x00\x01sealed\xff", 9);
    d.base_url = "https://cloud.langfuse.com";
    d.created_at = 10;
    ASSERT_TRUE(store_->PutDestination(d).ok());
    auto got = store_->GetDestination("dst_1");
    ASSERT_TRUE(got.ok() && got->has_value());
    EXPECT_EQ((*got)->api_key_ids, d.api_key_ids);
    EXPECT_EQ((*got)->secret_sealed, d.secret_sealed);
    EXPECT_DOUBLE_EQ((*got)->sampling_rate, 0.25);
    d.name = "renamed";
    ASSERT_TRUE(store_->PutDestination(d).ok());
    EXPECT_EQ(store_->ListDestinations("default")->size(), 1u);
    EXPECT_EQ(store_->ListDestinations("default")->front().name, "renamed");
    EXPECT_TRUE(store_->ListDestinations("other")->empty());
    EXPECT_TRUE(store_->DeleteDestination("dst_1").ok());
    EXPECT_FALSE(store_->DeleteDestination("dst_1").ok());
    EXPECT_FALSE(*store_->GetBroadcastEnabled("default"));
    ASSERT_TRUE(store_->SetBroadcastEnabled("default", true).ok());
    EXPECT_TRUE(*store_->GetBroadcastEnabled("default"));
    EXPECT_EQ(*store_->WorkspacesWithBroadcast(), std::vector<std::string>{"default"});
}

}  // namespace
}  // namespace beacon::store
