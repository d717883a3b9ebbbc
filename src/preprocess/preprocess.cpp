// The one path from a decoded radiograph to network input: PIL-exact resampling, centre crop,
// rescale / normalise, the plain square resize of the from-scratch baselines, and the geometry
// that maps masks and boxes through the same steps. No LibTorch.

#include "radprobe/preprocess/preprocess.hpp"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "radprobe/core/error.hpp"
#include "radprobe/core/parallel.hpp"

namespace radprobe::preprocess {

namespace {

// --- PIL's resampling (Pillow src/libImaging/Resample.c, reproduced from its documented
// behaviour: double-precision coefficients normalised per output pixel, converted to 22-bit
// fixed point, accumulated from a half-unit bias, arithmetic shift, clamp to 0..255).

constexpr int kPrecisionBits = 32 - 8 - 2;

double filter_bilinear(double x) {
    x = std::fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

double filter_bicubic(double x) {
    constexpr double a = -0.5;
    x = std::fabs(x);
    if (x < 1.0) {
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    }
    if (x < 2.0) {
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    }
    return 0.0;
}

double sinc(double x) {
    if (x == 0.0) {
        return 1.0;
    }
    x *= M_PI;
    return std::sin(x) / x;
}

double filter_lanczos(double x) {
    return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3.0) : 0.0;
}

struct Coeffs {
    int ksize = 0;
    std::vector<int> xmin;
    std::vector<int> count;
    std::vector<std::int32_t> k;  // out_size × ksize, fixed point
};

Coeffs precompute_coeffs(std::int64_t in_size, std::int64_t out_size, Resample filter) {
    double (*fn)(double) = nullptr;
    double support = 0.0;
    switch (filter) {
        case Resample::kBilinear:
            fn = filter_bilinear;
            support = 1.0;
            break;
        case Resample::kBicubic:
            fn = filter_bicubic;
            support = 2.0;
            break;
        case Resample::kLanczos:
            fn = filter_lanczos;
            support = 3.0;
            break;
        default:
            RADPROBE_CHECK(false, "resample filter ", static_cast<int>(filter),
                           " is not supported (bicubic=3, bilinear=2, lanczos=1)");
    }
    const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
    const double filterscale = std::max(scale, 1.0);
    support *= filterscale;
    Coeffs c;
    c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
    c.xmin.resize(out_size);
    c.count.resize(out_size);
    c.k.assign(static_cast<std::size_t>(out_size) * c.ksize, 0);
    std::vector<double> w(c.ksize);
    for (std::int64_t xx = 0; xx < out_size; ++xx) {
        const double center = (static_cast<double>(xx) + 0.5) * scale;
        const double ss = 1.0 / filterscale;
        int xmin = static_cast<int>(center - support + 0.5);  // truncation, as in C
        xmin = std::max(xmin, 0);
        int xmax = static_cast<int>(center + support + 0.5);
        xmax = std::min<std::int64_t>(xmax, in_size);
        xmax -= xmin;
        double total = 0.0;
        for (int x = 0; x < xmax; ++x) {
            w[x] = fn((x + xmin - center + 0.5) * ss);
            total += w[x];
        }
        for (int x = 0; x < xmax; ++x) {
            const double v = total != 0.0 ? w[x] / total : w[x];
            const double scaled = v * (1 << kPrecisionBits);
            c.k[xx * c.ksize + x] = static_cast<std::int32_t>(v < 0 ? scaled - 0.5 : scaled + 0.5);
        }
        c.xmin[xx] = xmin;
        c.count[xx] = std::max(xmax, 0);
    }
    return c;
}

inline std::uint8_t clip8(std::int32_t v) {
    const std::int32_t s = v >> kPrecisionBits;  // arithmetic shift (floor), as Pillow
    return static_cast<std::uint8_t>(std::clamp(s, 0, 255));
}

}  // namespace

void PreprocessConfig::override_size(std::int64_t n) {
    RADPROBE_USAGE_CHECK(n > 0, "--resize must be > 0, got ", n);
    do_resize = true;
    shortest_edge = n;
    resize_height = resize_width = 0;
    if (do_center_crop) {
        crop_height = crop_width = n;
    }
}

Geometry processor_geometry(const PreprocessConfig& config, std::int64_t rows, std::int64_t cols) {
    RADPROBE_CHECK(rows > 0 && cols > 0, "image of ", rows, "x", cols, " pixels is empty");
    Geometry g;
    g.rows = rows;
    g.cols = cols;
    g.resized_height = rows;
    g.resized_width = cols;
    if (config.do_resize) {
        if (config.shortest_edge > 0) {
            // HF get_resize_output_image_size(default_to_square=False): the long side is
            // int(size * long / short) in Python float arithmetic.
            const std::int64_t short_side = std::min(rows, cols);
            const std::int64_t long_side = std::max(rows, cols);
            const auto new_long =
                static_cast<std::int64_t>(static_cast<double>(config.shortest_edge * long_side) /
                                          static_cast<double>(short_side));
            if (rows <= cols) {
                g.resized_height = config.shortest_edge;
                g.resized_width = new_long;
            } else {
                g.resized_width = config.shortest_edge;
                g.resized_height = new_long;
            }
        } else {
            g.resized_height = config.resize_height;
            g.resized_width = config.resize_width;
        }
    }
    RADPROBE_CHECK(g.resized_height > 0 && g.resized_width > 0, "image of ", rows, "x", cols,
                   " pixels resizes to an empty image");
    g.scale_y = static_cast<double>(g.resized_height) / static_cast<double>(rows);
    g.scale_x = static_cast<double>(g.resized_width) / static_cast<double>(cols);
    g.out_height = g.resized_height;
    g.out_width = g.resized_width;
    if (config.do_center_crop) {
        // HF center_crop: top = (H - crop_h) // 2 (floor division); a crop larger than the
        // image pads it with zeros, centred with the larger half of the padding on top/left.
        auto floor_div2 = [](std::int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); };
        // torchvision: int(round(d / 2.0)), Python rounding half to even.
        auto round_half_even_div2 = [&](std::int64_t v) {
            const std::int64_t k = floor_div2(v);
            return (v % 2 != 0 && k % 2 != 0) ? k + 1 : k;
        };
        auto offset = [&](std::int64_t v) {
            return (config.torchvision_crop && v >= 0) ? round_half_even_div2(v) : floor_div2(v);
        };
        std::int64_t top = offset(g.resized_height - config.crop_height);
        std::int64_t left = offset(g.resized_width - config.crop_width);
        if (top < 0 || left < 0) {
            const std::int64_t new_h = std::max(config.crop_height, g.resized_height);
            const std::int64_t new_w = std::max(config.crop_width, g.resized_width);
            const std::int64_t top_pad = (new_h - g.resized_height + 1) / 2;
            const std::int64_t left_pad = (new_w - g.resized_width + 1) / 2;
            // In padded coordinates the crop starts at top + top_pad; in resized coordinates
            // that is `top`, and the pad fills rows outside [0, resized).
            top = std::max<std::int64_t>(top + top_pad, 0) - top_pad;
            left = std::max<std::int64_t>(left + left_pad, 0) - left_pad;
        }
        g.crop_top = top;
        g.crop_left = left;
        g.out_height = config.crop_height;
        g.out_width = config.crop_width;
    }
    return g;
}

