// Vega-Lite specifications of the report's figures: forest plots, ROC curves, per-image Dice,
// heat maps. Every figure shares one look (kConfig).

#include <algorithm>
#include <cmath>

#include "report_internal.hpp"

namespace radprobe::report::detail {

using results::AnalysisRow;
using results::Metric;
namespace table = results::table;

namespace {

const json kConfig = {
    {"font", "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"},
    {"axis", {{"labelFontSize", 11}, {"titleFontSize", 12}, {"gridColor", "#e8e8e8"}}},
    {"legend", {{"labelFontSize", 11}, {"titleFontSize", 12}, {"labelLimit", 360}}},
    {"title", {{"fontSize", 14}, {"anchor", "start"}}},
    {"view", {{"stroke", "#dddddd"}}}};

json base_spec(const std::string& title) {
    return {{"$schema", "https://vega.github.io/schema/vega-lite/v5.json"},
            {"title", title},
            {"config", kConfig}};
}

// The ROC points of a task's runs, at most ~300 per curve: enough for a smooth line, keeps the
// page small.
json roc_values(const TaskGroup& t) {
    json values = json::array();
    for (const auto& series : t.roc) {
        const auto& curve = series.points;
        const std::size_t stride = std::max<std::size_t>(1, curve.size() / 300);
        for (std::size_t i = 0; i < curve.size(); ++i) {
            if (i % stride == 0 || i + 1 == curve.size()) {
                values.push_back({{"label", series.label},
                                  {"i", i},
                                  {"fpr", curve[i].fpr},
                                  {"tpr", curve[i].tpr}});
            }
        }
    }
    return values;
}

}  // namespace

json opt_json(const std::optional<double>& v) {
    return (v && std::isfinite(*v)) ? json(*v) : json(nullptr);
}

json forest_point(const std::string& label, double value, const std::optional<double>& ci_lo,
                  const std::optional<double>& ci_hi) {
    return {{"label", label},
            {"value", value},
            {"ci_lo", opt_json(ci_lo ? ci_lo : value)},
            {"ci_hi", opt_json(ci_hi ? ci_hi : value)}};
}

json metric_forest_values(const ReportData& d, const TaskGroup& t, const std::string& metric) {
    json values = json::array();
    for (const auto& r : t.rows) {
        const Metric* m = table::find_metric(r, metric);
        if (m && m->value) {
            values.push_back(forest_point(d.labels.at(r.run.id), *m->value, m->ci_lo, m->ci_hi));
        }
    }
    return values;
}

json forest_spec(const std::string& title, const std::string& metric, json values,
                 std::optional<double> reference, const std::string& color_field) {
    const std::size_t rows = values.size();
    json spec = base_spec(title);
    spec["width"] = 560;
    spec["height"] = std::max<std::size_t>(60, rows * 26);
    spec["data"] = {{"values", std::move(values)}};
    const json y = {{"field", "label"},
                    {"type", "nominal"},
                    {"title", nullptr},
                    {"sort", {{"field", "value"}, {"order", "descending"}}},
                    {"axis", {{"labelLimit", 360}}}};
    const json x_scale = {{"zero", false}, {"nice", true}};
    json rule = {
        {"mark", {{"type", "rule"}, {"strokeWidth", 2}}},
        {"encoding",
         {{"y", y},
          {"x",
           {{"field", "ci_lo"}, {"type", "quantitative"}, {"title", metric}, {"scale", x_scale}}},
          {"x2", {{"field", "ci_hi"}}}}}};
    json point = {
        {"mark", {{"type", "point"}, {"filled", true}, {"size", 70}}},
        {"encoding",
         {{"y", y},
          {"x", {{"field", "value"}, {"type", "quantitative"}}},
          {"tooltip",
           json::array({{{"field", "label"}, {"type", "nominal"}, {"title", "run"}},
                        {{"field", "value"}, {"type", "quantitative"}, {"format", ".3f"}},
                        {{"field", "ci_lo"}, {"type", "quantitative"}, {"format", ".3f"}},
                        {{"field", "ci_hi"}, {"type", "quantitative"}, {"format", ".3f"}}})}}}};
    if (!color_field.empty()) {
        const json color = {{"field", color_field}, {"type", "nominal"}, {"title", color_field}};
        rule["encoding"]["color"] = color;
        point["encoding"]["color"] = color;
        // Subgroup levels of one row side by side rather than on top of each other.
        rule["encoding"]["yOffset"] = {{"field", color_field}};
        point["encoding"]["yOffset"] = {{"field", color_field}};
    } else {
        rule["encoding"]["color"] = {{"value", "#4c78a8"}};
        point["encoding"]["color"] = {{"value", "#1f4e79"}};
    }
    json layers = json::array({rule, point});
    if (reference) {
        layers.insert(layers.begin(),
                      json{{"mark", {{"type", "rule"}, {"strokeDash", {4, 4}}, {"color", "#999"}}},
                           {"encoding", {{"x", {{"datum", *reference}}}}}});
    }
    spec["layer"] = std::move(layers);
    return spec;
}

json roc_spec(const TaskGroup& t) {
    json spec = base_spec("ROC curves — " + t.task);
    spec["width"] = 420;
    spec["height"] = 420;
    spec["data"] = {{"values", roc_values(t)}};
    const json axis_scale = {{"domain", {0, 1}}};
    spec["layer"] =
        json::array({{{"data", {{"values", json::array({{{"a", 0}}, {{"a", 1}}})}}},
                      {"mark", {{"type", "line"}, {"strokeDash", {4, 4}}, {"color", "#999"}}},
                      {"encoding",
                       {{"x", {{"field", "a"}, {"type", "quantitative"}, {"scale", axis_scale}}},
                        {"y", {{"field", "a"}, {"type", "quantitative"}, {"scale", axis_scale}}}}}},
                     {{"mark", {{"type", "line"}, {"strokeWidth", 2}}},
                      {"encoding",
                       {{"x",
                         {{"field", "fpr"},
                          {"type", "quantitative"},
                          {"title", "1 − specificity (FPR)"},
                          {"scale", axis_scale}}},
                        {"y",
                         {{"field", "tpr"},
                          {"type", "quantitative"},
                          {"title", "sensitivity (TPR)"},
                          {"scale", axis_scale}}},
                        {"order", {{"field", "i"}, {"type", "quantitative"}}},
                        {"color",
                         {{"field", "label"},
                          {"type", "nominal"},
                          {"title", "run (AUROC)"},
                          {"legend", {{"orient", "right"}}}}}}}}});
    return spec;
}

json dice_spec(const TaskGroup& t) {
    json values = json::array();
    for (const auto& v : t.dice) {
        values.push_back({{"label", v.label}, {"dice", v.dice}});
    }
    json spec = base_spec("Per-image Dice — " + t.task);
    spec["width"] = 560;
    spec["height"] = std::max<std::size_t>(60, t.dice_runs * 30);
    spec["data"] = {{"values", std::move(values)}};
    const json y = {{"field", "label"},
                    {"type", "nominal"},
                    {"title", nullptr},
                    {"axis", {{"labelLimit", 360}}}};
    spec["layer"] = json::array(
        {{{"mark", {{"type", "tick"}, {"opacity", 0.35}, {"color", "#4c78a8"}}},
          {"encoding",
           {{"y", y},
            {"x",
             {{"field", "dice"},
              {"type", "quantitative"},
              {"title", "Dice"},
              {"scale", {{"domain", {0, 1}}}}}}}}},
         {{"mark",
           {{"type", "boxplot"},
            {"extent", "min-max"},
            {"size", 14},
            {"opacity", 0.6},
            {"color", "#f58518"}}},
          {"encoding",
           {{"y", y}, {"x", {{"field", "dice"}, {"type", "quantitative"}, {"title", "Dice"}}}}}}});
    return spec;
}

json heatmap_values(const std::vector<const AnalysisRow*>& rows) {
    json values = json::array();
    for (const auto* r : rows) {
        values.push_back(
            {{"row", r->row_key2.empty() ? r->row_key : r->row_key + " · " + r->row_key2},
             {"column", r->column},
             {"value", opt_json(r->value)},
             {"ci_lo", opt_json(r->ci_lo)},
             {"ci_hi", opt_json(r->ci_hi)},
             {"p_adjusted", opt_json(r->p_adjusted)}});
    }
    return values;
}

// AUROC maps use viridis on [0.5, 1]; differences (gains) a diverging scheme centred on 0.
json heatmap_spec(json values, const std::string& title, double lo, double hi, bool diverging,
                  const std::string& legend) {
    json spec = base_spec(title);
    spec["data"] = {{"values", std::move(values)}};
    spec["width"] = {{"step", 90}};
    spec["height"] = {{"step", 28}};
    const json x = {{"field", "column"},
                    {"type", "nominal"},
                    {"title", nullptr},
                    {"sort", nullptr},
                    {"axis", {{"labelAngle", -30}, {"labelLimit", 220}, {"orient", "top"}}}};
    const json y = {{"field", "row"},
                    {"type", "nominal"},
                    {"title", nullptr},
                    {"sort", nullptr},
                    {"axis", {{"labelLimit", 260}}}};
    json scale = {{"domain", {lo, hi}}, {"clamp", true}};
    scale["scheme"] = diverging ? "redblue" : "viridis";
    if (diverging) {
        scale["reverse"] = true;  // gains (roi better) in blue, losses in red
        scale["domainMid"] = 0;
    }
    const json text_color =
        diverging ? json{{"value", "black"}}
                  : json{{"condition", {{"test", "datum.value > 0.8"}, {"value", "black"}}},
                         {"value", "white"}};
    spec["layer"] = json::array(
        {{{"mark", "rect"},
          {"encoding",
           {{"x", x},
            {"y", y},
            {"color",
             {{"field", "value"}, {"type", "quantitative"}, {"title", legend}, {"scale", scale}}},
            {"tooltip",
             json::array({{{"field", "row"}, {"type", "nominal"}},
                          {{"field", "column"}, {"type", "nominal"}},
                          {{"field", "value"}, {"type", "quantitative"}, {"format", ".3f"}},
                          {{"field", "ci_lo"}, {"type", "quantitative"}, {"format", ".3f"}},
                          {{"field", "ci_hi"}, {"type", "quantitative"}, {"format", ".3f"}},
                          {{"field", "p_adjusted"},
                           {"type", "quantitative"},
                           {"format", ".2g"},
                           {"title", "p (BH)"}}})}}}},
         {{"mark", {{"type", "text"}, {"fontSize", 11}}},
          {"encoding",
           {{"x", x},
            {"y", y},
            {"text",
             {{"field", "value"},
              {"type", "quantitative"},
              {"format", diverging ? "+.2f" : ".2f"}}},
            {"color", text_color}}}}});
    return spec;
}

}  // namespace radprobe::report::detail
