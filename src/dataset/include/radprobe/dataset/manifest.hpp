#pragma once
/// @file manifest.hpp
/// The study manifest (DESIGN.md "Data formats"): records, labels, attributes, masks, boxes;
/// validation, patient-level splits, and building a manifest from another table.
///
/// ## Manifest CSV
/// A header row, then one row per image (RFC 4180 quoting). Columns:
///  - `image` (required): path of the image, relative to the manifest's directory (an absolute
///    path is used as is). The cell text is the image id.
///  - `patient_id` (required): all images of a patient belong to one split.
///  - `split` (optional): `train`, `val`, `test`, or empty (unassigned).
///  - `mask_<name>` (optional): per image either a mask file path (relative to the manifest; PNG,
///    8- or 16-bit, nonzero = foreground) or a run-length string (see RleConvention). A cell is
///    read as RLE when it consists only of integers separated by spaces (or is `-1`); anything
///    else is a path. An empty cell means "no mask recorded for this image" (unknown), `-1`
///    means "annotated, empty mask" — like labels, where empty = unknown.
///  - label columns: `0`/`1`, empty = unknown. With an explicit list (ManifestOptions::labels)
///    exactly those columns are labels. Otherwise every other column is a label when at least
///    90% of its non-empty cells are exactly `0` or `1` (so a stray `yes`, `2` or `1.0` in a
///    binary column is reported as a bad label instead of silently turning the column into an
///    attribute); a column with no non-empty cell is not a label.
///  - every remaining column is an attribute (kept as text; e.g. `ctr`, `view`). Label columns
///    are also readable as attributes, so a 0/1 attribute such as `chest_tube` may be used either
///    way.
/// Boxes live in a side file, by default `boxes.csv` next to the manifest (used when present):
/// columns `image,label,x0,y0,x1,y1`, `image` = an image id of the manifest, coordinates in
/// pixels of the original image, x = column, y = row, the box covering [x0,x1) × [y0,y1), so
/// 0 <= x0 < x1 <= cols and 0 <= y0 < y1 <= rows. A box of an image that is not in the manifest
/// is ignored with a warning (a subset manifest beside the full set's boxes.csv is normal); a
/// malformed boxes file is a problem only for the steps that use boxes (box_problems()).
///
/// ## Masks
/// A Mask is rows × cols, row-major (data[r * cols + c]), values 0 / 1. Masks are written as 8-bit
/// PNGs with values 0 / 255.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "radprobe/core/csv.hpp"

namespace radprobe {
class Progress;
}

namespace radprobe::dataset {

// ----------------------------------------------------------------------------------------------
// Splits and labels
// ----------------------------------------------------------------------------------------------

enum class Split { kNone, kTrain, kVal, kTest };

/// "" (unassigned), "train", "val", "test".
const char* split_name(Split split);
/// Parses a split cell: "" → kNone, "train" | "val" | "test"; nullopt for anything else.
std::optional<Split> parse_split(const std::string& text);

/// Label value meaning "unknown" (an empty cell, or an invalid value reported as a problem).
constexpr std::int8_t kLabelUnknown = -1;

// ----------------------------------------------------------------------------------------------
// Masks
// ----------------------------------------------------------------------------------------------

/// Binary mask, rows × cols, row-major, values 0 / 1.
struct Mask {
    int rows = 0;
    int cols = 0;
    std::vector<std::uint8_t> data;