std::array<std::int64_t, 2> PreprocessConfig::output_size(std::int64_t rows,
                                                          std::int64_t cols) const {
    const auto g = processor_geometry(*this, rows, cols);
    return {g.out_height, g.out_width};
}

std::vector<std::uint8_t> pil_resize_u8(const std::uint8_t* src, std::int64_t rows,
                                        std::int64_t cols, std::int64_t out_rows,
                                        std::int64_t out_cols, Resample filter) {
    RADPROBE_CHECK(rows > 0 && cols > 0 && out_rows > 0 && out_cols > 0, "resize from ", rows, "x",
                   cols, " to ", out_rows, "x", out_cols, ": empty image");
    // Horizontal pass first (skipped when the width is unchanged), then vertical, each rounding
    // to 8 bits, as Pillow does.
    std::vector<std::uint8_t> tmp;
    const std::uint8_t* mid = src;
    if (out_cols != cols) {
        const Coeffs c = precompute_coeffs(cols, out_cols, filter);
        tmp.resize(static_cast<std::size_t>(rows * out_cols));
        for (std::int64_t y = 0; y < rows; ++y) {
            const std::uint8_t* in = src + y * cols;
            for (std::int64_t xx = 0; xx < out_cols; ++xx) {
                const std::int32_t* k = &c.k[xx * c.ksize];
                std::int32_t acc = 1 << (kPrecisionBits - 1);
                for (int x = 0; x < c.count[xx]; ++x) {
                    acc += static_cast<std::int32_t>(in[x + c.xmin[xx]]) * k[x];
                }
                tmp[y * out_cols + xx] = clip8(acc);
            }
        }
        mid = tmp.data();
    }
    if (out_rows == rows) {
        if (mid == src) {
            return {src, src + rows * cols};
        }
        return tmp;
    }
    const Coeffs c = precompute_coeffs(rows, out_rows, filter);
    std::vector<std::uint8_t> out(static_cast<std::size_t>(out_rows * out_cols));
    for (std::int64_t yy = 0; yy < out_rows; ++yy) {
        const std::int32_t* k = &c.k[yy * c.ksize];
        for (std::int64_t xx = 0; xx < out_cols; ++xx) {
            std::int32_t acc = 1 << (kPrecisionBits - 1);
            for (int y = 0; y < c.count[yy]; ++y) {
                acc += static_cast<std::int32_t>(mid[(y + c.xmin[yy]) * out_cols + xx]) * k[y];
            }
            out[yy * out_cols + xx] = clip8(acc);
        }
    }
    return out;
}

