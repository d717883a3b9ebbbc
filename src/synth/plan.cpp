// Sampling: patients, splits, labels and the geometry of every phantom.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "anatomy.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/random.hpp"
#include "radprobe/synth/phantom.hpp"
#include "raster.hpp"

namespace radprobe::synth {

using detail::mix_seed;

namespace {

// Stream tags: every kind of draw has its own stream so that, e.g., the labels of image i do
// not depend on how many draws the geometry of image i - 1 needed.
enum StreamTag : std::uint64_t {
    kTagPatients = 1,
    kTagSplit = 2,
    kTagLabels = 3,
    kTagAnatomy = 4,
    kTagImage = 5,
    kTagTexture = 6,
    kTagNoise = 7,
};

std::string numbered(const char* prefix, std::size_t i) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%s%06zu", prefix, i);
    return buf;
}

void check_probability(double p, const char* flag) {
    RADPROBE_USAGE_CHECK(std::isfinite(p) && p >= 0.0 && p <= 1.0, flag,
                         " must be a probability in [0, 1], got ", p);
}

// Patient-level anatomy (normalised units: fractions of the image side at pose scale 1).
struct PatientAnatomy {
    double th, apex, lung_h, dome_h, right_higher, med, heart_b, heart_left_frac, body_margin,
        lat_apex, neck;
};

PatientAnatomy sample_patient(Rng& rng) {
    PatientAnatomy a{};
    a.th = rng.uniform(0.29, 0.34);
    a.apex = rng.uniform(0.11, 0.15);
    a.lung_h = rng.uniform(0.58, 0.65);
    a.dome_h = rng.uniform(0.08, 0.12);
    a.right_higher = rng.uniform(0.01, 0.03);
    a.med = rng.uniform(0.055, 0.072);
    a.heart_b = rng.uniform(0.12, 0.16);
    a.heart_left_frac = rng.uniform(0.58, 0.66);
    a.body_margin = rng.uniform(0.05, 0.09);
    a.lat_apex = rng.uniform(0.55, 0.68);
    a.neck = rng.uniform(0.08, 0.11);
    return a;
}

Geometry sample_geometry(const PatientAnatomy& a, Rng& rng, int size, double ctr) {
    Geometry g;
    const double S = size;
    const double scale = S * rng.uniform(0.93, 1.03);
    const double shift_x = rng.uniform(-0.03, 0.03) * S;
    const double shift_y = rng.uniform(-0.025, 0.025) * S;
    const double inspiration = rng.uniform(0.96, 1.04);
    auto Y = [&](double yn) { return 0.5 * S + shift_y + (yn - 0.5) * scale; };
    g.scale = scale;
    g.xm = 0.5 * S + shift_x;
    g.th = a.th * scale;
    g.y_apex = Y(a.apex);
    g.y_cp = g.y_apex + a.lung_h * inspiration * scale;
    g.lat_apex_frac = a.lat_apex;
    for (int s = 0; s < 2; ++s) {
        g.apex_d[s] = g.th * rng.uniform(0.42, 0.52);
        g.dome_d[s] = g.th * rng.uniform(0.45, 0.58);
    }
    // Apex cap: rises by 12% of the scale over 0.3 th either side of its centre.
    g.apex_curv = 0.12 * scale / ((0.3 * g.th) * (0.3 * g.th));
    const double dome_h = a.dome_h * scale;
    g.dome_top[1] = g.y_cp - dome_h;
    g.dome_top[0] = g.dome_top[1] - a.right_higher * scale;
    for (int s = 0; s < 2; ++s) {
        g.y_card[s] = g.dome_top[s] + rng.uniform(0.02, 0.04) * scale;
    }
    g.med_half = a.med * scale;
    g.knob_amp = rng.uniform(0.02, 0.04) * scale;
    g.knob_y = g.y_apex + rng.uniform(0.14, 0.18) * scale;
    g.knob_w = 0.05 * scale;

    // Heart: horizontal extent = ctr × thoracic width (2 th), widest at heart_cy, which is kept
    // at least 2 px above both domes so that the widest row is never clipped by the diaphragm.
    const double width = ctr * 2.0 * g.th;
    const double left_frac = a.heart_left_frac;  // part of the heart on side 1 (patient left)
    const double x_right_border = g.xm - (1.0 - left_frac) * width;
    const double x_left_border = g.xm + left_frac * width;
    g.heart_cx = g.xm + (left_frac - 0.5) * width * 0.5;
    g.heart_a[0] = g.heart_cx - x_right_border;
    g.heart_a[1] = x_left_border - g.heart_cx;
    g.heart_b = a.heart_b * scale;
    const double margin = std::max(rng.uniform(0.015, 0.03) * scale, 2.0);
    g.heart_cy = std::min(g.dome_top[0], g.dome_top[1]) - margin;

    g.body_half = (a.th + a.body_margin) * scale;
    g.neck_half = a.neck * scale;
    g.shoulder_y0 = g.y_apex - 0.12 * scale;
    g.shoulder_y1 = g.y_apex + 0.03 * scale;
    g.trachea_half = rng.uniform(0.014, 0.02) * scale;
    g.carina_y = g.y_apex + rng.uniform(0.17, 0.22) * scale;
    g.spine_half = rng.uniform(0.026, 0.034) * scale;
    g.vert_period = rng.uniform(0.04, 0.05) * scale;
    g.vert_phase = rng.uniform(0.0, 1.0);
    g.rib_y0 = g.y_apex - rng.uniform(0.01, 0.03) * scale;
    g.rib_spacing = (g.y_cp - g.y_apex) * rng.uniform(0.082, 0.09);
    g.rib_thick = rng.uniform(0.019, 0.024) * scale;
    g.clav_y_med = g.y_apex + rng.uniform(0.07, 0.09) * scale;
    g.clav_y_lat = g.y_apex + rng.uniform(-0.01, 0.02) * scale;
    g.clav_thick = rng.uniform(0.022, 0.028) * scale;

    g.gain = rng.uniform(1.45, 1.8);
    g.contrast = rng.uniform(0.92, 1.08);
    g.bias = rng.uniform(-0.03, 0.03);
    g.heel = rng.uniform(-0.06, 0.06);
    g.blur_sigma = std::max(0.4, rng.uniform(0.5, 1.0) * S / 256.0);
    g.noise_sigma = rng.uniform(0.004, 0.014);
    return g;
}

bool nodule_fits(const Geometry& g, const std::optional<Pneumothorax>& ptx, int side, double cx,
                 double cy, double r) {
    if (!detail::in_visible_lung(g, ptx, side, cx, cy)) {
        return false;
    }
    for (int k = 0; k < 8; ++k) {
        const double ang = k * (3.14159265358979323846 / 4.0);
        if (!detail::in_visible_lung(g, ptx, side, cx + r * std::cos(ang),
                                     cy + r * std::sin(ang))) {
            return false;
        }
    }
    return true;
}

Nodule place_nodule(const Geometry& g, const std::optional<Pneumothorax>& ptx, Rng& rng, int size) {
    const double spacing_mm = kFieldOfViewMm / size;
    const double lo = std::max(3.0 * spacing_mm, 4.0);
    const double hi = std::max(30.0, lo);
    const double diameter_mm = std::exp(rng.uniform(std::log(lo), std::log(hi)));
    Nodule n;
    n.radius = 0.5 * diameter_mm / spacing_mm;
    n.contrast = rng.uniform(0.03, 0.15);
    for (int shrink = 0; shrink < 8; ++shrink) {
        for (int attempt = 0; attempt < 400; ++attempt) {
            const int side = static_cast<int>(rng.below(2));
            const double d = rng.uniform(g.med_half, g.th);
            const double cx = g.xm + detail::side_sign(side) * d;
            const double cy = rng.uniform(g.y_apex, g.y_cp);
            if (nodule_fits(g, ptx, side, cx, cy, n.radius)) {
                n.cx = cx;
                n.cy = cy;
                return n;
            }
        }
        n.radius = std::max(1.5, n.radius * 0.8);
    }
    RADPROBE_ASSERT(false, "could not place a nodule in the lung fields");
    return n;
}

}  // namespace