    Mask() = default;
    Mask(int rows_, int cols_) : rows(rows_), cols(cols_), data(std::size_t(rows_) * cols_, 0) {}
    std::uint8_t at(int r, int c) const { return data[std::size_t(r) * cols + c]; }
    std::uint8_t& at(int r, int c) { return data[std::size_t(r) * cols + c]; }
    /// Number of foreground pixels.
    std::size_t count() const;
};

/// Run-length conventions. Both enumerate pixels in column-major (Fortran) order: pixel (r, c)
/// has index c * rows + r, as in the SIIM-ACR pneumothorax challenge. A string is a
/// space-separated list of `start length` pairs; `-1` or an empty string is an empty mask.
enum class RleConvention {
    /// The SIIM-ACR challenge's original `mask_functions.py` (rle2mask / mask2rle): each start
    /// is *relative*, counted from the end of the previous run (the first from pixel 0), 0-based.
    /// The default, because it is the format of the challenge's published train-rle.csv.
    kSiimRelative,
    /// The "standard" Kaggle RLE (SIIM-ACR stage 2 and most other Kaggle segmentation sets):
    /// absolute 1-based starts, runs in increasing order.
    kAbsolute,
};

/// "siim" (kSiimRelative) | "absolute"; throws UsageError listing the valid names otherwise.
RleConvention parse_rle_convention(const std::string& text);
const char* rle_convention_name(RleConvention convention);

/// True when `cell` is an RLE string (only integers separated by whitespace, or "-1"), false
/// when it should be read as a path. The empty string is neither (returns false).
bool looks_like_rle(const std::string& cell);

/// Decodes an RLE string into a rows × cols mask. Throws InputError naming `what` (e.g.
/// "manifest.csv:12: column 'mask_ptx'") and the reason for malformed strings (a non-integer,
/// an odd number of values, a zero or negative length, overlapping or unordered runs) and for
/// runs reaching beyond rows × cols.
Mask rle_decode(const std::string& rle, int rows, int cols, RleConvention convention,
                const std::string& what = "RLE");
/// Encodes a mask; an empty mask gives "-1" (as in the challenge's CSV).
std::string rle_encode(const Mask& mask, RleConvention convention);
/// The pixel index one past the last run (0 for an empty mask), i.e. the smallest rows × cols
/// the string fits. Throws like rle_decode for malformed strings.
std::uint64_t rle_extent(const std::string& rle, RleConvention convention,
                         const std::string& what = "RLE");

/// Reads a mask image (PNG 8/16-bit, grey or colour; nonzero in any colour channel =
/// foreground, alpha ignored). Throws InputError naming the file.
Mask read_mask_png(const std::filesystem::path& path);
/// Writes an 8-bit grey PNG with values 0 / 255, atomically.
void write_mask_png(const std::filesystem::path& path, const Mask& mask);

/// Whether a mask of mask_rows × mask_cols is its image (rows × cols) at another resolution: the
/// same aspect ratio, to within one image pixel of rounding (1024×1024 for 2048×2048, 1000×1024
/// for 2000×2048). Public sets ship masks at half or quarter resolution.
bool mask_matches_image_aspect(int mask_rows, int mask_cols, int rows, int cols);
/// `mask` resampled to rows × cols by nearest neighbour at pixel centres: output pixel (r, c)
/// takes mask pixel (floor((r + 0.5) · mask.rows / rows), floor((c + 0.5) · mask.cols / cols)).
Mask resample_mask_nearest(const Mask& mask, int rows, int cols);

// ----------------------------------------------------------------------------------------------
// Records
// ----------------------------------------------------------------------------------------------

/// A box in pixel coordinates of the original image (x = column, y = row), covering
/// [x0, x1) × [y0, y1).
struct Box {
    std::string label;
    double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
    std::size_t line = 0;  ///< line in boxes.csv
};

enum class MaskSource { kNone, kFile, kRle };

/// What a `mask_<name>` cell says.
struct MaskRef {
    MaskSource source = MaskSource::kNone;
    std::string value;           ///< the cell text
    std::filesystem::path path;  ///< resolved path (kFile)
};

/// One manifest row.
struct Record {
    std::string id;                    ///< the `image` cell (unique in a valid manifest)
    std::filesystem::path image_path;  ///< resolved against the manifest's directory
    std::string patient_id;
    Split split = Split::kNone;
    std::vector<std::int8_t> labels;      ///< aligned with Manifest::label_names(); 0/1/-1
    std::vector<std::string> attributes;  ///< aligned with Manifest::attribute_names()
    std::vector<MaskRef> masks;           ///< aligned with Manifest::mask_names()
    std::vector<Box> boxes;               ///< boxes of this image, in boxes.csv order
    std::size_t line = 0;                 ///< line in the manifest (header = 1)
};

/// One problem found in a manifest or its side files: "file:line: column 'c': message".
struct Problem {
    std::string file;
    std::size_t line = 0;  ///< 0 = the file as a whole
    std::string column;    ///< empty when not about one column
    std::string message;
    std::string to_string() const;
};

/// Splits a comma-separated list ("a, b,c" → {a, b, c}); surrounding spaces trimmed, empty items
/// dropped.
std::vector<std::string> split_list(const std::string& text);

struct ManifestOptions {
    /// Explicit label columns; when unset, detected (see the file comment).
    std::optional<std::vector<std::string>> labels;
    /// Boxes file; when unset, `boxes.csv` next to the manifest if it exists.
    std::optional<std::filesystem::path> boxes;
    RleConvention rle = RleConvention::kSiimRelative;
};

/// A loaded manifest. Loading reads only CSV files (no images); problems that can be seen from
/// the CSVs alone are collected rather than thrown, so that a validator can list them all.
/// problems(): duplicate image ids, empty image / patient cells, invalid split values, labels
/// outside {0,1,empty}, malformed RLE strings, patients in more than one split (leakage).
/// box_problems(): an unreadable boxes file, missing columns, non-numeric or inverted boxes;
/// they matter only to the steps that use boxes (ROI pooling over boxes, the lesion analysis),
/// which call require_valid_boxes(). warnings(): boxes of images not in the manifest (ignored).
/// Consumers that need a clean manifest call require_valid().
class Manifest {
public:
    /// Throws InputError for what makes the file unusable as a whole: unreadable, malformed CSV,
    /// no `image` or `patient_id` column, an explicit label column that does not exist.
    static Manifest load(const std::filesystem::path& path, const ManifestOptions& options = {});

