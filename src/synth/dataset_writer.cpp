// Writing a phantom dataset: images (16-bit PNG or DICOM), masks (8-bit PNG, 0/255),
// manifest.csv, boxes.csv and synth.json (the options), all inside a staging directory renamed into
// place at the end.

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/parallel.hpp"
#include "radprobe/synth/phantom.hpp"

namespace radprobe::synth {
namespace fs = std::filesystem;

namespace {

std::string encode_png(const void* data, int size, int cv_type) {
    const cv::Mat mat(size, size, cv_type, const_cast<void*>(data));
    std::vector<std::uint8_t> buf;
    // zlib level 1 with the RLE strategy: as small as level 3 for these images (noisy 16-bit
    // pixels barely compress; masks are runs) at half the encoding time (measured). zlib's
    // output is deterministic for fixed parameters.
    const std::vector<int> params = {cv::IMWRITE_PNG_COMPRESSION, 1, cv::IMWRITE_PNG_STRATEGY,
                                     cv::IMWRITE_PNG_STRATEGY_RLE};
    RADPROBE_CHECK(cv::imencode(".png", mat, buf, params), "PNG encoding failed");
    return std::string(buf.begin(), buf.end());
}

// Writes into the staging directory (which is itself renamed atomically at the end).
void write_bytes(const fs::path& path, const std::string& bytes) {
    FILE* f = std::fopen(path.c_str(), "wb");
    RADPROBE_CHECK(f != nullptr, path.string(), ": cannot create file");
    const std::size_t n = std::fwrite(bytes.data(), 1, bytes.size(), f);
    const bool ok = n == bytes.size() && std::fclose(f) == 0;
    RADPROBE_CHECK(ok, path.string(), ": write failed");
}

std::string fmt_ctr(double ctr) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4f", ctr);
    return buf;
}

bool is_empty_dir(const fs::path& p) {
    std::error_code ec;
    return fs::is_directory(p, ec) && fs::directory_iterator(p, ec) == fs::directory_iterator();
}

void check_out_dir(const fs::path& out, bool overwrite) {
    std::error_code ec;
    if (!fs::exists(out, ec)) {
        return;
    }
    RADPROBE_CHECK(fs::is_directory(out, ec), out.string(), ": exists and is not a directory");
    RADPROBE_CHECK(overwrite || is_empty_dir(out), out.string(),
                   ": output directory exists and is not empty (use --overwrite to replace it)");
}

struct ImageRow {
    std::vector<std::string> fields;
    std::vector<Box> boxes;
};

// The shortest decimal that reads back as `v` (0.4, not 0.40000000000000002).
std::string json_number(double v) {
    char buf[32];
    for (int digits = 15; digits <= 17; ++digits) {
        std::snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (std::strtod(buf, nullptr) == v) {
            break;
        }
    }
    return buf;
}

// synth.json: every option that determines the dataset's contents (not threads), so that a
// dataset says how it was made: `radprobe synth` with these values gives identical files.
std::string options_json(const SynthOptions& o) {
    std::string shifts = "[";
    for (std::size_t i = 0; i < o.acquisition_shifts.size(); ++i) {
        const auto& s = o.acquisition_shifts[i];
        shifts += str_cat(i ? ", " : "", "{\"label\": \"", s.label,
                          "\", \"amount\": ", json_number(s.amount), "}");
    }
    shifts += "]";
    return str_cat("{\n  \"generator\": \"radprobe synth\",\n  \"seed\": ", o.seed,
                   ",\n  \"n\": ", o.n, ",\n  \"size\": ", o.size, ",\n  \"format\": \"",
                   o.format == ImageFormat::kDicom ? "dcm" : "png",
                   "\",\n  \"cardiomegaly_prevalence\": ", json_number(o.cardiomegaly_prevalence),
                   ",\n  \"pneumothorax_prevalence\": ", json_number(o.pneumothorax_prevalence),
                   ",\n  \"nodule_prevalence\": ", json_number(o.nodule_prevalence),
                   ",\n  \"tube_prevalence\": ",
                   json_number(o.tube_prevalence.value_or(o.pneumothorax_prevalence)),
                   ",\n  \"tube_ptx_correlation\": ", json_number(o.tube_ptx_correlation),
                   ",\n  \"followup_fraction\": ", json_number(o.followup_fraction),
                   ",\n  \"acquisition_shifts\": ", shifts, "\n}\n");
}

}  // namespace

const std::vector<std::string>& manifest_columns() {
    static const std::vector<std::string> columns = {
        "image",        "patient_id",     "split",           "cardiomegaly",
        "pneumothorax", "nodule",         "chest_tube",      "ctr",
        "mask_heart",   "mask_lung_left", "mask_lung_right", "mask_pneumothorax"};
    return columns;
}

