#include "base/gzip.h"

#include <zlib.h>

#include <stdexcept>

namespace beacon::base {

namespace {

// One deflate state per thread and level, reset between uses: allocating and clearing zlib's
// ~256 KiB of state for every export batch showed up in profiles.
struct Deflater {
    z_stream zs{};
    int level = -1;
    ~Deflater() {
        if (level >= 0) deflateEnd(&zs);
    }
    z_stream& For(int wanted) {
        if (level != wanted) {
            if (level >= 0) deflateEnd(&zs);
            zs = z_stream{};
            // 15 window bits + 16 selects the gzip wrapper.
            if (deflateInit2(&zs, wanted, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
                level = -1;
                throw std::runtime_error("zlib: deflateInit2 failed");
            }
            level = wanted;
        } else {
            deflateReset(&zs);
        }
        return zs;
    }
};

}  // namespace

std::string Gzip(std::string_view data, int level) {
    thread_local Deflater deflater;
    z_stream& zs = deflater.For(level);
    std::string out;
    out.resize(deflateBound(&zs, static_cast<uLong>(data.size())) + 32);
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    zs.avail_in = static_cast<uInt>(data.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    const int rc = deflate(&zs, Z_FINISH);
    if (rc != Z_STREAM_END) throw std::runtime_error("zlib: deflate failed");
    out.resize(zs.total_out);
    return out;
}

std::string Gunzip(std::string_view data, bool* ok) {
    *ok = false;
    z_stream zs{};
    if (inflateInit2(&zs, 15 + 16) != Z_OK) return {};
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    zs.avail_in = static_cast<uInt>(data.size());
    std::string out;
    char buf[16384];
    int rc = Z_OK;
    while (rc == Z_OK) {
        zs.next_out = reinterpret_cast<Bytef*>(buf);
        zs.avail_out = sizeof(buf);
        rc = inflate(&zs, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) break;
        out.append(buf, sizeof(buf) - zs.avail_out);
    }
    inflateEnd(&zs);
    *ok = (rc == Z_STREAM_END);
    return out;
}

}  // namespace beacon::base
