// Bootstrap confidence intervals: a resampling design (strata × clusters), a deterministic
// multi-threaded replicate loop (replicate b draws from Rng::derive(seed, b)), percentile and
// BCa intervals, and fast specialisations for the AUROC (one O(n) pass over presorted tie groups
// per replicate, O(n) jackknife from placement values) and for means.

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>

#include "internal.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/parallel.hpp"
#include "radprobe/core/random.hpp"
#include "radprobe/eval/metrics.hpp"

namespace radprobe::eval {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

__extension__ typedef unsigned __int128 Uint128;

/// Uniform integer in [0, range) from the seeded Rng, without modulo bias and (almost always)
/// without a division (Lemire 2019).
inline std::uint64_t bounded(Rng& rng, std::uint64_t range) {
    Uint128 m = static_cast<Uint128>(rng.next_u64()) * range;
    auto low = static_cast<std::uint64_t>(m);
    if (low < range) {
        const std::uint64_t threshold = (0 - range) % range;
        while (low < threshold) {
            m = static_cast<Uint128>(rng.next_u64()) * range;
            low = static_cast<std::uint64_t>(m);
        }
    }
    return static_cast<std::uint64_t>(m >> 64);
}

std::vector<std::size_t> dense_ids(std::span<const std::size_t> ids) {
    std::unordered_map<std::size_t, std::size_t> map;
    std::vector<std::size_t> out(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
        out[i] = map.emplace(ids[i], map.size()).first->second;
    }
    return out;
}

/// Who is drawn together (units: clusters, or single samples) and within which strata.
struct Design {
    std::size_t n = 0;
    bool singletons = true;  ///< unit u is sample u
    std::vector<std::vector<std::uint32_t>> stratum_units;
    std::vector<std::uint32_t> unit_begin;  ///< CSR into members (clustered only)
    std::vector<std::uint32_t> members;
    std::size_t num_units() const { return singletons ? n : unit_begin.size() - 1; }

    template <typename Fn>
    void for_members(std::size_t unit, Fn&& fn) const {
        if (singletons) {
            fn(static_cast<std::uint32_t>(unit));
        } else {
            for (std::uint32_t k = unit_begin[unit]; k < unit_begin[unit + 1]; ++k) {
                fn(members[k]);
            }
        }
    }