ImageFormat parse_format(const std::string& text) {
    if (text == "png") {
        return ImageFormat::kPng;
    }
    if (text == "dcm" || text == "dicom") {
        return ImageFormat::kDicom;
    }
    throw UsageError(str_cat("--format must be png or dcm, got '", text, "'"));
}

TubePtxModel tube_ptx_model(double p, double q, double r) {
    check_probability(p, "--pneumothorax-prevalence");
    check_probability(q, "--tube-prevalence");
    RADPROBE_USAGE_CHECK(std::isfinite(r) && r >= -1.0 && r <= 1.0,
                         "--tube-ptx-correlation must be in [-1, 1], got ", r);
    TubePtxModel m;
    m.p_ptx = p;
    m.p_tube = q;
    const double var = p * (1.0 - p) * q * (1.0 - q);
    double p11 = p * q;
    if (var <= 0.0) {
        RADPROBE_USAGE_CHECK(r == 0.0, "--tube-ptx-correlation ", r,
                             " is undefined when the pneumothorax prevalence (", p,
                             ") or the tube prevalence (", q, ") is 0 or 1; use 0");
    } else {
        const double sd = std::sqrt(var);
        const double lo = std::max(0.0, p + q - 1.0);
        const double hi = std::min(p, q);
        m.phi_min = (lo - p * q) / sd;
        m.phi_max = (hi - p * q) / sd;
        const double eps = 1e-9;
        RADPROBE_USAGE_CHECK(
            r >= m.phi_min - eps && r <= m.phi_max + eps, "--tube-ptx-correlation ", r,
            " is not attainable with pneumothorax prevalence ", p, " and tube prevalence ", q,
            ": attainable range [", m.phi_min, ", ", m.phi_max, "]");
        p11 = std::clamp(p * q + r * sd, lo, hi);
    }
    m.p_tube_given_ptx = p > 0.0 ? std::clamp(p11 / p, 0.0, 1.0) : q;
    m.p_tube_given_no_ptx = p < 1.0 ? std::clamp((q - p11) / (1.0 - p), 0.0, 1.0) : q;
    return m;
}

