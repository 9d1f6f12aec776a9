// Replays fuzz corpora without libFuzzer, so that the seeds (and every crash input added to
// them) run as regression tests with any compiler, also under ASan/UBSan in CI.
//
// Usage: beacon_fuzz_regression [--target NAME] PATH...
//   PATH is a corpus directory (every regular file in it, in name order) or one input file.
//   The fuzz target is NAME, or else comes from the directory name: "<name>_corpus" replays
//   through <name>_fuzz.cc (for a file, its parent directory's name is used).
// Exits non-zero when a path is missing, a directory is empty or the target is unknown; an
// input that breaks an invariant aborts, like it does under libFuzzer.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

// Each fuzz source is compiled for this binary with LLVMFuzzerTestOneInput renamed to
// BeaconFuzz_<name> (see CMakeLists.txt); fuzz_targets.inc lists the names.
#define BEACON_FUZZ_TARGET(name) extern "C" int BeaconFuzz_##name(const uint8_t*, size_t);
#include "fuzz_targets.inc"
#undef BEACON_FUZZ_TARGET

namespace {

namespace fs = std::filesystem;

struct Target {
    std::string_view name;
    int (*run)(const uint8_t*, size_t);
};

constexpr Target kTargets[] = {
#define BEACON_FUZZ_TARGET(name) {#name, &BeaconFuzz_##name},
#include "fuzz_targets.inc"
#undef BEACON_FUZZ_TARGET
};

const Target* FindTarget(std::string_view name) {
    for (const auto& t : kTargets) {
        if (t.name == name) return &t;
    }
    return nullptr;
}

// "chat_request_corpus" -> "chat_request".
std::string TargetFromDirectory(const fs::path& dir) {
    constexpr std::string_view kSuffix = "_corpus";
    std::string name = dir.filename().string();
    if (name.size() > kSuffix.size() &&
        name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0) {
        name.resize(name.size() - kSuffix.size());
    }
    return name;
}

bool RunFile(const Target& target, const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "cannot read %s\n", file.c_str());
        return false;
    }
    // An exactly sized heap copy, so that ASan sees any read past the end of the input.
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
    std::printf("%s: %s (%zu bytes)\n", std::string(target.name).c_str(), file.c_str(),
                bytes.size());
    std::fflush(stdout);
    auto data = std::make_unique<uint8_t[]>(bytes.size());
    std::copy(bytes.begin(), bytes.end(), data.get());
    target.run(data.get(), bytes.size());
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    std::string forced_target;
    std::vector<fs::path> paths;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--target" && i + 1 < argc) {
            forced_target = argv[++i];
        } else if (arg.rfind("--target=", 0) == 0) {
            forced_target = std::string(arg.substr(9));
        } else {
            paths.emplace_back(arg);
        }
    }
    if (paths.empty()) {
        std::fprintf(stderr, "usage: %s [--target NAME] CORPUS_DIR_OR_FILE...\ntargets:", argv[0]);
        for (const auto& t : kTargets) std::fprintf(stderr, " %s", std::string(t.name).c_str());
        std::fprintf(stderr, "\n");
        return 2;
    }
    size_t total = 0;
    for (const fs::path& path : paths) {
        std::error_code ec;
        const bool is_dir = fs::is_directory(path, ec);
        if (!is_dir && !fs::is_regular_file(path, ec)) {
            std::fprintf(stderr, "no such corpus directory or file: %s\n", path.c_str());
            return 1;
        }
        const fs::path dir = is_dir ? path : path.parent_path();
        const std::string name = forced_target.empty()
                                     ? TargetFromDirectory(fs::absolute(dir).lexically_normal())
                                     : forced_target;
        const Target* target = FindTarget(name);
        if (!target) {
            std::fprintf(stderr, "unknown fuzz target \"%s\" for %s (use --target)\n", name.c_str(),
                         path.c_str());
            return 1;
        }
        std::vector<fs::path> files;
        if (is_dir) {
            for (const auto& entry : fs::directory_iterator(path)) {
                if (entry.is_regular_file()) files.push_back(entry.path());
            }
            std::sort(files.begin(), files.end());
            if (files.empty()) {
                std::fprintf(stderr, "corpus directory %s is empty\n", path.c_str());
                return 1;
            }
        } else {
            files.push_back(path);
        }
        for (const auto& file : files) {
            if (!RunFile(*target, file)) return 1;
            ++total;
        }
    }
    std::printf("replayed %zu inputs without a failure\n", total);
    return 0;
}
