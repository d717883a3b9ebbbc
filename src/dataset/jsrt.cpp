// JSRT (Japanese Society of Radiological Technology) chest radiographs with the SCR
// (Segmentation in Chest Radiographs) masks: `radprobe manifest --format jsrt`.
//
// What the formats are, from their publishers:
//  - JSRT (http://db.jsrt.or.jp/eng.php): 154 radiographs with a nodule (JPCLN001.IMG ..
//    JPCLN154.IMG) and 93 without (JPCNN001.IMG .. JPCNN093.IMG), "2048x2048 matrix size
//    (0.175-mm pixels) and a 12-bit gray scale (no header, big-endian raw data)".
//  - The clinical files CLNDAT_EN.txt (nodule cases) and CNNDAT_EN.txt (non-nodule cases). The
//    JSRT user's guide describes them, but users of the files report that the guide's schema is
//    wrong; the real one (github.com/Nickollee/radiology-cv, data/clinical/README.md) is
//    CLNDAT: file name, subtlety (1-5), size mm, age, sex, x, y, malignant|benign, anatomic
//    location, diagnosis, tab-separated; CNNDAT: file name, age, sex, "non-nodule", separated by
//    runs of spaces. Copies differ: x and y in one tab field ("1634 692"), records run together
//    without a line break ("...hematomaJPCLN003.IMG ..."), CR-only line ends, "?" for an unknown
//    value. Records are therefore cut at each image name, and the fixed leading fields are read
//    by whitespace unless the record is cleanly tab-separated.
//  - SCR (https://www.isi.uu.nl/Research/Databases/SCR/): per image and organ a 1024x1024 GIF
//    mask named like the image (JPCLN001.gif) in a folder per organ ("heart", "left lung",
//    "right lung", "left clavicle", "right clavicle"), under fold1/masks/ and fold2/masks/. Left
//    and right are the patient's: the right lung is on the left of the image.
//
// radprobe's decoder reads neither headerless raw nor GIF (OpenCV 4.6 has no GIF reader), so the
// builder converts, under --png-dir:
//  - images/ID.png: 16-bit grey. The raw values are film densities: high = dark (the usual
//    reading of the files inverts them, `1 - raw / 4096`, e.g. the lung-segmentation
//    preprocessing scripts on GitHub). They are inverted so that bone is bright as in every other
//    set radprobe reads (MONOCHROME2), v = 4095 - raw, and the 12 bits are widened to 16 by
//    left-bit replication (the PNG specification's recommended sample-depth scaling), so 0 → 0,
//    4095 → 65535 and the display stage (value / 65535) spans [0, 1].
//  - masks/ORGAN/ID.png: 8-bit 0 / 255 (radprobe's mask convention, write_mask_png), at the
//    GIF's own 1024x1024: radprobe resamples a mask with its image's aspect ratio itself.
//    masks/lungs/ID.png is the union of the two lungs.
// Files already converted are skipped: the output exists, is not older than its source(s) and its
// PNG header has the expected size and depth (outputs are written atomically, so a file that
// exists is complete).

#include "jsrt.hpp"

#include <gif_lib.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>

#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/parallel.hpp"
#include "radprobe/core/progress.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "text.hpp"

