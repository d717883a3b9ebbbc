// Validation against the image files, and the manifest summary.

#include <algorithm>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>

#include "radprobe/core/error.hpp"
#include "radprobe/core/parallel.hpp"
#include "radprobe/core/progress.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/imaging/decode.hpp"

namespace radprobe::dataset {
namespace fs = std::filesystem;

namespace {

/// Strips a leading "<prefix>: " from an error message so that a problem does not name the file
/// twice.
std::string strip_prefix(std::string message, const std::string& prefix) {
    const std::string p = prefix + ": ";
    if (message.rfind(p, 0) == 0) {
        message = message.substr(p.size());
    }
    return message;
}

std::string fmt_coord(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

/// Problems of one record that need its image (or its mask files).
std::vector<Problem> check_record(const Manifest& m, std::size_t index,
                                  const ValidateOptions& options, std::string& recovered,
                                  std::vector<Problem>& resampled) {
    std::vector<Problem> out;
    const Record& rec = m.record(index);
    const std::string file = m.path().string();
    if (rec.id.empty()) {
        return out;  // already reported
    }
    int rows = 0;
    int cols = 0;
    bool have_size = false;
    if (options.decode_images) {
        try {
            const imaging::Image image = imaging::decode(rec.image_path);
            recovered = image.info.recovered;
            rows = image.rows;
            cols = image.cols;
            have_size = true;
        } catch (const std::exception& e) {
            out.push_back({file, rec.line, "image",
                           str_cat("cannot read image: ", Error::one_line(e.what()))});
        }
    } else {
        std::error_code ec;
        if (!fs::is_regular_file(rec.image_path, ec)) {
            out.push_back({file, rec.line, "image",
                           str_cat("image file not found: ", rec.image_path.string())});
        }
    }
    if (!have_size) {
        return out;
    }
    for (std::size_t k = 0; k < m.mask_names().size(); ++k) {
        const MaskRef& ref = rec.masks[k];
        const std::string column = "mask_" + m.mask_names()[k];
        if (ref.source == MaskSource::kFile) {
            try {
                const Mask mask = read_mask_png(ref.path);
                const std::string sizes =
                    str_cat("mask ", ref.path.string(), " is ", mask.cols, "x", mask.rows,
                            " (width x height), image is ", cols, "x", rows);
                if (mask.rows == rows && mask.cols == cols) {
                    continue;
                }
                if (mask_matches_image_aspect(mask.rows, mask.cols, rows, cols)) {
                    resampled.push_back({file, rec.line, column, sizes});
                } else {
                    out.push_back({file, rec.line, column,
                                   sizes + ": another aspect ratio (only a mask with the image's "
                                           "aspect ratio is resampled)"});
                }
            } catch (const InputError& e) {
                out.push_back({file, rec.line, column, str_cat("cannot read mask: ", e.what())});
            }
        } else if (ref.source == MaskSource::kRle) {
            try {
                rle_decode(ref.value, rows, cols, m.rle_convention(), "RLE");
            } catch (const InputError& e) {
                const std::string msg = strip_prefix(e.what(), "RLE");
                // Malformed strings were reported at load time; only the size check is new.
                if (msg.find("beyond rows x cols") != std::string::npos) {
                    out.push_back({file, rec.line, column, msg});
                }
            }
        }
    }
    const std::string bfile = m.boxes_path().string();
    for (const Box& box : rec.boxes) {
        if (box.x0 < 0 || box.y0 < 0 || box.x1 > cols || box.y1 > rows) {
            out.push_back(
                {bfile, box.line, "",
                 str_cat("box (", fmt_coord(box.x0), ",", fmt_coord(box.y0), ")-(",
                         fmt_coord(box.x1), ",", fmt_coord(box.y1), ") is outside image '", rec.id,
                         "' of ", cols, "x", rows, " (width x height)")});
        }
    }
    return out;
}

}  // namespace

std::vector<Problem> validate(const Manifest& manifest, const ValidateOptions& options,
                              Progress* progress) {
    std::vector<Problem> problems = manifest.problems();
    problems.insert(problems.end(), manifest.box_problems().begin(), manifest.box_problems().end());
    const std::size_t n = manifest.size();
    std::vector<std::vector<Problem>> per_record(n);
    std::vector<std::string> recovered(n);
    std::vector<std::vector<Problem>> resampled(n);
    std::mutex progress_mutex;
    // Fixed small chunks so that progress moves and work stays balanced; results per index keep
    // the output independent of the thread count.
    constexpr std::size_t kChunk = 16;
    const std::size_t chunks = (n + kChunk - 1) / kChunk;
    parallel_for(chunks, options.threads, [&](std::size_t begin, std::size_t end) {
        for (std::size_t chunk = begin; chunk < end; ++chunk) {
            const std::size_t lo = chunk * kChunk;
            const std::size_t hi = std::min(n, lo + kChunk);
            for (std::size_t i = lo; i < hi; ++i) {
                per_record[i] = check_record(manifest, i, options, recovered[i], resampled[i]);
            }
            if (progress) {
                std::lock_guard<std::mutex> lock(progress_mutex);
                progress->advance(hi - lo);
            }
        }
    });
    for (auto& p : per_record) {
        problems.insert(problems.end(), std::make_move_iterator(p.begin()),
                        std::make_move_iterator(p.end()));
    }
    for (std::size_t i = 0; options.recovered != nullptr && i < n; ++i) {
        if (!recovered[i].empty()) {
            const Record& rec = manifest.record(i);
            options.recovered->push_back({manifest.path().string(), rec.line, "image",
                                          rec.image_path.string() + ": " + recovered[i]});
        }
    }
    for (std::size_t i = 0; options.resampled != nullptr && i < n; ++i) {
        options.resampled->insert(options.resampled->end(), resampled[i].begin(),
                                  resampled[i].end());
    }
    std::stable_sort(problems.begin(), problems.end(), [](const Problem& a, const Problem& b) {
        if (a.file != b.file) {
            return a.file < b.file;
        }
        return a.line < b.line;
    });
    return problems;
}

std::string summary_text(const Manifest& m) {
    std::string out;
    const auto patients = m.patients();
    out += str_cat("manifest: ", m.path().string(), "\n");
    out += str_cat("images: ", m.size(), "  patients: ", patients.size(), "\n");
    const Split order[] = {Split::kTrain, Split::kVal, Split::kTest, Split::kNone};
    std::map<Split, std::vector<std::size_t>> by_split;
    for (Split s : order) {
        by_split[s] = m.indices(s);
    }
    auto name = [](Split s) { return s == Split::kNone ? "unassigned" : split_name(s); };
    for (Split s : order) {
        const auto& idx = by_split[s];
        if (idx.empty() && (s == Split::kNone || !m.has_split_column())) {
            continue;
        }
        std::set<std::string> pts;
        for (std::size_t i : idx) {
            if (!m.record(i).patient_id.empty()) {
                pts.insert(m.record(i).patient_id);
            }
        }
        char line[160];
        std::snprintf(line, sizeof line, "  %-10s %7zu images %6zu patients\n", name(s), idx.size(),
                      pts.size());
        out += line;
    }
    if (!m.label_names().empty()) {
        out += "labels (positives/known, prevalence):\n";
        for (std::size_t k = 0; k < m.label_names().size(); ++k) {
            std::string row = str_cat("  ", m.label_names()[k], ":");
            for (Split s : order) {
                const auto& idx = by_split[s];
                if (idx.empty()) {
                    continue;
                }
                std::size_t pos = 0;
                std::size_t known = 0;
                for (std::size_t i : idx) {
                    const auto v = m.record(i).labels[k];
                    known += v != kLabelUnknown;
                    pos += v == 1;
                }
                char cell[96];
                if (known > 0) {
                    std::snprintf(cell, sizeof cell, " %s %zu/%zu (%.3f)", name(s), pos, known,
                                  static_cast<double>(pos) / static_cast<double>(known));
                } else {
                    std::snprintf(cell, sizeof cell, " %s 0/0 (-)", name(s));
                }
                row += cell;
            }
            out += row + "\n";
        }
    }
    if (!m.attribute_names().empty()) {
        std::string attrs;
        for (const auto& a : m.attribute_names()) {
            attrs += (attrs.empty() ? "" : ", ") + a;
        }
        out += "attributes: " + attrs + "\n";
    }
    if (!m.mask_names().empty()) {
        std::string masks;
        for (std::size_t k = 0; k < m.mask_names().size(); ++k) {
            std::size_t present = 0;
            for (const Record& r : m.records()) {
                present += r.masks[k].source != MaskSource::kNone;
            }
            masks += str_cat(masks.empty() ? "" : ", ", m.mask_names()[k], " (", present, ")");
        }
        out += "masks: " + masks + "\n";
    }
    if (!m.boxes_path().empty()) {
        std::size_t boxes = 0;
        std::size_t images = 0;
        for (const Record& r : m.records()) {
            boxes += r.boxes.size();
            images += !r.boxes.empty();
        }
        out +=
            str_cat("boxes: ", boxes, " on ", images, " images (", m.boxes_path().string(), ")\n");
    }
    return out;
}

}  // namespace radprobe::dataset