std::vector<std::uint8_t> quantise_u8(const float* grey, std::size_t n) {
    std::vector<std::uint8_t> out(n);
    for (std::size_t i = 0; i < n; ++i) {
        const float v = std::nearbyint(std::clamp(grey[i], 0.0f, 1.0f) * 255.0f);
        out[i] = static_cast<std::uint8_t>(v);
    }
    return out;
}

std::vector<std::uint8_t> resize_and_crop_u8(const std::vector<std::uint8_t>& grey,
                                             std::int64_t rows, std::int64_t cols,
                                             const PreprocessConfig& config,
                                             std::vector<std::uint8_t>* resized_out) {
    RADPROBE_ASSERT(static_cast<std::int64_t>(grey.size()) == rows * cols);
    const Geometry g = processor_geometry(config, rows, cols);
    std::vector<std::uint8_t> resized =
        (g.resized_height == rows && g.resized_width == cols)
            ? grey
            : pil_resize_u8(grey.data(), rows, cols, g.resized_height, g.resized_width,
                            config.resample);
    if (resized_out != nullptr) {
        *resized_out = resized;
    }
    if (!config.do_center_crop) {
        return resized;
    }
    std::vector<std::uint8_t> out(static_cast<std::size_t>(g.out_height * g.out_width), 0);
    for (std::int64_t y = 0; y < g.out_height; ++y) {
        const std::int64_t sy = y + g.crop_top;
        if (sy < 0 || sy >= g.resized_height) {
            continue;
        }
        for (std::int64_t x = 0; x < g.out_width; ++x) {
            const std::int64_t sx = x + g.crop_left;
            if (sx >= 0 && sx < g.resized_width) {
                out[y * g.out_width + x] = resized[sy * g.resized_width + sx];
            }
        }
    }
    return out;
}

std::vector<float> preprocess_grey_u8(const std::vector<std::uint8_t>& grey, std::int64_t rows,
                                      std::int64_t cols, const PreprocessConfig& config,
                                      int channels) {
    RADPROBE_USAGE_CHECK(channels == 1 || channels == 3, "channels must be 1 or 3, got ", channels);
    const std::vector<std::uint8_t> plane = resize_and_crop_u8(grey, rows, cols, config);
    const std::size_t hw = plane.size();
    std::vector<float> out(hw * channels);
    // HF: rescale in float64 then cast to float32; normalise in float32 with float32 mean/std.
    std::vector<float> rescaled(hw);
    for (std::size_t i = 0; i < hw; ++i) {
        rescaled[i] =
            config.do_rescale
                ? static_cast<float>(static_cast<double>(plane[i]) * config.rescale_factor)
                : static_cast<float>(plane[i]);
    }
    if (channels == 1) {
        std::copy(rescaled.begin(), rescaled.end(), out.begin());
        return out;
    }
    for (int ch = 0; ch < 3; ++ch) {
        float* dst = out.data() + ch * hw;
        if (!config.do_normalize) {
            std::copy(rescaled.begin(), rescaled.end(), dst);
            continue;
        }
        const auto mean = static_cast<float>(config.image_mean[ch]);
        const auto std = static_cast<float>(config.image_std[ch]);
        for (std::size_t i = 0; i < hw; ++i) {
            dst[i] = (rescaled[i] - mean) / std;
        }
    }
    return out;
}

