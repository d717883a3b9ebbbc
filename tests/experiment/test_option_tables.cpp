// Each option declared once: every option table (probes, adapt, segment) walked row by row, to
// prove that the command line (flags registered from the table by OptionFlags, as the subcommands
// do) and the experiment config (`adaptations.<kind>`) accept exactly the same names, ranges and
// defaults; that the options JSON hashed into each run keeps the bytes it had before the tables
// existed (results databases keep their run hashes); and that the options structs' member
// initialisers agree with their tables.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <regex>
#include <set>

#include "option_flags.hpp"
#include "radprobe/adapt/adapt.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/experiment/experiment.hpp"
#include "radprobe/probes/probes.hpp"
#include "radprobe/segment/segment.hpp"
#include "test_support.hpp"

namespace radprobe::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using options::Spec;
using options::Type;
using options::Value;

const char* const kManifest =
    "image,patient_id,split,cardiomegaly,mask_heart\n"
    "a.png,p1,train,1,\n"
    "b.png,p2,train,0,\n"
    "c.png,p3,val,1,\n"
    "d.png,p4,val,0,\n"
    "e.png,p5,test,1,\n"
    "f.png,p6,test,0,\n";

/// The adaptation is on line 10 of every config written here.
constexpr int kAdaptationLine = 10;

/// The options JSON of each adaptation with every default, exactly as the config wrote it before
/// the option tables (computed from the former hand-written field lists of src/bench/config.cpp).
/// These bytes are hashed into every run: a change here orphans the runs of users' databases.
const std::map<std::string, std::string> kDefaultOptionsJson = {
    {"linear",
     R"({"c_grid":"logspace:-6:5:45","class_weight":"none","max_iter":10000,"tol":1e-10})"},
    {"knn", R"({"k":[10,20,100,200],"temperature":0.07})"},
    {"attention",
     R"({"balanced":false,"batch":64,"clip_norm":1.0,"depth":-1,"device":"cpu","dim":0,)"
     R"("dropout":0.0,"epochs":30,"heads":4,"lr_grid":"1e-5:1e-3:5","patience":6,"queries":1,)"
     R"("warmup_epochs":2,"weight_decay":0.05})"},
    {"mlp", R"({"balanced":false,"batch":64,"clip_norm":1.0,"depth":-1,"device":"cpu","dim":0,)"
            R"("dropout":0.0,"epochs":30,"lr_grid":"1e-5:1e-3:5","patience":6,"warmup_epochs":2,)"
            R"("weight_decay":0.05})"},
    {"finetune",
     R"({"augment":"default","batch":16,"clip_norm":1.0,"device":"cpu","epochs":10,)"
     R"("head":"linear","head_depth":0,"head_dim":0,"head_heads":4,"hflip":false,"llrd":0.75,)"
     R"("lr":0.0001,"patience":5,"pool":"auto","size":0,"unfreeze":"all","warmup_epochs":1,)"
     R"("weight_decay":0.05})"},
    {"segment",
     R"({"augment":"none","batch":8,"bce_weight":1.0,"both_empty":"perfect","channels":64,)"
     R"("clip_norm":1.0,"decoders":["linear"],"device":"cpu","dice_weight":1.0,)"
     R"("encoder_lr_mult":0.1,"epochs":40,"layer_decay":0.75,"layers":[],"lr":0.001,)"
     R"("one_empty":"exclude","patience":10,"unfreeze":"none","warmup_epochs":2,)"
     R"("weight_decay":0.0001})"},
    {"cnn_baseline",
     R"({"batch":32,"blocks":[2,2,2,2],"clip_norm":1.0,"epochs":30,"lr":0.001,"patience":6,)"
     R"("size":256,"warmup_epochs":2,"weight_decay":0.05,"width":32})"},
    {"unet_baseline",
     R"({"augment":"none","batch":8,"bce_weight":1.0,"both_empty":"perfect","channels":8,)"
     R"("clip_norm":1.0,"depth":4,"device":"cpu","dice_weight":1.0,"epochs":10,"lr":0.003,)"
     R"("one_empty":"exclude","patience":10,"size":128,"warmup_epochs":2,"weight_decay":0.0001})"},
};

/// The JSON an option value is hashed as (the test's own statement of the types: integers,
/// floats, booleans, text, lists).
json to_json(const Value& v) {
    return std::visit([](const auto& x) { return json(x); }, v);
}

/// A value as a YAML scalar or flow list.
std::string yaml_of(const Spec& spec, const Value& v) {
    switch (spec.type) {
        case Type::kText:
        case Type::kChoice:
            return "'" + std::get<std::string>(v) + "'";
        case Type::kIntList:
        case Type::kRealList:
        case Type::kTextList:
            return "[" + options::to_text(v) + "]";
        default:
            return options::to_text(v);
    }
}