    /// Adds one resample's multiplicities to `counts` (size n, zeroed by the caller).
    void draw(Rng& rng, std::uint32_t* counts) const {
        for (const auto& units : stratum_units) {
            const std::uint64_t k = units.size();
            if (singletons) {
                for (std::uint64_t d = 0; d < k; ++d) {
                    ++counts[units[bounded(rng, k)]];
                }
            } else {
                for (std::uint64_t d = 0; d < k; ++d) {
                    const std::uint32_t u = units[bounded(rng, k)];
                    for (std::uint32_t j = unit_begin[u]; j < unit_begin[u + 1]; ++j) {
                        ++counts[members[j]];
                    }
                }
            }
        }
    }
};

Design make_design(std::size_t n, std::span<const std::size_t> strata,
                   std::span<const std::size_t> clusters, const std::string& where) {
    RADPROBE_CHECK(strata.empty() || strata.size() == n, where, ": ", strata.size(),
                   " strata ids for ", n, " samples (lengths must match)");
    RADPROBE_CHECK(clusters.empty() || clusters.size() == n, where, ": ", clusters.size(),
                   " cluster ids for ", n, " samples (lengths must match)");
    RADPROBE_CHECK(n > 0, where, ": no samples");
    const std::vector<std::size_t> stratum =
        strata.empty() ? std::vector<std::size_t>(n, 0) : dense_ids(strata);
    const std::size_t num_strata = *std::max_element(stratum.begin(), stratum.end()) + 1;
    Design d;
    d.n = n;
    d.stratum_units.resize(num_strata);
    if (clusters.empty()) {
        for (std::size_t i = 0; i < n; ++i) {
            d.stratum_units[stratum[i]].push_back(static_cast<std::uint32_t>(i));
        }
        return d;
    }
    d.singletons = false;
    const std::vector<std::size_t> cluster = dense_ids(clusters);
    const std::size_t k = *std::max_element(cluster.begin(), cluster.end()) + 1;
    std::vector<std::size_t> cluster_stratum(k, std::numeric_limits<std::size_t>::max());
    std::vector<std::uint32_t> size(k, 0);
    for (std::size_t i = 0; i < n; ++i) {
        auto& s = cluster_stratum[cluster[i]];
        if (s == std::numeric_limits<std::size_t>::max()) {
            s = stratum[i];
            d.stratum_units[s].push_back(static_cast<std::uint32_t>(cluster[i]));
        }
        RADPROBE_CHECK(s == stratum[i], where, ": cluster of sample ", i,
                       " spans several strata (clusters must be nested within strata)");
        ++size[cluster[i]];
    }
    d.unit_begin.assign(k + 1, 0);
    for (std::size_t c = 0; c < k; ++c) {
        d.unit_begin[c + 1] = d.unit_begin[c] + size[c];
    }
    d.members.resize(n);
    std::vector<std::uint32_t> fill(d.unit_begin.begin(), d.unit_begin.end() - 1);
    for (std::size_t i = 0; i < n; ++i) {
        d.members[fill[cluster[i]]++] = static_cast<std::uint32_t>(i);
    }
    return d;
}

void check_options(const BootstrapOptions& o, const std::string& where) {
    RADPROBE_CHECK(o.replicates >= 1, where, ": replicates must be >= 1");
    RADPROBE_CHECK(o.level > 0.0 && o.level < 1.0, where,
                   ": confidence level must lie in (0, 1), got ", o.level);
}

/// Per-thread scratch for one replicate.
struct Scratch {
    std::vector<std::uint32_t> a;
    std::vector<std::uint32_t> b;
};

using ReplicateFn = std::function<double(std::uint64_t replicate, Scratch& scratch)>;

std::vector<double> run_replicates(const BootstrapOptions& o, const ReplicateFn& fn) {
    std::vector<double> values(o.replicates, kNaN);
    parallel_for(o.replicates, o.threads, [&](std::size_t begin, std::size_t end) {
        Scratch scratch;
        for (std::size_t b = begin; b < end; ++b) {
            values[b] = fn(b, scratch);
        }
    });
    return values;
}

/// R's quantile type 7 of sorted values.
double quantile7(const std::vector<double>& sorted, double p) {
    const double h = (static_cast<double>(sorted.size()) - 1.0) * p;
    const auto lo = static_cast<std::size_t>(std::floor(h));
    if (lo + 1 >= sorted.size()) {
        return sorted.back();
    }
    return sorted[lo] + (h - static_cast<double>(lo)) * (sorted[lo + 1] - sorted[lo]);
}

/// Interval from replicate values; `jackknife` (leave-one-unit-out estimates, NaN = undefined)
/// feeds BCa's acceleration.
BootstrapCi make_interval(double estimate, std::vector<double> values,
                          const std::vector<double>& jackknife, const BootstrapOptions& o,
                          const std::string& where) {
    BootstrapCi ci;
    ci.estimate = estimate;
    ci.replicates = o.replicates;
    ci.method = o.method;
    ci.level = o.level;
    std::erase_if(values, [](double v) { return std::isnan(v); });
    ci.valid = values.size();
    RADPROBE_CHECK(ci.valid >= 2, where, ": only ", ci.valid, " of ", o.replicates,
                   " bootstrap replicates define the statistic (too few samples of a class?)");
    std::sort(values.begin(), values.end());
    const double mean =
        std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
    double ss = 0.0;
    for (const double v : values) {
        ss += (v - mean) * (v - mean);
    }
    ci.se = std::sqrt(ss / static_cast<double>(values.size() - 1));
    double alpha_lo = 0.5 - 0.5 * o.level;
    double alpha_hi = 0.5 + 0.5 * o.level;
    if (o.method == CiMethod::kBca) {
        const auto less = static_cast<double>(
            std::lower_bound(values.begin(), values.end(), estimate) - values.begin());
        const double proportion = less / static_cast<double>(values.size());
        if (proportion <= 0.0 || proportion >= 1.0) {
            ci.bca_fell_back = true;
        } else {
            const double z0 = normal_quantile(proportion);
            double jack_mean = 0.0;
            std::size_t jack_n = 0;
            for (const double v : jackknife) {
                if (!std::isnan(v)) {
                    jack_mean += v;
                    ++jack_n;
                }
            }
            jack_mean /= std::max<std::size_t>(jack_n, 1);
            double num = 0.0;
            double den = 0.0;
            for (const double v : jackknife) {
                if (!std::isnan(v)) {
                    const double d = jack_mean - v;
                    num += d * d * d;
                    den += d * d;
                }
            }
            const double a = den > 0.0 ? num / (6.0 * std::pow(den, 1.5)) : 0.0;
            auto adjust = [&](double alpha) {
                const double z = z0 + normal_quantile(alpha);
                return normal_cdf(z0 + z / (1.0 - a * z));
            };
            alpha_lo = adjust(alpha_lo);
            alpha_hi = adjust(alpha_hi);
        }
    }
    ci.ci_lo = quantile7(values, alpha_lo);
    ci.ci_hi = quantile7(values, alpha_hi);
    return ci;
}

/// Generic jackknife: the statistic with all samples of one unit given weight 0.
std::vector<double> generic_jackknife(const Design& d, const WeightedStatistic& stat) {
    std::vector<double> out(d.num_units(), kNaN);
    std::vector<std::uint32_t> counts(d.n, 1);
    for (std::size_t u = 0; u < d.num_units(); ++u) {
        d.for_members(u, [&](std::uint32_t i) { counts[i] = 0; });
        out[u] = stat(counts);
        d.for_members(u, [&](std::uint32_t i) { counts[i] = 1; });
    }
    return out;
}

/// AUROC of a weighted resample by one pass over presorted tie groups.
struct AucWalker {
    std::vector<std::uint32_t> order;  ///< sorted position -> sample; empty = identity
    std::vector<std::uint32_t> group_end;
    std::vector<std::uint8_t> positive;  ///< by sorted position