Geometry square_geometry(std::int64_t rows, std::int64_t cols, std::int64_t out_h,
                         std::int64_t out_w) {
    RADPROBE_ASSERT(rows > 0 && cols > 0 && out_h > 0 && out_w > 0);
    Geometry g;
    g.resized_height = out_h;
    g.resized_width = out_w;
    g.rows = rows;
    g.cols = cols;
    g.scale_y = static_cast<double>(out_h) / rows;
    g.scale_x = static_cast<double>(out_w) / cols;
    g.out_height = out_h;
    g.out_width = out_w;
    return g;
}

std::vector<float> mask_to_input(const dataset::Mask& mask, const Geometry& g) {
    RADPROBE_ASSERT(mask.rows == g.rows && mask.cols == g.cols);
    const int R = static_cast<int>(g.rows), C = static_cast<int>(g.cols);
    // Integral image S(x, y) = mask area over [0, x) × [0, y); bilinear interpolation of S is
    // exact for a piecewise-constant mask, so fractional windows cost four lookups.
    std::vector<double> S(static_cast<std::size_t>(R + 1) * (C + 1), 0.0);
    auto at = [&](int y, int x) -> double& { return S[static_cast<std::size_t>(y) * (C + 1) + x]; };
    for (int y = 0; y < R; ++y) {
        double row = 0;
        for (int x = 0; x < C; ++x) {
            row += mask.data[static_cast<std::size_t>(y) * C + x] ? 1.0 : 0.0;
            at(y + 1, x + 1) = at(y, x + 1) + row;
        }
    }
    auto integral = [&](double x, double y) {
        x = std::clamp(x, 0.0, static_cast<double>(C));
        y = std::clamp(y, 0.0, static_cast<double>(R));
        const int x0 = std::min(static_cast<int>(std::floor(x)), C - 1);
        const int y0 = std::min(static_cast<int>(std::floor(y)), R - 1);
        const double fx = x - x0, fy = y - y0;
        return (1 - fx) * (1 - fy) * at(y0, x0) + fx * (1 - fy) * at(y0, x0 + 1) +
               (1 - fx) * fy * at(y0 + 1, x0) + fx * fy * at(y0 + 1, x0 + 1);
    };
    std::vector<float> out(static_cast<std::size_t>(g.out_height * g.out_width), 0.0f);
    for (std::int64_t v = 0; v < g.out_height; ++v) {
        const double y0 = (static_cast<double>(v) + g.crop_top) / g.scale_y;
        const double y1 = (static_cast<double>(v) + 1 + g.crop_top) / g.scale_y;
        for (std::int64_t u = 0; u < g.out_width; ++u) {
            const double x0 = (static_cast<double>(u) + g.crop_left) / g.scale_x;
            const double x1 = (static_cast<double>(u) + 1 + g.crop_left) / g.scale_x;
            const double area = (x1 - x0) * (y1 - y0);
            const double inside =
                integral(x1, y1) - integral(x0, y1) - integral(x1, y0) + integral(x0, y0);
            out[static_cast<std::size_t>(v * g.out_width + u)] =
                static_cast<float>(std::clamp(inside / area, 0.0, 1.0));
        }
    }
    return out;
}

