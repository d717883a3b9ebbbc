// Bad input for every subcommand: a missing input file, an unreadable or corrupt one, and a
// wrong column / label / mask name. Each must give exactly one line on stderr that names the
// file (or column) and the reason, exit 1 (2 for usage), and leave nothing half-written at
// the output path.

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "radprobe/core/files.hpp"
#include "test_support.hpp"

namespace radprobe {
namespace {

namespace fs = std::filesystem;
using test::q;
using test::run_cli;
using test::TempDir;

/// One bad invocation: the arguments (OUT stands for a fresh output path), the exit code and
/// what the one error line must name.
struct Case {
    std::string name;
    std::string args;
    int exit_code = 1;
    std::vector<std::string> names;  ///< substrings of the error line (file, column, reason)
    std::string out = "";  ///< the output path when it must be a given one ("" = a fresh temp)
};

class BadInput : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new TempDir();
        const auto synth =
            run_cli("synth --out " + q(root() / "ph") + " --n 24 --size 64 --seed 3 --threads 2");
        ASSERT_EQ(synth.exit_code, 0) << synth.err;
        const auto ext = run_cli("extract --model " + q(model()) + " --manifest " + q(manifest()) +
                                 " --pool cls,mean --out " + q(root() / "store") + " --threads 2");
        ASSERT_EQ(ext.exit_code, 0) << ext.err;
        const auto pre =
            run_cli("preprocess --model " + q(model()) + " " + q(root() / "ph" / first_image()) +
                    " --out " + q(root() / "px.npy"));
        ASSERT_EQ(pre.exit_code, 0) << pre.err;
        // Damaged inputs of every kind a subcommand reads.
        write_file_atomic(root() / "bad.png", std::string(100, '\x5a'));
        write_file_atomic(root() / "bad.npy", "\x93NUMPY\x01\x00garbage");
        write_file_atomic(root() / "bad.csv", std::string("\x00\x01\x02\xff", 4));
        write_file_atomic(root() / "bad.yaml", "data: [unclosed\n  - {");
        write_file_atomic(root() / "bad.sqlite", std::string(4096, '\x07'));
        write_file_atomic(root() / "noimage.csv", "path,patient_id\na.png,p1\n");
        fs::create_directories(root() / "badmodel");
        write_file_atomic(root() / "badmodel" / "config.json", "{\"model_type\": ");
        write_file_atomic(root() / "scores.csv", "y,s\n1,0.9\n0,0.1\n1,0.8\n0,0.3\n");
    }
    static void TearDownTestSuite() {
        delete dir_;
        dir_ = nullptr;
    }
    static fs::path root() { return dir_->path(); }
    static fs::path manifest() { return root() / "ph" / "manifest.csv"; }
    static fs::path model() { return test::encoder_fixture("dinov2"); }
    static fs::path missing() { return root() / "no_such_file.csv"; }
    static std::string first_image() {
        const std::string text = read_file_text(manifest());
        const auto start = text.find('\n') + 1;
        return text.substr(start, text.find(',', start) - start);
    }

    /// Runs the case; OUT in its arguments is replaced by a fresh path that must not exist
    /// afterwards (nothing half-written), nor any temporary file next to it.
    static void check(const Case& c) {
        SCOPED_TRACE(c.name);
        TempDir out_parent;
        const fs::path out = c.out.empty() ? out_parent / "out" : fs::path(c.out);
        std::string args = c.args;
        for (auto at = args.find("OUT"); at != std::string::npos; at = args.find("OUT")) {
            args.replace(at, 3, q(out));
        }
        const auto r = run_cli(args);
        EXPECT_EQ(r.exit_code, c.exit_code) << args << "\n" << r.err;
        std::size_t lines = 0;
        for (char ch : r.err) {
            lines += ch == '\n';
        }
        EXPECT_EQ(lines, 1u) << "stderr must be one line:\n" << r.err;
        EXPECT_NE(r.err.find(c.exit_code == 2 ? "usage error" : "error"), std::string::npos)
            << r.err;
        for (const auto& n : c.names) {
            EXPECT_NE(r.err.find(n), std::string::npos)
                << "error does not name '" << n << "': " << r.err;
        }
        EXPECT_FALSE(fs::exists(out)) << "half-written output: " << out;
        for (const auto& e : fs::directory_iterator(out_parent.path())) {
            ADD_FAILURE() << "left behind: " << e.path();
        }
    }