    AucWalker(std::span<const double> labels, std::span<const double> scores, bool identity) {
        auto groups = detail::tie_groups(scores);
        group_end = std::move(groups.group_end);
        positive.resize(labels.size());
        for (std::size_t k = 0; k < labels.size(); ++k) {
            positive[k] = labels[groups.order[k]] != 0.0;
        }
        if (!identity) {
            order = std::move(groups.order);
        } else {
            order_for_permutation = std::move(groups.order);
        }
    }
    std::vector<std::uint32_t> order_for_permutation;  ///< kept when identity: data were permuted

    double operator()(const std::uint32_t* counts) const {
        std::uint64_t twice_u = 0;
        std::uint64_t neg_below = 0;
        std::uint64_t pos_total = 0;
        std::size_t k = 0;
        const bool identity = order.empty();
        for (const std::uint32_t end : group_end) {
            std::uint64_t gp = 0;
            std::uint64_t gn = 0;
            for (; k < end; ++k) {
                const std::uint64_t c = counts[identity ? k : order[k]];
                const std::uint64_t is_pos = positive[k];
                gp += c * is_pos;
                gn += c * (1 - is_pos);
            }
            twice_u += gp * (2 * neg_below + gn);
            neg_below += gn;
            pos_total += gp;
        }
        if (pos_total == 0 || neg_below == 0) {
            return kNaN;
        }
        return static_cast<double>(twice_u) /
               (2.0 * static_cast<double>(pos_total) * static_cast<double>(neg_below));
    }
};

/// Leave-one-unit-out AUROCs in O(n log n) overall from placement values:
/// AUC(−u) = (U − P_u − Q_u + W_u) / ((m − m_u)(n − n_u)), where P_u sums the positives' kernel
/// rows, Q_u the negatives' columns and W_u the pairs inside u.
std::vector<double> auc_jackknife(const Design& d, std::span<const double> labels,
                                  std::span<const double> scores) {
    const auto pl = detail::placements(labels, scores);
    const double m = static_cast<double>(pl.parts.positives);
    const double n = static_cast<double>(pl.parts.negatives);
    const double u_total = pl.parts.auc * m * n;
    std::vector<double> out(d.num_units(), kNaN);
    std::vector<std::pair<double, bool>> members;
    for (std::size_t u = 0; u < d.num_units(); ++u) {
        double removed = 0.0;
        double mu = 0.0;
        double nu = 0.0;
        members.clear();
        d.for_members(u, [&](std::uint32_t i) {
            const bool pos = labels[i] != 0.0;
            removed += pos ? pl.value[i] * n : pl.value[i] * m;
            (pos ? mu : nu) += 1.0;
            members.emplace_back(scores[i], pos);
        });
        double within = 0.0;  // Mann–Whitney count of the pairs inside the unit
        if (mu > 0 && nu > 0) {
            std::sort(members.begin(), members.end());
            double neg_below = 0.0;
            for (std::size_t a = 0; a < members.size();) {
                std::size_t b = a;
                double gp = 0.0;
                double gn = 0.0;
                for (; b < members.size() && members[b].first == members[a].first; ++b) {
                    (members[b].second ? gp : gn) += 1.0;
                }
                within += gp * (neg_below + 0.5 * gn);
                neg_below += gn;
                a = b;
            }
        }
        if (m - mu > 0 && n - nu > 0) {
            out[u] = (u_total - removed + within) / ((m - mu) * (n - nu));
        }
    }
    return out;
}

/// The same design with samples renumbered by `position` (sample i -> position[i]); unit
/// ids and the order of draws are unchanged, so the resamples are the same samples.
Design renumbered(Design d, const std::vector<std::uint32_t>& position) {
    if (d.singletons) {
        for (auto& units : d.stratum_units) {
            for (auto& u : units) {
                u = position[u];
            }
        }
    } else {
        for (auto& m : d.members) {
            m = position[m];
        }
    }
    return d;
}

std::vector<std::size_t> class_strata(std::span<const double> labels) {
    return std::vector<std::size_t>(labels.begin(), labels.end());
}

}  // namespace