namespace radprobe::dataset::detail {
namespace fs = std::filesystem;

namespace {

constexpr int kSide = 2048;                  // JSRT images are 2048 x 2048
constexpr double kPixelMm = 0.175;           // JSRT pixel spacing
constexpr unsigned kMaxRaw = 4095;           // 12 bits used
constexpr std::size_t kNoduleFields = 8;     // file .. malignant|benign
constexpr std::size_t kNonNoduleFields = 3;  // file, age, sex

/// An SCR organ folder ("left lung") and its manifest mask name (mask_lung_left).
struct Organ {
    const char* folder;  ///< folder name, lower case, without spaces / underscores / hyphens
    const char* name;
};
const std::array<Organ, 5> kOrgans = {{{"heart", "heart"},
                                       {"leftlung", "lung_left"},
                                       {"rightlung", "lung_right"},
                                       {"leftclavicle", "clavicle_left"},
                                       {"rightclavicle", "clavicle_right"}}};

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) {
        return "";
    }
    return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// ----------------------------------------------------------------------------------------------
// Clinical text files
// ----------------------------------------------------------------------------------------------

/// One record of a clinical file: its fields and the line it starts on.
struct TextRecord {
    std::size_t line = 0;
    std::vector<std::string> fields;
};

std::vector<std::string> split_whitespace(const std::string& s) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) {
            ++i;
        }
        const std::size_t b = i;
        while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i]))) {
            ++i;
        }
        if (i > b) {
            out.push_back(s.substr(b, i - b));
        }
    }
    return out;
}

/// Fields of one record: by tabs when the leading `fixed` fields hold no spaces (so an empty tab
/// field stays an empty, unknown value), else by runs of whitespace.
std::vector<std::string> split_fields(const std::string& record, std::size_t fixed) {
    if (record.find('\t') == std::string::npos) {
        return split_whitespace(record);
    }
    std::vector<std::string> out;
    std::size_t start = 0;
    while (true) {
        const auto tab = record.find('\t', start);
        out.push_back(trim(record.substr(start, tab == std::string::npos ? tab : tab - start)));
        if (tab == std::string::npos) {
            break;
        }
        start = tab + 1;
    }
    while (!out.empty() && out.back().empty()) {
        out.pop_back();
    }
    for (std::size_t k = 0; k < std::min(fixed, out.size()); ++k) {
        if (out[k].find(' ') != std::string::npos) {
            return split_whitespace(record);
        }
    }
    return out;
}

/// The records of a clinical file, each starting at an image name (JPCLNnnn.IMG / JPCNNnnn.IMG).
/// Lines end in LF, CRLF or CR; a line may hold several records. A first line without an image
/// name is a header and skipped; any other text outside a record is an error.
std::vector<TextRecord> read_clinical(const fs::path& path, std::size_t fixed) {
    std::string text = read_file_text(path);
    if (text.rfind("\xEF\xBB\xBF", 0) == 0) {
        text.erase(0, 3);
    }
    static const std::regex name_re("JPC[LN]N[0-9]{3}\\.IMG", std::regex::icase);
    std::vector<TextRecord> out;
    std::size_t line_no = 0;
    std::size_t pos = 0;
    bool first = true;
    while (pos < text.size()) {
        const auto end = text.find_first_of("\r\n", pos);
        const std::string line = text.substr(pos, end == std::string::npos ? end : end - pos);
        ++line_no;
        pos = end == std::string::npos ? text.size()
                                       : end + (text.compare(end, 2, "\r\n") == 0 ? 2 : 1);
        if (trim(line).empty()) {
            continue;
        }
        std::vector<std::size_t> starts;
        for (auto it = std::sregex_iterator(line.begin(), line.end(), name_re);
             it != std::sregex_iterator(); ++it) {
            starts.push_back(static_cast<std::size_t>(it->position()));
        }
        const bool header = first && starts.empty();
        first = false;
        if (header) {
            continue;
        }
        RADPROBE_CHECK(!starts.empty() && trim(line.substr(0, starts[0])).empty(), path.string(),
                       ":", line_no, ": '", trim(line).substr(0, 40),
                       "' does not start with a JSRT image name (JPCLNnnn.IMG or JPCNNnnn.IMG)");
        for (std::size_t k = 0; k < starts.size(); ++k) {
            const std::size_t to = k + 1 < starts.size() ? starts[k + 1] : line.size();
            out.push_back({line_no, split_fields(line.substr(starts[k], to - starts[k]), fixed)});
        }
    }
    return out;
}

