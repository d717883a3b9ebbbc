// Masks: SIIM-ACR run-length strings (relative and absolute variants) and mask PNGs.

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <sstream>

#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/dataset/manifest.hpp"

namespace radprobe::dataset {
namespace {

struct Run {
    std::uint64_t start;  // 0-based absolute pixel index (column-major)
    std::uint64_t length;
};

std::vector<std::string> split_ws(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    std::string tok;
    while (in >> tok) {
        out.push_back(tok);
    }
    return out;
}

bool is_empty_rle(const std::vector<std::string>& tokens) {
    return tokens.empty() || (tokens.size() == 1 && tokens[0] == "-1");
}

std::vector<Run> parse_runs(const std::string& rle, RleConvention convention,
                            const std::string& what) {
    const auto tokens = split_ws(rle);
    if (is_empty_rle(tokens)) {
        return {};
    }
    RADPROBE_CHECK(tokens.size() % 2 == 0, what, ": RLE has ", tokens.size(),
                   " numbers; expected start/length pairs (an even count)");
    std::vector<Run> runs;
    runs.reserve(tokens.size() / 2);
    std::uint64_t end = 0;  // one past the previous run
    for (std::size_t i = 0; i < tokens.size(); i += 2) {
        std::uint64_t values[2];
        for (int k = 0; k < 2; ++k) {
            const std::string& t = tokens[i + k];
            const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), values[k]);
            RADPROBE_CHECK(ec == std::errc() && p == t.data() + t.size(), what, ": RLE value '", t,
                           "' (number ", i + k + 1, ") is not a non-negative integer");
        }
        const std::uint64_t start_value = values[0];
        const std::uint64_t length = values[1];
        RADPROBE_CHECK(length > 0, what, ": RLE run ", i / 2 + 1, " has length 0");
        std::uint64_t start = 0;
        if (convention == RleConvention::kSiimRelative) {
            start = end + start_value;
        } else {
            RADPROBE_CHECK(start_value >= 1, what, ": RLE run ", i / 2 + 1,
                           " starts at 0; absolute RLE starts are 1-based");
            start = start_value - 1;
            RADPROBE_CHECK(start >= end, what, ": RLE run ", i / 2 + 1, " (start ", start_value,
                           ") overlaps or precedes the previous run ending at ", end,
                           " (absolute starts must increase)");
        }
        RADPROBE_CHECK(start <= (std::uint64_t{1} << 62) && length <= (std::uint64_t{1} << 62),
                       what, ": RLE run ", i / 2 + 1, " is out of range");
        runs.push_back({start, length});
        end = start + length;
    }
    return runs;
}

}  // namespace

std::size_t Mask::count() const {
    return static_cast<std::size_t>(
        std::count_if(data.begin(), data.end(), [](std::uint8_t v) { return v != 0; }));
}

RleConvention parse_rle_convention(const std::string& text) {
    if (text == "siim") {
        return RleConvention::kSiimRelative;
    }
    if (text == "absolute") {
        return RleConvention::kAbsolute;
    }
    throw UsageError(str_cat("unknown RLE convention '", text,
                             "' (valid: siim = SIIM-ACR relative starts, absolute = 1-based "
                             "absolute starts)"));
}

const char* rle_convention_name(RleConvention convention) {
    return convention == RleConvention::kSiimRelative ? "siim" : "absolute";
}

bool looks_like_rle(const std::string& cell) {
    bool any_digit = false;
    for (std::size_t i = 0; i < cell.size(); ++i) {
        const char c = cell[i];
        if (std::isdigit(static_cast<unsigned char>(c))) {
            any_digit = true;
        } else if (c == ' ' || c == '\t') {
            continue;
        } else if (c == '-') {
            // only in a lone "-1"
        } else {
            return false;
        }
    }
    if (!any_digit) {
        return false;
    }
    if (cell.find('-') != std::string::npos) {
        const auto tokens = split_ws(cell);
        return tokens.size() == 1 && tokens[0] == "-1";
    }
    return true;
}

std::uint64_t rle_extent(const std::string& rle, RleConvention convention,
                         const std::string& what) {
    const auto runs = parse_runs(rle, convention, what);
    return runs.empty() ? 0 : runs.back().start + runs.back().length;
}

Mask rle_decode(const std::string& rle, int rows, int cols, RleConvention convention,
                const std::string& what) {
    RADPROBE_CHECK(rows > 0 && cols > 0, what, ": mask size ", rows, "x", cols, " is empty");
    const auto runs = parse_runs(rle, convention, what);
    Mask mask(rows, cols);
    const std::uint64_t n = std::uint64_t(rows) * std::uint64_t(cols);
    if (!runs.empty()) {
        const std::uint64_t extent = runs.back().start + runs.back().length;
        if (extent > n) {
            // A frequent mix-up: say which convention would fit.
            const RleConvention other = convention == RleConvention::kSiimRelative
                                            ? RleConvention::kAbsolute
                                            : RleConvention::kSiimRelative;
            std::string hint;
            try {
                if (rle_extent(rle, other, what) <= n) {
                    hint = str_cat(" (it fits with --rle ", rle_convention_name(other), ")");
                }
            } catch (const InputError&) {
            }
            throw InputError(str_cat(what, ": RLE runs reach pixel ", extent,
                                     ", beyond rows x cols = ", rows, "x", cols, " = ", n, hint));
        }
    }
    for (const Run& run : runs) {
        for (std::uint64_t i = run.start; i < run.start + run.length; ++i) {
            const int c = static_cast<int>(i / std::uint64_t(rows));
            const int r = static_cast<int>(i % std::uint64_t(rows));
            mask.at(r, c) = 1;
        }
    }
    return mask;
}