    static TempDir* dir_;
};
TempDir* BadInput::dir_ = nullptr;

TEST_F(BadInput, ImagingAndDataset) {
    const std::string m = q(manifest());
    const std::vector<Case> cases = {
        {"decode missing",
         "decode " + q(missing()) + " --out OUT",
         1,
         {"no_such_file", "not found"}},
        {"decode corrupt",
         "decode " + q(root() / "bad.png") + " --out OUT",
         1,
         {"bad.png", "not a PNG, JPEG, TIFF or DICOM file (no known signature)"}},
        {"decode bad stage",
         "decode " + q(root() / "bad.png") + " --out OUT --stage nope",
         2,
         {"--stage"}},
        {"validate missing", "validate " + q(missing()), 1, {"no_such_file"}},
        {"validate corrupt", "validate " + q(root() / "bad.csv"), 1, {"bad.csv"}},
        {"validate no image column",
         "validate " + q(root() / "noimage.csv"),
         1,
         {"noimage.csv", "image"}},
        {"split missing",
         "split " + q(missing()) + " --out OUT --val 0.1 --test 0.2",
         1,
         {"no_such_file", "not found"},
         (root() / "split.csv").string()},
        {"split wrong stratify column",
         "split " + m + " --out OUT --val 0.1 --test 0.2 --stratify no_such_col",
         1,
         {"no_such_col"},
         (root() / "ph" / "split.csv").string()},
        {"manifest missing table",
         "manifest --from " + q(missing()) + " --image-col path --patient-col patient_id --out OUT",
         1,
         {"no_such_file"}},
        {"manifest wrong column",
         "manifest --from " + q(root() / "scores.csv") +
             " --image-col no_such_col --patient-col y --out OUT",
         1,
         {"no_such_col"}},
        {"manifest corrupt table",
         "manifest --from " + q(root() / "bad.csv") +
             " --image-col path --patient-col patient_id --out OUT",
         1,
         {"bad.csv"}},
    };
    for (const auto& c : cases) {
        check(c);
    }
}

TEST_F(BadInput, Statistics) {
    const std::vector<Case> cases = {
        {"stats roc missing",
         "stats roc --csv " + q(missing()) + " --label y --score s",
         1,
         {"no_such_file"}},
        {"stats roc wrong label",
         "stats roc --csv " + q(root() / "scores.csv") + " --label nope --score s",
         1,
         {"scores.csv", "nope"}},
        {"stats roc corrupt",
         "stats roc --csv " + q(root() / "bad.csv") + " --label y --score s",
         1,
         {"bad.csv"}},
        {"stats seg missing",
         "stats seg --pred " + q(root() / "no_pred") + " --truth " + q(root() / "ph" / "masks"),
         1,
         {"no_pred"}},
        {"stats fdr missing", "stats fdr --csv " + q(missing()) + " --p p", 1, {"no_such_file"}},
    };
    for (const auto& c : cases) {
        check(c);
    }
}

TEST_F(BadInput, Encoders) {
    const std::string mo = q(model());
    const std::vector<Case> cases = {
        {"models missing",
         "models " + q(root() / "no_model"),
         1,
         {"model directory", "no_model", "not found"}},
        {"models corrupt config", "models " + q(root() / "badmodel"), 1, {"config.json"}},
        {"preprocess missing image",
         "preprocess --model " + mo + " " + q(missing()) + " --out OUT",
         1,
         {"no_such_file"}},
        {"preprocess corrupt image",
         "preprocess --model " + mo + " " + q(root() / "bad.png") + " --out OUT",
         1,
         {"bad.png", "no known signature"}},
        {"preprocess missing model",
         "preprocess --model " + q(root() / "no_model") + " " + q(root() / "bad.png") +
             " --out OUT",
         1,
         {"no_model"}},
        {"tokens missing pixels",
         "tokens --model " + mo + " --pixel-values " + q(root() / "no.npy") + " --out OUT",
         1,
         {"no.npy"}},
        {"tokens corrupt pixels",
         "tokens --model " + mo + " --pixel-values " + q(root() / "bad.npy") + " --out OUT",
         1,
         {"bad.npy"}},
        {"tokens missing model",
         "tokens --model " + q(root() / "no_model") + " --pixel-values " + q(root() / "px.npy") +
             " --out OUT",
         1,
         {"model directory", "no_model", "not found"}},
        {"extract missing manifest",
         "extract --model " + mo + " --manifest " + q(missing()) + " --out OUT",
         1,
         {"no_such_file"}},
        {"extract missing model",
         "extract --model " + q(root() / "no_model") + " --manifest " + q(manifest()) +
             " --out OUT",
         1,
         {"model directory", "no_model", "not found"}},
        {"extract corrupt manifest",
         "extract --model " + mo + " --manifest " + q(root() / "bad.csv") + " --out OUT",
         1,
         {"bad.csv"}},
    };
    for (const auto& c : cases) {
        check(c);
    }
}

