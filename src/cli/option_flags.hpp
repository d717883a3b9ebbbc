#pragma once
// Command-line flags registered from option tables (radprobe/core/options.hpp): a subcommand
// declares no adaptation option of its own; it registers the flags of the table(s) it runs and
// fills its options struct from the one it runs.

#include <CLI/CLI.hpp>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "radprobe/core/error.hpp"
#include "radprobe/core/options.hpp"
#include "radprobe/encoders/model_dir.hpp"

namespace radprobe::cli {

/// The flags every training / probing command shares (not adaptation options: they say how a
/// run is done and recorded, not what it computes): --seed, --threads, --n-boot.
void add_run_flags(CLI::App& app, std::uint64_t& seed, int& threads, std::size_t& n_boot,
                   const std::string& seed_help);

/// --checkpoint-key: the entry of a PyTorch training checkpoint that holds the weights (for the
/// commands that load a model folder; the folder's radprobe_load.json is read when not given).
void add_checkpoint_key_flag(CLI::App& app, std::string& key);
/// --dtype fp32|bf16|fp16: what the encoder's transformer blocks compute in.
void add_dtype_flag(CLI::App& app, std::string& dtype);
/// --device (cpu | cuda | cuda:N; checked where the model is loaded: encoders::parse_device).
void add_device_flag(CLI::App& app, std::string& device);
/// The load options of --checkpoint-key and --dtype ("" = not given).
encoders::LoadOptions load_options(const std::string& checkpoint_key, const std::string& dtype);

class OptionFlags {
public:
    /// Registers a flag for every spec not registered yet. `label` names the table in the help
    /// text when several tables of one command give the same option different defaults.
    void add(CLI::App& app, const std::vector<options::Spec>& specs, const std::string& label = "");

    /// Fills `o` from `table`: each given flag parsed and checked (UsageError "--flag: reason"),
    /// every other row at its table default. A given flag that `table` does not have is a
    /// UsageError saying it does not apply to `what`.
    template <typename T>
    T apply(const options::Table<T>& table, T o, const std::string& what) const {
        std::set<std::string> used;
        for (const auto& row : table) {
            const auto it = given(row.spec.name);
            row.set(o, it ? options::parse(row.spec, *it) : row.spec.def);
            used.insert(row.spec.name);
        }
        check_unused(used, what);
        return o;
    }

private:
    const std::string* given(const std::string& name) const;
    void check_unused(const std::set<std::string>& used, const std::string& what) const;

    struct Entry {
        options::Spec spec;
        CLI::Option* option = nullptr;
        std::string text;
        bool flag = false;  ///< a boolean switch (given = true)
        bool on = false;
    };
    std::map<std::string, Entry> entries_;
};

}  // namespace radprobe::cli