    const std::filesystem::path& path() const { return path_; }
    /// Directory that image, mask and box paths are relative to.
    const std::filesystem::path& directory() const { return dir_; }
    /// The boxes file used (empty when none).
    const std::filesystem::path& boxes_path() const { return boxes_path_; }
    RleConvention rle_convention() const { return rle_; }

    std::size_t size() const { return records_.size(); }
    const std::vector<Record>& records() const { return records_; }
    const Record& record(std::size_t index) const { return records_.at(index); }
    /// Index of an image id (first occurrence), or nullopt.
    std::optional<std::size_t> find(const std::string& id) const;
    /// Record of an image id; throws InputError naming the manifest and the id.
    const Record& record(const std::string& id) const;

    bool has_split_column() const { return has_split_; }
    /// Indices of the records in a split (kNone = unassigned), in manifest order.
    std::vector<std::size_t> indices(Split split) const;
    /// Distinct non-empty patient ids in order of first appearance.
    std::vector<std::string> patients() const;

    const std::vector<std::string>& label_names() const { return label_names_; }
    std::optional<std::size_t> label_index(const std::string& name) const;
    /// One label for every record (0/1/kLabelUnknown); throws if `name` is not a label.
    std::vector<std::int8_t> label_vector(const std::string& name) const;

    const std::vector<std::string>& attribute_names() const { return attribute_names_; }
    /// Text of an attribute (or label) column for a record; throws if there is no such column.
    const std::string& attribute(std::size_t index, const std::string& name) const;
    /// Attribute parsed as a number; nullopt when empty or not a number.
    std::optional<double> numeric_attribute(std::size_t index, const std::string& name) const;