/// The values just outside a row's range, as command-line text (also valid YAML): below lo
/// (at lo when it is open), above hi, a name that is not a choice, a text its check refuses.
std::vector<std::string> outside_values(const Spec& spec) {
    std::vector<std::string> out;
    const bool is_int = spec.type == Type::kInt || spec.type == Type::kIntList;
    const bool is_real = spec.type == Type::kReal || spec.type == Type::kRealList;
    if (is_int) {
        if (std::isfinite(spec.lo)) {
            out.push_back(std::to_string(static_cast<long long>(spec.lo) - 1));
        }
        if (std::isfinite(spec.hi)) {
            out.push_back(std::to_string(static_cast<long long>(spec.hi) + 1));
        }
    }
    if (is_real) {
        if (spec.open_lo) {
            out.push_back(options::to_text(Value(spec.lo)));
        } else if (std::isfinite(spec.lo)) {
            out.push_back(
                options::to_text(Value(spec.lo - std::max(1.0, std::abs(spec.lo)) * 1e-6)));
        }
        if (std::isfinite(spec.hi)) {
            out.push_back(
                options::to_text(Value(spec.hi + std::max(1.0, std::abs(spec.hi)) * 1e-6)));
        }
    }
    if (!spec.choices.empty()) {
        out.push_back("no-such-choice");
    }
    if (spec.type == Type::kText && spec.validate) {
        out.push_back("!bad!");
    }
    return out;
}

/// The ends of a numeric row's range that are in it (lo unless open, hi), as command-line text.
std::vector<std::string> range_ends(const Spec& spec) {
    std::vector<std::string> out;
    const bool is_int = spec.type == Type::kInt || spec.type == Type::kIntList;
    const bool is_real = spec.type == Type::kReal || spec.type == Type::kRealList;
    if (!is_int && !is_real) {
        return out;
    }
    for (const double end : {spec.lo, spec.hi}) {
        if (!std::isfinite(end) || (end == spec.lo && spec.open_lo)) {
            continue;
        }
        out.push_back(is_int ? std::to_string(static_cast<long long>(end))
                             : options::to_text(Value(end)));
    }
    return out;
}

/// One command-line value of a row (a list: one item) as YAML.
std::string yaml_value(const Spec& spec, const std::string& text) {
    const bool list =
        spec.type == Type::kIntList || spec.type == Type::kRealList || spec.type == Type::kTextList;
    const bool quoted =
        spec.type == Type::kText || spec.type == Type::kChoice || spec.type == Type::kTextList;
    const std::string item = quoted ? "'" + text + "'" : text;
    return list ? "[" + item + "]" : item;
}

/// What a table is run as: the config adaptation and its options struct's table.
template <typename T>
struct TableCase {
    std::string kind;
    options::Table<T> table;
};

class OptionTables : public ::testing::Test {
protected:
    void SetUp() override { write_file_atomic(tmp_ / "manifest.csv", kManifest); }

    /// A config whose adaptation `kind` has `options` (YAML flow mapping text, "" = defaults).
    std::string config(const std::string& kind, const std::string& options) const {
        return "data:\n"
               "  manifest: manifest.csv\n"
               "encoders:\n"
               "  - name: rand\n"
               "    random_vit: {seed: 3, hidden_size: 48, layers: 2, heads: 3, patch_size: 16, "
               "image_size: 64}\n"
               "tasks:\n"
               "  classification: [cardiomegaly]\n"
               "  segmentation: [heart]\n"
               "adaptations:\n"
               "  " +
               kind + ":" + (options.empty() ? "" : " " + options) + "\n";
    }
    experiment::ExperimentConfig load(const std::string& kind, const std::string& options) {
        const fs::path p = tmp_ / "exp.yaml";
        write_file_atomic(p, config(kind, options));
        return experiment::load_experiment_config(p);
    }
    /// The options JSON of the adaptation; or the error, in `error`.
    json options_of(const std::string& kind, const std::string& options, std::string* error) {
        try {
            const auto c = load(kind, options);
            return json::parse(c.adaptations.at(0).options_json);
        } catch (const InputError& e) {
            *error = e.what();
            return nullptr;
        }
    }

