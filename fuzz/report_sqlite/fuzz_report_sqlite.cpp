// libFuzzer target for `radprobe report` on a foreign or damaged SQLite file: the input is
// written as results.sqlite, opened the way the command opens it (ResultsDb::open_existing) and
// read all the way to the rendered Markdown, HTML (with stand-in Vega files) and leaderboard
// CSV. Any input must render or throw InputError — never crash, hang, trip ASan/UBSan or throw
// anything else (an InternalError from a broken assumption about the database is a finding).

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>

#include "../common/fuzz_support.hpp"
#include "radprobe/report/report.hpp"
#include "radprobe/results/results.hpp"

namespace {

namespace fs = std::filesystem;

// Stand-ins for vega, vega-lite and vega-embed: the report inlines whatever the files hold.
const fs::path& vega_dir() {
    static const fs::path dir = [] {
        const fs::path d = radprobe::fuzz::scratch_dir() / "node_modules";
        for (const char* f : {"vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js",
                              "vega-embed/build/vega-embed.min.js"}) {
            fs::create_directories((d / f).parent_path());
            const std::string js = "/* stand-in */\n";
            radprobe::fuzz::write_bytes(d / f, reinterpret_cast<const std::uint8_t*>(js.data()),
                                        js.size());
        }
        return d;
    }();
    return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace results = radprobe::results;
    namespace report = radprobe::report;
    const fs::path db_path = radprobe::fuzz::scratch_dir() / "results.sqlite";
    std::error_code ignored;
    for (const char* suffix : {"-journal", "-wal", "-shm"}) {
        fs::remove(db_path.string() + suffix, ignored);  // left by the previous input
    }
    radprobe::fuzz::write_bytes(db_path, data, size);
    radprobe::fuzz::expect_documented_errors([&] {
        results::ResultsDb db = results::ResultsDb::open_existing(db_path);
        report::ReportOptions options;
        options.vega_dir = vega_dir();
        radprobe::fuzz::expect_documented_errors(
            [&] { (void)report::render_report_markdown(db, options); });
        radprobe::fuzz::expect_documented_errors(
            [&] { (void)report::render_report_html(db, options); });
        radprobe::fuzz::expect_documented_errors([&] {
            (void)results::format_leaderboard(db.leaderboard(), results::TableFormat::kCsv);
        });
    });
    return 0;
}
