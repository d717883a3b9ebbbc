#pragma once
// The subcommand table. Each subcommand lives in its own cmd_<name>.cpp and provides a setup
// function: it declares its options on `app` and returns the function that runs it (called only
// after every argument has been parsed and validated).

#include <CLI/CLI.hpp>

#include <functional>

namespace radprobe::cli {

using Runner = std::function<int()>;
using Setup = Runner (*)(CLI::App& app);

struct Command {
    const char* name;
    const char* summary;
    Setup setup;
};

Runner setup_decode(CLI::App& app);    // cmd_decode.cpp   (imaging)
Runner setup_validate(CLI::App& app);  // cmd_validate.cpp (dataset)
Runner setup_split(CLI::App& app);     // cmd_split.cpp    (dataset)
Runner setup_manifest(CLI::App& app);  // cmd_manifest.cpp (dataset)
Runner setup_synth(CLI::App& app);     // cmd_synth.cpp    (synth)
Runner setup_stats(CLI::App& app);     // cmd_stats.cpp    (eval)
Runner setup_tokens(CLI::App& app);    // cmd_tokens.cpp   (encoders)
Runner setup_preprocess(CLI::App& app);  // cmd_preprocess.cpp (encoders)
Runner setup_models(CLI::App& app);    // cmd_models.cpp   (encoders)
Runner setup_extract(CLI::App& app);   // cmd_extract.cpp  (features)
Runner setup_demo(CLI::App& app);      // cmd_demo.cpp     (the main job)
Runner setup_results(CLI::App& app);   // cmd_results.cpp  (bench)
Runner setup_report(CLI::App& app);    // cmd_report.cpp   (bench)
Runner setup_probe(CLI::App& app);     // cmd_probe.cpp    (heads)
Runner setup_baseline(CLI::App& app);  // cmd_baseline.cpp (heads)
Runner setup_train(CLI::App& app);     // cmd_train.cpp    (heads)
Runner setup_finetune(CLI::App& app);  // cmd_finetune.cpp (heads)
Runner setup_segment(CLI::App& app);   // cmd_segment.cpp  (heads)
Runner setup_analyze(CLI::App& app);   // cmd_analyze.cpp  (analysis)
Runner setup_run(CLI::App& app);       // cmd_run.cpp      (bench)

}  // namespace radprobe::cli