/// One image of the set, as the clinical files describe it.
struct Case {
    std::string id;  ///< JPCLN001
    std::size_t line = 0;
    bool nodule = false;
    std::string subtlety, size_mm, age, sex, malignant;  ///< manifest cells ("" = unknown)
    std::optional<double> size, x, y;                    ///< the nodule, when known
};

bool unknown(const std::string& v) {
    return v.empty() || v == "?" || v == "-";
}

/// A number field, "" when unknown; InputError naming file, line and field otherwise.
std::optional<double> number_field(const std::string& v, const std::string& where,
                                   const char* field, double lo, double hi) {
    if (unknown(v)) {
        return std::nullopt;
    }
    const auto d = parse_double(v);
    RADPROBE_CHECK(d && *d >= lo && *d <= hi, where, ": field '", field, "': '", v,
                   "' is not a number in [", lo, ", ", hi, "] or ? (unknown)");
    return d;
}

std::string age_field(const std::string& v, const std::string& where) {
    const auto a = number_field(v, where, "age", 0, 150);
    RADPROBE_CHECK(!a || std::floor(*a) == *a, where, ": field 'age': '", v,
                   "' is not a whole number of years");
    return a ? format_number(*a) : "";
}

Case parse_case(const fs::path& file, const TextRecord& rec, bool nodule) {
    const std::string id = upper(rec.fields[0].substr(0, 8));
    const std::string where = str_cat(file.string(), ":", rec.line, ": ", id);
    const std::size_t need = nodule ? kNoduleFields : kNonNoduleFields;
    RADPROBE_CHECK(rec.fields.size() >= need, where, ": ", rec.fields.size(),
                   " fields, expected at least ", need,
                   nodule ? " (file name, subtlety, size mm, age, sex, x, y, malignant|benign, "
                            "location, diagnosis)"
                          : " (file name, age, sex, non-nodule)");
    RADPROBE_CHECK((id[3] == 'L') == nodule, where, ": a ",
                   nodule ? "non-nodule image in the nodule file (CLNDAT)"
                          : "nodule image in the non-nodule file (CNNDAT)");
    const auto& f = rec.fields;
    Case c;
    c.id = id;
    c.line = rec.line;
    c.nodule = nodule;
    c.age = age_field(f[nodule ? 3 : 1], where);
    c.sex = unknown(f[nodule ? 4 : 2]) ? "" : f[nodule ? 4 : 2];
    if (!nodule) {
        return c;
    }
    const auto subtlety = number_field(f[1], where, "subtlety", 1, 5);
    c.subtlety = subtlety ? format_number(*subtlety) : "";
    c.size = number_field(f[2], where, "size mm", 0, kSide * kPixelMm);
    c.size_mm = c.size ? format_number(*c.size) : "";
    c.x = number_field(f[5], where, "x", 0, kSide - 1);
    c.y = number_field(f[6], where, "y", 0, kSide - 1);
    const std::string m = lower(f[7]);
    RADPROBE_CHECK(m == "malignant" || m == "benign" || unknown(m), where,
                   ": field 'malignant|benign': '", f[7], "' is not malignant, benign or ?");
    c.malignant = m == "malignant" ? "1" : m == "benign" ? "0" : "";
    return c;
}

std::vector<Case> read_cases(const fs::path& nodules, const fs::path& non_nodules) {
    std::vector<Case> out;
    std::map<std::string, std::string> seen;  // id → where first seen
    for (const bool nodule : {true, false}) {
        const fs::path& file = nodule ? nodules : non_nodules;
        for (const auto& rec : read_clinical(file, nodule ? kNoduleFields : kNonNoduleFields)) {
            Case c = parse_case(file, rec, nodule);
            const std::string where = str_cat(file.string(), ":", rec.line);
            const auto [it, fresh] = seen.emplace(c.id, where);
            RADPROBE_CHECK(fresh, where, ": ", c.id, " is listed twice (first at ", it->second,
                           ")");
            out.push_back(std::move(c));
        }
    }
    return out;
}

