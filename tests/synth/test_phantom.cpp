// Unit tests of the phantom generator: the label model, ground truth measured back from the
// rendered masks and images, and determinism.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "radprobe/core/error.hpp"
#include "radprobe/synth/phantom.hpp"

namespace radprobe::synth {
namespace {

SynthOptions small_options(std::size_t n, int size, std::uint64_t seed) {
    SynthOptions o;
    o.n = n;
    o.size = size;
    o.seed = seed;
    return o;
}

// Horizontal extent (max x - min x + 1) of the non-zero pixels of one or two masks; 0 if empty.
int horizontal_extent(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>* b,
                      int size) {
    int lo = size;
    int hi = -1;
    for (int r = 0; r < size; ++r) {
        for (int c = 0; c < size; ++c) {
            const std::size_t i = static_cast<std::size_t>(r) * size + c;
            if (a[i] || (b && (*b)[i])) {
                lo = std::min(lo, c);
                hi = std::max(hi, c);
            }
        }
    }
    return hi < lo ? 0 : hi - lo + 1;
}

std::size_t count_nonzero(const std::vector<std::uint8_t>& m) {
    return static_cast<std::size_t>(std::count_if(m.begin(), m.end(), [](auto v) { return v; }));
}

// ---------------------------------------------------------------- label model

TEST(TubePtxModel, ZeroCorrelationIsIndependence) {
    const TubePtxModel m = tube_ptx_model(0.2, 0.3, 0.0);
    EXPECT_DOUBLE_EQ(m.p_tube_given_ptx, 0.3);
    EXPECT_DOUBLE_EQ(m.p_tube_given_no_ptx, 0.3);
}

TEST(TubePtxModel, OneWithEqualPrevalencesMeansTubeIffPneumothorax) {
    const TubePtxModel m = tube_ptx_model(0.2, 0.2, 1.0);
    EXPECT_NEAR(m.p_tube_given_ptx, 1.0, 1e-12);
    EXPECT_NEAR(m.p_tube_given_no_ptx, 0.0, 1e-12);
}

TEST(TubePtxModel, ImpliedJointHasTheRequestedPhi) {
    for (double p : {0.1, 0.2, 0.5}) {
        for (double q : {0.15, 0.2, 0.4}) {
            const TubePtxModel m0 = tube_ptx_model(p, q, 0.0);
            for (double r : {m0.phi_min, -0.05, 0.3, m0.phi_max}) {
                if (r < m0.phi_min || r > m0.phi_max) {
                    continue;
                }
                const TubePtxModel m = tube_ptx_model(p, q, r);
                const double p11 = p * m.p_tube_given_ptx;
                const double q_implied = p11 + (1 - p) * m.p_tube_given_no_ptx;
                EXPECT_NEAR(q_implied, q, 1e-12) << p << " " << q << " " << r;
                const double phi = (p11 - p * q) / std::sqrt(p * (1 - p) * q * (1 - q));
                EXPECT_NEAR(phi, r, 1e-9) << p << " " << q;
            }
        }
    }
}

TEST(TubePtxModel, UnattainableCorrelationIsAUsageErrorNamingTheRange) {
    try {
        tube_ptx_model(0.2, 0.2, -0.9);
        FAIL() << "accepted an unattainable correlation";
    } catch (const UsageError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("--tube-ptx-correlation"), std::string::npos) << msg;
        EXPECT_NE(msg.find("[-0.25"), std::string::npos) << msg;  // -p/(1-p) for p = q = 0.2
    }
    EXPECT_THROW(tube_ptx_model(0.2, 0.2, 1.5), UsageError);
    EXPECT_THROW(tube_ptx_model(0.0, 0.2, 0.5), UsageError);
    EXPECT_NO_THROW(tube_ptx_model(0.0, 0.2, 0.0));
}

TEST(Options, InvalidValuesAreUsageErrors) {
    auto o = small_options(10, 64, 1);
    o.size = 32;
    EXPECT_THROW(validate_options(o), UsageError);
    o = small_options(0, 64, 1);
    EXPECT_THROW(validate_options(o), UsageError);
    o = small_options(10, 64, 1);
    o.nodule_prevalence = 1.5;
    EXPECT_THROW(validate_options(o), UsageError);
    EXPECT_THROW(parse_format("jpg"), UsageError);
    EXPECT_EQ(parse_format("dcm"), ImageFormat::kDicom);
}

// Prevalences and the tube–ptx correlation of the sampled labels, n = 4000: every estimate must
// lie within 4 binomial standard errors of its target (a false alarm rate of ~6e-5 per check;
// the seeds are fixed, so the test is deterministic anyway).
struct LabelStats {
    double cm = 0, ptx = 0, nod = 0, tube = 0, both = 0, phi = 0;
    std::size_t n = 0;
};

LabelStats label_stats(const std::vector<PhantomCase>& cases) {
    LabelStats s;
    s.n = cases.size();
    for (const auto& c : cases) {
        s.cm += c.cardiomegaly;
        s.ptx += c.pneumothorax;
        s.nod += c.nodule;
        s.tube += c.chest_tube;
        s.both += c.pneumothorax && c.chest_tube;
    }
    const double n = static_cast<double>(s.n);
    s.cm /= n;
    s.ptx /= n;
    s.nod /= n;
    s.tube /= n;
    s.both /= n;
    s.phi = (s.both - s.ptx * s.tube) / std::sqrt(s.ptx * (1 - s.ptx) * s.tube * (1 - s.tube));
    return s;
}

void expect_binomial(double estimate, double p, std::size_t n, const char* what) {
    const double se = std::sqrt(p * (1 - p) / static_cast<double>(n));
    EXPECT_NEAR(estimate, p, 4 * se) << what;
}

TEST(Labels, PrevalencesAndCorrelationMatchTheRequest) {
    struct Case {
        double cm, ptx, nod, r;
        std::optional<double> tube;
    };
    const Case cases[] = {{0.25, 0.2, 0.25, 0.0, {}},
                          {0.5, 0.3, 0.1, 0.6, {}},
                          {0.1, 0.2, 0.4, 0.3, 0.35},
                          {0.3, 0.2, 0.2, -0.25, {}}};
    const std::size_t n = 4000;
    for (const auto& k : cases) {
        auto o = small_options(n, 64, 17);
        o.cardiomegaly_prevalence = k.cm;
        o.pneumothorax_prevalence = k.ptx;
        o.nodule_prevalence = k.nod;
        o.tube_prevalence = k.tube;
        o.tube_ptx_correlation = k.r;
        const LabelStats s = label_stats(plan_dataset(o));
        const double q = k.tube.value_or(k.ptx);
        expect_binomial(s.cm, k.cm, n, "cardiomegaly");
        expect_binomial(s.ptx, k.ptx, n, "pneumothorax");
        expect_binomial(s.nod, k.nod, n, "nodule");
        expect_binomial(s.tube, q, n, "chest_tube");
        // The sample phi has a standard error of at most ~1/sqrt(n) (its value under
        // independence); 4/sqrt(n) = 0.063.
        EXPECT_NEAR(s.phi, k.r, 4.0 / std::sqrt(static_cast<double>(n))) << "phi, r = " << k.r;
    }
}

TEST(Labels, CorrelationOneMakesTheTubeAPerfectShortcut) {
    auto o = small_options(2000, 64, 3);
    o.tube_ptx_correlation = 1.0;
    std::size_t ptx = 0;
    for (const auto& c : plan_dataset(o)) {
        EXPECT_EQ(c.chest_tube, c.pneumothorax) << c.image_id;
        ptx += c.pneumothorax;
        if (c.chest_tube) {
            ASSERT_TRUE(c.tube && c.ptx);
            EXPECT_EQ(c.tube->side, c.ptx->side) << "tube on the pneumothorax side";
        }
    }
    EXPECT_GT(ptx, 0u);
}

TEST(Labels, CardiomegalyIsCtrAboveOneHalfAndCtrSpansBothSides) {
    auto o = small_options(3000, 64, 5);
    o.cardiomegaly_prevalence = 0.4;
    double lo = 1, hi = 0;
    std::size_t near_threshold = 0;
    for (const auto& c : plan_dataset(o)) {
        EXPECT_EQ(c.cardiomegaly, c.ctr > 0.5) << c.image_id << " ctr " << c.ctr;
        EXPECT_DOUBLE_EQ(std::round(c.ctr * 1e4) / 1e4, c.ctr) << "ctr on the 1e-4 grid";
        EXPECT_EQ(c.nodule, !c.nodules.empty());
        EXPECT_EQ(c.pneumothorax, c.ptx.has_value());
        EXPECT_EQ(c.chest_tube, c.tube.has_value());
        lo = std::min(lo, c.ctr);
        hi = std::max(hi, c.ctr);
        near_threshold += std::abs(c.ctr - 0.5) < 0.02;
    }
    // A continuum through the threshold, not two separated clusters.
    EXPECT_LT(lo, 0.40);
    EXPECT_GT(hi, 0.65);
    EXPECT_GT(near_threshold, 100u);
}

TEST(Patients, SplitsArePatientLevelWithSomeFollowUps) {
    auto o = small_options(1000, 64, 9);
    const auto cases = plan_dataset(o);
    std::map<std::string, std::set<std::string>> splits;
    std::map<std::string, int> images;
    for (const auto& c : cases) {
        splits[c.patient_id].insert(c.split);
        ++images[c.patient_id];
    }
    std::map<std::string, int> per_split;
    int followups = 0;
    for (const auto& [pid, s] : splits) {
        EXPECT_EQ(s.size(), 1u) << pid << " is in two splits";
        ++per_split[*s.begin()];
        followups += images[pid] == 2;
        EXPECT_LE(images[pid], 2);
    }
    const double patients = static_cast<double>(splits.size());
    EXPECT_NEAR(per_split["train"], std::llround(0.70 * patients), 0.5);
    EXPECT_NEAR(per_split["val"], std::llround(0.15 * patients), 0.5);
    // followup fraction 0.1 of patients: binomial, 4 standard errors.
    expect_binomial(followups / patients, 0.1, splits.size(), "follow-ups");
}

// ---------------------------------------------------------------- rendered ground truth

std::vector<PhantomCase> rendered_cases(int size, std::uint64_t seed, std::size_t n) {
    auto o = small_options(n, size, seed);
    o.cardiomegaly_prevalence = 0.5;
    o.pneumothorax_prevalence = 0.5;
    o.nodule_prevalence = 0.6;
    return plan_dataset(o);
}

TEST(Render, MasksAreBinaryDisjointAndOnTheDocumentedSides) {
    for (const auto& c : rendered_cases(128, 21, 12)) {
        const Phantom ph = render(c);
        const std::size_t npix = static_cast<std::size_t>(c.size) * c.size;
        ASSERT_EQ(ph.image.size(), npix);
        int right_max_col = -1;
        int left_min_col = c.size;
        for (std::size_t i = 0; i < npix; ++i) {
            for (auto* m : {&ph.heart, &ph.lung_left, &ph.lung_right, &ph.pneumothorax}) {
                ASSERT_TRUE((*m)[i] == 0 || (*m)[i] == 255);
            }
            EXPECT_FALSE(ph.heart[i] && (ph.lung_left[i] || ph.lung_right[i]));
            EXPECT_FALSE(ph.lung_left[i] && ph.lung_right[i]);
            ASSERT_GE(ph.image[i], 0.0f);
            ASSERT_LE(ph.image[i], 1.0f);
            const int col = static_cast<int>(i % c.size);
            if (ph.lung_right[i]) {
                right_max_col = std::max(right_max_col, col);
            }
            if (ph.lung_left[i]) {
                left_min_col = std::min(left_min_col, col);
            }
        }
        // Patient right is on the image left.
        EXPECT_LT(right_max_col, left_min_col) << c.image_id;
        EXPECT_GT(count_nonzero(ph.heart), npix / 50) << c.image_id;
    }
}

TEST(Render, LungsAreDarkAndTheHeartBright) {
    for (const auto& c : rendered_cases(128, 22, 8)) {
        const Phantom ph = render(c);
        double lung = 0, heart = 0;
        std::size_t nl = 0, nh = 0;
        for (std::size_t i = 0; i < ph.image.size(); ++i) {
            if ((ph.lung_left[i] || ph.lung_right[i]) && !ph.pneumothorax[i]) {
                lung += ph.image[i];
                ++nl;
            }
            if (ph.heart[i]) {
                heart += ph.image[i];
                ++nh;
            }
        }
        EXPECT_LT(lung / nl + 0.3, heart / nh) << c.image_id;
    }
}

// CTR measured as a reader would: heart extent / extent of both lung fields. Each measured
// extent counts pixel centres inside an interval whose true length is the generated width, so
// it is off by less than 1 px: |H'/T' - H/T| <= (|dH| + ctr |dT|) / T' < (1 + ctr) / T'.
TEST(Render, CtrMeasuredFromMasksMatchesTheManifest) {
    for (int size : {64, 256}) {
        int positives = 0;
        for (const auto& c : rendered_cases(size, 31 + size, 24)) {
            const Phantom ph = render(c);
            const int heart = horizontal_extent(ph.heart, nullptr, size);
            const int thorax = horizontal_extent(ph.lung_left, &ph.lung_right, size);
            ASSERT_GT(thorax, 0);
            const double measured = static_cast<double>(heart) / thorax;
            EXPECT_NEAR(measured, c.ctr, (1.0 + c.ctr) / thorax)
                << c.image_id << " size " << size << " heart " << heart << " thorax " << thorax;
            positives += c.cardiomegaly;
        }
        EXPECT_GT(positives, 0);
    }
}

TEST(Render, PneumothoraxMaskIsInsideItsLungAndEmptyExactlyWithoutTheLabel) {
    for (int size : {64, 256}) {
        for (const auto& c : rendered_cases(size, 41 + size, 16)) {
            const Phantom ph = render(c);
            const std::size_t n = count_nonzero(ph.pneumothorax);
            if (!c.pneumothorax) {
                EXPECT_EQ(n, 0u) << c.image_id;
                continue;
            }
            EXPECT_GT(n, static_cast<std::size_t>(size) / 2) << c.image_id << " too small";
            const auto& lung = c.ptx->side == 0 ? ph.lung_right : ph.lung_left;
            std::size_t lung_n = 0;
            for (std::size_t i = 0; i < ph.pneumothorax.size(); ++i) {
                if (ph.pneumothorax[i]) {
                    EXPECT_TRUE(lung[i]) << c.image_id << " pixel " << i << " outside its lung";
                }
                lung_n += lung[i] != 0;
            }
            EXPECT_LT(n, lung_n / 2) << c.image_id << ": the lung is retracted, not gone";
        }
    }
}

std::vector<std::uint8_t> dilate(const std::vector<std::uint8_t>& m, int size, int radius) {
    std::vector<std::uint8_t> out(m.size(), 0);
    for (int r = 0; r < size; ++r) {
        for (int c = 0; c < size; ++c) {
            if (!m[static_cast<std::size_t>(r) * size + c]) {
                continue;
            }
            for (int dr = -radius; dr <= radius; ++dr) {
                for (int dc = -radius; dc <= radius; ++dc) {
                    const int rr = r + dr;
                    const int cc = c + dc;
                    if (rr >= 0 && rr < size && cc >= 0 && cc < size) {
                        out[static_cast<std::size_t>(rr) * size + cc] = 1;
                    }
                }
            }
        }
    }
    return out;
}

// Removing the pneumothorax from a case changes the image only within the pneumothorax mask
// dilated by the pleural line (1 px) and the blur kernel (3 sigma, truncated): exactly zero
// elsewhere, since noise and texture come from the case's own seeds. Inside, the space is darker.
TEST(Render, PneumothoraxChangesTheImageOnlyAroundItsMask) {
    int checked = 0;
    for (const auto& c : rendered_cases(128, 51, 16)) {
        if (!c.pneumothorax) {
            continue;
        }
        PhantomCase without = c;
        without.ptx.reset();
        without.tube.reset();
        PhantomCase with_ptx = c;
        with_ptx.tube.reset();
        const Phantom a = render(with_ptx);
        const Phantom b = render(without);
        const int reach = 1 + static_cast<int>(std::ceil(3.0 * c.geometry.blur_sigma));
        const auto zone = dilate(a.pneumothorax, c.size, reach);
        double inside_mask = 0;
        for (std::size_t i = 0; i < a.image.size(); ++i) {
            const float d = a.image[i] - b.image[i];
            if (!zone[i]) {
                ASSERT_EQ(d, 0.0f) << c.image_id << " pixel " << i;
            }
            if (a.pneumothorax[i]) {
                inside_mask += d;
            }
        }
        EXPECT_LT(inside_mask / count_nonzero(a.pneumothorax), -0.01) << "hyperlucent space";
        ++checked;
    }
    EXPECT_GT(checked, 2);
}

// One nodule at a time: the image difference is zero beyond the lesion disc + 3 sigma blur, and
// at least 90% of its absolute mass lies in the box (disc + 2 sigma). Worst case is a point
// source, whose blurred mass inside +-2 sigma per axis is 0.954^2 = 0.91; larger discs do better.
TEST(Render, NoduleBoxesContainTheLesion) {
    int checked = 0;
    for (int size : {64, 256}) {
        for (const auto& c : rendered_cases(size, 61 + size, 16)) {
            for (std::size_t k = 0; k < c.nodules.size(); ++k) {
                PhantomCase base = c;
                base.nodules.clear();
                PhantomCase one = base;
                one.nodules = {c.nodules[k]};
                const Phantom a = render(one);
                const Phantom b = render(base);
                ASSERT_EQ(a.boxes.size(), 1u);
                const Box& box = a.boxes[0];
                EXPECT_EQ(box.label, "nodule");
                const Nodule& nd = c.nodules[k];
                EXPECT_LE(box.x0, nd.cx - nd.radius);
                EXPECT_GE(box.x1, nd.cx + nd.radius);
                EXPECT_LE(box.y0, nd.cy - nd.radius);
                EXPECT_GE(box.y1, nd.cy + nd.radius);
                // The blur reaches ceil(3 sigma) pixels in each axis (a square support).
                const double reach = nd.radius + std::ceil(3.0 * c.geometry.blur_sigma) + 1.0;
                double total = 0, inside = 0, signed_sum = 0;
                for (int r = 0; r < size; ++r) {
                    for (int col = 0; col < size; ++col) {
                        const std::size_t i = static_cast<std::size_t>(r) * size + col;
                        const double d = static_cast<double>(a.image[i]) - b.image[i];
                        if (std::max(std::abs(col + 0.5 - nd.cx), std::abs(r + 0.5 - nd.cy)) >
                            reach) {
                            ASSERT_EQ(d, 0.0) << c.image_id << " nodule " << k;
                        }
                        total += std::abs(d);
                        signed_sum += d;
                        if (col >= box.x0 && col < box.x1 && r >= box.y0 && r < box.y1) {
                            inside += std::abs(d);
                        }
                    }
                }
                ASSERT_GT(total, 0.0) << "nodule invisible";
                EXPECT_GT(signed_sum, 0.0) << "nodules are denser than lung";
                EXPECT_GE(inside / total, 0.90)
                    << c.image_id << " nodule " << k << " radius " << nd.radius;
                ++checked;
            }
        }
    }
    EXPECT_GT(checked, 10);
}

TEST(Render, NoduleSizesSpanFewPixelsToLarge) {
    auto o = small_options(2000, 256, 71);
    o.nodule_prevalence = 1.0;
    double lo = 1e9, hi = 0;
    for (const auto& c : plan_dataset(o)) {
        for (const auto& n : c.nodules) {
            lo = std::min(lo, 2 * n.radius);
            hi = std::max(hi, 2 * n.radius);
            EXPECT_GE(n.contrast, 0.03);
            EXPECT_LE(n.contrast, 0.15);
        }
    }
    EXPECT_LT(lo, 3.5);   // 3 px at 256 px (5 mm)
    EXPECT_GT(hi, 15.0);  // ~30 mm
}

TEST(Render, SameCaseRendersIdenticallyAndSeedsDiffer) {
    const auto a = rendered_cases(96, 81, 3);
    const auto b = rendered_cases(96, 81, 3);
    const auto c = rendered_cases(96, 82, 3);
    for (std::size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(render(a[i]).image, render(b[i]).image);
        EXPECT_NE(render(a[i]).image, render(c[i]).image);
    }
}

TEST(AcquisitionShift, ChangesExposureAndNoiseOfThePositivesOnly) {
    SynthOptions plain = small_options(200, 64, 17);
    plain.nodule_prevalence = 0.4;
    SynthOptions shifted = plain;
    shifted.acquisition_shifts = {{"nodule", 0.5}};
    const auto a = plan_dataset(plain);
    const auto b = plan_dataset(shifted);
    ASSERT_EQ(a.size(), b.size());
    std::size_t positives = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        // Every draw is that of the unshifted dataset: labels, anatomy, findings, seeds.
        EXPECT_EQ(a[i].nodule, b[i].nodule);
        EXPECT_EQ(a[i].cardiomegaly, b[i].cardiomegaly);
        EXPECT_EQ(a[i].ctr, b[i].ctr);
        EXPECT_EQ(a[i].nodules.size(), b[i].nodules.size());
        EXPECT_EQ(a[i].geometry.heart_cx, b[i].geometry.heart_cx);
        EXPECT_EQ(a[i].geometry.contrast, b[i].geometry.contrast);
        EXPECT_EQ(a[i].noise_seed, b[i].noise_seed);
        const double factor = a[i].nodule ? 1.5 : 1.0;
        positives += a[i].nodule;
        EXPECT_DOUBLE_EQ(b[i].geometry.gain, a[i].geometry.gain * factor) << i;
        EXPECT_DOUBLE_EQ(b[i].geometry.noise_sigma, a[i].geometry.noise_sigma * factor) << i;
        if (!a[i].nodule && i < 20) {
            EXPECT_EQ(render(a[i]).image, render(b[i]).image) << i;
        }
    }
    EXPECT_GT(positives, 50u);
    // The shifted positives are brighter on average (exposure gain 1.5x): what a shortcut is.
    double mean_a = 0.0, mean_b = 0.0;
    for (std::size_t i = 0; i < 40; ++i) {
        if (a[i].nodule) {
            for (float v : render(a[i]).image) {
                mean_a += v;
            }
            for (float v : render(b[i]).image) {
                mean_b += v;
            }
        }
    }
    EXPECT_GT(mean_b, mean_a * 1.05);
}

