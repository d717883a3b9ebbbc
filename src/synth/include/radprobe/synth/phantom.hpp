#pragma once
/// @file phantom.hpp
/// Frontal (PA) chest-radiograph phantoms with ground truth: `radprobe synth`.
///
/// A phantom is drawn analytically as an attenuation map (body soft tissue, lung fields with
/// branching vessel markings, mediastinum with trachea and aortic knob, heart, diaphragm domes
/// with a gastric bubble, spine, posterior and anterior ribs, clavicles), turned into a display
/// image by an exposure curve v = 1 - exp(-gain · A), blurred (detector MTF) and given Gaussian
/// acquisition noise. Pose (shift, scale), body size, inspiration, exposure, blur and noise vary
/// per image; anatomy varies per patient.
///
/// Conventions:
///  - Images are size × size, row-major (pixels[r * size + c]), display values in [0, 1], 1 = white
///    (bone, heart and mediastinum bright; lungs dark).
///  - Standard PA display: image left = patient RIGHT. Side index 0 is the image-left hemithorax
///    (patient right, `mask_lung_right`), side 1 the image-right one (patient left,
///    `mask_lung_left`); the heart lies mostly on side 1.
///  - Masks are 0/255 bytes, size × size. The lung masks are the hemithorax air spaces (a
///    pneumothorax lies inside them), excluding the heart. Empty masks are all zero.
///  - Pixel coordinates: pixel (c, r) covers [c, c+1) × [r, r+1). Boxes are half-open in these
///    edge coordinates: a box covers pixels x0 <= c < x1, y0 <= r < y1.
///
/// Findings and labels (one image each, independent of the patient's other image):
///  - cardiomegaly: label = (ctr > 0.5), where ctr is sampled on a 1e-4 grid (0.5001..0.68 when
///    positive, 0.38..0.50 when negative) and the heart's horizontal extent is set to
///    ctr × the thoracic width. Thoracic width = horizontal extent (max x − min x) of the union of
///    both lung fields; heart width = horizontal extent of the heart. Both are what a reader
///    measures on the masks.
///  - pneumothorax: one hemithorax; the lung is retracted from the apex and lateral chest wall,
///    leaving a region without vessel markings bounded by a thin bright visceral pleural line.
///  - nodule: 1–3 round low-contrast lesions (diameter log-uniform over [max(3 px, 4 mm), 30 mm],
///    contrast 0.03–0.15 attenuation units) inside the visible lung; one box per nodule, covering
///    the lesion disc plus 2σ of the acquisition blur.
///  - chest_tube (attribute): a bright tube entering through the lateral chest wall towards the
///    apex, on the pneumothorax side when both are present.
///  - Tube–pneumothorax coupling: `tube_ptx_correlation` R is the phi (Pearson) correlation
///    between the two binary labels in the generating distribution, with marginal prevalences
///    P(ptx) = p and P(tube) = q (q defaults to p). The joint is P(tube ∧ ptx) = pq + R·σ,
///    σ = sqrt(p(1−p)q(1−q)); R = 0 is independence and, with q = p, R = 1 means tube iff
///    pneumothorax. R must lie in the range attainable for (p, q) (e.g. [−p/(1−p), 1] when
///    q = p ≤ 0.5); anything else is a usage error naming that range.
///  - Acquisition shift (`acquisition_shifts`, `--acquisition-shift LABEL:AMOUNT`): the images
///    positive for LABEL (cardiomegaly, pneumothorax, nodule or chest_tube) are acquired
///    differently, as when one site or scanner contributes most positives: their exposure gain
///    and their noise sigma are both multiplied by 1 + AMOUNT (AMOUNT in [-0.5, 2], not 0).
///    Applied after every draw, so the draws of every image (labels, anatomy, pose, the sampled
///    gain and noise) are those of the unshifted dataset of the same seed; several shifts multiply.
///    A shortcut that no anatomy explains: what the shortcut alarm of `radprobe run` looks for.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace radprobe::synth {

/// Field of view of every phantom (a 43 cm detector), so pixel spacing = 430 mm / size.
inline constexpr double kFieldOfViewMm = 430.0;

enum class ImageFormat { kPng, kDicom };

/// The positives of `label` acquired with exposure gain and noise sigma × (1 + amount).
struct AcquisitionShift {
    std::string label;  ///< cardiomegaly | pneumothorax | nodule | chest_tube
    double amount = 0.0;
};