    /// Parses `args` with the table's flags and fills T; or the error, in `error`.
    template <typename T>
    std::optional<T> cli(const options::Table<T>& table, const std::vector<std::string>& args,
                         std::string* error) {
        CLI::App app("test");
        cli::OptionFlags flags;
        flags.add(app, options::specs(table));
        std::vector<const char*> argv = {"radprobe-test"};
        for (const auto& a : args) {
            argv.push_back(a.c_str());
        }
        try {
            app.parse(static_cast<int>(argv.size()), argv.data());
            return flags.apply(table, T{}, "test");
        } catch (const UsageError& e) {
            *error = e.what();
        } catch (const CLI::ParseError& e) {
            *error = std::string("CLI11: ") + e.what();
        }
        return std::nullopt;
    }

    template <typename T>
    void walk(const TableCase<T>& c);
    template <typename T>
    void walk_row(const TableCase<T>& c, const options::Row<T>& row, const json& defaults);

    TempDir tmp_;
};

/// The row's value in `o`, as text.
template <typename T>
std::string get_text(const options::Row<T>& row, const T& o) {
    return options::to_text(row.get(o));
}

/// The row's value after setting `v` (what the struct holds for it), as text.
template <typename T>
std::string stored_text(const options::Row<T>& row, const Value& v) {
    T o{};
    row.set(o, v);
    return get_text(row, o);
}

/// A config value (JSON) as the spec's Value.
Value from_json(const Spec& spec, const json& j) {
    switch (spec.type) {
        case Type::kInt:
            return j.get<std::int64_t>();
        case Type::kReal:
            return j.get<double>();
        case Type::kBool:
            return j.get<bool>();
        case Type::kText:
        case Type::kChoice:
            return j.get<std::string>();
        case Type::kIntList:
            return j.get<std::vector<std::int64_t>>();
        case Type::kRealList:
            return j.get<std::vector<double>>();
        case Type::kTextList:
            return j.get<std::vector<std::string>>();
    }
    return {};
}

template <typename T>
void OptionTables::walk_row(const TableCase<T>& c, const options::Row<T>& row,
                            const json& defaults) {
    const Spec& spec = row.spec;
    const std::string flag = options::flag(spec);
    const std::string key = "adaptations." + c.kind + "." + spec.name;
    SCOPED_TRACE(c.kind + " " + spec.name);
    const std::regex config_error(".*exp\\.yaml:" + std::to_string(kAdaptationLine) +
                                  ":[0-9]+: " + std::regex_replace(key, std::regex("\\."), "\\.") +
                                  "(\\[[0-9]+\\])?: .*");
    std::string error;

    // No flag, no key: the table default on both sides.
    const std::string def = stored_text(row, spec.def);
    const auto none = cli(c.table, {}, &error);
    ASSERT_TRUE(none) << error;
    EXPECT_EQ(get_text(row, *none), def);
    ASSERT_TRUE(defaults.contains(spec.name));
    EXPECT_EQ(defaults[spec.name], to_json(spec.def));
    EXPECT_EQ(stored_text(row, from_json(spec, defaults[spec.name])), def);

    // The default written out: both accept it and hold the default.
    if (spec.type == Type::kBool) {
        // A switch: given means true.
        const auto on = cli(c.table, {flag}, &error);
        ASSERT_TRUE(on) << error;
        EXPECT_EQ(get_text(row, *on), "true");
        const json o = options_of(c.kind, "{" + spec.name + ": true}", &error);
        ASSERT_FALSE(o.is_null()) << error;
        EXPECT_EQ(o[spec.name], true);
        EXPECT_TRUE(options_of(c.kind, "{" + spec.name + ": maybe}", &error).is_null());
        EXPECT_TRUE(std::regex_match(error, config_error)) << error;
        return;
    }
    const std::string def_text = options::to_text(spec.def);
    const auto given = cli(c.table, {flag, def_text}, &error);
    ASSERT_TRUE(given) << flag << "=" << def_text << ": " << error;
    EXPECT_EQ(get_text(row, *given), def);
    const json written =
        options_of(c.kind, "{" + spec.name + ": " + yaml_of(spec, spec.def) + "}", &error);
    ASSERT_FALSE(written.is_null()) << error;
    EXPECT_EQ(written, defaults);

    // The range's own ends: both accept them and store the same value.
    for (const std::string& end : range_ends(spec)) {
        SCOPED_TRACE("value " + end);
        error.clear();
        const auto at = cli(c.table, {flag, end}, &error);
        ASSERT_TRUE(at) << error;
        const json o =
            options_of(c.kind, "{" + spec.name + ": " + yaml_value(spec, end) + "}", &error);
        ASSERT_FALSE(o.is_null()) << error;
        EXPECT_EQ(stored_text(row, from_json(spec, o[spec.name])), get_text(row, *at));
    }
    // Just outside the range (or not a choice, or refused by the row's check): both refuse, the
    // command line naming the flag, the config the key with its line and column.
    for (const std::string& bad : outside_values(spec)) {
        SCOPED_TRACE("value " + bad);
        error.clear();
        EXPECT_FALSE(cli(c.table, {flag, bad}, &error));
        EXPECT_EQ(error.rfind(flag + ": ", 0), 0u) << error;
        error.clear();
        EXPECT_TRUE(options_of(c.kind, "{" + spec.name + ": " + yaml_value(spec, bad) + "}", &error)
                        .is_null());
        EXPECT_TRUE(std::regex_match(error, config_error)) << error;
    }
    // A list: the empty list is accepted by both or refused by both.
    if (spec.type == Type::kIntList || spec.type == Type::kRealList ||
        spec.type == Type::kTextList) {
        std::string cli_error, config_error_text;
        const bool cli_ok = cli(c.table, {flag, ""}, &cli_error).has_value();
        const bool config_ok =
            !options_of(c.kind, "{" + spec.name + ": []}", &config_error_text).is_null();
        EXPECT_EQ(cli_ok, config_ok) << cli_error << " | " << config_error_text;
    }
    // Text without a check of its own: both take any text as it is.
    if (spec.type == Type::kText && !spec.validate) {
        const auto any = cli(c.table, {flag, "x=1"}, &error);
        ASSERT_TRUE(any) << error;
        const json o = options_of(c.kind, "{" + spec.name + ": 'x=1'}", &error);
        ASSERT_FALSE(o.is_null()) << error;
        EXPECT_EQ(get_text(row, *any), "x=1");
        EXPECT_EQ(o[spec.name], "x=1");
    }
}