CiMethod parse_ci_method(const std::string& text) {
    if (text == "percentile") {
        return CiMethod::kPercentile;
    }
    if (text == "bca") {
        return CiMethod::kBca;
    }
    throw UsageError("bootstrap interval '" + text + "' is not one of: percentile, bca");
}

std::vector<std::size_t> cluster_ids(const std::vector<std::string>& keys) {
    std::unordered_map<std::string, std::size_t> map;
    std::vector<std::size_t> out(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
        out[i] = map.emplace(keys[i], map.size()).first->second;
    }
    return out;
}

BootstrapCi bootstrap_auroc(std::span<const double> labels, std::span<const double> scores,
                            const BootstrapOptions& options,
                            std::span<const std::size_t> clusters) {
    const std::string where = "bootstrap_auroc";
    check_binary_inputs(labels, scores, where);
    check_options(options, where);
    const AucWalker walker(labels, scores, /*identity=*/true);
    // Work in sorted order so that each replicate reads its counts sequentially; the design is
    // built on the original order and renumbered, so replicate b resamples exactly the samples
    // that every other bootstrap of these data with this seed resamples.
    const auto& order = walker.order_for_permutation;
    std::vector<std::uint32_t> position(order.size());
    std::vector<double> sorted_labels(order.size());
    std::vector<double> sorted_scores(order.size());
    for (std::size_t k = 0; k < order.size(); ++k) {
        position[order[k]] = static_cast<std::uint32_t>(k);
        sorted_labels[k] = labels[order[k]];
        sorted_scores[k] = scores[order[k]];
    }
    const Design design =
        renumbered(make_design(labels.size(),
                               clusters.empty() ? class_strata(labels) : std::vector<std::size_t>{},
                               clusters, where),
                   position);
    const auto parts = detail::auc_from_groups(detail::TieGroups{order, walker.group_end}, labels);
    detail::require_classes(parts.positives, parts.negatives, 1, where);
    const auto values = run_replicates(options, [&](std::uint64_t b, Scratch& s) {
        s.a.assign(design.n, 0);
        Rng rng = Rng::derive(options.seed, b);
        design.draw(rng, s.a.data());
        return walker(s.a.data());
    });
    std::vector<double> jack;
    if (options.method == CiMethod::kBca) {
        jack = auc_jackknife(design, sorted_labels, sorted_scores);
    }
    return make_interval(parts.auc, values, jack, options, where);
}