std::string rle_encode(const Mask& mask, RleConvention convention) {
    RADPROBE_ASSERT(mask.data.size() == std::size_t(mask.rows) * mask.cols, "mask size");
    std::string out;
    const std::uint64_t n = std::uint64_t(mask.rows) * std::uint64_t(mask.cols);
    std::uint64_t prev_end = 0;
    std::uint64_t i = 0;
    auto value = [&](std::uint64_t k) {
        const int c = static_cast<int>(k / std::uint64_t(mask.rows));
        const int r = static_cast<int>(k % std::uint64_t(mask.rows));
        return mask.at(r, c) != 0;
    };
    while (i < n) {
        if (!value(i)) {
            ++i;
            continue;
        }
        const std::uint64_t start = i;
        while (i < n && value(i)) {
            ++i;
        }
        const std::uint64_t length = i - start;
        const std::uint64_t written =
            convention == RleConvention::kSiimRelative ? start - prev_end : start + 1;
        if (!out.empty()) {
            out += ' ';
        }
        out += std::to_string(written) + ' ' + std::to_string(length);
        prev_end = i;
    }
    return out.empty() ? "-1" : out;
}

bool mask_matches_image_aspect(int mask_rows, int mask_cols, int rows, int cols) {
    if (mask_rows <= 0 || mask_cols <= 0 || rows <= 0 || cols <= 0) {
        return false;
    }
    // The mask's height scaled by the width factor lands within a pixel of the image's height
    // (or the other way round: whichever side was rounded when the set was made).
    const double by_width = static_cast<double>(mask_rows) * cols / mask_cols;
    const double by_height = static_cast<double>(mask_cols) * rows / mask_rows;
    return std::abs(by_width - rows) <= 1.0 || std::abs(by_height - cols) <= 1.0;
}

Mask resample_mask_nearest(const Mask& mask, int rows, int cols) {
    Mask out(rows, cols);
    std::vector<int> src_col(static_cast<std::size_t>(cols));
    for (int c = 0; c < cols; ++c) {
        src_col[static_cast<std::size_t>(c)] =
            std::min(mask.cols - 1, static_cast<int>((c + 0.5) * mask.cols / cols));
    }
    for (int r = 0; r < rows; ++r) {
        const int sr = std::min(mask.rows - 1, static_cast<int>((r + 0.5) * mask.rows / rows));
        for (int c = 0; c < cols; ++c) {
            out.at(r, c) = mask.at(sr, src_col[static_cast<std::size_t>(c)]);
        }
    }
    return out;
}

Mask read_mask_png(const std::filesystem::path& path) {
    const auto bytes = read_file_bytes(path);  // clear errors for missing / directory
    RADPROBE_CHECK(!bytes.empty(), path.string(), ": empty file, not a mask image");
    const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8U,
                         const_cast<std::uint8_t*>(bytes.data()));
    cv::Mat img;
    try {
        img = cv::imdecode(buffer, cv::IMREAD_UNCHANGED);
    } catch (const cv::Exception& e) {
        throw InputError(str_cat(path.string(), ": cannot decode mask image: ", e.what()));
    }
    RADPROBE_CHECK(!img.empty(), path.string(), ": cannot decode as a mask image (PNG expected)");
    RADPROBE_CHECK(img.depth() == CV_8U || img.depth() == CV_16U, path.string(),
                   ": mask image must be 8- or 16-bit");
    const int channels = img.channels();
    const int colour = channels == 4 ? 3 : channels;  // alpha ignored
    Mask mask(img.rows, img.cols);
    for (int r = 0; r < img.rows; ++r) {
        for (int c = 0; c < img.cols; ++c) {
            bool on = false;
            for (int k = 0; k < colour; ++k) {
                if (img.depth() == CV_8U) {
                    on = on || img.ptr<std::uint8_t>(r)[c * channels + k] != 0;
                } else {
                    on = on || img.ptr<std::uint16_t>(r)[c * channels + k] != 0;
                }
            }
            mask.at(r, c) = on ? 1 : 0;
        }
    }
    return mask;
}

void write_mask_png(const std::filesystem::path& path, const Mask& mask) {
    RADPROBE_ASSERT(mask.data.size() == std::size_t(mask.rows) * mask.cols, "mask size");
    cv::Mat img(mask.rows, mask.cols, CV_8U);
    for (int r = 0; r < mask.rows; ++r) {
        for (int c = 0; c < mask.cols; ++c) {
            img.at<std::uint8_t>(r, c) = mask.at(r, c) ? 255 : 0;
        }
    }
    std::vector<std::uint8_t> encoded;
    RADPROBE_CHECK(cv::imencode(".png", img, encoded), path.string(), ": cannot encode PNG");
    write_file_atomic(
        path, std::string_view(reinterpret_cast<const char*>(encoded.data()), encoded.size()));
}

}  // namespace radprobe::dataset