// ----------------------------------------------------------------------------------------------
// Conversion
// ----------------------------------------------------------------------------------------------

/// Files under `root` whose extension is `ext` (any case), by upper-case stem.
std::map<std::string, fs::path> index_files(const fs::path& root, const std::string& ext) {
    std::map<std::string, fs::path> out;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
        if (e.is_regular_file() && lower(e.path().extension().string()) == ext) {
            out.emplace(upper(e.path().stem().string()), e.path());
        }
    }
    return out;
}

/// SCR masks under `root`: organ name → image id → GIF. Two files for one organ and image (two
/// copies of the set under the root) are an error.
std::map<std::string, std::map<std::string, fs::path>> index_masks(const fs::path& root) {
    RADPROBE_CHECK(fs::is_directory(root), "--masks ", root.string(), ": not a directory");
    std::map<std::string, std::map<std::string, fs::path>> out;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
        if (!e.is_regular_file() || lower(e.path().extension().string()) != ".gif") {
            continue;
        }
        std::string folder;
        for (char c : lower(e.path().parent_path().filename().string())) {
            if (c != ' ' && c != '_' && c != '-') {
                folder += c;
            }
        }
        const auto organ = std::find_if(kOrgans.begin(), kOrgans.end(),
                                        [&](const Organ& o) { return folder == o.folder; });
        if (organ == kOrgans.end()) {
            continue;
        }
        const std::string id = upper(e.path().stem().string());
        const auto [it, fresh] = out[organ->name].emplace(id, e.path());
        RADPROBE_CHECK(fresh, "--masks ", root.string(), ": two ", organ->name, " masks of ", id,
                       ": ", it->second.string(), " and ", e.path().string(),
                       " (point --masks at one copy of the SCR masks)");
    }
    return out;
}

/// Whether `png` exists, is not older than `sources` and its header says cols x rows at
/// `depth` bits, grey (PNG IHDR: width, height, bit depth, colour type 0).
bool up_to_date(const fs::path& png, const std::vector<fs::path>& sources, int rows, int cols,
                int depth) {
    std::error_code ec;
    const auto t = fs::last_write_time(png, ec);
    if (ec) {
        return false;
    }
    for (const auto& s : sources) {
        if (fs::last_write_time(s) > t) {
            return false;
        }
    }
    std::ifstream in(png, std::ios::binary);
    unsigned char h[26] = {};
    if (!in.read(reinterpret_cast<char*>(h), sizeof h) ||
        std::string(reinterpret_cast<char*>(h + 12), 4) != "IHDR") {
        return false;
    }
    const auto be32 = [&](int at) {
        return (std::uint32_t(h[at]) << 24) | (std::uint32_t(h[at + 1]) << 16) |
               (std::uint32_t(h[at + 2]) << 8) | h[at + 3];
    };
    return be32(16) == std::uint32_t(cols) && be32(20) == std::uint32_t(rows) && h[24] == depth &&
           h[25] == 0;
}

/// The screen size (rows, cols) of a GIF from its header; InputError when it is not a GIF.
std::pair<int, int> gif_size(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    unsigned char h[10] = {};
    RADPROBE_CHECK(in.read(reinterpret_cast<char*>(h), sizeof h) &&
                       std::string(reinterpret_cast<char*>(h), 3) == "GIF",
                   path.string(), ": not a GIF file");
    return {h[8] | (h[9] << 8), h[6] | (h[7] << 8)};
}

void write_png(const fs::path& path, const cv::Mat& img) {
    std::vector<std::uint8_t> encoded;
    RADPROBE_CHECK(cv::imencode(".png", img, encoded), path.string(), ": cannot encode PNG");
    write_file_atomic(
        path, std::string_view(reinterpret_cast<const char*>(encoded.data()), encoded.size()));
}

