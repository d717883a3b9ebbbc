#pragma once
// Access to the committed golden values of tests/golden/eval (made by make_goldens.py with
// scikit-learn, scipy, scikit-image and R pROC) and to the data sets they were computed on.

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "radprobe/core/csv.hpp"
#include "test_support.hpp"

namespace radprobe::test {

inline std::filesystem::path golden_dir() {
    return source_dir() / "tests/golden/eval";
}

/// Rows "dataset,quantity,value" of one golden CSV.
class Goldens {
public:
    explicit Goldens(const std::string& file) {
        const CsvTable t = CsvTable::read(golden_dir() / file);
        const auto d = t.column("dataset");
        const auto q = t.column("quantity");
        const auto v = t.column("value");
        for (const auto& row : t.rows()) {
            values_[{row[d], row[q]}] = std::stod(row[v]);
        }
    }
    double at(const std::string& dataset, const std::string& quantity) const {
        const auto it = values_.find({dataset, quantity});
        if (it == values_.end()) {
            throw std::runtime_error("no golden " + dataset + "/" + quantity);
        }
        return it->second;
    }
    bool has(const std::string& dataset, const std::string& quantity) const {
        return values_.count({dataset, quantity}) > 0;
    }

private:
    std::map<std::pair<std::string, std::string>, double> values_;
};

struct BinaryDataset {
    std::vector<double> labels, score1, score2, prob;
};

inline std::uint64_t mix64(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/// The 10^5-row data set, regenerated from the formula in make_goldens.py (large_dataset).
inline BinaryDataset large_dataset() {
    BinaryDataset d;
    const std::uint64_t n = 100000;
    auto h = [](std::uint64_t i, std::uint64_t k) {
        return mix64((4 * i + k) * 0x9E3779B97F4A7C15ULL);
    };
    for (std::uint64_t i = 0; i < n; ++i) {
        const std::uint64_t y = h(i, 0) % 1000 < 300 ? 1 : 0;
        const std::uint64_t a = h(i, 1) % 3000;
        const std::uint64_t b = h(i, 2) % 6000;
        d.labels.push_back(static_cast<double>(y));
        d.score1.push_back(static_cast<double>(a + 1000 * y));
        d.score2.push_back(static_cast<double>(b + 1200 * y + a / 2));
        d.prob.push_back(static_cast<double>(a + 1000 * y) / 4000.0);
    }
    return d;
}

inline BinaryDataset load_dataset(const std::string& name) {
    if (name == "large") {
        return large_dataset();
    }
    const CsvTable t = CsvTable::read(golden_dir() / ("data_" + name + ".csv"));
    return {t.numeric_column("label"), t.numeric_column("score1"), t.numeric_column("score2"),
            t.numeric_column("prob")};
}

inline const std::vector<std::string>& binary_dataset_names() {
    static const std::vector<std::string> names = {"ties",    "tiny",       "imbalance",
                                                   "perfect", "continuous", "large"};
    return names;
}

}  // namespace radprobe::test
