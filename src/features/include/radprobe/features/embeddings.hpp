#pragma once
/// @file embeddings.hpp
/// From encoder tokens to cached embeddings: pooling modes, region (ROI) weights over the patch
/// grid, the on-disk embedding store, and the extraction pipeline behind `radprobe extract`.
///
/// Layouts (row-major, float32): patch tokens of one image are G×D with G = grid_h·grid_w in
/// row-major (y, x) order; a pooled embedding is a D-vector (2D for cls+mean); multi-layer pooling
/// concatenates the pooled vectors of each requested layer in the order given.
///
/// Pooling modes, all computed from the same forward pass:
///  - `cls`      the CLS token (an encoder without one → error naming the model);
///  - `mean`     mean of all patch tokens (register tokens excluded);
///  - `cls+mean` the two concatenated (2D);
///  - `roi`      mean of the patch tokens whose cells overlap the image's region (boxes or a mask
///               from the manifest), each weighted by the fraction of the cell's area covered,
///               the region mapped through the same resize/crop as the image. With a box source
///               (`boxes`, `boxes:<label>`), an image without such boxes (the negatives, when a
///               data set boxes its positives only) gets a matched control region instead: one
///               box whose size is drawn from the source's boxes, placed in the lungs (see
///               draw_control_box()), seeded by ExtractOptions::roi_seed and the image id, and
///               listed in control_boxes.csv. An image without any region (a mask source with
///               no mask, or no room for a control) gets a NaN row (and roi_valid = 0 in the
///               index); a region entirely outside the crop is an error naming the image.
///  - `patches`  the whole patch-token grid (G×D, registers and CLS excluded) of every requested
///               layer, for dense heads (segmentation decoders): a row is L·G·D floats, the
///               layers in the order requested, each G×D row-major. Every image of a store must
///               give the same grid (a fixed model input size); read_patch_grid_info() says
///               which. A failed image gets a NaN row.
///
/// Store (one directory per key, see store_key()):
///   STORE/<model>-<key>/store.json              what was extracted and how (the key's inputs)
///   STORE/<model>-<key>/shards/<k>.{npy,csv}     completed shards (atomic), k = 00000, 00001 ...
///   STORE/<model>-<key>/<pool>.npy               N×D float32 per pooling (per layer set)
///   STORE/<model>-<key>/patch_grid.json          with `patches`: grid, width, layers, input size
///   STORE/<model>-<key>/index.csv                row,image,patient_id,split,ok,roi_valid,error
///   STORE/<model>-<key>/errors.csv               images that failed, with the reason
///   STORE/<model>-<key>/control_boxes.csv        roi over boxes: the control region of every
///       image without boxes (image,label,x0,y0,x1,y1,seed,region; x1 = x0 = -1 where none fit)
///   STORE/<model>-<key>/COMPLETE                 written last; its presence means "cached"
///   STORE/<model>-<key>/shards/<k>_masks.csv     roi masks a shard resampled (only when any)
/// Every file is written under a temporary name and renamed, so the store can be killed at any
/// point; re-running continues from the completed shards and yields the identical final files.

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "radprobe/core/slice.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/encoders/model_dir.hpp"
#include "radprobe/preprocess/preprocess.hpp"