/// JSRT raw → 16-bit PNG, inverted and widened (see the top of this file).
void convert_image(const fs::path& raw, const fs::path& png) {
    const auto bytes = read_file_bytes(raw);
    const std::size_t expected = std::size_t(kSide) * kSide * 2;
    RADPROBE_CHECK(bytes.size() == expected, raw.string(), ": ", bytes.size(), " bytes, expected ",
                   expected, " (JSRT: headerless 2048x2048, 16-bit big-endian; truncated file?)");
    cv::Mat img(kSide, kSide, CV_16U);
    for (int r = 0; r < kSide; ++r) {
        auto* row = img.ptr<std::uint16_t>(r);
        for (int c = 0; c < kSide; ++c) {
            const std::size_t at = (std::size_t(r) * kSide + c) * 2;
            const unsigned v = (unsigned(bytes[at]) << 8) | bytes[at + 1];
            RADPROBE_CHECK(v <= kMaxRaw, raw.string(), ": pixel (row ", r, ", column ", c, ") is ",
                           v, ", above 4095 (JSRT is 12-bit big-endian; a byte-swapped copy?)");
            const unsigned inv = kMaxRaw - v;
            row[c] = static_cast<std::uint16_t>((inv << 4) | (inv >> 8));
        }
    }
    write_png(png, img);
}

/// An SCR GIF as a mask: a pixel is foreground when its palette colour is not black (when there
/// is no palette: when its index is not 0). The first image of the file, placed on its screen.
/// DGifSlurp de-interlaces (giflib NEWS, 5.0: "DGifSlurp() ... read ... interlaced images
/// properly").
Mask read_gif_mask(const fs::path& path) {
    int err = 0;
    GifFileType* gif = DGifOpenFileName(path.string().c_str(), &err);
    RADPROBE_CHECK(gif != nullptr, path.string(), ": cannot open GIF: ", GifErrorString(err));
    const int ok = DGifSlurp(gif);
    const int slurp_err = gif->Error;
    std::string problem;
    Mask mask;
    if (ok != GIF_OK) {
        problem = str_cat("cannot decode GIF: ", GifErrorString(slurp_err));
    } else if (gif->ImageCount < 1 || gif->SWidth <= 0 || gif->SHeight <= 0) {
        problem = "GIF without an image";
    } else {
        const SavedImage& im = gif->SavedImages[0];
        const GifImageDesc& d = im.ImageDesc;
        const ColorMapObject* map = d.ColorMap ? d.ColorMap : gif->SColorMap;
        if (d.Left < 0 || d.Top < 0 || d.Left + d.Width > gif->SWidth ||
            d.Top + d.Height > gif->SHeight) {
            problem = "the image lies outside the GIF's screen";
        } else {
            mask = Mask(gif->SHeight, gif->SWidth);
            for (int r = 0; r < d.Height; ++r) {
                for (int c = 0; c < d.Width; ++c) {
                    const int idx = im.RasterBits[std::size_t(r) * d.Width + c];
                    bool on = idx != 0;
                    if (map && idx < map->ColorCount) {
                        const GifColorType& col = map->Colors[idx];
                        on = col.Red || col.Green || col.Blue;
                    }
                    mask.data[std::size_t(d.Top + r) * mask.cols + d.Left + c] = on ? 1 : 0;
                }
            }
        }
    }
    DGifCloseFile(gif, &err);
    RADPROBE_CHECK(problem.empty(), path.string(), ": ", problem);
    return mask;
}

/// What one image converts into, and how much of it was already done.
struct Conversion {
    std::string image;                         ///< PNG path
    std::map<std::string, std::string> masks;  ///< mask name → PNG path
    std::size_t converted = 0;
    std::size_t up_to_date = 0;
};

