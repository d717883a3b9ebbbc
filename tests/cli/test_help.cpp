// The help texts: `radprobe --help` lists every subcommand on one short line; a subcommand's
// own --help carries its paragraph (e.g. what `validate` checks).

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace radprobe {
namespace {

using test::run_cli;

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        out.push_back(line);
    }
    return out;
}

// The subcommand list: the lines after the "Subcommands:" heading (CLI11 2.x; "SUBCOMMANDS:" in
// 1.x).
std::vector<std::string> subcommand_lines(const std::string& help) {
    std::vector<std::string> out;
    bool in_list = false;
    for (const auto& line : lines_of(help)) {
        if (line.rfind("Subcommands:", 0) == 0 || line.rfind("SUBCOMMANDS:", 0) == 0) {
            in_list = true;
        } else if (in_list && !line.empty()) {
            out.push_back(line);
        }
    }
    return out;
}

TEST(Help, TopLevelListHasOneShortLinePerSubcommand) {
    const auto r = run_cli("--help");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto list = subcommand_lines(r.out);
    ASSERT_GE(list.size(), 20u) << r.out;
    for (const char* cmd : {"validate", "split", "manifest", "segment", "run", "demo"}) {
        int hits = 0;
        for (const auto& line : list) {
            std::istringstream words(line);
            std::string first;
            words >> first;
            hits += first == cmd;
        }
        EXPECT_EQ(hits, 1) << cmd << " should be listed once:\n" << r.out;
    }
    for (const auto& line : list) {
        EXPECT_LE(line.size(), 110u) << "a paragraph in the top-level list: " << line;
    }
}

TEST(Help, SubcommandHelpKeepsItsParagraph) {
    struct Want {
        const char* cmd;
        const char* text;
    };
    for (const Want& w :
         {Want{"validate", "(leakage)"}, Want{"split", "prevalence is kept in every split"},
          Want{"manifest", "Example (NIH ChestX-ray14"}}) {
        const auto r = run_cli(std::string(w.cmd) + " --help");
        ASSERT_EQ(r.exit_code, 0) << w.cmd << ": " << r.err;
        EXPECT_NE(r.out.find(w.text), std::string::npos) << w.cmd << ":\n" << r.out;
    }
    // The long text follows the options; the first line stays the one-line summary.
    const auto v = run_cli("validate --help");
    const auto lines = lines_of(v.out);
    ASSERT_FALSE(lines.empty());
    EXPECT_LE(lines.front().size(), 110u) << lines.front();
    EXPECT_LT(v.out.find("--no-images"), v.out.find("missing or undecodable images")) << v.out;
}

}  // namespace
}  // namespace radprobe