TEST_F(BadInput, Adaptation) {
    const std::string m = q(manifest());
    const std::string st = q(root() / "store");
    const std::vector<Case> cases = {
        {"probe missing store",
         "probe --store " + q(root() / "no_store") + " --manifest " + m +
             " --label cardiomegaly --out OUT",
         1,
         {"no_store"}},
        {"probe wrong label",
         "probe --store " + st + " --manifest " + m + " --label nope --out OUT",
         1,
         {"nope"}},
        {"train missing store",
         "train --head mlp --store " + q(root() / "no_store") + " --manifest " + m +
             " --label cardiomegaly --out OUT",
         1,
         {"no_store"}},
        {"train wrong label",
         "train --head mlp --store " + st + " --manifest " + m + " --label nope --out OUT",
         1,
         {"nope"}},
        {"finetune missing model",
         "finetune --model " + q(root() / "no_model") + " --manifest " + m +
             " --label cardiomegaly --out OUT",
         1,
         {"no_model"}},
        {"finetune missing manifest",
         "finetune --model " + q(model()) + " --manifest " + q(missing()) +
             " --label cardiomegaly --out OUT",
         1,
         {"no_such_file"}},
        {"finetune wrong label",
         "finetune --model " + q(model()) + " --manifest " + m + " --label nope --out OUT",
         1,
         {"nope"}},
        {"baseline wrong label",
         "baseline --task cls --manifest " + m + " --label nope --out OUT",
         1,
         {"nope"}},
        {"baseline missing manifest",
         "baseline --task cls --manifest " + q(missing()) + " --label cardiomegaly --out OUT",
         1,
         {"no_such_file"}},
        {"segment wrong mask",
         "segment --model " + q(model()) + " --manifest " + m + " --mask nope --out OUT",
         1,
         {"nope"}},
        {"segment missing manifest",
         "segment --model " + q(model()) + " --manifest " + q(missing()) +
             " --mask heart --out OUT",
         1,
         {"no_such_file"}},
    };
    for (const auto& c : cases) {
        check(c);
    }
}

TEST_F(BadInput, AnalysesResultsAndRuns) {
    const std::vector<Case> cases = {
        {"analyze perturb missing manifest",
         "analyze perturb --model " + q(model()) + " --manifest " + q(missing()) + " --out OUT",
         1,
         {"no_such_file"}},
        {"analyze lesions missing manifest",
         "analyze lesions --model " + q(model()) + " --manifest " + q(missing()) +
             " --label cardiomegaly --out OUT",
         1,
         {"no_such_file"}},
        {"results missing db", "results " + q(root() / "no.sqlite"), 1, {"no.sqlite"}},
        {"results corrupt db", "results " + q(root() / "bad.sqlite"), 1, {"bad.sqlite"}},
        {"report missing db", "report " + q(root() / "no.sqlite") + " --out OUT", 1, {"no.sqlite"}},
        {"report corrupt db",
         "report " + q(root() / "bad.sqlite") + " --out OUT",
         1,
         {"bad.sqlite"}},
        {"run missing config", "run " + q(root() / "no.yaml"), 1, {"no.yaml"}},
        {"run corrupt config", "run " + q(root() / "bad.yaml"), 1, {"bad.yaml"}},
    };
    for (const auto& c : cases) {
        check(c);
    }
}

}  // namespace
}  // namespace radprobe
