#include "admin/secrets.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/crypto.h"
#include "base/ids.h"

namespace beacon::admin {

Result<SecretBox> SecretBox::Open(const std::string& data_dir) {
    std::string key;
    if (const char* env = std::getenv("BEACON_MASTER_KEY"); env && *env) {
        if (!base::HexDecode(env, &key) || key.size() != 32) {
            return Error{"BEACON_MASTER_KEY: expected 64 hex characters (32 bytes)"};
        }
        return SecretBox(std::move(key));
    }
    const std::string path = (std::filesystem::path(data_dir) / "master.key").string();
    // O_EXCL: two processes starting at once must not each write their own key.
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        const std::string hex = base::RandomHex(32) + "\n";
        const bool written =
            ::write(fd, hex.data(), hex.size()) == static_cast<ssize_t>(hex.size());
        ::fsync(fd);
        ::close(fd);
        if (!written) return Error{"cannot write " + path};
    } else if (errno != EEXIST) {
        return Error{"cannot create " + path + ": " + std::strerror(errno)};
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
        return Error{path + " is readable by other users; run: chmod 600 " + path};
    }
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    std::string hex = text.str();
    while (!hex.empty() && (hex.back() == '\n' || hex.back() == '\r' || hex.back() == ' '))
        hex.pop_back();
    if (!base::HexDecode(hex, &key) || key.size() != 32) {
        return Error{path + ": expected 64 hex characters"};
    }
    return SecretBox(std::move(key));
}

std::string SecretBox::Seal(std::string_view secret, std::string_view row_id) const {
    return base::SealAesGcm(key_, secret, row_id);
}

Result<std::string> SecretBox::Unseal(std::string_view sealed, std::string_view row_id) const {
    std::string plain;
    if (!base::OpenAesGcm(key_, sealed, row_id, &plain)) {
        return Error{"cannot decrypt a stored secret: was the master key changed?"};
    }
    return plain;
}

std::string MaskSecret(std::string_view secret) {
    if (secret.size() < 12) return "...";
    const size_t prefix = secret.rfind("sk-lf-", 0) == 0 ? 6 : 3;
    return std::string(secret.substr(0, prefix)) + "..." +
           std::string(secret.substr(secret.size() - 4));
}

}  // namespace beacon::admin
