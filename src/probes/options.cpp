// The option tables of the probes (probes.hpp): declared once for the CLI and the config.

#include "radprobe/core/error.hpp"
#include "radprobe/probes/probes.hpp"

namespace radprobe::probes {

using options::Spec;
using options::Type;
using options::Value;

namespace {

/// The text of a parsed C grid (what `get` reports: the grid itself, not how it was written).
std::string grid_text(const std::vector<double>& grid) {
    return options::to_text(Value(grid));
}

}  // namespace

options::Table<ProbeOptions> linear_probe_options() {
    Spec c_grid{"c_grid", Type::kText, std::string("logspace:-6:5:45")};
    c_grid.help = "C values: a list (1e-3,0.1,10) or logspace:LO:HI:COUNT";
    c_grid.validate = [](const Value& v) {
        try {
            parse_c_grid(std::get<std::string>(v));
        } catch (const Error& e) {
            throw InputError(e.what());
        }
    };
    Spec class_weight{"class_weight", Type::kChoice, std::string("none")};
    class_weight.choices = {"none", "balanced"};
    class_weight.help = "none | balanced (as scikit-learn)";
    Spec max_iter{"max_iter", Type::kInt, std::int64_t{10000}, 1, 1e7};
    max_iter.help = "L-BFGS iterations per C";
    Spec tol{"tol", Type::kReal, 1e-10, 0, 1, true};
    tol.help = "L-BFGS tolerance on max|gradient| of the scaled objective";
    return {
        {c_grid,
         [](ProbeOptions& o, const Value& v) { o.c_grid = parse_c_grid(std::get<std::string>(v)); },
         [](const ProbeOptions& o) { return Value(grid_text(o.c_grid)); }},
        {class_weight,
         [](ProbeOptions& o, const Value& v) {
             o.class_weight_balanced = std::get<std::string>(v) == "balanced";
         },
         [](const ProbeOptions& o) {
             return Value(std::string(o.class_weight_balanced ? "balanced" : "none"));
         }},
        {max_iter,
         [](ProbeOptions& o, const Value& v) {
             o.lbfgs.max_iter = static_cast<int>(std::get<std::int64_t>(v));
         },
         [](const ProbeOptions& o) { return Value(std::int64_t{o.lbfgs.max_iter}); }},
        {tol, [](ProbeOptions& o, const Value& v) { o.lbfgs.tol = std::get<double>(v); },
         [](const ProbeOptions& o) { return Value(o.lbfgs.tol); }},
    };
}

options::Table<ProbeOptions> knn_probe_options() {
    Spec k{"k", Type::kIntList, std::vector<std::int64_t>{10, 20, 100, 200}, 1, 1e6};
    k.help = "k values (the one with the best validation AUROC is chosen)";
    k.validate = [](const Value& v) {
        RADPROBE_CHECK(!std::get<std::vector<std::int64_t>>(v).empty(), "the list is empty");
    };
    Spec temperature{"temperature", Type::kReal, 0.07, 0, 100, true};
    temperature.help = "vote temperature: weight exp(similarity / temperature)";
    return {options::field(k, &ProbeOptions::k_grid),
            options::field(temperature, &ProbeOptions::temperature)};
}

}  // namespace radprobe::probes