template <typename T>
void OptionTables::walk(const TableCase<T>& c) {
    SCOPED_TRACE(c.kind);
    ASSERT_FALSE(c.table.empty());
    std::string error;
    const json defaults = options_of(c.kind, "", &error);
    ASSERT_FALSE(defaults.is_null()) << error;
    // Byte for byte what the runs' hashes were made of.
    EXPECT_EQ(defaults.dump(), kDefaultOptionsJson.at(c.kind));
    // Exactly the table's names (segment adds its config-only `decoders`).
    std::set<std::string> names;
    for (const auto& row : c.table) {
        names.insert(row.spec.name);
    }
    if (c.kind == "segment") {
        names.insert("decoders");
    }
    std::set<std::string> keys;
    for (const auto& [k, v] : defaults.items()) {
        keys.insert(k);
    }
    EXPECT_EQ(keys, names);
    // An unknown key is refused by the config, an unknown flag by the command line.
    EXPECT_TRUE(options_of(c.kind, "{no_such_option: 1}", &error).is_null());
    EXPECT_FALSE(cli(c.table, {"--no-such-option=1"}, &error));
    for (const auto& row : c.table) {
        walk_row(c, row, defaults);
    }
}

TEST_F(OptionTables, CommandLineAndConfigAcceptTheSameOptions) {
    walk(TableCase<probes::ProbeOptions>{"linear", probes::linear_probe_options()});
    walk(TableCase<probes::ProbeOptions>{"knn", probes::knn_probe_options()});
    walk(TableCase<adapt::TrainOptions>{"attention",
                                        adapt::head_options(adapt::HeadKind::kAttention)});
    walk(TableCase<adapt::TrainOptions>{"mlp", adapt::head_options(adapt::HeadKind::kMlp)});
    walk(TableCase<adapt::FinetuneOptions>{"finetune", adapt::finetune_options()});
    walk(TableCase<adapt::BaselineOptions>{"cnn_baseline", adapt::baseline_options()});
    walk(TableCase<segment::SegmentOptions>{"segment", segment::decoder_options()});
    walk(TableCase<segment::SegmentOptions>{"unet_baseline", segment::unet_options()});
}

TEST_F(OptionTables, RunOptionsAreTheConfigOptions) {
    // What each planned run hashes and the runner reads is the adaptation's options JSON (for
    // segment: one decoder per run in place of the list).
    for (const auto& [kind, expected] : kDefaultOptionsJson) {
        SCOPED_TRACE(kind);
        const auto c = load(kind, "");
        const auto plan = experiment::make_plan(c, nullptr);
        json want = json::parse(expected);
        if (kind == "segment") {
            want.erase("decoders");
            want["decoder"] = "linear";
        }
        std::size_t runs = 0;
        for (const auto& s : plan.steps) {
            if (s.kind == experiment::StepKind::kRun) {
                ++runs;
                EXPECT_EQ(json::parse(s.spec.config_json)["options"], want);
            }
        }
        EXPECT_EQ(runs, 1u);
    }
}