/// Parses "LABEL:AMOUNT" (e.g. "nodule:0.4"); throws UsageError naming the flag, the label
/// choices and the range.
AcquisitionShift parse_acquisition_shift(const std::string& text);

/// Parses "png" | "dcm" (also "dicom"); throws UsageError otherwise.
ImageFormat parse_format(const std::string& text);

struct SynthOptions {
    int size = 256;  ///< image side in pixels, [64, 4096]
    std::uint64_t seed = 0;
    std::size_t n = 0;  ///< number of images
    double cardiomegaly_prevalence = 0.25;
    double pneumothorax_prevalence = 0.2;
    double nodule_prevalence = 0.25;
    std::optional<double> tube_prevalence;  ///< P(chest_tube); unset = pneumothorax prevalence
    double tube_ptx_correlation = 0.0;      ///< phi target in [-1, 1], see the file comment
    double followup_fraction = 0.1;         ///< fraction of patients with a second image
    std::vector<AcquisitionShift> acquisition_shifts;  ///< see the file comment
    ImageFormat format = ImageFormat::kPng;
    int threads = 0;         ///< <= 0: all available
    bool overwrite = false;  ///< replace an existing non-empty output directory
};

/// Checks every option; throws UsageError naming the flag and the valid range.
void validate_options(const SynthOptions& options);

/// The joint distribution of (pneumothorax, chest_tube) implied by the options.
struct TubePtxModel {
    double p_ptx = 0.0;
    double p_tube = 0.0;
    double p_tube_given_ptx = 0.0;
    double p_tube_given_no_ptx = 0.0;
    double phi_min = 0.0;  ///< attainable correlation range for these prevalences
    double phi_max = 0.0;
};
/// Throws UsageError if `correlation` is not attainable (or non-zero with a degenerate
/// prevalence of 0 or 1).
TubePtxModel tube_ptx_model(double p_ptx, double p_tube, double correlation);

/// Geometry of one phantom, in pixels of the output image (x right, y down). Side 0 = image
/// left (patient right), side 1 = image right (patient left); `d` is the distance from the
/// midline. Filled by plan_dataset(); render() draws exactly this.
struct Geometry {
    double xm = 0;                ///< midline x
    double th = 0;                ///< thoracic half-width: lateral extent of each lung from xm
    double y_apex = 0;            ///< top of the lung apices
    double y_cp = 0;              ///< costophrenic angles (lowest lateral lung point)
    double lat_apex_frac = 0;     ///< lateral lung border at the apex, as a fraction of th
    double apex_d[2] = {0, 0};    ///< d of the apex cap centre per side
    double apex_curv = 0;         ///< apex cap: y >= y_apex + apex_curv · (d − apex_d)^2
    double dome_top[2] = {0, 0};  ///< y of each hemidiaphragm's dome
    double dome_d[2] = {0, 0};    ///< d of each dome's top
    double y_card[2] = {0, 0};    ///< diaphragm y at the midline
    double med_half = 0;          ///< upper mediastinum half-width
    double knob_amp = 0, knob_y = 0, knob_w = 0;  ///< aortic knob (side 1)
    double heart_cx = 0, heart_cy = 0;            ///< heart ellipse centre (widest row)
    double heart_a[2] = {0, 0};  ///< heart half-widths towards side 0 / side 1 from heart_cx
    double heart_b = 0;          ///< heart vertical semi-axis
    double body_half = 0, neck_half = 0, shoulder_y0 = 0, shoulder_y1 = 0;
    double trachea_half = 0, carina_y = 0;
    double spine_half = 0, vert_period = 0, vert_phase = 0;
    double rib_y0 = 0, rib_spacing = 0, rib_thick = 0;
    double clav_y_med = 0, clav_y_lat = 0, clav_thick = 0;
    double scale = 1;  ///< pixels per unit of the normalised anatomy (size × pose)
    // Acquisition.
    double gain = 1.7;  ///< exposure curve v = 1 − exp(−gain · A)
    double contrast = 1, bias = 0;
    double heel = 0;            ///< vertical exposure gradient
    double blur_sigma = 0.8;    ///< Gaussian blur, pixels
    double noise_sigma = 0.01;  ///< Gaussian noise, display units
};