/// Converts one organ mask unless up to date; returns the mask when it was decoded.
std::optional<Mask> convert_mask(const fs::path& gif, const fs::path& png, Conversion& conv) {
    const auto [rows, cols] = gif_size(gif);
    if (up_to_date(png, {gif}, rows, cols, 8)) {
        ++conv.up_to_date;
        return std::nullopt;
    }
    Mask m = read_gif_mask(gif);
    write_mask_png(png, m);
    ++conv.converted;
    return m;
}

/// The union of the two lungs, masks/lungs/ID.png.
void convert_lungs(const fs::path& left, const fs::path& right, const fs::path& png,
                   Conversion& conv) {
    const auto [rows, cols] = gif_size(left);
    if (up_to_date(png, {left, right}, rows, cols, 8)) {
        ++conv.up_to_date;
        return;
    }
    Mask l = read_gif_mask(left);
    const Mask r = read_gif_mask(right);
    RADPROBE_CHECK(l.rows == r.rows && l.cols == r.cols, left.string(), ": ", l.cols, "x", l.rows,
                   " but the right lung ", right.string(), " is ", r.cols, "x", r.rows);
    for (std::size_t i = 0; i < l.data.size(); ++i) {
        l.data[i] |= r.data[i];
    }
    write_mask_png(png, l);
    ++conv.converted;
}

using MaskIndex = std::map<std::string, std::map<std::string, fs::path>>;

Conversion convert_case(const std::string& id, const fs::path& raw, const MaskIndex& masks,
                        const fs::path& dir) {
    Conversion conv;
    const fs::path png = dir / "images" / (id + ".png");
    if (up_to_date(png, {raw}, kSide, kSide, 16)) {
        ++conv.up_to_date;
    } else {
        convert_image(raw, png);
        ++conv.converted;
    }
    conv.image = png.string();
    for (const auto& [organ, files] : masks) {
        const auto it = files.find(id);
        if (it != files.end()) {
            const fs::path out = dir / "masks" / organ / (id + ".png");
            convert_mask(it->second, out, conv);
            conv.masks[organ] = out.string();
        }
    }
    const auto l = masks.find("lung_left");
    const auto r = masks.find("lung_right");
    if (l != masks.end() && r != masks.end() && l->second.count(id) && r->second.count(id)) {
        const fs::path out = dir / "masks" / "lungs" / (id + ".png");
        convert_lungs(l->second.at(id), r->second.at(id), out, conv);
        conv.masks["lungs"] = out.string();
    }
    return conv;
}

/// Converts every case that has an image file, in parallel; results aligned with `cases`
/// (nullopt: no image file).
std::vector<std::optional<Conversion>> convert_all(const std::vector<Case>& cases,
                                                   const std::map<std::string, fs::path>& images,
                                                   const MaskIndex& masks, const fs::path& dir) {
    std::vector<std::optional<Conversion>> out(cases.size());
    Progress progress("jsrt png", cases.size(), "images");
    std::mutex progress_mutex;
    parallel_for(cases.size(), 0, [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i) {
            const auto it = images.find(cases[i].id);
            if (it != images.end()) {
                out[i] = convert_case(cases[i].id, it->second, masks, dir);
            }
            const std::lock_guard<std::mutex> lock(progress_mutex);
            progress.advance();
        }
    });
    progress.finish();
    return out;
}

// ----------------------------------------------------------------------------------------------
// Manifest
// ----------------------------------------------------------------------------------------------

/// Mask columns: the organs found, then `lungs` when both lungs were.
std::vector<std::string> mask_columns(const MaskIndex& masks) {
    std::vector<std::string> out;
    for (const auto& o : kOrgans) {
        if (masks.count(o.name)) {
            out.push_back(o.name);
        }
    }
    if (masks.count("lung_left") && masks.count("lung_right")) {
        out.push_back("lungs");
    }
    return out;
}

