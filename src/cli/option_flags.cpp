// Command-line flags from option tables (option_flags.hpp).

#include "option_flags.hpp"

namespace radprobe::cli {

void add_checkpoint_key_flag(CLI::App& app, std::string& key) {
    app.add_option("--checkpoint-key", key,
                   "entry of a PyTorch checkpoint holding the weights, e.g. teacher, state_dict "
                   "(default: the top level, else the first of teacher, state_dict, model, module, "
                   "net, network, model_state; or the folder's radprobe_load.json)");
}

void add_dtype_flag(CLI::App& app, std::string& dtype) {
    app.add_option("--dtype", dtype,
                   "what the transformer blocks compute in: fp32, bf16 or fp16 (float32 "
                   "accumulation; default fp32, or the folder's radprobe_load.json)");
}

void add_device_flag(CLI::App& app, std::string& device) {
    app.add_option("--device", device,
                   "where the encoder runs: cpu, cuda or cuda:N (with --dtype bf16/fp16 on CUDA "
                   "for half-precision blocks)")
        ->capture_default_str();
}

encoders::LoadOptions load_options(const std::string& checkpoint_key, const std::string& dtype) {
    encoders::LoadOptions o;
    o.checkpoint_key = checkpoint_key;
    if (!dtype.empty()) {
        o.compute_dtype = encoders::parse_compute_dtype(dtype);
    }
    return o;
}

void add_run_flags(CLI::App& app, std::uint64_t& seed, int& threads, std::size_t& n_boot,
                   const std::string& seed_help) {
    app.add_option("--seed", seed, seed_help)->capture_default_str();
    app.add_option("--threads", threads, "threads (0 = all cores)")
        ->check(CLI::Range(0, 1024))
        ->capture_default_str();
    app.add_option("--n-boot", n_boot, "bootstrap replicates")
        ->check(CLI::Range(std::size_t{10}, std::size_t{1000000}))
        ->capture_default_str();
}

void OptionFlags::add(CLI::App& app, const std::vector<options::Spec>& specs,
                      const std::string& label) {
    for (const auto& spec : specs) {
        const std::string def = options::to_text(spec.def);
        auto it = entries_.find(spec.name);
        if (it != entries_.end()) {
            if (options::to_text(it->second.spec.def) != def) {
                it->second.option->description(it->second.option->get_description() + "; " + label +
                                               ": " + (def.empty() ? "none" : def));
            }
            continue;
        }
        Entry& e = entries_[spec.name];
        e.spec = spec;
        std::string help = spec.help;
        if (!label.empty()) {
            help += " (" + label + ": " + (def.empty() ? "none" : def) + ")";
        }
        if (spec.type == options::Type::kBool && !std::get<bool>(spec.def)) {
            e.flag = true;
            e.option = app.add_flag(options::flag(spec), e.on, help);
        } else {
            e.option = app.add_option(options::flag(spec), e.text, help);
            if (label.empty()) {
                e.option->default_str(def);
            }
        }
    }
}

const std::string* OptionFlags::given(const std::string& name) const {
    static const std::string kTrue = "true";
    const auto it = entries_.find(name);
    if (it == entries_.end() || it->second.option->count() == 0) {
        return nullptr;
    }
    return it->second.flag ? &kTrue : &it->second.text;
}

void OptionFlags::check_unused(const std::set<std::string>& used, const std::string& what) const {
    for (const auto& [name, e] : entries_) {
        RADPROBE_USAGE_CHECK(used.count(name) > 0 || e.option->count() == 0, options::flag(e.spec),
                             " does not apply to ", what);
    }
}

}  // namespace radprobe::cli
