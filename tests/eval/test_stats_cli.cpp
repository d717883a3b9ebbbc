// `radprobe stats roc|seg|fdr` as a user runs it: JSON contract of DESIGN.md, values against
// the pROC / scipy / R goldens (1e-9; JSON prints 17 significant digits), determinism, and
// one-line errors with exit codes 1 (bad data) and 2 (bad usage).

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "eval_goldens.hpp"

namespace radprobe::test {
namespace {

using nlohmann::json;

std::string data(const std::string& name) {
    return "'" + (golden_dir() / ("data_" + name + ".csv")).string() + "'";
}

json run_json(const std::string& args) {
    const CliResult r = run_cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(count_lines(r.out), 1) << r.out;
    return json::parse(r.out);
}

TEST(StatsRoc, DelongJsonMatchesProc) {
    const Goldens proc("proc_goldens.csv");
    const json j = run_json("stats roc --csv " + data("ties") + " --label label --score score1");
    EXPECT_EQ(j["n"], 60);
    EXPECT_NEAR(j["auc"].get<double>(), proc.at("ties", "auc_score1"), 1e-9);
    ASSERT_EQ(j["ci"].size(), 2u);
    EXPECT_NEAR(j["ci"][0].get<double>(), proc.at("ties", "delong_ci_lo_score1"), 1e-9);
    EXPECT_NEAR(j["ci"][1].get<double>(), proc.at("ties", "delong_ci_hi_score1"), 1e-9);
    EXPECT_EQ(j["ci_method"], "delong");
    EXPECT_FALSE(j.contains("delong"));
}

TEST(StatsRoc, TwoScoresAddThePairedDelongTest) {
    const Goldens proc("proc_goldens.csv");
    const json j = run_json("stats roc --csv " + data("imbalance") +
                            " --label label --score score1 --score score2 --level 0.9");
    EXPECT_NEAR(j["auc"].get<double>(), proc.at("imbalance", "auc_score1"), 1e-9);
    EXPECT_NEAR(j["auc2"].get<double>(), proc.at("imbalance", "auc_score2"), 1e-9);
    EXPECT_NEAR(j["ci"][0].get<double>(), proc.at("imbalance", "delong_ci90_lo_score1"), 1e-9);
    EXPECT_NEAR(j["delong"]["z"].get<double>(), proc.at("imbalance", "paired_z"), 1e-9);
    EXPECT_NEAR(j["delong"]["p"].get<double>(), proc.at("imbalance", "paired_p"), 1e-9);
    EXPECT_NEAR(j["delong"]["auc_diff"].get<double>(),
                proc.at("imbalance", "auc_score1") - proc.at("imbalance", "auc_score2"), 1e-9);
}

TEST(StatsRoc, ClusteredBootstrapIsDeterministicForAnyThreadCount) {
    TempDir tmp;
    {
        // ties data with a patient column (pairs of rows share a patient).
        const CsvTable t = CsvTable::read(golden_dir() / "data_ties.csv");
        std::ofstream f(tmp / "pred.csv");
        f << "label,score1,score2,patient\n";
        for (std::size_t r = 0; r < t.num_rows(); ++r) {
            f << t.rows()[r][0] << "," << t.rows()[r][1] << "," << t.rows()[r][2] << ",p" << r / 2
              << "\n";
        }
    }
    const std::string base = "stats roc --csv '" + (tmp / "pred.csv").string() +
                             "' --label label --score score1 --score score2 --cluster patient "
                             "--ci bootstrap --n-boot 500 --seed 7";
    const CliResult a = run_cli(base + " --threads 1");
    const CliResult b = run_cli(base + " --threads 2");
    ASSERT_EQ(a.exit_code, 0) << a.err;
    EXPECT_EQ(a.out, b.out);
    const json j = json::parse(a.out);
    EXPECT_EQ(j["n_clusters"], 30);
    EXPECT_EQ(j["seed"], 7);
    EXPECT_EQ(j["n_boot"], 500);
    EXPECT_EQ(j["ci_method"], "bootstrap-percentile");
    EXPECT_LT(j["ci"][0].get<double>(), j["auc"].get<double>());
    EXPECT_GT(j["ci"][1].get<double>(), j["auc"].get<double>());
    EXPECT_TRUE(j.contains("delong"));
    EXPECT_TRUE(j.contains("bootstrap_diff"));
    const CliResult c = run_cli(base + " --seed 8");
    EXPECT_NE(a.out, c.out);
}

TEST(StatsRoc, BadInputsGiveOneLineErrorsAndExitCodes) {
    TempDir tmp;
    {
        std::ofstream f(tmp / "bad.csv");
        f << "y,s,t\n1,0.5,0.1\n0,0.2,nan\n2,0.3,0.4\n";
    }
    const std::string csv = "'" + (tmp / "bad.csv").string() + "'";
    CliResult r = run_cli("stats roc --csv " + csv + " --label y --score s");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(count_lines(r.err), 1);
    EXPECT_NE(r.err.find("bad.csv:4: column 'y' value '2' is not a binary label"),
              std::string::npos)
        << r.err;
    r = run_cli("stats roc --csv " + data("ties") + " --label label --score nope");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("nope"), std::string::npos) << r.err;
    r = run_cli("stats roc --csv " + data("ties") + " --label label --score score1 --level 1.5");
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("--level"), std::string::npos) << r.err;
    r = run_cli("stats roc --csv " + data("ties") + " --label label --score score1 --ci magic");
    EXPECT_EQ(r.exit_code, 2);
    r = run_cli("stats roc --csv " + data("ties") +
                " --label label --score score1 --cluster label");
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("--cluster needs --ci bootstrap"), std::string::npos) << r.err;
    r = run_cli("stats roc --csv " + data("ties") +
                " --label label --score score1 --score score2 --score prob");
    EXPECT_EQ(r.exit_code, 2);
    {
        std::ofstream f(tmp / "nan.csv");
        f << "y,s\n1,0.5\n0,nan\n";
    }
    r = run_cli("stats roc --csv '" + (tmp / "nan.csv").string() + "' --label y --score s");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("nan.csv:3: column 's' value 'nan' is not a finite score"),
              std::string::npos)
        << r.err;
}

