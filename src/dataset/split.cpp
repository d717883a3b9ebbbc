// Patient-level, optionally label-stratified train/val/test splits.

#include <cmath>
#include <map>

#include "radprobe/core/error.hpp"
#include "radprobe/core/random.hpp"
#include "radprobe/dataset/manifest.hpp"

namespace radprobe::dataset {

void check_split_fractions(double val, double test) {
    RADPROBE_USAGE_CHECK(std::isfinite(val) && val >= 0.0 && val < 1.0,
                         "--val must be in [0, 1) with val + test < 1, got ", val);
    RADPROBE_USAGE_CHECK(std::isfinite(test) && test >= 0.0 && test < 1.0,
                         "--test must be in [0, 1) with val + test < 1, got ", test);
    RADPROBE_USAGE_CHECK(val + test < 1.0, "--val + --test must be < 1 (train gets the rest), got ",
                         val, " + ", test, " = ", val + test);
}

std::vector<Split> assign_splits(const Manifest& manifest, const SplitOptions& options) {
    check_split_fractions(options.val, options.test);
    const std::string file = manifest.path().string();
    std::optional<std::size_t> label;
    if (!options.stratify.empty()) {
        label = manifest.label_index(options.stratify);
        if (!label) {
            std::string present;
            for (const auto& l : manifest.label_names()) {
                present += (present.empty() ? "" : ", ") + l;
            }
            throw InputError(str_cat("--stratify: '", options.stratify,
                                     "' is not a label column of ", file,
                                     " (labels: ", present.empty() ? "none" : present, ")"));
        }
    }

    // Patients in order of first appearance, with their images and stratum.
    struct Patient {
        std::vector<std::size_t> images;
        bool any_positive = false;
        bool any_known = false;
    };
    std::vector<Patient> patients;
    std::map<std::string, std::size_t> index_of;
    for (std::size_t i = 0; i < manifest.size(); ++i) {
        const Record& rec = manifest.record(i);
        RADPROBE_CHECK(!rec.patient_id.empty(), file, ":", rec.line,
                       ": column 'patient_id': empty patient id; a patient-level split needs one "
                       "for every image");
        const auto [it, inserted] = index_of.emplace(rec.patient_id, patients.size());
        if (inserted) {
            patients.emplace_back();
        }
        Patient& p = patients[it->second];
        p.images.push_back(i);
        if (label) {
            const auto v = rec.labels[*label];
            p.any_positive = p.any_positive || v == 1;
            p.any_known = p.any_known || v != kLabelUnknown;
        }
    }
    // Strata: positive, negative, all-unknown (one stratum without --stratify).
    std::vector<std::vector<std::size_t>> strata(3);
    for (std::size_t p = 0; p < patients.size(); ++p) {
        const int s = !label ? 0 : patients[p].any_positive ? 0 : patients[p].any_known ? 1 : 2;
        strata[s].push_back(p);
    }

    Rng rng(options.seed);
    std::vector<Split> out(manifest.size(), Split::kTrain);
    double cum_images = 0;
    double in_test = 0;
    double in_val = 0;
    for (auto& stratum : strata) {
        // Fisher-Yates with the portable Rng.
        for (std::size_t i = stratum.size(); i > 1; --i) {
            const std::size_t j = static_cast<std::size_t>(rng.below(i));
            std::swap(stratum[i - 1], stratum[j]);
        }
        for (std::size_t p : stratum) {
            cum_images += static_cast<double>(patients[p].images.size());
        }
        // Cumulative targets: the rounding error of one stratum is corrected in the next.
        const double test_target = options.test * cum_images;
        const double val_target = options.val * cum_images;
        std::vector<Split> chosen(stratum.size(), Split::kTrain);
        for (std::size_t k = 0; k < stratum.size(); ++k) {
            const double size = static_cast<double>(patients[stratum[k]].images.size());
            // Take the patient when that brings the count closer to the target (ties taken).
            if (2 * in_test + size <= 2 * test_target) {
                chosen[k] = Split::kTest;
                in_test += size;
            }
        }
        for (std::size_t k = 0; k < stratum.size(); ++k) {
            if (chosen[k] != Split::kTrain) {
                continue;
            }
            const double size = static_cast<double>(patients[stratum[k]].images.size());
            if (2 * in_val + size <= 2 * val_target) {
                chosen[k] = Split::kVal;
                in_val += size;
            }
        }
        for (std::size_t k = 0; k < stratum.size(); ++k) {
            for (std::size_t i : patients[stratum[k]].images) {
                out[i] = chosen[k];
            }
        }
    }
    return out;
}

std::string manifest_with_splits(const Manifest& manifest, const std::vector<Split>& splits) {
    const CsvTable& t = manifest.table();
    RADPROBE_ASSERT(splits.size() == t.num_rows(), "one split per row");
    std::vector<std::string> header = t.header();
    std::size_t split_col = header.size();
    if (const auto c = t.find_column("split")) {
        split_col = *c;
    } else {
        header.push_back("split");
    }
    std::string out = csv_line(header) + "\n";
    for (std::size_t r = 0; r < t.num_rows(); ++r) {
        std::vector<std::string> row = t.rows()[r];
        if (split_col == row.size()) {
            row.push_back(split_name(splits[r]));
        } else {
            row[split_col] = split_name(splits[r]);
        }
        out += csv_line(row) + "\n";
    }
    return out;
}

}  // namespace radprobe::dataset
