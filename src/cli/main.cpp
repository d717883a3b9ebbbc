// radprobe: how good is a vision foundation-model encoder for a radiograph task, and where does
// it fail? A thin dispatcher over the subcommand table in commands.hpp.

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "commands.hpp"
#include "radprobe/core/blas_kernel.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/version.hpp"
#ifdef RADPROBE_HAVE_ENCODERS
#include "radprobe/encoders/model_dir.hpp"
#endif

namespace {

using radprobe::cli::Command;

const Command kCommands[] = {
    {"demo", "The main job on built-in phantoms and encoders: probes, analyses, report",
     radprobe::cli::setup_demo},
    {"decode", "Decode a radiograph (DICOM/PNG/JPEG/TIFF) to a float32 .npy image",
     radprobe::cli::setup_decode},
    {"validate", "Check a manifest: images, labels, masks, boxes, patient leakage across splits",
     radprobe::cli::setup_validate},
    {"split", "Write a patient-level, label-stratified train/val/test split of a manifest",
     radprobe::cli::setup_split},
    {"manifest", "Build a radprobe manifest from another table (e.g. NIH labels.csv)",
     radprobe::cli::setup_manifest},
    {"synth", "Generate chest-radiograph phantoms with ground truth (images, masks, boxes)",
     radprobe::cli::setup_synth},
    {"stats", "Statistics: AUROC with CIs and DeLong tests, segmentation metrics, FDR",
     radprobe::cli::setup_stats},
    {"models", "List supported encoder architectures, or describe a Hugging Face model directory",
     radprobe::cli::setup_models},
    {"preprocess", "Produce the pixel_values a model's Hugging Face image processor would",
     radprobe::cli::setup_preprocess},
    {"tokens", "Run an encoder on preprocessed pixel values; write last_hidden_state (N×T×D)",
     radprobe::cli::setup_tokens},
    {"extract", "Extract pooled embeddings for a manifest into a resumable embedding store",
     radprobe::cli::setup_extract},
    {"results", "Leaderboard of a results database: runs × metrics with confidence intervals",
     radprobe::cli::setup_results},
    {"report", "HTML report of a results DB: leaderboards, ROC, forest plots, analyses",
     radprobe::cli::setup_report},
    {"probe", "Linear / kNN probe on cached embeddings: predictions and AUROC with CIs",
     radprobe::cli::setup_probe},
    {"baseline", "Supervised from-scratch CNN baseline (ResNet-style) on the manifest's splits",
     radprobe::cli::setup_baseline},
    {"train", "Train an attention-pooling or MLP head on cached patch tokens / embeddings",
     radprobe::cli::setup_train},
    {"finetune", "Fine-tune an encoder (all or last-k blocks) with a classification head",
     radprobe::cli::setup_finetune},
    {"segment", "Segmentation decoders (linear, multiscale) on an encoder; apply a trained one",
     radprobe::cli::setup_segment},
    {"analyze", "Where encoders fail: perturbation panel, small-lesion probe, subgroup shortcuts",
     radprobe::cli::setup_analyze},
    {"run", "The main job on your data and models: a YAML config of encoders x tasks x heads",
     radprobe::cli::setup_run},
};

int report_error(const char* command, const std::exception& e) {
    std::fprintf(stderr, "radprobe%s%s: error: %s\n", command ? " " : "", command ? command : "",
                 radprobe::Error::one_line(e.what()).c_str());
    return 1;
}

}  // namespace

