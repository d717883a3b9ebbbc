// Radiograph augmentation: one affine sampling grid per sample (crop ∘ rotation ∘ flip) shared by
// the image and its masks, then intensity jitter on the image only.

#include "radprobe/adapt/training.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "radprobe/core/error.hpp"

namespace radprobe::adapt {

namespace {

namespace F = torch::nn::functional;

double parse_number(const std::string& key, const std::string& value) {
    std::size_t used = 0;
    double v = 0.0;
    try {
        v = std::stod(value, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    RADPROBE_USAGE_CHECK(used == value.size() && !value.empty() && std::isfinite(v), "--augment ",
                         key, "=", value, ": expected a number");
    return v;
}

// Row-major 2×3 affine map from output to input normalised coordinates (see augment.hpp):
//   x_in = cos·cw·f·u − sin·ch·(H/W)·v + cx,   y_in = sin·cw·f·(W/H)·u + cos·ch·v + cy,
// i.e. rotation in pixel units (isotropic also for non-square images).
std::vector<float> theta_of(const AugmentParams& p, double height, double width) {
    const double c = std::cos(p.angle_rad);
    const double s = std::sin(p.angle_rad);
    const double f = p.flip ? -1.0 : 1.0;
    return {
        static_cast<float>(c * p.crop_w * f), static_cast<float>(-s * p.crop_h * height / width),
        static_cast<float>(p.centre_x),       static_cast<float>(s * p.crop_w * f * width / height),
        static_cast<float>(c * p.crop_h),     static_cast<float>(p.centre_y)};
}

torch::Tensor warp(const torch::Tensor& x, const torch::Tensor& theta, bool nearest) {
    const auto grid = F::affine_grid(theta.to(x.device(), x.scalar_type()), x.sizes(), false);
    auto options = F::GridSampleFuncOptions().padding_mode(torch::kZeros).align_corners(false);
    if (nearest) {
        options.mode(torch::kNearest);
    } else {
        options.mode(torch::kBilinear);
    }
    return F::grid_sample(x, grid, options);
}

}  // namespace

void AugmentOptions::validate() const {
    RADPROBE_USAGE_CHECK(crop_scale_min > 0.0 && crop_scale_min <= 1.0,
                         "--augment crop=", crop_scale_min,
                         ": expected a minimum area fraction in (0, 1]");
    RADPROBE_USAGE_CHECK(crop_ratio_max >= 1.0 && crop_ratio_max <= 4.0,
                         "--augment ratio=", crop_ratio_max, ": expected 1 .. 4");
    RADPROBE_USAGE_CHECK(rotate_degrees >= 0.0 && rotate_degrees <= 45.0,
                         "--augment rot=", rotate_degrees, ": expected 0 .. 45 degrees");
    RADPROBE_USAGE_CHECK(brightness >= 0.0 && brightness < 1.0, "--augment bright=", brightness,
                         ": expected 0 <= b < 1");
    RADPROBE_USAGE_CHECK(contrast >= 0.0 && contrast < 1.0, "--augment contrast=", contrast,
                         ": expected 0 <= c < 1");
    RADPROBE_USAGE_CHECK(gamma >= 0.0 && gamma <= 1.0, "--augment gamma=", gamma,
                         ": expected 0 .. 1 (log-gamma range)");
}

std::string AugmentOptions::describe() const {
    std::ostringstream os;
    os << "crop=" << crop_scale_min << ",ratio=" << crop_ratio_max << ",rot=" << rotate_degrees
       << ",bright=" << brightness << ",contrast=" << contrast << ",gamma=" << gamma
       << ",hflip=" << (hflip ? 1 : 0)
       << ",mask=" << (mask_resample == MaskResample::kNearest ? "nearest" : "bilinear");
    return os.str();
}

AugmentOptions radiograph_augment_defaults() {
    AugmentOptions o;
    o.crop_scale_min = 0.7;
    o.crop_ratio_max = 4.0 / 3.0;
    o.rotate_degrees = 10.0;
    o.brightness = 0.1;
    o.contrast = 0.1;
    o.gamma = 0.15;
    return o;
}

AugmentOptions parse_augment(const std::string& text) {
    if (text == "none") {
        return AugmentOptions{};
    }
    AugmentOptions o = radiograph_augment_defaults();
    if (text == "default" || text.empty()) {
        return o;
    }
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ',')) {
        const auto eq = item.find('=');
        RADPROBE_USAGE_CHECK(eq != std::string::npos, "--augment '", item,
                             "': expected key=value (keys: crop, ratio, rot, bright, contrast, "
                             "gamma, hflip, mask) or none/default");
        const std::string key = item.substr(0, eq);
        const std::string value = item.substr(eq + 1);
        if (key == "crop") {
            o.crop_scale_min = parse_number(key, value);
        } else if (key == "ratio") {
            o.crop_ratio_max = parse_number(key, value);
        } else if (key == "rot") {
            o.rotate_degrees = parse_number(key, value);
        } else if (key == "bright") {
            o.brightness = parse_number(key, value);
        } else if (key == "contrast") {
            o.contrast = parse_number(key, value);
        } else if (key == "gamma") {
            o.gamma = parse_number(key, value);
        } else if (key == "hflip") {
            RADPROBE_USAGE_CHECK(value == "0" || value == "1", "--augment hflip=", value,
                                 ": expected 0 or 1");
            o.hflip = value == "1";
        } else if (key == "mask") {
            RADPROBE_USAGE_CHECK(value == "nearest" || value == "bilinear",
                                 "--augment mask=", value, ": expected nearest or bilinear");
            o.mask_resample =
                value == "nearest" ? MaskResample::kNearest : MaskResample::kBilinearThreshold;
        } else {
            RADPROBE_USAGE_CHECK(
                false, "--augment: unknown key '", key,
                "' (keys: crop, ratio, rot, bright, contrast, gamma, hflip, mask)");
        }
    }
    o.validate();
    return o;
}

std::vector<AugmentParams> sample_augment_params(std::size_t n, double height, double width,
                                                 const AugmentOptions& o, Rng& rng) {
    RADPROBE_ASSERT(height > 0 && width > 0);
    std::vector<AugmentParams> out(n);
    const double log_ratio = std::log(std::max(1.0, o.crop_ratio_max));
    for (auto& p : out) {
        const double area = rng.uniform(o.crop_scale_min, 1.0);
        // Aspect relative to the image's own (1 = the image's shape), so no crop is identity.
        const double ratio = std::exp(rng.uniform(-log_ratio, log_ratio));
        const double ux = rng.uniform();
        const double uy = rng.uniform();
        const double angle = rng.uniform(-o.rotate_degrees, o.rotate_degrees);
        const bool flip = rng.bernoulli(0.5);
        const double b = rng.uniform(1.0 - o.brightness, 1.0 + o.brightness);
        const double c = rng.uniform(1.0 - o.contrast, 1.0 + o.contrast);
        const double g = std::exp(rng.uniform(-o.gamma, o.gamma));
        // Crop side fractions: (w_px / W)·(h_px / H) = area and (w_px / W) / (h_px / H) = ratio.
        p.crop_w = std::min(1.0, std::sqrt(area * ratio));
        p.crop_h = std::min(1.0, std::sqrt(area / ratio));
        p.centre_x = (2.0 * ux - 1.0) * (1.0 - p.crop_w);
        p.centre_y = (2.0 * uy - 1.0) * (1.0 - p.crop_h);
        p.angle_rad = angle * M_PI / 180.0;
        p.flip = o.hflip && flip;
        p.brightness = b;
        p.contrast = c;
        p.gamma = g;
    }
    return out;
}

Augmented apply_augment(const at::Tensor& images, const at::Tensor& masks,
                        const std::vector<AugmentParams>& params, const AugmentOptions& o) {
    RADPROBE_ASSERT(images.dim() == 4, "images must be N×C×H×W");
    const auto n = images.size(0);
    RADPROBE_ASSERT(static_cast<std::size_t>(n) == params.size());
    if (masks.defined()) {
        RADPROBE_ASSERT(masks.dim() == 4 && masks.size(0) == n, "masks must be N×K×H×W");
    }
    torch::NoGradGuard no_grad;
    Augmented out;
    out.images = images.detach().clone();
    if (masks.defined()) {
        out.masks = masks.detach().clone();
    }
    if (n == 0) {
        return out;
    }
    const double height = static_cast<double>(images.size(2));
    const double width = static_cast<double>(images.size(3));
    if (o.has_geometry()) {
        std::vector<float> theta;
        theta.reserve(static_cast<std::size_t>(n) * 6);
        for (const auto& p : params) {
            const auto t = theta_of(p, height, width);
            theta.insert(theta.end(), t.begin(), t.end());
        }
        const auto th = torch::tensor(theta).view({n, 2, 3});
        out.images = warp(out.images.to(torch::kFloat), th, false).to(images.scalar_type());
        if (masks.defined()) {
            const auto m = masks.detach().to(torch::kFloat);
            if (o.mask_resample == MaskResample::kNearest) {
                out.masks = warp(m, th, true);
            } else {
                out.masks = (warp(m, th, false) >= 0.5).to(torch::kFloat);
            }
            out.masks = out.masks.to(masks.scalar_type());
        }
    }
    if (o.brightness != 0.0 || o.contrast != 0.0 || o.gamma != 0.0) {
        std::vector<float> gamma, bright, contrast;
        for (const auto& p : params) {
            gamma.push_back(static_cast<float>(p.gamma));
            bright.push_back(static_cast<float>(p.brightness));
            contrast.push_back(static_cast<float>(p.contrast));
        }
        const auto opts = torch::TensorOptions().dtype(out.images.scalar_type());
        const auto dev = out.images.device();
        const auto g = torch::tensor(gamma, opts).to(dev).view({n, 1, 1, 1});
        const auto b = torch::tensor(bright, opts).to(dev).view({n, 1, 1, 1});
        const auto c = torch::tensor(contrast, opts).to(dev).view({n, 1, 1, 1});
        auto x = out.images.clamp(0.0, 1.0).pow(g) * b;
        const auto mean = x.mean({1, 2, 3}, true);
        out.images = ((x - mean) * c + mean).clamp(0.0, 1.0);
    } else if (o.has_geometry()) {
        out.images.clamp_(0.0, 1.0);
    }
    return out;
}

Augmented augment_batch(const at::Tensor& images, const at::Tensor& masks,
                        const AugmentOptions& options, Rng& rng) {
    if (options.is_identity()) {
        return {images, masks};
    }
    const auto params = sample_augment_params(static_cast<std::size_t>(images.size(0)),
                                              static_cast<double>(images.size(2)),
                                              static_cast<double>(images.size(3)), options, rng);
    return apply_augment(images, masks, params, options);
}

}  // namespace radprobe::adapt
