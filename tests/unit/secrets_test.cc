#include "admin/secrets.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "base/crypto.h"
#include "base/ids.h"
#include "broadcast/destinations/langfuse/connection_test.h"

namespace beacon::admin {
namespace {

std::string Key() { return std::string(32, '\x07'); }

// Verifies a sealed secret opens with the same key and row, and never contains the plaintext.
TEST(SecretBox, SealsAndOpens) {
    auto box = SecretBox::FromKeyForTest(Key());
    const std::string secret = "sk-lf-0123456789abcdef";
    const std::string sealed = box.Seal(secret, "dst_1");
    EXPECT_EQ(sealed.find(secret), std::string::npos);
    EXPECT_EQ(sealed.size(), secret.size() + 12 + 16);
    auto opened = box.Unseal(sealed, "dst_1");
    ASSERT_TRUE(opened.ok());
    EXPECT_EQ(opened.value(), secret);
    // Random nonces: sealing twice gives different bytes.
    EXPECT_NE(box.Seal(secret, "dst_1"), sealed);
}

// Verifies tampering, another row id or another key are all detected.
TEST(SecretBox, RejectsTamperingAndMoves) {
    auto box = SecretBox::FromKeyForTest(Key());
    std::string sealed = box.Seal("sk-lf-secret-value", "dst_1");
    EXPECT_FALSE(box.Unseal(sealed, "dst_2").ok());
    auto other = SecretBox::FromKeyForTest(std::string(32, '\x08'));
    EXPECT_FALSE(other.Unseal(sealed, "dst_1").ok());
    sealed[15] ^= 1;
    EXPECT_FALSE(box.Unseal(sealed, "dst_1").ok());
    EXPECT_FALSE(box.Unseal("short", "dst_1").ok());
}

// Verifies the master key file is created with mode 0600 and reused on the next open.
TEST(SecretBox, MasterKeyFile) {
    unsetenv("BEACON_MASTER_KEY");
    const auto dir =
        std::filesystem::temp_directory_path() / ("beacon-secrets-" + base::RandomHex(6));
    std::filesystem::create_directories(dir);
    auto first = SecretBox::Open(dir.string());
    ASSERT_TRUE(first.ok()) << first.error().message;
    struct stat st {};
    ASSERT_EQ(::stat((dir / "master.key").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    const std::string sealed = first->Seal("sk-lf-abcdefghijkl", "dst_9");
    auto second = SecretBox::Open(dir.string());
    ASSERT_TRUE(second.ok());
    EXPECT_EQ(second->Unseal(sealed, "dst_9").value(), "sk-lf-abcdefghijkl");
    // A key file others can read is refused.
    ::chmod((dir / "master.key").c_str(), 0644);
    EXPECT_FALSE(SecretBox::Open(dir.string()).ok());
    std::filesystem::remove_all(dir);
}

// Verifies BEACON_MASTER_KEY must be 64 hex characters and is used instead of a file.
TEST(SecretBox, MasterKeyFromEnvironment) {
    const auto dir =
        std::filesystem::temp_directory_path() / ("beacon-secrets-" + base::RandomHex(6));
    std::filesystem::create_directories(dir);
    setenv("BEACON_MASTER_KEY", "not hex", 1);
    EXPECT_FALSE(SecretBox::Open(dir.string()).ok());
    setenv("BEACON_MASTER_KEY", std::string(64, 'a').c_str(), 1);
    EXPECT_TRUE(SecretBox::Open(dir.string()).ok());
    EXPECT_FALSE(std::filesystem::exists(dir / "master.key"));
    unsetenv("BEACON_MASTER_KEY");
    std::filesystem::remove_all(dir);
}

// Verifies masking shows a recognisable prefix and the last four characters only.
TEST(SecretBox, Masking) {
    EXPECT_EQ(MaskSecret("sk-lf-1234567890abcd"), "sk-lf-...abcd");
    EXPECT_EQ(MaskSecret("secret-0123456789"), "sec...6789");
    EXPECT_EQ(MaskSecret("sk-lf-good"), "...");  // too short to show anything safely
}

// Verifies the version rule that picks the OTLP transport (Langfuse 3.22 and later).
TEST(ConnectionTest, OtlpFromVersion) {
    using broadcast::langfuse::HasOtlpEndpoint;
    EXPECT_TRUE(HasOtlpEndpoint("3.22.0"));
    EXPECT_TRUE(HasOtlpEndpoint("3.120.1"));
    EXPECT_TRUE(HasOtlpEndpoint("v4.0.0"));
    EXPECT_FALSE(HasOtlpEndpoint("3.21.9"));
    EXPECT_FALSE(HasOtlpEndpoint("2.95.1"));
    EXPECT_TRUE(HasOtlpEndpoint("unknown"));
}

}  // namespace
}  // namespace beacon::admin
