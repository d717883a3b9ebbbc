#pragma once
/// @file public_sets.hpp
/// Manifest builders for public chest-radiograph sets as they are downloaded
/// (`radprobe manifest --from FILE --format NAME`). Each reads the set's own label table (and
/// side files), and gives the text of a radprobe manifest (manifest.hpp) and, where the set has
/// boxes, of its boxes.csv. Image paths are written relative to the output manifest's directory.
///
///  - `nih` (NIH ChestX-ray14): `Data_Entry_2017.csv` ("Image Index", "Finding Labels",
///    "Patient ID", "Patient Age", "Patient Gender", "View Position"): the 14 findings as 0/1
///    labels (No Finding → all 0), patient_id (Patient ID zero-padded to 8 digits as in the file
///    names, else the file-name prefix before '_'), attributes sex, age, view.
///    `BBox_List_2017.csv` ("Image Index", "Finding Label", "Bbox [x", "y", "w", "h]") gives
///    boxes.csv (x1 = x + w, y1 = y + h; label as the label column, "Infiltrate" →
///    infiltration). `train_val_list.txt` / `test_list.txt` give split train / test.
///  - `chexpert` (CheXpert; the 14-label CheXpert schema): "Path" and the 14 label columns
///    (1 / 0 / -1 uncertain / blank; 1.0 etc. accepted); patient and study from the path
///    (patientNNNNN/studyN); attributes study_id, sex, age, view, ap_pa where present.
///    MIMIC-CXR-JPG: `mimic-cxr-2.0.0-chexpert.csv` (subject_id, study_id, the 14 labels; one
///    row per study) joined on study_id with `mimic-cxr-2.0.0-metadata.csv` (dicom_id,
///    subject_id, study_id, ViewPosition): one row per image files/pXX/pSUBJECT/sSTUDY/DICOM.jpg,
///    patient_id = subject_id, attributes study_id, view; `mimic-cxr-2.0.0-split.csv` (dicom_id,
///    split train / validate / test) gives split train / val / test. Images of studies without
///    labels are skipped and counted.
///  - `siim` (SIIM-ACR pneumothorax): `train-rle.csv` ("ImageId", "EncodedPixels", either with
///    leading spaces): label pneumothorax and mask_pneumothorax (RLE, the challenge's relative
///    convention; the rows of one image are merged into one mask; "-1" = no pneumothorax).
///    Images are found as IMAGEID.dcm / .png / .jpg anywhere under the image root; rows without
///    an image file are skipped and counted. Each SIIM image is its own patient.
///  - `chestx-det10` (ChestX-Det10): `train.json` / `test.json`, a list of {"file_name",
///    "syms": [finding...], "boxes": [[x0, y0, x1, y1]...]} (one box per sym): the 10 findings as
///    0/1 labels (none listed → all 0) and boxes.csv. The set gives no patient ids (its images
///    are renamed NIH images): each image is its own patient, so a split of it cannot be
///    guaranteed leak-free. Images under TABLE_DIR/<stem>_data (train_data, test_data).
///  - `jsrt` (JSRT with the SCR masks): `CLNDAT_EN.txt` (nodule cases: file name, subtlety,
///    size mm, age, sex, x, y, malignant|benign, location, diagnosis) and `CNNDAT_EN.txt` beside
///    it (non-nodule cases: file name, age, sex), tab- or space-separated, "?" = unknown: labels
///    nodule (JPCLN 1, JPCNN 0) and malignant (empty for non-nodule cases), attributes
///    subtlety, size_mm, sex, age; patient_id = the image id (one radiograph per patient);
///    boxes.csv: a square of side size mm / 0.175 centred on (x, y), clamped to the image. The
///    headerless 12-bit .IMG files (found under the image root) become 16-bit PNGs, inverted so
///    that bone is bright, and the SCR GIF masks (found under `masks` in folders heart, left
///    lung, right lung, left clavicle, right clavicle) 8-bit 0/255 PNGs at their own 1024x1024
///    (mask_heart, mask_lung_left, mask_lung_right, mask_clavicle_left, mask_clavicle_right and
///    their union mask_lungs), all under `png_dir`; files already converted are skipped.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace radprobe::dataset {

enum class PublicSet { kNih, kChexpert, kSiim, kChestXDet10, kJsrt };

/// "nih" | "chexpert" | "siim" | "chestx-det10" | "jsrt"; throws UsageError listing them otherwise.
PublicSet parse_public_set(const std::string& name);

/// What a CheXpert uncertain label (-1) becomes: unknown (empty), 0 or 1.
enum class UncertainPolicy { kIgnore, kZeros, kOnes };
/// "ignore" | "zeros" | "ones"; throws UsageError otherwise.
UncertainPolicy parse_uncertain_policy(const std::string& name);

struct PublicSetOptions {
    PublicSet format = PublicSet::kNih;
    std::filesystem::path table;  ///< the set's label table (--from)
    std::filesystem::path out;    ///< output manifest
    /// Directory the set's image names are relative to. Default: nih → TABLE_DIR/images;
    /// chexpert → the parent of TABLE_DIR when the paths start with TABLE_DIR's name (as in
    /// CheXpert-v1.0-small/train.csv), else TABLE_DIR; siim → TABLE_DIR/dicom-images-train if it
    /// exists, else TABLE_DIR; jsrt → TABLE_DIR when .IMG files lie under it, else its parent.
    std::filesystem::path image_root;
    // nih
    /// BBox_List_2017.csv; default: that name beside the table when it exists.
    std::optional<std::filesystem::path> boxes;
    std::filesystem::path train_list;  ///< train_val_list.txt (optional)
    std::filesystem::path test_list;   ///< test_list.txt (optional)
    // chexpert
    UncertainPolicy uncertain = UncertainPolicy::kIgnore;
    /// Keep only frontal views: CheXpert "Frontal/Lateral" = Frontal; MIMIC ViewPosition PA/AP.
    bool frontal_only = false;
    /// MIMIC-CXR-JPG: mimic-cxr-2.0.0-metadata.csv (default: beside the table).
    std::filesystem::path metadata;
    /// MIMIC-CXR-JPG: mimic-cxr-2.0.0-split.csv (default: beside the table when present).
    std::filesystem::path split_table;
    // jsrt
    std::filesystem::path masks;    ///< SCR masks root, searched recursively (optional)
    std::filesystem::path png_dir;  ///< converted PNGs; default: OUT_DIR/jsrt_png
};

struct PublicSetResult {
    std::string csv;        ///< the manifest text
    std::string boxes_csv;  ///< boxes.csv text (empty: no boxes)
    std::size_t rows = 0;
    std::size_t patients = 0;
    std::size_t boxes = 0;
    std::size_t skipped = 0;     ///< rows left out (filter, or no image file for siim)
    std::string skipped_reason;  ///< why (empty when none)
    std::vector<std::string> label_names;
    // jsrt
    std::size_t converted = 0;            ///< files converted to PNG by this run
    std::size_t up_to_date = 0;           ///< files already converted (skipped)
    std::filesystem::path converted_dir;  ///< where the PNGs are
};

/// Builds the manifest of a public set. Throws UsageError for options that do not apply to the
/// format and InputError for bad input, naming the file, line and column.
PublicSetResult build_public_set_manifest(const PublicSetOptions& options);

}  // namespace radprobe::dataset