/// The nodule's box: centred on (x, y), side = size mm / 0.175 mm per pixel (the nodule's
/// diameter as a square; JSRT gives one size per nodule), clamped to the image.
std::string nodule_box(const std::string& image, const Case& c) {
    const double half = *c.size / kPixelMm / 2;
    const double x0 = std::max(0.0, *c.x - half);
    const double y0 = std::max(0.0, *c.y - half);
    const double x1 = std::min(double(kSide), *c.x + half);
    const double y1 = std::min(double(kSide), *c.y + half);
    return csv_line({image, "nodule", format_number(x0), format_number(y0), format_number(x1),
                     format_number(y1)}) +
           "\n";
}

fs::path default_image_root(const fs::path& table_dir) {
    for (const auto& e : fs::recursive_directory_iterator(table_dir)) {
        if (e.is_regular_file() && lower(e.path().extension().string()) == ".img") {
            return table_dir;
        }
    }
    return table_dir.parent_path();
}

void add_counts(PublicSetResult& res, const Conversion& conv) {
    res.converted += conv.converted;
    res.up_to_date += conv.up_to_date;
}

}  // namespace

PublicSetResult build_jsrt(const PublicSetOptions& o) {
    const fs::path table_dir = fs::absolute(o.table).parent_path();
    fs::path non_nodules = table_dir / "CNNDAT_EN.txt";
    if (!fs::exists(non_nodules) && fs::exists(table_dir / "CNNDAT_EN.TXT")) {
        non_nodules = table_dir / "CNNDAT_EN.TXT";  // the spelling of some copies
    }
    const auto cases = read_cases(o.table, non_nodules);
    const fs::path root = o.image_root.empty() ? default_image_root(table_dir) : o.image_root;
    RADPROBE_CHECK(fs::is_directory(root), "image root ", root.string(), " is not a directory");
    const auto images = index_files(root, ".img");
    const MaskIndex masks = o.masks.empty() ? MaskIndex{} : index_masks(o.masks);
    const fs::path out_dir = fs::weakly_canonical(fs::absolute(o.out).parent_path());
    const fs::path dir =
        fs::weakly_canonical(fs::absolute(o.png_dir.empty() ? out_dir / "jsrt_png" : o.png_dir));
    const auto conversions = convert_all(cases, images, masks, dir);
    const auto rel = [&](const std::string& p) {
        return fs::path(p).lexically_relative(out_dir).generic_string();
    };

    PublicSetResult res;
    res.label_names = {"nodule", "malignant"};
    res.converted_dir = dir;
    const auto mask_cols = mask_columns(masks);
    std::vector<std::string> header = {"image",    "patient_id", "nodule", "malignant",
                                       "subtlety", "size_mm",    "sex",    "age"};
    for (const auto& m : mask_cols) {
        header.push_back("mask_" + m);
    }
    res.csv = csv_line(header) + "\n";
    res.boxes_csv = "image,label,x0,y0,x1,y1\n";
    for (std::size_t i = 0; i < cases.size(); ++i) {
        const Case& c = cases[i];
        if (!conversions[i]) {
            ++res.skipped;
            continue;
        }
        const Conversion& conv = *conversions[i];
        add_counts(res, conv);
        const std::string image = rel(conv.image);
        std::vector<std::string> row = {
            image, c.id, c.nodule ? "1" : "0", c.malignant, c.subtlety, c.size_mm, c.sex, c.age};
        for (const auto& m : mask_cols) {
            const auto it = conv.masks.find(m);
            row.push_back(it == conv.masks.end() ? "" : rel(it->second));
        }
        res.csv += csv_line(row) + "\n";
        ++res.rows;
        if (c.nodule && c.size && c.x && c.y) {
            res.boxes_csv += nodule_box(image, c);
            ++res.boxes;
        }
    }
    if (res.boxes == 0) {
        res.boxes_csv.clear();
    }
    if (res.skipped) {
        res.skipped_reason = str_cat("cases without an image file ID.IMG under ", root.string());
    }
    res.patients = res.rows;  // one radiograph per patient in JSRT
    return res;
}

}  // namespace radprobe::dataset::detail