TEST(AcquisitionShift, ParsedFromLabelColonAmountAndChecked) {
    const auto s = parse_acquisition_shift("chest_tube:-0.25");
    EXPECT_EQ(s.label, "chest_tube");
    EXPECT_EQ(s.amount, -0.25);
    for (const std::string bad : {"nodule", "nodule:", ":0.3", "lesion:0.3", "nodule:x",
                                  "nodule:0.3x", "nodule:0", "nodule:-0.6", "nodule:2.5"}) {
        EXPECT_THROW(parse_acquisition_shift(bad), UsageError) << bad;
    }
    SynthOptions o = small_options(10, 64, 1);
    o.acquisition_shifts = {{"heart", 0.2}};
    EXPECT_THROW(validate_options(o), UsageError);
}

TEST(Render, StoredValuesRoundToSixteenBits) {
    EXPECT_EQ(to_stored(0.0f), 0);
    EXPECT_EQ(to_stored(1.0f), 65535);
    EXPECT_EQ(to_stored(0.5f), 32768);
    EXPECT_EQ(to_stored(-1.0f), 0);
    EXPECT_EQ(to_stored(2.0f), 65535);
}

TEST(Dicom, UidsAreValidDeterministicAndDistinct) {
    const std::string a = derived_uid(1, 13, 0);
    EXPECT_EQ(a, derived_uid(1, 13, 0));
    EXPECT_NE(a, derived_uid(1, 13, 1));
    EXPECT_NE(a, derived_uid(2, 13, 0));
    EXPECT_NE(a, derived_uid(1, 12, 0));
    EXPECT_EQ(a.rfind("2.25.", 0), 0u);
    EXPECT_LE(a.size(), 64u);
    const std::string digits = a.substr(5);
    EXPECT_TRUE(std::all_of(digits.begin(), digits.end(), ::isdigit));
    EXPECT_NE(digits[0], '0');
}

}  // namespace
}  // namespace radprobe::synth