struct Nodule {
    double cx = 0, cy = 0;  ///< centre, pixel edge coordinates
    double radius = 0;      ///< pixels
    double contrast = 0;    ///< attenuation added at the centre
};

struct Box {
    std::string label;
    int x0 = 0, y0 = 0, x1 = 0, y1 = 0;  ///< half-open, pixel edge coordinates
};

struct Pneumothorax {
    int side = 0;
    double cx = 0, cy = 0;  ///< retraction centre (medial, at the costophrenic level)
    double fx = 1, fy = 1;  ///< lung retraction factors (< 1) laterally / apically
};

struct ChestTube {
    int side = 0;
    double x[4] = {0, 0, 0, 0};  ///< outside point, entry, bend control, tip
    double y[4] = {0, 0, 0, 0};
    double width = 1;  ///< pixels (Gaussian sigma of the tube profile)
};

/// Everything needed to render one image deterministically.
struct PhantomCase {
    std::size_t index = 0;
    std::string image_id;    ///< "phantom_000123"
    std::string patient_id;  ///< "P000042"
    std::string split;       ///< train / val / test (by patient)
    int size = 0;
    bool cardiomegaly = false;
    bool pneumothorax = false;
    bool nodule = false;
    bool chest_tube = false;
    double ctr = 0;  ///< on a 1e-4 grid
    Geometry geometry;
    std::vector<Nodule> nodules;
    std::optional<Pneumothorax> ptx;
    std::optional<ChestTube> tube;
    std::uint64_t texture_seed = 0;  ///< vessels and lung texture
    std::uint64_t noise_seed = 0;    ///< acquisition noise
};

/// Samples patients, splits (70/15/15 by patient, exact counts after a seeded shuffle), labels
/// and geometry of every image. No pixels; cheap. Deterministic in (options.seed, options.n,
/// options.size, prevalences).
std::vector<PhantomCase> plan_dataset(const SynthOptions& options);

/// A rendered phantom.
struct Phantom {
    int size = 0;
    std::vector<float> image;              ///< display values in [0, 1]
    std::vector<std::uint8_t> heart;       ///< masks, 0/255
    std::vector<std::uint8_t> lung_right;  ///< side 0 (image left)
    std::vector<std::uint8_t> lung_left;   ///< side 1 (image right)
    std::vector<std::uint8_t> pneumothorax;
    std::vector<Box> boxes;  ///< one "nodule" box per nodule
};

/// Renders a case. The noise and texture come from the case's own seeds, so removing a finding
/// from a case (clearing `nodules`, `ptx` or `tube`) changes the image only where that finding
/// is drawn.
Phantom render(const PhantomCase& phantom_case);

/// The 16-bit stored value written to PNG and DICOM for a display value:
/// round(clamp(v, 0, 1) · 65535). Decoding gives back stored / 65535 (PNG: value / max; DICOM:
/// window centre 32768, width 65536, which maps stored / 65535 exactly).
std::uint16_t to_stored(float v);

/// Serialises one image as a DICOM file (DX, MONOCHROME2, 16 bits, explicit VR little endian;
/// UIDs derived from `seed`, the image index and the patient). `stored` is size × size.
std::string dicom_bytes(const PhantomCase& phantom_case, const std::vector<std::uint16_t>& stored,
                        std::uint64_t seed);

/// A deterministic DICOM UID "2.25.<decimal of 128 bits>" from a seed and two tags.
std::string derived_uid(std::uint64_t seed, std::uint64_t kind, std::uint64_t index);

struct SynthSummary {
    std::size_t images = 0;
    std::size_t patients = 0;
    double seconds = 0;
};

/// Writes the whole dataset to `out`: manifest.csv, boxes.csv, synth.json (the options that made
/// it, threads aside), images/, masks/. Everything is
/// generated into a sibling staging directory that is renamed to `out` only when complete, so a
/// killed run never leaves a partial dataset under `out`. `out` must not exist or be empty,
/// unless options.overwrite. `on_progress(done)` is called from the calling thread.
SynthSummary write_dataset(const std::filesystem::path& out, const SynthOptions& options,
                           const std::function<void(std::size_t done)>& on_progress = {});

/// Manifest columns, in order.
const std::vector<std::string>& manifest_columns();

}  // namespace radprobe::synth