TEST(StatsSeg, MaskFoldersMatchScipyGoldensAndPatientsCluster) {
    const Goldens g("seg_goldens.csv");
    const std::vector<std::string> cases = {"border_rects", "disk_shift", "missed_component",
                                            "noisy_blobs", "single_pixels"};
    double dice = 0, hd95 = 0;
    for (const auto& c : cases) {
        dice += g.at(c + "@0.5x0.8", "dice");
        hd95 += g.at(c + "@0.5x0.8", "hd95");
    }
    TempDir tmp;
    {
        std::ofstream f(tmp / "patients.csv");
        f << "image,patient_id\n";
        for (std::size_t i = 0; i < cases.size(); ++i) {
            f << "masks/" << cases[i] << ".png,P" << i % 2 << "\n";
        }
    }
    const std::string args = "stats seg --pred '" + (golden_dir() / "masks/pred").string() +
                             "' --truth '" + (golden_dir() / "masks/truth").string() +
                             "' --spacing 0.5,0.8 --n-boot 300 --patients '" +
                             (tmp / "patients.csv").string() + "' --per-image '" +
                             (tmp / "per_image.csv").string() + "'";
    const json j = run_json(args);
    EXPECT_EQ(j["n_images"], 5);
    EXPECT_EQ(j["n_clusters"], 2);
    EXPECT_NEAR(j["metrics"]["dice"]["mean"].get<double>(), dice / 5, 1e-9);
    EXPECT_NEAR(j["metrics"]["hd95"]["mean"].get<double>(), hd95 / 5, 1e-9);
    EXPECT_EQ(j["metrics"]["hd95"]["n"], 5);
    const CsvTable per_image = CsvTable::read(tmp / "per_image.csv");
    ASSERT_EQ(per_image.num_rows(), 5u);
    EXPECT_EQ(per_image.rows()[0][0], "border_rects.png");
    EXPECT_NEAR(per_image.numeric_column("hd95")[0], g.at("border_rects@0.5x0.8", "hd95"), 1e-12);
}

TEST(StatsSeg, MissingPredictionIsAnErrorNamingTheFile) {
    TempDir tmp;
    std::filesystem::create_directories(tmp / "pred");
    std::filesystem::copy_file(golden_dir() / "masks/pred/disk_shift.png",
                               tmp / "pred/disk_shift.png");
    const CliResult r = run_cli("stats seg --pred '" + (tmp / "pred").string() + "' --truth '" +
                                (golden_dir() / "masks/truth").string() + "'");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(count_lines(r.err), 1);
    EXPECT_NE(r.err.find("border_rects.png: missing"), std::string::npos) << r.err;
}

TEST(StatsFdr, AdjustedColumnsMatchRPAdjust) {
    const Goldens proc("proc_goldens.csv");
    TempDir tmp;
    {
        std::ofstream f(tmp / "p.csv");
        f << "test,p\n";
        for (int i = 0; i < 12; ++i) {
            f << "t" << i << "," << std::setprecision(17)
              << proc.at("p_values", "p_" + std::to_string(i)) << "\n";
        }
    }
    const CliResult r = run_cli("stats fdr --csv '" + (tmp / "p.csv").string() + "' --out '" +
                                (tmp / "adj.csv").string() + "'");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const CsvTable t = CsvTable::read(tmp / "adj.csv");
    const auto bh = t.numeric_column("p_bh");
    const auto holm = t.numeric_column("p_holm");
    for (int i = 0; i < 12; ++i) {
        EXPECT_NEAR(bh[i], proc.at("p_values", "bh_" + std::to_string(i)), 1e-15);
        EXPECT_NEAR(holm[i], proc.at("p_values", "holm_" + std::to_string(i)), 1e-15);
    }
    EXPECT_EQ(t.rows()[3][0], "t3");
    {
        std::ofstream f(tmp / "bad.csv");
        f << "p\n0.5\n1.2\n";
    }
    const CliResult bad = run_cli("stats fdr --csv '" + (tmp / "bad.csv").string() + "'");
    EXPECT_EQ(bad.exit_code, 1);
    EXPECT_NE(bad.err.find("bad.csv:3"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace radprobe::test