    /// Mask names (column `mask_heart` → "heart").
    const std::vector<std::string>& mask_names() const { return mask_names_; }
    std::optional<std::size_t> mask_index(const std::string& name) const;
    const MaskRef& mask_ref(std::size_t index, const std::string& name) const;
    /// Loads a record's mask for an image of rows × cols (needed to decode RLE). A mask file of
    /// another resolution with the image's aspect ratio is resampled to rows × cols
    /// (resample_mask_nearest) and counted in resampled_masks(); nullopt when the cell is empty.
    /// Throws InputError naming the manifest line, the column and the reason (missing file, another
    /// aspect ratio, malformed RLE).
    std::optional<Mask> load_mask(std::size_t index, const std::string& name, int rows,
                                  int cols) const;
    /// The mask files load_mask() resampled so far (thread-safe): how many, and the first as an
    /// example ("manifest.csv:3: mask_heart 1024x1024 for a 2048x2048 image").
    struct Resampled {
        std::size_t count = 0;
        std::string example;
        std::string last;  ///< the latest one (a caller that loads one mask at a time: its own)
        /// "N WHAT at another resolution than their image were resampled (nearest) to the image
        /// grid (e.g. EXAMPLE)"; empty when none was.
        std::string note(const std::string& what) const;
    };
    Resampled resampled_masks() const;

    /// Problems of the manifest CSV seen while loading, sorted by line.
    const std::vector<Problem>& problems() const { return problems_; }
    /// Problems of the boxes file, sorted by line (empty without a boxes file).
    const std::vector<Problem>& box_problems() const { return box_problems_; }
    /// What was ignored while loading: one line for all boxes whose image is not in the manifest.
    const std::vector<Problem>& warnings() const { return warnings_; }
    /// Throws InputError "<manifest>: N problems (first: ...); run `radprobe validate`" if
    /// problems() is not empty.
    void require_valid() const;
    /// The same for box_problems(), for the steps that use boxes.
    void require_valid_boxes() const;
    /// Throws InputError for the first problem of an image or mask column ("<problem> (run
    /// `radprobe validate` for every problem)"): what the steps that read images need; label
    /// and split problems are left to validate and training.
    void require_readable_images() const;

    /// The parsed CSV as read (for rewriting it with changes).
    const CsvTable& table() const { return table_; }

private:
    std::filesystem::path path_;
    std::filesystem::path dir_;
    std::filesystem::path boxes_path_;
    RleConvention rle_ = RleConvention::kSiimRelative;
    CsvTable table_;
    bool has_split_ = false;
    std::vector<Record> records_;
    std::vector<std::string> label_names_;
    std::vector<std::size_t> label_cols_;
    std::vector<std::string> attribute_names_;
    std::vector<std::size_t> attribute_cols_;
    std::vector<std::string> mask_names_;
    std::vector<std::size_t> mask_cols_;
    std::vector<std::pair<std::string, std::size_t>> id_index_;  // sorted (id, index)
    std::vector<Problem> problems_;
    std::vector<Problem> box_problems_;
    std::vector<Problem> warnings_;
    struct ResampleLog;
    std::shared_ptr<ResampleLog> resampled_;  ///< shared by copies; written by load_mask

