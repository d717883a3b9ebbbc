// Replays files through a libFuzzer target without libFuzzer: the regression driver ctest runs
// (built by the normal CMake build). Each argument is a file or a folder (its regular files, in
// name order); the process aborts on the first input the target rejects, naming it.
//   fuzz_replay_<target> fuzz/<target>/corpus fuzz/<target>/regressions

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace fs = std::filesystem;

namespace {

std::vector<fs::path> inputs_of(const fs::path& arg) {
    std::vector<fs::path> files;
    if (fs::is_directory(arg)) {
        for (const auto& entry : fs::directory_iterator(arg)) {
            if (entry.is_regular_file() && entry.path().filename().string()[0] != '.' &&
                entry.path().filename() != "README.md") {
                files.push_back(entry.path());
            }
        }
        std::sort(files.begin(), files.end());
    } else if (fs::is_regular_file(arg)) {
        files.push_back(arg);
    } else {
        std::fprintf(stderr, "replay: %s: no such file or folder\n", arg.string().c_str());
        std::exit(2);
    }
    return files;
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t n = 0;
    for (int i = 1; i < argc; ++i) {
        for (const auto& file : inputs_of(argv[i])) {
            std::ifstream in(file, std::ios::binary);
            const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                          std::istreambuf_iterator<char>());
            std::fprintf(stderr, "replay: %s\n", file.string().c_str());
            LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                   bytes.size());
            ++n;
        }
    }
    std::printf("replay: %zu inputs, no finding\n", n);
    return n > 0 ? 0 : 1;
}