// LibTorch's OpenMP threads spin while OpenBLAS works, and fresh activation buffers fault in
// page by page (DESIGN.md, "Performance facts"). The encoder inference pass no longer depends
// on it (one thread pool, reused buffers: bench/encoders/bench_encoders.sh measures both
// environments alike), but training still interleaves OpenMP element-wise kernels with
// OpenBLAS-threaded GEMMs (a fine-tuning test: 125 s in the default environment, 8 s here).
// OpenBLAS picks its kernels from a CPU table when it loads: on a CPU newer than the table it
// runs its SSE3 (Prescott) kernels, 5x slower GEMMs on an AVX-512 machine (core/blas_kernel.hpp;
// bench_encoders: 63 vs 311 GFLOP/s on 2 cores of an Emerald Rapids guest), so radprobe sets
// OPENBLAS_CORETYPE to the CPU's own class when OpenBLAS fell back below it. All three are read
// before main() runs, so radprobe sets them and re-executes itself once, unless the user chose
// values of their own (or set RADPROBE_NO_REEXEC=1).
// Only subcommands that run LibTorch models or BLAS-heavy probes pay for the second start-up
// (~1 s of library loading).
static void tune_runtime_and_reexec(int argc, char** argv) {
    if (std::getenv("RADPROBE_NO_REEXEC") != nullptr ||
        std::getenv("RADPROBE_REEXECED") != nullptr) {
        return;
    }
    static const char* const kModelCommands[] = {"tokens",  "extract", "demo",     "baseline",
                                                 "train",   "run",     "finetune", "segment",
                                                 "analyze", "models",  "probe"};
    bool runs_models = false;
    for (const char* cmd : kModelCommands) {
        runs_models |= argc > 1 && std::string(argv[1]) == cmd;
    }
    if (!runs_models) {
        return;
    }
    bool changed = false;
    if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
        changed = true;
    }
    if (std::getenv("GLIBC_TUNABLES") == nullptr) {
        setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1", 1);
        changed = true;
    }
    if (const std::string core = radprobe::openblas_core_to_set(); !core.empty()) {
        setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
        changed = true;
    }
    if (!changed) {
        return;
    }
    setenv("RADPROBE_REEXECED", "1", 1);
    execv("/proc/self/exe", argv);
    // exec failed: carry on in the current environment.
}

int main(int argc, char** argv) {
    tune_runtime_and_reexec(argc, argv);
    CLI::App app{
        "radprobe: evaluate vision foundation-model encoders on radiograph tasks — embeddings, "
        "probes, fine-tuning, segmentation, statistics with confidence intervals, failure "
        "analyses."};
    app.name("radprobe");
    // The CUDA device count tells a user (and the CUDA tests) whether --device cuda can work.
    app.set_version_flag("--version", [] {
        std::string v =
            std::string("radprobe ") + radprobe::version() + " (" + radprobe::git_describe() + ")";
#ifdef RADPROBE_HAVE_ENCODERS
        v += ", CUDA devices: " + std::to_string(radprobe::encoders::cuda_device_count());
#endif
        v += ", " + radprobe::blas_description();
        return v;
    });
    app.require_subcommand(1);
    app.fallthrough(false);

    std::vector<std::pair<CLI::App*, radprobe::cli::Runner>> runners;
    for (const auto& cmd : kCommands) {
        CLI::App* sub = app.add_subcommand(cmd.name, cmd.summary);
        runners.emplace_back(sub, cmd.setup(*sub));
        // The top-level list shows one line per command; a paragraph a command gives itself
        // goes to the end of its own --help.
        const std::string details = sub->get_description();
        if (details != cmd.summary) {
            sub->description(cmd.summary);
            sub->footer(details);
        }
    }

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::string what = e.what();
        std::fprintf(stderr, "radprobe: usage error: %s (see radprobe --help)\n",
                     radprobe::Error::one_line(what).c_str());
        return 2;
    }

    for (auto& [sub, run] : runners) {
        if (!sub->parsed()) {
            continue;
        }
        const std::string name = sub->get_name();
        try {
            return run();
        } catch (const radprobe::UsageError& e) {
            std::fprintf(stderr, "radprobe %s: usage error: %s\n", name.c_str(),
                         radprobe::Error::one_line(e.what()).c_str());
            return 2;
        } catch (const std::exception& e) {
            return report_error(name.c_str(), e);
        }
    }
    return 2;
}