    void load_boxes(const ManifestOptions& options);
    void log_resampled(const std::string& example) const;
};

// ----------------------------------------------------------------------------------------------
// Validation and summary
// ----------------------------------------------------------------------------------------------

struct ValidateOptions {
    /// Decode every image (imaging::decode) to prove it is readable and learn its size; when
    /// false, images are only checked to exist and box bounds / mask sizes are not checked.
    bool decode_images = true;
    /// Threads for decoding (<= 0: all available).
    int threads = 0;
    /// When given, receives one entry per image that decoded only after a repair
    /// (imaging::ImageInfo::recovered, e.g. a native transfer syntax over JPEG pixel data), in
    /// manifest order. Such images are not problems.
    std::vector<Problem>* recovered = nullptr;
    /// When given, receives one entry per mask file at another resolution than its image with
    /// the same aspect ratio (load_mask resamples it), in manifest order. Not problems either.
    std::vector<Problem>* resampled = nullptr;
};

/// Every problem of a manifest: problems() and box_problems() plus, with images, unreadable or
/// missing images, boxes outside their image, mask files that are missing / unreadable / of
/// another size than the image, RLE strings running beyond rows × cols. Sorted by file and line.
/// Warnings are not problems: they are in Manifest::warnings(). `progress`, when
/// given, advances once per image (its total should be manifest.size()).
std::vector<Problem> validate(const Manifest& manifest, const ValidateOptions& options = {},
                              Progress* progress = nullptr);

/// A human-readable summary: images, patients, images/patients per split, and for every label
/// the positives / known and prevalence per split. Several lines, ending with a newline.
std::string summary_text(const Manifest& manifest);

// ----------------------------------------------------------------------------------------------
// Splits
// ----------------------------------------------------------------------------------------------

struct SplitOptions {
    double val = 0.1;   ///< fraction of images in val
    double test = 0.2;  ///< fraction of images in test
    std::uint64_t seed = 0;
    /// Label column to stratify on (empty: none). Patients are stratified by whether ANY of
    /// their images is positive for it (positive / negative / all-unknown strata).
    std::string stratify;
};

/// Checks 0 <= val, 0 <= test, val + test < 1 (finite); throws UsageError with the valid range.
void check_split_fractions(double val, double test);

/// A patient-level split, one Split per record (never kNone). Patients (in order of first
/// appearance) are grouped by stratum (one stratum without stratification), shuffled with
/// Rng(seed); test then val are filled with whole patients toward a target number of images
/// (fraction × images), where targets are cumulative over strata so the rounding error does not
/// add up; a patient is taken when it brings the count closer to the target (ties taken). Each
/// split's image count is therefore within about half the largest patient's image count of its
/// target, in every stratum. Throws InputError for empty patient ids or an unknown --stratify.
std::vector<Split> assign_splits(const Manifest& manifest, const SplitOptions& options);

/// The manifest's CSV text with the split column replaced (or appended as the last column),
/// every other cell, column and row order as read.
std::string manifest_with_splits(const Manifest& manifest, const std::vector<Split>& splits);

// ----------------------------------------------------------------------------------------------
// Building a manifest from another table
// ----------------------------------------------------------------------------------------------

/// `COL:VALUE=NAME`: label NAME = 1 where COL == VALUE, 0 where COL is another non-empty value,
/// empty where COL is empty.
struct LabelFromValue {
    std::string column;
    std::string value;
    std::string name;
};
/// Parses "COL:VALUE=NAME"; throws UsageError showing the expected form.
LabelFromValue parse_label_from(const std::string& text);

struct ConvertOptions {
    std::filesystem::path table;       ///< input CSV
    std::filesystem::path out;         ///< output manifest (image paths made relative to it)
    std::string image_col;             ///< column holding image paths
    std::filesystem::path image_root;  ///< image paths are relative to this (default: table dir)
    std::string patient_col;           ///< patient id column, or
    std::string patient_regex;         ///< ECMAScript regex searched in the image FILE NAME;
                                       ///< the first capture group (or whole match) is the id
    std::string split_col;             ///< optional split column
    /// Split value mapping "FROM=TO" (TO in train/val/test/""), added to the defaults
    /// train→train, val/valid/validation→val, test→test.
    std::vector<std::string> split_map;
    std::vector<LabelFromValue> label_from;
    std::string finding_col;  ///< optional multi-label column ("A|B|C")
    std::string finding_sep = "|";
    std::vector<std::string> findings;      ///< findings to emit (case-insensitive); empty = all
    std::string no_finding = "No Finding";  ///< the token meaning "none of them"
    std::vector<std::string> keep;          ///< columns copied as attributes
};

/// Name of the column for a finding: lower case, runs of other than [a-z0-9] → '_'
/// ("Pleural_Thickening" → "pleural_thickening", "No Finding" → "no_finding").
std::string finding_column_name(const std::string& finding);

struct ConvertResult {
    std::string csv;  ///< the manifest text
    std::size_t rows = 0;
    std::size_t patients = 0;
    std::vector<std::string> label_names;  ///< label columns written, in order
};

/// Builds the manifest text. Throws UsageError for bad options (unknown columns, both or
/// neither patient options, a bad regex, unknown findings, duplicated output names) and
/// InputError for bad rows (naming the table line): empty image path, no patient id match,
/// unmapped split value.
ConvertResult convert_table(const ConvertOptions& options);

}  // namespace radprobe::dataset