std::vector<float> input_to_original(const float* p, const Geometry& g) {
    std::vector<float> out(static_cast<std::size_t>(g.rows) * g.cols, 0.0f);
    const auto H = g.out_height, W = g.out_width;
    for (std::int64_t r = 0; r < g.rows; ++r) {
        const double v = (static_cast<double>(r) + 0.5) * g.scale_y -
                         g.crop_top;  // input coordinate of the centre
        if (v < 0 || v >= static_cast<double>(H)) {
            continue;
        }
        const double sy = std::clamp(v - 0.5, 0.0, static_cast<double>(H - 1));
        const auto y0 = static_cast<std::int64_t>(std::floor(sy));
        const auto y1 = std::min(y0 + 1, H - 1);
        const double fy = sy - static_cast<double>(y0);
        for (std::int64_t c = 0; c < g.cols; ++c) {
            const double u = (static_cast<double>(c) + 0.5) * g.scale_x - g.crop_left;
            if (u < 0 || u >= static_cast<double>(W)) {
                continue;
            }
            const double sx = std::clamp(u - 0.5, 0.0, static_cast<double>(W - 1));
            const auto x0 = static_cast<std::int64_t>(std::floor(sx));
            const auto x1 = std::min(x0 + 1, W - 1);
            const double fx = sx - static_cast<double>(x0);
            const double val = (1 - fy) * ((1 - fx) * p[y0 * W + x0] + fx * p[y0 * W + x1]) +
                               fy * ((1 - fx) * p[y1 * W + x0] + fx * p[y1 * W + x1]);
            out[static_cast<std::size_t>(r) * g.cols + c] = static_cast<float>(val);
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Network input of a step
// ---------------------------------------------------------------------------------------------

InputSpec InputSpec::processor_input(const PreprocessConfig& config, int channels) {
    InputSpec s;
    s.kind = Kind::kProcessor;
    s.processor = config;
    s.channels = channels;
    return s;
}

InputSpec InputSpec::square(std::int64_t size) {
    InputSpec s;
    s.kind = Kind::kSquare;
    s.size = size;
    return s;
}

Geometry input_geometry(const InputSpec& spec, std::int64_t rows, std::int64_t cols) {
    return spec.kind == InputSpec::Kind::kSquare ? square_geometry(rows, cols, spec.size, spec.size)
                                                 : processor_geometry(spec.processor, rows, cols);
}

namespace {

// Area averaging when shrinking both sides (no aliasing), bilinear otherwise.
std::vector<float> square_resize(const float* grey, std::int64_t rows, std::int64_t cols,
                                 std::int64_t size) {
    std::vector<float> out(static_cast<std::size_t>(size * size));
    cv::Mat src(static_cast<int>(rows), static_cast<int>(cols), CV_32F, const_cast<float*>(grey));
    cv::Mat dst(static_cast<int>(size), static_cast<int>(size), CV_32F, out.data());
    const bool shrink = rows >= size && cols >= size;
    cv::resize(src, dst, dst.size(), 0, 0, shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
    return out;
}

}  // namespace

std::vector<float> to_input(const float* grey, std::int64_t rows, std::int64_t cols,
                            const InputSpec& spec) {
    if (spec.kind == InputSpec::Kind::kSquare) {
        return square_resize(grey, rows, cols, spec.size);
    }
    const auto u8 = quantise_u8(grey, static_cast<std::size_t>(rows * cols));
    return preprocess_grey_u8(u8, rows, cols, spec.processor, spec.channels);
}

std::vector<float> to_input(const imaging::Image& image, const InputSpec& spec) {
    return to_input(image.pixels.data(), image.rows, image.cols, spec);
}

void for_each_input(const dataset::Manifest& manifest, const std::vector<std::size_t>& rows,
                    const InputSpec& spec, int threads,
                    const std::function<void(std::size_t, InputImage&)>& fn, bool with_pixels) {
    auto one = [&](std::size_t k) {
        const imaging::Image img = imaging::decode(manifest.record(rows[k]).image_path);
        InputImage input;
        input.geometry = input_geometry(spec, img.rows, img.cols);
        if (with_pixels) {
            input.pixels = to_input(img, spec);
        }
        fn(k, input);
    };
    if (rows.empty()) {
        return;
    }
    one(0);
    parallel_for(rows.size() - 1, threads, [&](std::size_t begin, std::size_t end) {
        for (std::size_t k = begin; k < end; ++k) {
            one(k + 1);
        }
    });
}

}  // namespace radprobe::preprocess