BootstrapCi bootstrap_auroc_difference(std::span<const double> labels,
                                       std::span<const double> scores1,
                                       std::span<const double> scores2,
                                       const BootstrapOptions& options,
                                       std::span<const std::size_t> clusters) {
    const std::string where = "bootstrap_auroc_difference";
    check_binary_inputs(labels, scores1, where + " (first scores)");
    check_binary_inputs(labels, scores2, where + " (second scores)");
    check_options(options, where);
    const ClassCounts counts = count_classes(labels);
    detail::require_classes(counts.positives, counts.negatives, 1, where);
    const AucWalker w1(labels, scores1, false);
    const AucWalker w2(labels, scores2, false);
    const std::vector<std::size_t> strata =
        clusters.empty() ? class_strata(labels) : std::vector<std::size_t>{};
    const Design design = make_design(labels.size(), strata, clusters, where);
    const auto values = run_replicates(options, [&](std::uint64_t b, Scratch& s) {
        s.a.assign(design.n, 0);
        Rng rng = Rng::derive(options.seed, b);
        design.draw(rng, s.a.data());
        return w1(s.a.data()) - w2(s.a.data());
    });
    const double estimate = auroc(labels, scores1) - auroc(labels, scores2);
    std::vector<double> jack;
    if (options.method == CiMethod::kBca) {
        jack = auc_jackknife(design, labels, scores1);
        const auto jack2 = auc_jackknife(design, labels, scores2);
        for (std::size_t u = 0; u < jack.size(); ++u) {
            jack[u] -= jack2[u];
        }
    }
    return make_interval(estimate, values, jack, options, where);
}