TEST_F(OptionTables, SegmentDecodersAreAGridDimension) {
    auto adaptations_of = [&](const std::string& options) {
        std::vector<std::string> out;
        for (const auto& s : experiment::make_plan(load("segment", options), nullptr).steps) {
            if (s.kind == experiment::StepKind::kRun) {
                out.push_back(s.adaptation);
            }
        }
        return out;
    };
    EXPECT_EQ(adaptations_of(""), std::vector<std::string>{"segment-linear"});
    EXPECT_EQ(adaptations_of("{decoders: [multiscale, linear]}"),
              (std::vector<std::string>{"segment-multiscale", "segment-linear"}));
    std::string error;
    EXPECT_TRUE(options_of("segment", "{decoders: [linear, unet]}", &error).is_null());
    EXPECT_TRUE(error.find(":10:") != std::string::npos &&
                error.find("adaptations.segment.decoders[1]: 'unet' is not one of linear, "
                           "multiscale") != std::string::npos)
        << error;
    EXPECT_TRUE(options_of("segment", "{decoders: []}", &error).is_null());
    EXPECT_TRUE(error.find("adaptations.segment.decoders: the list is empty") != std::string::npos)
        << error;
}

/// The rows of `table` whose default differs from the member initialiser of T.
template <typename T>
std::set<std::string> differing_defaults(const options::Table<T>& table) {
    const T plain{};
    const T filled = options::with_defaults(table, T{});
    std::set<std::string> out;
    for (const auto& row : table) {
        if (get_text(row, plain) != get_text(row, filled)) {
            out.insert(row.spec.name);
        }
    }
    return out;
}

TEST(OptionStructs, MemberInitialisersAreTheTableDefaults) {
    using Names = std::set<std::string>;
    EXPECT_EQ(differing_defaults(probes::linear_probe_options()), Names{});
    EXPECT_EQ(differing_defaults(probes::knn_probe_options()), Names{});
    EXPECT_EQ(differing_defaults(adapt::head_options(adapt::HeadKind::kAttention)), Names{});
    EXPECT_EQ(differing_defaults(adapt::head_options(adapt::HeadKind::kMlp)), Names{});
    EXPECT_EQ(differing_defaults(adapt::finetune_options()), Names{});
    EXPECT_EQ(differing_defaults(adapt::baseline_options()), Names{});
    EXPECT_EQ(differing_defaults(segment::decoder_options()), Names{});
    // SegmentOptions serves two tables: its initialisers are the decoders'; the U-Net from
    // scratch has its own defaults (128 px, 8 channels, 10 epochs at lr 3e-3: the demo's and
    // `radprobe baseline --task seg`'s numbers), so exactly these rows differ.
    EXPECT_EQ(differing_defaults(segment::unet_options()),
              (Names{"channels", "epochs", "lr", "size"}));
}

TEST(OptionDocs, EveryConfigKeyIsDocumented) {
    // docs/config.md has a section per adaptation ("### `kind` ..."); each key of the kind's
    // options must be named there.
    const std::string doc = read_file_text(source_dir() / "docs/config.md");
    auto section = [&](const std::string& kind) {
        const auto at = doc.find("\n### `" + kind + "`");
        const auto also = doc.find(" and `" + kind + "`");
        std::size_t begin = at;
        if (at == std::string::npos && also != std::string::npos) {
            begin = doc.rfind("\n### ", also);
        }
        if (begin == std::string::npos) {
            return std::string();
        }
        const auto end = doc.find("\n#", begin + 1);
        return doc.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    };
    const std::map<std::string, std::vector<Spec>> kinds = {
        {"linear", options::specs(probes::linear_probe_options())},
        {"knn", options::specs(probes::knn_probe_options())},
        {"attention", options::specs(adapt::head_options(adapt::HeadKind::kAttention))},
        {"mlp", options::specs(adapt::head_options(adapt::HeadKind::kMlp))},
        {"finetune", options::specs(adapt::finetune_options())},
        {"cnn_baseline", options::specs(adapt::baseline_options())},
        {"segment", options::specs(segment::decoder_options())},
        {"unet_baseline", options::specs(segment::unet_options())},
    };
    for (const auto& [kind, specs] : kinds) {
        const std::string text = section(kind);
        ASSERT_FALSE(text.empty()) << kind;
        for (const auto& s : specs) {
            EXPECT_NE(text.find("`" + s.name + "`"), std::string::npos)
                << kind << "." << s.name << " is not in its section of docs/config.md";
        }
    }
    EXPECT_NE(section("segment").find("`decoders`"), std::string::npos);
}

}  // namespace
}  // namespace radprobe::test
