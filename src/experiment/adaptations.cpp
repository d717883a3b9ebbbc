// The adaptation kinds of the experiment config: their options from the components' tables, and
// option values as the JSON hashed into every run (adaptations.hpp).

#include "adaptations.hpp"

#include "radprobe/adapt/adapt.hpp"
#include "radprobe/probes/probes.hpp"
#include "radprobe/segment/segment.hpp"

namespace radprobe::experiment::detail {

using nlohmann::json;
using options::Spec;
using options::Type;
using options::Value;

bool adaptation_uses_encoder(const std::string& kind) {
    return kind != "cnn_baseline" && kind != "unet_baseline";
}

bool adaptation_is_segmentation(const std::string& kind) {
    return kind == "segment" || kind == "unet_baseline";
}

bool is_probe(const std::string& kind) {
    return kind == "linear" || kind == "knn";
}

bool is_trained_head(const std::string& kind) {
    return kind == "attention" || kind == "mlp";
}

Spec decoders_spec() {
    Spec s{"decoders", Type::kTextList, std::vector<std::string>{"linear"}};
    s.choices = {"linear", "multiscale"};
    s.help = "segmentation decoders, each its own run: linear | multiscale";
    s.validate = [](const Value& v) {
        RADPROBE_CHECK(!std::get<std::vector<std::string>>(v).empty(), "the list is empty");
    };
    return s;
}

std::vector<Spec> adaptation_specs(const std::string& kind) {
    if (kind == "linear") {
        return options::specs(probes::linear_probe_options());
    }
    if (kind == "knn") {
        return options::specs(probes::knn_probe_options());
    }
    if (is_trained_head(kind)) {
        return options::specs(adapt::head_options(adapt::parse_head_kind(kind)));
    }
    if (kind == "finetune") {
        return options::specs(adapt::finetune_options());
    }
    if (kind == "cnn_baseline") {
        return options::specs(adapt::baseline_options());
    }
    if (kind == "segment") {
        auto specs = options::specs(segment::decoder_options());
        specs.push_back(decoders_spec());
        return specs;
    }
    if (kind == "unet_baseline") {
        return options::specs(segment::unet_options());
    }
    return {};
}

json to_json(const Value& value) {
    // nlohmann keeps std::int64_t as an integer and double as a float, and dumps them the way the
    // hashed run configs have always been written.
    return std::visit([](const auto& v) { return json(v); }, value);
}

Value from_json(const Spec& spec, const json& value) {
    switch (spec.type) {
        case Type::kInt:
            return value.get<std::int64_t>();
        case Type::kReal:
            return value.get<double>();
        case Type::kBool:
            return value.get<bool>();
        case Type::kText:
        case Type::kChoice:
            return value.get<std::string>();
        case Type::kIntList:
            return value.get<std::vector<std::int64_t>>();
        case Type::kRealList:
            return value.get<std::vector<double>>();
        case Type::kTextList:
            return value.get<std::vector<std::string>>();
    }
    RADPROBE_ASSERT(false, "option type of ", spec.name);
    return {};
}

}  // namespace radprobe::experiment::detail
