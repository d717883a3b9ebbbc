// Segmentation metrics of two mask folders (`radprobe stats seg`): masks paired by file name,
// optional patients for the clustered bootstrap, the JSON summary and the per-image table.

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <set>

#include "internal.hpp"
#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/eval/metrics.hpp"

namespace radprobe::eval {

namespace {

namespace fs = std::filesystem;
// Ordered: keys in the order the documentation lists them.
using json = nlohmann::ordered_json;

std::vector<std::string> png_names(const fs::path& dir, const std::string& what) {
    std::error_code ec;
    RADPROBE_CHECK(fs::is_directory(dir, ec), what, " ", dir.string(), ": not a directory");
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir)) {
        std::string ext = entry.path().extension().string();
        std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
        if (entry.is_regular_file() && ext == ".png") {
            names.push_back(entry.path().filename().string());
        }
    }
    std::sort(names.begin(), names.end());
    return names;
}

// The patient of every mask, from a CSV keyed by file name (any folder part of the cell is
// ignored, so a manifest's "masks/x.png" matches x.png).
std::vector<std::string> patients_of(const std::vector<MaskPair>& pairs,
                                     const MaskFolderOptions& o) {
    const CsvTable t = CsvTable::read(o.patients);
    const std::size_t ic = t.column(o.image_column);
    const std::size_t pc = t.column(o.patient_column);
    std::map<std::string, std::string> patient_by_name;
    for (std::size_t r = 0; r < t.num_rows(); ++r) {
        patient_by_name[fs::path(t.rows()[r][ic]).filename().string()] = t.rows()[r][pc];
    }
    std::vector<std::string> out(pairs.size());
    for (std::size_t i = 0; i < pairs.size(); ++i) {
        const auto it = patient_by_name.find(pairs[i].name);
        RADPROBE_CHECK(it != patient_by_name.end() && !it->second.empty(), o.patients.string(),
                       ": no '", o.patient_column, "' for mask ", pairs[i].name,
                       " (matched on the file name in column '", o.image_column, "')");
        out[i] = it->second;
    }
    return out;
}

SegmentationScores score_pair(const MaskPair& pair, const SegmentationOptions& options) {
    const auto p = read_mask(pair.prediction);
    const auto t = read_mask(pair.truth);
    RADPROBE_CHECK(p.height == t.height && p.width == t.width, "prediction ",
                   pair.prediction.string(), ": ", p.height, "x", p.width,
                   " but the truth mask is ", t.height, "x", t.width);
    return segmentation_scores(p, t, options);
}

std::string per_image_csv(const std::vector<MaskPair>& pairs,
                          const std::vector<std::string>& patients,
                          const std::vector<SegmentationScores>& scores) {
    using detail::csv_number;
    std::string text = csv_line({"file", "patient_id", "tp", "fp", "fn", "dice", "iou", "precision",
                                 "recall", "hd95", "assd", "hausdorff"}) +
                       "\n";
    for (std::size_t i = 0; i < scores.size(); ++i) {
        const auto& s = scores[i];
        text += csv_line({pairs[i].name, patients[i], std::to_string(s.tp), std::to_string(s.fp),
                          std::to_string(s.fn), csv_number(s.dice), csv_number(s.iou),
                          csv_number(s.precision), csv_number(s.recall), csv_number(s.hd95),
                          csv_number(s.assd), csv_number(s.hausdorff)}) +
                "\n";
    }
    return text;
}

json summary_json(const MaskFolderOptions& o, std::size_t images,
                  const std::vector<std::size_t>& clusters,
                  const std::vector<SegmentationSummary>& summaries) {
    const auto& seg = o.segmentation;
    json out;
    out["n_images"] = images;
    out["spacing_mm"] = json::array({seg.spacing.row_mm, seg.spacing.col_mm});
    out["both_empty"] = seg.both_empty == BothEmpty::kPerfect ? "perfect" : "exclude";
    out["one_empty"] = seg.one_empty == OneEmpty::kExclude ? "exclude" : "diagonal";
    out["level"] = o.bootstrap.level;
    out["n_boot"] = o.bootstrap.replicates;
    out["seed"] = o.bootstrap.seed;
    out["ci_method"] =
        o.bootstrap.method == CiMethod::kBca ? "bootstrap-bca" : "bootstrap-percentile";
    if (!clusters.empty()) {
        out["cluster"] = o.patient_column;
        out["n_clusters"] = *std::max_element(clusters.begin(), clusters.end()) + 1;
    }
    json metrics = json::object();
    for (const auto& s : summaries) {
        json m;
        m["n"] = s.defined;
        if (s.ci) {
            m["mean"] = s.ci->estimate;
            m["ci"] = json::array({s.ci->ci_lo, s.ci->ci_hi});
            m["n_valid"] = s.ci->valid;
        } else {
            m["mean"] = nullptr;
            m["ci"] = nullptr;
        }
        metrics[s.metric] = m;
    }
    out["metrics"] = metrics;
    return out;
}

}  // namespace

std::vector<MaskPair> pair_mask_folders(const fs::path& predictions, const fs::path& truth) {
    const auto truth_names = png_names(truth, "truth folder");
    const auto pred_names = png_names(predictions, "prediction folder");
    RADPROBE_CHECK(!truth_names.empty(), "truth folder ", truth.string(), ": no .png masks");
    const std::set<std::string> pred_set(pred_names.begin(), pred_names.end());
    const std::set<std::string> truth_set(truth_names.begin(), truth_names.end());
    for (const auto& n : truth_names) {
        RADPROBE_CHECK(pred_set.count(n), "prediction ", (predictions / n).string(),
                       ": missing (every truth mask needs a prediction of the same file name)");
    }
    for (const auto& n : pred_names) {
        RADPROBE_CHECK(truth_set.count(n), "truth mask ", (truth / n).string(),
                       ": missing (prediction ", n, " has no truth mask of the same file name)");
    }
    std::vector<MaskPair> pairs;
    pairs.reserve(truth_names.size());
    for (const auto& n : truth_names) {
        pairs.push_back({n, predictions / n, truth / n});
    }
    return pairs;
}

MaskFolderStats mask_folder_stats(const MaskFolderOptions& o) {
    const std::vector<MaskPair> pairs = pair_mask_folders(o.predictions, o.truth);
    std::vector<std::string> patients(pairs.size());
    std::vector<std::size_t> clusters;
    if (!o.patients.empty()) {
        patients = patients_of(pairs, o);
        clusters = cluster_ids(patients);
    }
    std::vector<SegmentationScores> scores;
    scores.reserve(pairs.size());
    for (const auto& pair : pairs) {
        scores.push_back(score_pair(pair, o.segmentation));
    }
    MaskFolderStats out;
    out.per_image_csv = per_image_csv(pairs, patients, scores);
    const auto summaries = summarize_segmentation(scores, o.bootstrap, clusters);
    out.json = summary_json(o, scores.size(), clusters, summaries).dump();
    return out;
}

}  // namespace radprobe::eval