SynthSummary write_dataset(const fs::path& out_arg, const SynthOptions& options,
                           const std::function<void(std::size_t)>& on_progress) {
    const auto start = std::chrono::steady_clock::now();
    validate_options(options);
    const fs::path out = fs::absolute(out_arg).lexically_normal();
    RADPROBE_CHECK(out.has_filename() && out != out.root_path(), out_arg.string(),
                   ": not a usable output directory");
    check_out_dir(out, options.overwrite);
    const std::vector<PhantomCase> cases = plan_dataset(options);

    std::error_code ec;
    fs::create_directories(out.parent_path(), ec);
    RADPROBE_CHECK(!ec, out.parent_path().string(), ": cannot create directory: ", ec.message());
    const fs::path staging = out.parent_path() / ("." + out.filename().string() + ".synth-tmp." +
                                                  std::to_string(::getpid()));
    fs::remove_all(staging, ec);
    fs::create_directories(staging / "images", ec);
    RADPROBE_CHECK(!ec, staging.string(), ": cannot create directory: ", ec.message());
    fs::create_directories(staging / "masks", ec);
    RADPROBE_CHECK(!ec, staging.string(), ": cannot create directory: ", ec.message());
    struct StagingGuard {
        fs::path path;
        bool keep = false;
        ~StagingGuard() {
            if (!keep) {
                std::error_code e;
                fs::remove_all(path, e);
            }
        }
    } guard{staging};

    const bool dicom = options.format == ImageFormat::kDicom;
    std::vector<ImageRow> rows(cases.size());
    const std::size_t block =
        16 * static_cast<std::size_t>(options.threads > 0 ? options.threads : available_threads());
    for (std::size_t begin = 0; begin < cases.size(); begin += block) {
        const std::size_t count = std::min(block, cases.size() - begin);
        parallel_for(count, options.threads, [&](std::size_t lo, std::size_t hi) {
            for (std::size_t j = lo; j < hi; ++j) {
                const PhantomCase& pc = cases[begin + j];
                const Phantom ph = render(pc);
                std::vector<std::uint16_t> stored(ph.image.size());
                for (std::size_t i = 0; i < stored.size(); ++i) {
                    stored[i] = to_stored(ph.image[i]);
                }
                const std::string image_rel = "images/" + pc.image_id + (dicom ? ".dcm" : ".png");
                write_bytes(staging / image_rel,
                            dicom ? dicom_bytes(pc, stored, options.seed)
                                  : encode_png(stored.data(), pc.size, CV_16UC1));
                auto mask = [&](const std::vector<std::uint8_t>& m, const char* name) {
                    const std::string rel = "masks/" + pc.image_id + "_" + name + ".png";
                    write_bytes(staging / rel, encode_png(m.data(), pc.size, CV_8UC1));
                    return rel;
                };
                ImageRow& row = rows[begin + j];
                row.fields = {image_rel,
                              pc.patient_id,
                              pc.split,
                              pc.cardiomegaly ? "1" : "0",
                              pc.pneumothorax ? "1" : "0",
                              pc.nodule ? "1" : "0",
                              pc.chest_tube ? "1" : "0",
                              fmt_ctr(pc.ctr),
                              mask(ph.heart, "heart"),
                              mask(ph.lung_left, "lung_left"),
                              mask(ph.lung_right, "lung_right"),
                              mask(ph.pneumothorax, "pneumothorax")};
                row.boxes = ph.boxes;
            }
        });
        if (on_progress) {
            on_progress(begin + count);
        }
        kill_point("RADPROBE_TEST_SYNTH_KILL_AFTER", begin + count);
    }

    std::string manifest = csv_line(manifest_columns()) + "\n";
    std::string boxes = "image,label,x0,y0,x1,y1\n";
    for (const ImageRow& row : rows) {
        manifest += csv_line(row.fields) + "\n";
        for (const Box& b : row.boxes) {
            boxes += csv_line({row.fields[0], b.label, std::to_string(b.x0), std::to_string(b.y0),
                               std::to_string(b.x1), std::to_string(b.y1)}) +
                     "\n";
        }
    }
    write_bytes(staging / "boxes.csv", boxes);
    write_bytes(staging / "manifest.csv", manifest);
    write_bytes(staging / "synth.json", options_json(options));

    // Swap the finished tree into place: an existing directory is moved aside first, so the
    // final name always holds either the old complete tree or the new complete one.
    check_out_dir(out, options.overwrite);
    fs::path trash;
    if (fs::exists(out, ec)) {
        trash = out.parent_path() /
                ("." + out.filename().string() + ".synth-old." + std::to_string(::getpid()));
        fs::remove_all(trash, ec);
        fs::rename(out, trash, ec);
        RADPROBE_CHECK(!ec, out.string(),
                       ": cannot move the existing directory aside: ", ec.message());
    }
    fs::rename(staging, out, ec);
    RADPROBE_CHECK(!ec, out.string(),
                   ": cannot move the generated dataset into place: ", ec.message());
    guard.keep = true;
    if (!trash.empty()) {
        fs::remove_all(trash, ec);
    }

    SynthSummary summary;
    summary.images = cases.size();
    summary.patients = 0;
    for (std::size_t i = 0; i < cases.size(); ++i) {
        if (i == 0 || cases[i].patient_id != cases[i - 1].patient_id) {
            ++summary.patients;
        }
    }
    summary.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return summary;
}

}  // namespace radprobe::synth