namespace radprobe::features {

enum class Pooling { kCls, kMean, kClsMean, kRoi, kPatches };

/// "cls", "mean", "cls+mean", "roi", "patches".
const char* pooling_name(Pooling pooling);
/// Parses a comma-separated list ("cls,mean,roi,patches"); throws UsageError listing the valid
/// names.
std::vector<Pooling> parse_poolings(const std::string& text);
/// Parses "-1,-4" style layer lists; throws UsageError for non-integers.
std::vector<int> parse_layers(const std::string& text);

/// Where model-input pixels come from: original (x, y) → (x·scale_x − crop_left,
/// y·scale_y − crop_top) in input pixels; the input is out_height × out_width.
struct InputGeometry {
    double scale_y = 1.0;
    double scale_x = 1.0;
    double crop_top = 0.0;
    double crop_left = 0.0;
    std::int64_t out_height = 0;
    std::int64_t out_width = 0;
    std::int64_t patch = 14;
    std::int64_t grid_h() const { return out_height / patch; }
    std::int64_t grid_w() const { return out_width / patch; }
};

/// The patch geometry of a preprocessed image (preprocess::Geometry) for patches of `patch`.
InputGeometry patch_geometry(const preprocess::Geometry& g, std::int64_t patch);

/// A box in original-image pixel coordinates covering [x0, x1) × [y0, y1).
struct RegionBox {
    double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};

/// Per-cell weights (grid_h·grid_w, row-major) = fraction of each patch cell's area covered by
/// the union of the boxes after mapping. Throws InputError naming `image` when nothing of the
/// region lies inside the model input.
std::vector<float> roi_weights_from_boxes(const std::vector<RegionBox>& boxes,
                                          const InputGeometry& geometry, const std::string& image);
/// The same for a binary mask of the original image (rows × cols, row-major, nonzero =
/// region): each mask pixel is mapped as a box of its own area (exact area weighting).
std::vector<float> roi_weights_from_mask(const std::uint8_t* mask, int rows, int cols,
                                         const InputGeometry& geometry, const std::string& image);

// ---------------------------------------------------------------------------------------------
// Control regions for `roi` over boxes on images without boxes (the negatives)
// ---------------------------------------------------------------------------------------------

/// The placement rule of control regions; part of the store key (a new rule = a new store).
inline constexpr const char* kControlRegionRule =
    "lung-centred, size of a random source box, "
    ">= half inside the lungs, free of boxes; v1";

/// Where an image's lungs are (rows × cols, row-major, 1 = inside).
struct LungRegion {
    std::vector<std::uint8_t> inside;
    std::string source;  ///< "mask_lung_left+mask_lung_right", "mask_lungs", ... or "prior"
    bool from_masks() const { return source != "prior"; }
};
/// The lung region of manifest record `index` for an image of rows × cols: the union of
/// mask_lung_left and mask_lung_right when the manifest has both, else mask_lungs or mask_lung,
/// when the record's cell is filled and not empty; else the anatomical prior, the central half
/// of the image in each axis (also with `force_prior`). The lesion and perturbation analyses
/// place their signals and controls with the same function.
LungRegion lung_region(const dataset::Manifest& manifest, std::size_t index, int rows, int cols,
                       bool force_prior = false);

/// The sizes control regions are drawn from: the width and height of every box of `label`
/// (every box when `label` is empty) in the manifest's boxes, in boxes.csv order.
std::vector<std::array<double, 2>> box_sizes(const dataset::Manifest& manifest,
                                             const std::string& label);

/// One control region for the image `image_id` (rows × cols): a size drawn uniformly from
/// `sizes` (clipped to the image), centred on a uniformly drawn pixel of `lungs`, inside the
/// image, overlapping none of `avoid`, with at least half of its area in the lungs (when 200
/// draws find no such box, the half-area condition is dropped for 200 more). Deterministic in
/// (seed, image_id); nullopt when `sizes` or the lungs are empty or nothing fits.
std::optional<RegionBox> draw_control_box(const std::vector<std::uint8_t>& lungs, int rows,
                                          int cols, const std::vector<std::array<double, 2>>& sizes,
                                          const std::vector<RegionBox>& avoid, std::uint64_t seed,
                                          const std::string& image_id);

/// Pools one image. `cls` may be null when the model has no CLS token (then kCls/kClsMean throw).
/// `patches` is G×D; `roi_weights` (G) is required for kRoi (empty → NaN row). kPatches copies
/// the G×D grid.
std::vector<float> pool(Pooling pooling, const float* cls, const float* patches, std::int64_t grid,
                        std::int64_t dim, const std::vector<float>& roi_weights,
                        const std::string& model_name = "model");

/// Width of a pooled vector for embedding width D and G = `grid` patch tokens (G matters for
/// kPatches only: G·D).
std::int64_t pooled_width(Pooling pooling, std::int64_t dim, std::int64_t grid = 1);

/// A fast, stable 64-bit content hash (used for weights, manifests and keys), hex-encoded.
std::string content_hash_file(const std::filesystem::path& path);
std::string content_hash(const std::string& bytes);

struct ExtractOptions {
    std::filesystem::path model_dir;
    encoders::LoadOptions load;  ///< which checkpoint entry holds the weights (--checkpoint-key)
    std::filesystem::path manifest;
    std::optional<std::filesystem::path> boxes;  ///< default: boxes.csv beside the manifest
    std::vector<Pooling> poolings{Pooling::kCls, Pooling::kMean};
    std::vector<int> layers;           ///< empty = the last layer only
    std::string roi_source = "boxes";  ///< "boxes", "boxes:<label>", or "mask_<name>"
    std::uint64_t roi_seed = 0;        ///< seeds the control regions of images without boxes
    std::filesystem::path store_root;
    int batch = 8;
    int threads = 0;                ///< LibTorch threads (<= 0: cores available)
    std::int64_t resize = 0;        ///< override the processor's size (0 = as configured)
    bool fold_grayscale = true;     ///< one-channel patch embedding (same tokens, cheaper)
    bool strict = false;            ///< a failed image is fatal
    std::int64_t shard_size = 256;  ///< images per shard (resume granularity)
    bool progress = true;           ///< progress line on a terminal
    std::int64_t max_images = 0;    ///< testing aid: stop (as if killed) after this many
    /// "cpu", "cuda" or "cuda:N": where the encoder runs (inputs go through pinned host buffers
    /// to a CUDA device; the pooled rows come back to the host). Not part of the store key.
    std::string device = "cpu";
    /// Threads decoding and preprocessing the next batch while the current one runs (0 = one on
    /// the CPU, where the forward pass uses every core; up to 8 beside a CUDA device). One batch
    /// is prepared ahead, so host memory stays bounded by two batches of model inputs.
    int decode_threads = 0;
    /// Which shards this process computes: slice I of N owns shards k with k mod N = I (see
    /// radprobe/core/slice.hpp). A sliced run writes its shards and stops; a run of the whole
    /// (the merge step, after every slice finished) computes any shard still missing and writes
    /// the final files, which are then byte-identical to those of one process.
    Slice slice;
    /// Only read a complete store: one that is not is an InputError, nothing is computed (the
    /// tasks that read the stores of a cluster study, so that none writes them).
    bool cached_only = false;
};

struct ExtractResult {
    std::filesystem::path store_dir;
    bool cached = false;         ///< the store was already complete: no work done
    std::int64_t images = 0;     ///< rows in the manifest
    std::int64_t extracted = 0;  ///< images encoded by this run (resumed shards excluded)
    std::int64_t failures = 0;
    double seconds = 0.0;
    /// Of `seconds`, the time the encoder waited for decoded batches (the input pipeline's
    /// shortfall: near 0 when decoding keeps up).
    double decode_wait_seconds = 0.0;
    int decode_threads = 0;  ///< threads that decoded
    bool complete = false;
    bool stopped = false;          ///< max_images stopped it (the testing aid)
    Slice slice;                   ///< the slice this run computed
    std::int64_t shards = 0;       ///< shards of the store
    std::int64_t shards_done = 0;  ///< complete now (all of them once the store is complete)
    /// What loading the encoder stripped and set aside (encoders::LoadReport::note(); empty
    /// when the checkpoint is exactly the backbone or the store was cached).
    std::string load_note;
    /// Masks of the roi region that were at another resolution than their image and were
    /// resampled (nearest) to it, counted over the images of the store (each shard lists its
    /// own in shards/<k>_masks.csv; a sliced run: over the images it encoded); empty when none;
    /// kept in store.json ("mask_note"), so a cached store says it again.
    std::string mask_note;
};

/// The store key: a hash of the weights, the preprocessing (processor config + overrides), the
/// poolings, the layers, the ROI source (with boxes: the control rule and roi_seed) and the
/// manifest's image list. Same key = same store.
std::string store_key(const ExtractOptions& options);

/// Runs (or resumes) an extraction. Failed images are listed in errors.csv with the reason and
/// counted (fatal with options.strict).
ExtractResult extract(const ExtractOptions& options);

/// A finished store, read back (for probes and tests).
struct EmbeddingTable {
    std::vector<std::string> image_ids;   ///< rows that succeeded, manifest order
    std::vector<std::uint8_t> roi_valid;  ///< per row
    std::int64_t dim = 0;
    std::vector<float> values;  ///< rows × dim
};
/// Reads `<pool>.npy` + index.csv of a complete store directory. For "patches" a row holds
/// L·G·D values (see PatchGridInfo).
EmbeddingTable read_embeddings(const std::filesystem::path& store_dir, const std::string& pool);

/// The layout of a store's `patches` rows: L layers × (grid_h·grid_w) tokens × dim, layer-major,
/// tokens row-major (y, x). Token (y, x) of layer l of row i is at
/// values[i·L·G·D + l·G·D + (y·grid_w + x)·D].
struct PatchGridInfo {
    std::int64_t grid_h = 0;
    std::int64_t grid_w = 0;
    std::int64_t dim = 0;
    /// Hidden-state indices as requested (non-negative, 0..num_hidden_layers; the last one is
    /// the final-norm output), in the order stored. One entry for a store extracted without
    /// --layers (the last layer).
    std::vector<int> layers;
    std::int64_t num_hidden_layers = 0;
    std::int64_t input_height = 0;  ///< model input (after resize/crop), pixels
    std::int64_t input_width = 0;
    std::int64_t patch = 0;         ///< patch size (input pixels per token side; 0 if hierarchical)
    bool normalized_layers = true;  ///< intermediate layers have the final layer norm applied
    std::int64_t row_width() const {
        return static_cast<std::int64_t>(layers.size()) * grid_h * grid_w * dim;
    }
};
/// Reads STORE/patch_grid.json of a complete store extracted with `patches`; InputError naming
/// the store otherwise.
PatchGridInfo read_patch_grid_info(const std::filesystem::path& store_dir);

/// Finds the store directory: `path` itself when it holds COMPLETE, else its only
/// subdirectory holding COMPLETE. Throws InputError otherwise, listing what was found.
std::filesystem::path resolve_store_dir(const std::filesystem::path& path);

}  // namespace radprobe::features