namespace {

const std::vector<std::string>& shiftable_labels() {
    static const std::vector<std::string> labels = {"cardiomegaly", "pneumothorax", "nodule",
                                                    "chest_tube"};
    return labels;
}

void check_acquisition_shift(const AcquisitionShift& s) {
    const auto& labels = shiftable_labels();
    RADPROBE_USAGE_CHECK(std::find(labels.begin(), labels.end(), s.label) != labels.end(),
                         "--acquisition-shift: label '", s.label,
                         "' is not one of cardiomegaly, pneumothorax, nodule, chest_tube");
    RADPROBE_USAGE_CHECK(
        std::isfinite(s.amount) && s.amount >= -0.5 && s.amount <= 2.0 && s.amount != 0.0,
        "--acquisition-shift ", s.label,
        ": amount must be in [-0.5, 2] and not 0, "
        "got ",
        s.amount);
}

bool positive_for(const PhantomCase& c, const std::string& label) {
    return label == "cardiomegaly"   ? c.cardiomegaly
           : label == "pneumothorax" ? c.pneumothorax
           : label == "nodule"       ? c.nodule
                                     : c.chest_tube;
}

}  // namespace

AcquisitionShift parse_acquisition_shift(const std::string& text) {
    const auto colon = text.rfind(':');
    RADPROBE_USAGE_CHECK(colon != std::string::npos && colon > 0 && colon + 1 < text.size(),
                         "--acquisition-shift must be LABEL:AMOUNT (e.g. nodule:0.4), got '", text,
                         "'");
    AcquisitionShift s;
    s.label = text.substr(0, colon);
    const std::string amount = text.substr(colon + 1);
    std::size_t used = 0;
    try {
        s.amount = std::stod(amount, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    RADPROBE_USAGE_CHECK(used == amount.size(), "--acquisition-shift ", s.label, ": amount '",
                         amount, "' is not a number");
    check_acquisition_shift(s);
    return s;
}

void validate_options(const SynthOptions& o) {
    RADPROBE_USAGE_CHECK(o.size >= 64 && o.size <= 4096, "--size must be in [64, 4096], got ",
                         o.size);
    RADPROBE_USAGE_CHECK(o.n >= 1 && o.n <= 1000000, "--n must be in [1, 1000000], got ", o.n);
    check_probability(o.cardiomegaly_prevalence, "--cardiomegaly-prevalence");
    check_probability(o.nodule_prevalence, "--nodule-prevalence");
    check_probability(o.followup_fraction, "--followup-fraction");
    tube_ptx_model(o.pneumothorax_prevalence, o.tube_prevalence.value_or(o.pneumothorax_prevalence),
                   o.tube_ptx_correlation);
    for (const auto& shift : o.acquisition_shifts) {
        check_acquisition_shift(shift);
    }
}

std::vector<PhantomCase> plan_dataset(const SynthOptions& o) {
    validate_options(o);
    const TubePtxModel tube_model = tube_ptx_model(
        o.pneumothorax_prevalence, o.tube_prevalence.value_or(o.pneumothorax_prevalence),
        o.tube_ptx_correlation);

    // Patients: each has one image, or two consecutive images with probability followup.
    std::vector<std::size_t> patient_of(o.n);
    std::size_t patients = 0;
    {
        Rng rng(mix_seed(o.seed, kTagPatients));
        for (std::size_t i = 0; i < o.n; ++patients) {
            patient_of[i++] = patients;
            if (i < o.n && rng.bernoulli(o.followup_fraction)) {
                patient_of[i++] = patients;
            }
        }
    }
    // Splits by patient: a seeded shuffle, then exact 70/15/15 counts.
    std::vector<std::string> split_of(patients);
    {
        std::vector<std::size_t> order(patients);
        std::iota(order.begin(), order.end(), std::size_t{0});
        Rng rng(mix_seed(o.seed, kTagSplit));
        for (std::size_t i = patients; i > 1; --i) {
            std::swap(order[i - 1], order[rng.below(i)]);
        }
        const auto n_train = static_cast<std::size_t>(std::llround(0.70 * patients));
        const auto n_val = static_cast<std::size_t>(std::llround(0.15 * patients));
        for (std::size_t k = 0; k < patients; ++k) {
            split_of[order[k]] = k < n_train ? "train" : (k < n_train + n_val ? "val" : "test");
        }
    }

    std::vector<PhantomCase> cases(o.n);
    for (std::size_t i = 0; i < o.n; ++i) {
        PhantomCase& c = cases[i];
        const std::size_t p = patient_of[i];
        c.index = i;
        c.size = o.size;
        c.image_id = numbered("phantom_", i);
        c.patient_id = numbered("P", p);
        c.split = split_of[p];

        // Labels first, from their own stream, a fixed number of draws per image.
        Rng labels = Rng::derive(mix_seed(o.seed, kTagLabels), i);
        c.pneumothorax = labels.bernoulli(tube_model.p_ptx);
        c.chest_tube = labels.bernoulli(c.pneumothorax ? tube_model.p_tube_given_ptx
                                                       : tube_model.p_tube_given_no_ptx);
        c.cardiomegaly = labels.bernoulli(o.cardiomegaly_prevalence);
        c.nodule = labels.bernoulli(o.nodule_prevalence);
        const long long ctr_q = c.cardiomegaly ? 5001 + static_cast<long long>(labels.below(1800))
                                               : 3800 + static_cast<long long>(labels.below(1201));
        c.ctr = static_cast<double>(ctr_q) / 10000.0;

        Rng anatomy_rng = Rng::derive(mix_seed(o.seed, kTagAnatomy), p);
        const PatientAnatomy anatomy = sample_patient(anatomy_rng);
        Rng rng = Rng::derive(mix_seed(o.seed, kTagImage), i);
        c.geometry = sample_geometry(anatomy, rng, o.size, c.ctr);
        const Geometry& g = c.geometry;

        if (c.pneumothorax) {
            Pneumothorax ptx;
            ptx.side = static_cast<int>(rng.below(2));
            ptx.cx = g.xm + detail::side_sign(ptx.side) * 0.35 * g.th;
            ptx.cy = g.y_cp;
            ptx.fx = rng.uniform(0.72, 0.92);
            ptx.fy = rng.uniform(0.80, 0.94);
            c.ptx = ptx;
        }
        if (c.chest_tube) {
            ChestTube t;
            t.side = c.ptx ? c.ptx->side : static_cast<int>(rng.below(2));
            const double s = detail::side_sign(t.side);
            const double k = g.scale;
            const double entry_y = g.y_apex + (g.y_cp - g.y_apex) * rng.uniform(0.55, 0.8);
            t.x[0] = g.xm + s * (g.body_half + 0.15 * k);
            t.y[0] = entry_y + rng.uniform(0.0, 0.06) * k;
            t.x[1] = g.xm + s * 0.97 * g.th;
            t.y[1] = entry_y;
            t.x[2] = g.xm + s * rng.uniform(0.72, 0.82) * g.th;
            t.y[2] = g.y_apex + rng.uniform(0.18, 0.26) * k;
            t.x[3] = g.xm + s * rng.uniform(0.38, 0.6) * g.th;
            t.y[3] = g.y_apex + rng.uniform(0.06, 0.12) * k;
            t.width = std::max(0.8, 0.0055 * k);
            c.tube = t;
        }
        if (c.nodule) {
            const int count = 1 + (rng.bernoulli(0.3) ? 1 : 0) + (rng.bernoulli(0.3) ? 1 : 0);
            for (int k = 0; k < count; ++k) {
                c.nodules.push_back(place_nodule(g, c.ptx, rng, o.size));
            }
        }
        // The acquisition shift comes after every draw: the images of the unshifted dataset
        // differ only in their exposure and noise.
        for (const auto& shift : o.acquisition_shifts) {
            if (positive_for(c, shift.label)) {
                c.geometry.gain *= 1.0 + shift.amount;
                c.geometry.noise_sigma *= 1.0 + shift.amount;
            }
        }
        c.texture_seed = mix_seed(mix_seed(o.seed, kTagTexture), i);
        c.noise_seed = mix_seed(mix_seed(o.seed, kTagNoise), i);
    }
    return cases;
}

}  // namespace radprobe::synth