BootstrapCi bootstrap_auroc_unpaired_difference(std::span<const double> labels1,
                                                std::span<const double> scores1,
                                                std::span<const double> labels2,
                                                std::span<const double> scores2,
                                                const BootstrapOptions& options,
                                                std::span<const std::size_t> clusters1,
                                                std::span<const std::size_t> clusters2) {
    const std::string where = "bootstrap_auroc_unpaired_difference";
    check_binary_inputs(labels1, scores1, where + " (group 1)");
    check_binary_inputs(labels2, scores2, where + " (group 2)");
    check_options(options, where);
    const double auc1 = auroc(labels1, scores1);
    const double auc2 = auroc(labels2, scores2);
    const AucWalker w1(labels1, scores1, false);
    const AucWalker w2(labels2, scores2, false);
    const Design d1 = make_design(
        labels1.size(), clusters1.empty() ? class_strata(labels1) : std::vector<std::size_t>{},
        clusters1, where + " (group 1)");
    const Design d2 = make_design(
        labels2.size(), clusters2.empty() ? class_strata(labels2) : std::vector<std::size_t>{},
        clusters2, where + " (group 2)");
    const auto values = run_replicates(options, [&](std::uint64_t b, Scratch& s) {
        s.a.assign(d1.n, 0);
        s.b.assign(d2.n, 0);
        Rng rng = Rng::derive(options.seed, b);
        d1.draw(rng, s.a.data());
        d2.draw(rng, s.b.data());
        return w1(s.a.data()) - w2(s.b.data());
    });
    std::vector<double> jack;
    if (options.method == CiMethod::kBca) {
        for (const double v : auc_jackknife(d1, labels1, scores1)) {
            jack.push_back(v - auc2);
        }
        for (const double v : auc_jackknife(d2, labels2, scores2)) {
            jack.push_back(auc1 - v);
        }
    }
    return make_interval(auc1 - auc2, values, jack, options, where);
}

BootstrapCi bootstrap_mean(std::span<const std::optional<double>> values,
                           const BootstrapOptions& options, std::span<const std::size_t> clusters) {
    const std::string where = "bootstrap_mean";
    check_options(options, where);
    std::vector<double> v(values.size(), 0.0);
    std::vector<std::uint8_t> defined(values.size(), 0);
    double sum = 0.0;
    std::size_t count = 0;
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (values[i]) {
            RADPROBE_CHECK(std::isfinite(*values[i]), where, ": value at index ", i, " is ",
                           *values[i], " (values must be finite)");
            v[i] = *values[i];
            defined[i] = 1;
            sum += v[i];
            ++count;
        }
    }
    RADPROBE_CHECK(count > 0, where, ": no defined value among ", values.size());
    const Design design = make_design(values.size(), {}, clusters, where);
    const auto reps = run_replicates(options, [&](std::uint64_t b, Scratch& s) {
        s.a.assign(design.n, 0);
        Rng rng = Rng::derive(options.seed, b);
        design.draw(rng, s.a.data());
        double num = 0.0;
        double den = 0.0;
        for (std::size_t i = 0; i < design.n; ++i) {
            num += s.a[i] * v[i];
            den += s.a[i] * defined[i];
        }
        return den > 0.0 ? num / den : kNaN;
    });
    std::vector<double> jack;
    if (options.method == CiMethod::kBca) {
        jack.assign(design.num_units(), kNaN);
        for (std::size_t u = 0; u < design.num_units(); ++u) {
            double num = sum;
            double den = static_cast<double>(count);
            design.for_members(u, [&](std::uint32_t i) {
                num -= v[i];
                den -= defined[i];
            });
            if (den > 0.0) {
                jack[u] = num / den;
            }
        }
    }
    return make_interval(sum / static_cast<double>(count), reps, jack, options, where);
}

BootstrapCi bootstrap_statistic(std::size_t n, const WeightedStatistic& statistic,
                                const BootstrapOptions& options,
                                std::span<const std::size_t> strata,
                                std::span<const std::size_t> clusters) {
    const std::string where = "bootstrap_statistic";
    check_options(options, where);
    const Design design = make_design(n, strata, clusters, where);
    const std::vector<std::uint32_t> ones(n, 1);
    const double estimate = statistic(ones);
    RADPROBE_CHECK(!std::isnan(estimate), where, ": the statistic is undefined on the sample");
    const auto values = run_replicates(options, [&](std::uint64_t b, Scratch& s) {
        s.a.assign(design.n, 0);
        Rng rng = Rng::derive(options.seed, b);
        design.draw(rng, s.a.data());
        return statistic(s.a);
    });
    std::vector<double> jack;
    if (options.method == CiMethod::kBca) {
        jack = generic_jackknife(design, statistic);
    }
    return make_interval(estimate, values, jack, options, where);
}

}  // namespace radprobe::eval
