// The extraction pipeline: manifest → decode → preprocess → encoder (one forward pass) → every
// pooling → shards → final store. Decoding of the next batch overlaps the current forward pass.

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <future>
#include <limits>
#include <nlohmann/json.hpp>

#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/npy.hpp"
#include "radprobe/core/parallel.hpp"
#include "radprobe/core/progress.hpp"
#include "radprobe/core/version.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/encoders/encoder.hpp"
#include "radprobe/encoders/model_dir.hpp"
#include "radprobe/features/embeddings.hpp"
#include "radprobe/imaging/decode.hpp"
#include "radprobe/preprocess/preprocess.hpp"

namespace radprobe::features {
namespace fs = std::filesystem;

namespace {

std::string shard_name(std::int64_t k) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%05lld", static_cast<long long>(k));
    return buf;
}

// The output name of one pooling (with the layer set in the store key, one file per pooling).
std::string pool_file(Pooling p) {
    return pooling_name(p);
}

preprocess::PreprocessConfig effective_preprocess(const ExtractOptions& o) {
    preprocess::PreprocessConfig pc = encoders::read_preprocess_config(o.model_dir, o.load);
    if (o.resize > 0) {
        pc.override_size(o.resize);
    }
    return pc;
}

bool wants_roi(const ExtractOptions& o) {
    return std::find(o.poolings.begin(), o.poolings.end(), Pooling::kRoi) != o.poolings.end();
}

// `roi` over boxes: images without boxes of the source get control regions.
bool roi_over_boxes(const ExtractOptions& o) {
    return wants_roi(o) && o.roi_source.rfind("boxes", 0) == 0;
}

// The label of a `boxes:<label>` source ("" for `boxes`: every box).
std::string roi_box_label(const ExtractOptions& o) {
    return o.roi_source.rfind("boxes:", 0) == 0 ? o.roi_source.substr(6) : std::string();
}

std::string describe_key_inputs(const ExtractOptions& o, nlohmann::json* out) {
    nlohmann::json j;
    const fs::path dir = o.model_dir;
    // Every weight file (a sharded checkpoint: each shard its index names).
    const encoders::WeightFiles w = encoders::find_weight_files(dir);
    std::string weights;
    if (w.files.size() == 1) {
        weights = content_hash_file(w.files.front());
    } else {
        std::string all;
        for (const auto& f : w.files) {
            all += content_hash_file(f);
        }
        weights = content_hash(all);
    }
    j["weights_hash"] = weights;
    // Another entry of the same pickle, or another compute dtype, is another store (absent
    // when not given, so that the stores of earlier releases keep their keys).
    const auto load = encoders::read_load_options(dir, o.load);
    if (!load.checkpoint_key.empty()) {
        j["checkpoint_key"] = load.checkpoint_key;
    }
    if (load.compute_dtype && *load.compute_dtype != encoders::ComputeDType::kFloat32) {
        j["dtype"] = encoders::compute_dtype_name(*load.compute_dtype);  // other numbers
    }
    // Layout version: 2 = a failed image's NaN row sits at its own position in the shard (v1
    // appended it after the batch, shifting the rows after it): v1 stores are not reused.
    j["store_format"] = 2;
    // HF folders have config.json (+ preprocessor_config.json); open_clip folders keep both the
    // architecture and the preprocessing in open_clip_config.json.
    auto hash_if_present = [&](const char* name) {
        return fs::exists(dir / name) ? content_hash(read_file_text(dir / name)) : std::string();
    };
    j["config_hash"] = fs::exists(dir / "config.json") ? hash_if_present("config.json")
                                                       : hash_if_present("open_clip_config.json");
    j["preprocessor_hash"] = hash_if_present("preprocessor_config.json");
    j["resize"] = o.resize;
    j["fold_grayscale"] = o.fold_grayscale;
    std::vector<std::string> pools;
    for (auto p : o.poolings) {
        pools.push_back(pooling_name(p));
    }
    j["poolings"] = pools;
    j["layers"] = o.layers;
    j["roi_source"] = o.roi_source;
    if (roi_over_boxes(o)) {
        // Another placement rule or seed gives other control regions: another store.
        j["roi_controls"] = {{"rule", kControlRegionRule}, {"seed", o.roi_seed}};
    }
    j["shard_size"] = o.shard_size;  // shards of another size are another store
    // The image list (ids and paths) of the manifest, and the boxes file.
    const auto table = CsvTable::read(o.manifest);
    std::string images;
    const auto col = table.column("image");
    for (const auto& row : table.rows()) {
        images += row[col] + "\n";
    }
    j["manifest_images_hash"] = content_hash(images);
    fs::path boxes = o.boxes ? *o.boxes : o.manifest.parent_path() / "boxes.csv";
    j["boxes_hash"] = fs::exists(boxes) ? content_hash(read_file_text(boxes)) : "";
    if (out) {
        *out = j;
    }
    return content_hash(j.dump());
}

struct Prepared {
    std::int64_t row = 0;
    bool ok = false;
    std::string error;
    std::vector<float> pixels;  // C×H×W
    std::int64_t height = 0, width = 0;
    std::vector<float> roi_weights;   // empty = no region
    std::string control_line;         // control_boxes.csv line (images without boxes)
    std::size_t resampled_masks = 0;  // masks its region resampled (shards/<k>_masks.csv)
    std::string resampled_mask;       // the last of them
    int rows = 0, cols = 0;           // the decoded image's size
    preprocess::Geometry geometry{};
};

struct Context {
    const ExtractOptions& options;
    const dataset::Manifest& manifest;
    preprocess::InputSpec input;
    std::int64_t patch = 0;
    std::vector<std::array<double, 2>> control_sizes{};  // sizes of the source's boxes
};

// A matched control region for an image without boxes of the source (control_regions.cpp),
// recorded whether or not one fits.
void add_control_region(const Context& ctx, std::size_t row, int rows, int cols,
                        const InputGeometry& ig, Prepared& p) {
    const auto& rec = ctx.manifest.record(row);
    const auto lungs = lung_region(ctx.manifest, row, rows, cols);
    std::vector<RegionBox> avoid;
    for (const auto& b : rec.boxes) {
        avoid.push_back({b.x0, b.y0, b.x1, b.y1});
    }
    const std::uint64_t seed = ctx.options.roi_seed;
    const auto box =
        draw_control_box(lungs.inside, rows, cols, ctx.control_sizes, avoid, seed, rec.id);
    const std::string label = roi_box_label(ctx.options);
    auto num = [](double v) { return std::to_string(static_cast<long long>(std::lround(v))); };
    if (box) {
        p.roi_weights = roi_weights_from_boxes({*box}, ig, rec.id);
    }
    const RegionBox b = box ? *box : RegionBox{-1, -1, -1, -1};
    p.control_line =
        csv_line({rec.id, label.empty() ? "*" : label, num(b.x0), num(b.y0), num(b.x1), num(b.y1),
                  std::to_string(seed), box ? lungs.source : "none (no room in the lungs)"});
}

// Phase 1 of an image (any thread): decode, preprocess, the input geometry.
Prepared decode_one(const Context& ctx, std::int64_t row) {
    Prepared p;
    p.row = row;
    const auto& rec = ctx.manifest.record(static_cast<std::size_t>(row));
    try {
        const imaging::Image img = imaging::decode(rec.image_path);
        p.pixels = preprocess::to_input(img, ctx.input);
        p.geometry = preprocess::input_geometry(ctx.input, img.rows, img.cols);
        p.height = p.geometry.out_height;
        p.width = p.geometry.out_width;
        p.rows = img.rows;
        p.cols = img.cols;
        p.ok = true;
    } catch (const std::exception& e) {
        p.ok = false;
        p.error = Error::one_line(e.what());
        p.pixels.clear();
    }
    return p;
}

// Phase 2 (one image at a time, in row order): the roi region's weights over the patch grid.
void region_weights(const Context& ctx, Prepared& p) {
    if (!p.ok || !wants_roi(ctx.options)) {
        return;
    }
    const auto row = static_cast<std::size_t>(p.row);
    const auto& rec = ctx.manifest.record(row);
    try {
        const InputGeometry ig = patch_geometry(p.geometry, ctx.patch);
        const std::string& src = ctx.options.roi_source;
        if (src.rfind("mask_", 0) == 0) {
            const auto mask = ctx.manifest.load_mask(row, src.substr(5), p.rows, p.cols);
            if (mask && mask->count() > 0) {
                p.roi_weights =
                    roi_weights_from_mask(mask->data.data(), mask->rows, mask->cols, ig, rec.id);
            }
            return;
        }
        const std::string label = roi_box_label(ctx.options);
        std::vector<RegionBox> boxes;
        for (const auto& b : rec.boxes) {
            if (label.empty() || b.label == label) {
                boxes.push_back({b.x0, b.y0, b.x1, b.y1});
            }
        }
        if (!boxes.empty()) {
            p.roi_weights = roi_weights_from_boxes(boxes, ig, rec.id);
        } else {
            add_control_region(ctx, row, p.rows, p.cols, ig, p);
        }
    } catch (const std::exception& e) {
        p.ok = false;
        p.error = Error::one_line(e.what());
        p.pixels.clear();
        p.roi_weights.clear();
        p.control_line.clear();
    }
}

// The region, and the masks it resampled (regions are added one image at a time, so a new entry
// of the manifest's log is this image's).
void add_region(const Context& ctx, Prepared& p) {
    const std::size_t logged = ctx.manifest.resampled_masks().count;
    region_weights(ctx, p);
    const auto now = ctx.manifest.resampled_masks();
    if (now.count != logged) {
        p.resampled_masks = now.count - logged;
        p.resampled_mask = now.last;
    }
}

// Images [begin, end): decoded on `threads` threads, their regions then added in row order.
std::vector<Prepared> prepare_batch(const Context& ctx, std::int64_t begin, std::int64_t end,
                                    int threads) {
    std::vector<Prepared> batch(static_cast<std::size_t>(end - begin));
    parallel_for(batch.size(), threads, [&](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i) {
            batch[i] = decode_one(ctx, begin + static_cast<std::int64_t>(i));
        }
    });
    for (auto& p : batch) {
        add_region(ctx, p);
    }
    return batch;
}

struct ShardRows {
    std::vector<std::vector<float>> pooled;  // per pooling: rows × width
    std::vector<std::string> index_lines;
    std::vector<std::string> control_lines;
    std::vector<std::string> mask_lines;  // masks resampled (image,masks,example)
};

const char* kControlHeader = "image,label,x0,y0,x1,y1,seed,region\n";

void check_options(const ExtractOptions& o) {
    RADPROBE_USAGE_CHECK(o.batch >= 1 && o.batch <= 4096, "--batch must be in 1..4096, got ",
                         o.batch);
    RADPROBE_USAGE_CHECK(o.shard_size >= 1, "shard size must be >= 1");
    RADPROBE_USAGE_CHECK(!o.poolings.empty(), "--pool: no pooling given");
    RADPROBE_USAGE_CHECK(o.roi_source == "boxes" || o.roi_source.rfind("boxes:", 0) == 0 ||
                             o.roi_source.rfind("mask_", 0) == 0,
                         "--roi: '", o.roi_source, "' is not boxes, boxes:<label> or mask_<name>");
}

void check_manifest(const ExtractOptions& o, const dataset::Manifest& manifest) {
    // Extraction needs sound image ids and masks, and boxes only for ROI pooling over boxes;
    // label or split problems (leakage included) matter for training and are left to
    // `radprobe validate` and the probes.
    manifest.require_readable_images();
    const bool roi =
        std::find(o.poolings.begin(), o.poolings.end(), Pooling::kRoi) != o.poolings.end();
    if (roi && o.roi_source.rfind("boxes", 0) == 0) {
        manifest.require_valid_boxes();
        const std::string label = roi_box_label(o);
        std::vector<std::string> labels;
        std::string listed;
        for (const auto& rec : manifest.records()) {
            for (const auto& b : rec.boxes) {
                if (std::find(labels.begin(), labels.end(), b.label) == labels.end()) {
                    listed += (labels.empty() ? "" : ", ") + b.label;
                    labels.push_back(b.label);
                }
            }
        }
        const fs::path where = manifest.boxes_path().empty() ? o.manifest : manifest.boxes_path();
        RADPROBE_CHECK(!box_sizes(manifest, label).empty(), where.string(), ": --roi ",
                       o.roi_source, ": no boxes", label.empty() ? "" : " of label ", label,
                       " (labels with boxes: ", labels.empty() ? "none" : listed,
                       "); give --roi boxes:<label> or --roi mask_<name>");
    }
    if (o.roi_source.rfind("mask_", 0) == 0) {
        RADPROBE_CHECK(manifest.mask_index(o.roi_source.substr(5)).has_value(), o.manifest.string(),
                       ": --roi ", o.roi_source, ": no such mask column");
    }
}

// A complete store from an earlier run: nothing to do but count its failures.
void read_complete_store(const fs::path& dir, ExtractResult& result) {
    result.cached = true;
    result.complete = true;
    try {
        const auto meta = nlohmann::json::parse(read_file_text(dir / "store.json"));
        result.mask_note = meta.value("mask_note", std::string());
    } catch (const std::exception&) {
        // an older store without store.json or the note: nothing to repeat
    }
    const auto index = CsvTable::read(dir / "index.csv");
    for (const auto& row : index.rows()) {
        result.failures += row[index.column("ok")] == "0";
    }
}

void start_store(const ExtractOptions& o, const fs::path& dir, const std::string& key,
                 const nlohmann::json& key_inputs, const encoders::ModelConfig& config) {
    fs::create_directories(dir / "shards");
    // Temporary files left by a killed run (kill -9 gives no chance to clean up) are removed;
    // completed files were renamed into place and are kept. Not by a slice: the other slices
    // may be writing theirs (the merge step, a run of the whole, removes what they left).
    for (const fs::path& sub : {dir, dir / "shards"}) {
        if (!o.slice.whole()) {
            break;
        }
        for (const auto& e : fs::directory_iterator(sub)) {
            if (e.is_regular_file() &&
                e.path().filename().string().find(".tmp.") != std::string::npos) {
                fs::remove(e.path());
            }
        }
    }
    nlohmann::json meta = key_inputs;
    meta["key"] = key;
    meta["model_dir"] = fs::absolute(o.model_dir).string();
    meta["model_type"] = config.model_type;
    meta["manifest"] = fs::absolute(o.manifest).string();
    meta["shard_size"] = o.shard_size;
    meta["radprobe_version"] = std::string(version()) + " (" + git_describe() + ")";
    write_file_atomic(dir / "store.json", meta.dump(2) + "\n");
}

// Folding is exact where it applies; an architecture that cannot fold (ResNet's padded stem
// refuses before changing anything) simply takes the 3-channel input: same tokens.
void fold_input_channels(const ExtractOptions& o, encoders::Encoder& encoder, Context& ctx) {
    try {
        if (o.fold_grayscale && ctx.input.processor.do_normalize) {
            encoder.fold_grayscale(ctx.input.processor.image_mean, ctx.input.processor.image_std);
            ctx.input.channels = 1;
        } else if (o.fold_grayscale) {
            encoder.fold_grayscale({0.0, 0.0, 0.0}, {1.0, 1.0, 1.0});
            ctx.input.channels = 1;
        }
    } catch (const InputError&) {
        ctx.input.channels = 3;
    }
}

// Pooled values per image of a batch, per pooling.
using PooledRows = std::vector<std::vector<std::vector<float>>>;

// The encoder side of a run: the forward pass, the layers it reads and the width of every
// pooled row, shared by all shards.
struct Encoding {
    const ExtractOptions& o;
    const dataset::Manifest& manifest;
    const Context& ctx;
    encoders::Encoder& encoder;
    fs::path dir;
    std::string model_name;
    encoders::ForwardOptions fwd{};
    std::vector<int> layer_indices{};  // non-negative; empty = last_hidden_state
    std::int64_t R = 0, L = 0, D = 0;
    std::int64_t nlayers = 1;
    std::int64_t G = 1;  // patch tokens per image (when `patches` is pooled)
    bool has_cls = false;
    bool wants_patches = false;
    int decode_threads = 1;  // threads decoding the next batch (decode_threads_for())

    std::int64_t row_width(Pooling p) const { return pooled_width(p, D, G) * nlayers; }

    void resolve_layers(const encoders::ModelConfig& config) {
        R = config.num_register_tokens;
        has_cls = encoder.has_cls_token();  // false: SigLIP, ResNet, Swin
        L = config.num_hidden_layers;
        for (int l : o.layers) {
            const int idx = l < 0 ? static_cast<int>(L) + 1 + l : l;
            RADPROBE_USAGE_CHECK(idx >= 0 && idx <= L, "--layers: ", l, " out of range for ",
                                 model_name, " (", L, " layers: use -", L + 1, "..", L, ")");
            layer_indices.push_back(idx);
            // ResNet/Swin stages differ in width; only the last one is a token set pooling can use.
            RADPROBE_USAGE_CHECK(!config.is_hierarchical() || idx == L, "--layers: ", model_name,
                                 " is hierarchical (", config.model_type,
                                 "); only the last stage (-1) can be pooled");
        }
        fwd.normalize_layers = true;
        for (int idx : layer_indices) {
            if (idx != L) {
                fwd.layers.push_back(idx);
            }
        }
        D = config.hidden_size;
        nlayers = static_cast<std::int64_t>(std::max<std::size_t>(1, layer_indices.size()));
    }

    // `patches` rows have a fixed width L·G·D, so every image must give the same grid: the
    // preprocessing must produce one input size whatever the aspect ratio (centre crop or a
    // fixed resize). The grid is read off a forward pass of a blank input of that size.
    void probe_patch_grid(const encoders::ModelConfig& config) {
        wants_patches =
            std::find(o.poolings.begin(), o.poolings.end(), Pooling::kPatches) != o.poolings.end();
        if (!wants_patches) {
            return;
        }
        const auto wide = ctx.input.processor.output_size(300, 500);
        const auto tall = ctx.input.processor.output_size(500, 300);
        RADPROBE_CHECK(wide == tall, o.model_dir.string(),
                       "/preprocessor_config.json: --pool patches needs a fixed model input size "
                       "(a centre crop or a fixed height×width resize), but the input size "
                       "follows the image's aspect ratio");
        at::Tensor blank = torch::zeros({1, ctx.input.channels, wide[0], wide[1]}, torch::kFloat32);
        encoders::EncoderOutput probe;
        {
            torch::InferenceMode probe_guard;
            probe = encoder.forward(blank, fwd);
        }
        G = probe.grid_h * probe.grid_w;
        nlohmann::json info;
        info["grid_h"] = probe.grid_h;
        info["grid_w"] = probe.grid_w;
        info["dim"] = D;
        std::vector<int> stored = layer_indices;
        if (stored.empty()) {
            stored.push_back(static_cast<int>(L));
        }
        info["layers"] = stored;
        info["num_hidden_layers"] = L;
        info["input_height"] = wide[0];
        info["input_width"] = wide[1];
        info["patch"] = config.is_hierarchical() ? 0 : config.patch_size;
        info["normalized_layers"] = fwd.normalize_layers;
        write_file_atomic(dir / "patch_grid.json", info.dump(2) + "\n");
    }

    // Images batch[i, j) (one input size) through one forward pass and every pooling.
    void encode_group(std::vector<Prepared>& batch, std::size_t i, std::size_t j,
                      PooledRows& pooled_of) const {
        const std::int64_t n = static_cast<std::int64_t>(j - i);
        const std::int64_t H = batch[i].height, W = batch[i].width;
        // Pinned on the way to a CUDA device (an asynchronous copy), pageable on the CPU.
        const bool pinned = encoder.device().is_cuda();
        at::Tensor x = torch::empty({n, ctx.input.channels, H, W},
                                    torch::TensorOptions(torch::kFloat32).pinned_memory(pinned));
        for (std::int64_t m = 0; m < n; ++m) {
            std::memcpy(x[m].data_ptr<float>(), batch[i + m].pixels.data(),
                        batch[i + m].pixels.size() * sizeof(float));
        }
        const auto out = encoder.forward(x, fwd);
        std::vector<encoders::TokenSplit> splits;
        if (layer_indices.empty()) {
            splits.push_back(out.tokens);
        } else {
            for (int idx : layer_indices) {
                splits.push_back(idx == L
                                     ? out.tokens
                                     : encoders::split_tokens(out.layers.at(idx), R, out.grid_h,
                                                              out.grid_w, has_cls));
            }
        }
        for (auto& s : splits) {  // pooling reads host memory (a no-op on the CPU)
            s.cls = has_cls ? s.cls.to(torch::kCPU) : s.cls;
            s.patches = s.patches.to(torch::kCPU);
        }
        const std::int64_t G_batch = out.grid_h * out.grid_w;
        RADPROBE_ASSERT(!wants_patches || G_batch == G);
        for (std::int64_t m = 0; m < n; ++m) {
            Prepared& p = batch[i + m];
            for (std::size_t pi = 0; pi < o.poolings.size(); ++pi) {
                for (const auto& s : splits) {
                    const at::Tensor cls = has_cls ? s.cls[m].contiguous() : at::Tensor();
                    const at::Tensor patches = s.patches[m].reshape({G_batch, D}).contiguous();
                    if (!p.roi_weights.empty()) {
                        RADPROBE_ASSERT(static_cast<std::int64_t>(p.roi_weights.size()) == G_batch);
                    }
                    const auto v =
                        pool(o.poolings[pi], has_cls ? cls.data_ptr<float>() : nullptr,
                             patches.data_ptr<float>(), G_batch, D, p.roi_weights, model_name);
                    auto& dst = pooled_of[i + static_cast<std::size_t>(m)][pi];
                    dst.insert(dst.end(), v.begin(), v.end());
                }
            }
            p.pixels = {};  // the pixels are no longer needed; keep memory bounded
        }
    }

    PooledRows encode_batch(std::vector<Prepared>& batch) const {
        // Pooled values per image of the batch, appended to the shard in row order below
        // (a failed image's NaN row must sit at its own position, not after the batch).
        PooledRows pooled_of(batch.size(), std::vector<std::vector<float>>(o.poolings.size()));
        // Group consecutive images of the same input size into one forward pass.
        std::size_t i = 0;
        while (i < batch.size()) {
            if (!batch[i].ok) {
                ++i;
                continue;
            }
            std::size_t j = i + 1;
            while (j < batch.size() && batch[j].ok && batch[j].height == batch[i].height &&
                   batch[j].width == batch[i].width) {
                ++j;
            }
            encode_group(batch, i, j, pooled_of);
            i = j;
        }
        return pooled_of;
    }

    // The batch's rows in manifest order: pooled values (NaN for a failed image) and index lines.
    void append_rows(const std::vector<Prepared>& batch, const PooledRows& pooled_of,
                     ShardRows& rows) const {
        for (std::size_t bi = 0; bi < batch.size(); ++bi) {
            const Prepared& p = batch[bi];
            const auto& rec = manifest.record(static_cast<std::size_t>(p.row));
            if (!p.ok) {
                RADPROBE_CHECK(!o.strict, rec.image_path.string(), ": ", p.error, " (--strict)");
            }
            for (std::size_t pi = 0; pi < o.poolings.size(); ++pi) {
                auto& dst = rows.pooled[pi];
                if (p.ok) {
                    RADPROBE_ASSERT(static_cast<std::int64_t>(pooled_of[bi][pi].size()) ==
                                    row_width(o.poolings[pi]));
                    dst.insert(dst.end(), pooled_of[bi][pi].begin(), pooled_of[bi][pi].end());
                } else {
                    dst.insert(dst.end(), static_cast<std::size_t>(row_width(o.poolings[pi])),
                               std::numeric_limits<float>::quiet_NaN());
                }
            }
            if (p.ok && !p.control_line.empty()) {
                rows.control_lines.push_back(p.control_line);
            }
            if (p.ok && !p.resampled_mask.empty()) {
                rows.mask_lines.push_back(
                    csv_line({rec.id, std::to_string(p.resampled_masks), p.resampled_mask}));
            }
            rows.index_lines.push_back(csv_line(
                {std::to_string(p.row), rec.id, rec.patient_id, dataset::split_name(rec.split),
                 p.ok ? "1" : "0", (p.ok && !p.roi_weights.empty()) ? "1" : "0", p.error}));
        }
    }

    // Shard files: embeddings first, the CSV (the completion marker of the shard) last.
    void write_shard(std::int64_t k, std::int64_t nrows, const ShardRows& rows) const {
        for (std::size_t pi = 0; pi < o.poolings.size(); ++pi) {
            const std::int64_t width = row_width(o.poolings[pi]);
            RADPROBE_ASSERT(static_cast<std::int64_t>(rows.pooled[pi].size()) == nrows * width);
            write_npy_f32(
                dir / "shards" / (shard_name(k) + "_" + pool_file(o.poolings[pi]) + ".npy"),
                {nrows, width}, rows.pooled[pi].data());
        }
        if (roi_over_boxes(o)) {
            std::string controls = kControlHeader;
            for (const auto& line : rows.control_lines) {
                controls += line + "\n";
            }
            write_file_atomic(dir / "shards" / (shard_name(k) + "_controls.csv"), controls);
        }
        if (!rows.mask_lines.empty()) {
            std::string masks = "image,masks,example\n";
            for (const auto& line : rows.mask_lines) {
                masks += line + "\n";
            }
            write_file_atomic(dir / "shards" / (shard_name(k) + "_masks.csv"), masks);
        }
        std::string csv = "row,image,patient_id,split,ok,roi_valid,error\n";
        for (const auto& line : rows.index_lines) {
            csv += line + "\n";
        }
        write_file_atomic(dir / "shards" / (shard_name(k) + ".csv"), csv);
    }

    // Rows [begin, end) as shard k; the next batch decodes while the current one is encoded.
    // False when max_images stopped the run (a simulated kill: the shard is not written).
    bool run_shard(std::int64_t k, std::int64_t begin, std::int64_t end, Progress& progress,
                   std::int64_t& processed_this_run, double& waited) const {
        ShardRows rows;
        rows.pooled.resize(o.poolings.size());
        auto next = std::async(std::launch::async, prepare_batch, std::cref(ctx), begin,
                               std::min(end, begin + o.batch), decode_threads);
        for (std::int64_t b = begin; b < end; b += o.batch) {
            const auto wait_start = std::chrono::steady_clock::now();
            std::vector<Prepared> batch = next.get();
            waited += std::chrono::duration<double>(std::chrono::steady_clock::now() - wait_start)
                          .count();
            const std::int64_t nb_end = std::min(end, b + 2 * static_cast<std::int64_t>(o.batch));
            if (b + o.batch < end) {
                next = std::async(std::launch::async, prepare_batch, std::cref(ctx), b + o.batch,
                                  nb_end, decode_threads);
            }
            const PooledRows pooled_of = encode_batch(batch);
            append_rows(batch, pooled_of, rows);
            progress.advance(batch.size());
            processed_this_run += static_cast<std::int64_t>(batch.size());
            if (o.max_images > 0 && processed_this_run >= o.max_images) {
                return false;
            }
        }
        write_shard(k, end - begin, rows);
        // Testing aid: a crash right after shard k is complete (tests kill a run here instead of
        // racing a timer).
        kill_point("RADPROBE_TEST_EXTRACT_KILL_AFTER_SHARD", static_cast<std::size_t>(k));
        return true;
    }

    // Final files: succeeded rows only, manifest order.
    void merge_shards(std::int64_t num_shards, const std::string& key,
                      ExtractResult& result) const {
        std::string index = "row,image,patient_id,split,ok,roi_valid,error\n";
        std::string errors = "image,error\n";
        std::vector<std::uint8_t> ok_rows;
        for (std::int64_t k = 0; k < num_shards; ++k) {
            const auto t = CsvTable::read(dir / "shards" / (shard_name(k) + ".csv"));
            for (const auto& r : t.rows()) {
                index += csv_line(r) + "\n";
                ok_rows.push_back(r[4] == "1");
                if (r[4] != "1") {
                    errors += csv_line({r[1], r[6]}) + "\n";
                    ++result.failures;
                }
            }
        }
        for (std::size_t pi = 0; pi < o.poolings.size(); ++pi) {
            merge_pooling(o.poolings[pi], num_shards, ok_rows);
        }
        if (roi_over_boxes(o)) {
            std::string controls = kControlHeader;
            for (std::int64_t k = 0; k < num_shards; ++k) {
                const auto t = CsvTable::read(dir / "shards" / (shard_name(k) + "_controls.csv"));
                for (const auto& r : t.rows()) {
                    controls += csv_line(r) + "\n";
                }
            }
            write_file_atomic(dir / "control_boxes.csv", controls);
        }
        write_file_atomic(dir / "index.csv", index);
        write_file_atomic(dir / "errors.csv", errors);
        write_file_atomic(dir / "COMPLETE", key + "\n");
    }

    // Streams the shards' rows of one pooling into POOL.npy (never the whole store in memory:
    // a patch-grid row of a ViT-B at 518 px is 4 MB).
    void merge_pooling(Pooling pooling, std::int64_t num_shards,
                       const std::vector<std::uint8_t>& ok_rows) const {
        const std::int64_t width = row_width(pooling);
        const auto n_ok =
            static_cast<std::int64_t>(std::count(ok_rows.begin(), ok_rows.end(), std::uint8_t{1}));
        NpyRowWriter out(dir / (pool_file(pooling) + ".npy"), DType::kFloat32, {n_ok, width});
        std::size_t row = 0;
        for (std::int64_t k = 0; k < num_shards; ++k) {
            const NpyArray a =
                read_npy(dir / "shards" / (shard_name(k) + "_" + pool_file(pooling) + ".npy"));
            RADPROBE_CHECK(a.dtype == DType::kFloat32 && a.shape.size() == 2 && a.shape[1] == width,
                           dir.string(), ": shard ", k,
                           " has the wrong shape (store corrupt; delete it)");
            const float* v = a.as<float>();
            for (std::int64_t r = 0; r < a.shape[0]; ++r, ++row) {
                if (ok_rows.at(row)) {
                    out.append(v + r * width, 1);
                }
            }
        }
        out.commit();
    }
};

// Threads decoding the next batch while the current one is encoded: as asked, else one on the
// CPU (the forward pass uses every core; a second decoding thread would take one from it:
// bench/features measures both) and up to 8 beside a CUDA device, which waits on decoding
// otherwise.
int decode_threads_for(const ExtractOptions& o, const c10::Device& device) {
    if (o.decode_threads > 0) {
        return o.decode_threads;
    }
    return device.is_cuda() ? std::clamp(available_threads() - 1, 1, 8) : 1;
}

// Shards not complete yet.
std::int64_t missing_shards(const fs::path& dir, std::int64_t num_shards) {
    std::int64_t missing = 0;
    for (std::int64_t k = 0; k < num_shards; ++k) {
        missing += !fs::exists(dir / "shards" / (shard_name(k) + ".csv"));
    }
    return missing;
}

// Images of the slice's shards, and those an earlier (killed) run completed.
std::array<std::int64_t, 2> slice_images(const fs::path& dir, std::int64_t N, std::int64_t S,
                                         const Slice& slice) {
    std::int64_t all = 0, done = 0;
    for (std::int64_t k = 0; k * S < N; ++k) {
        if (slice.owns(k)) {
            all += std::min(S, N - k * S);
            done +=
                fs::exists(dir / "shards" / (shard_name(k) + ".csv")) ? std::min(S, N - k * S) : 0;
        }
    }
    return {all, done};
}

std::string model_name_of(const fs::path& model_dir) {
    std::string model_name = model_dir.filename().string();
    if (model_name.empty()) {
        model_name = model_dir.parent_path().filename().string();
    }
    return model_name;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

std::string store_key(const ExtractOptions& options) {
    return describe_key_inputs(options, nullptr);
}

namespace {

// The roi masks resampled to their image's grid over the whole store (the shards' lists),
// said once and kept in store.json.
void note_resampled_masks(const fs::path& dir, std::int64_t num_shards, ExtractResult& result) {
    dataset::Manifest::Resampled all;
    for (std::int64_t k = 0; k < num_shards; ++k) {
        const fs::path list = dir / "shards" / (shard_name(k) + "_masks.csv");
        if (!fs::exists(list)) {
            continue;
        }
        const CsvTable table = CsvTable::read(list);
        for (const auto& r : table.rows()) {
            all.example = all.count == 0 ? r.at(2) : all.example;
            all.count += std::stoull(r.at(1));
        }
    }
    result.mask_note = all.note("roi masks");
    if (result.mask_note.empty()) {
        return;
    }
    auto meta = nlohmann::json::parse(read_file_text(dir / "store.json"));
    meta["mask_note"] = result.mask_note;
    write_file_atomic(dir / "store.json", meta.dump(2) + "\n");
}

}  // namespace

ExtractResult extract(const ExtractOptions& o) {
    const auto t0 = std::chrono::steady_clock::now();
    check_options(o);
    const c10::Device device = encoders::parse_device(o.device);
    dataset::ManifestOptions mo;
    mo.boxes = o.boxes;
    const dataset::Manifest manifest = dataset::Manifest::load(o.manifest, mo);
    check_manifest(o, manifest);

    nlohmann::json key_inputs;
    const std::string key = describe_key_inputs(o, &key_inputs);
    const auto config = encoders::read_model_config(o.model_dir, o.load);
    const std::string model_name = model_name_of(o.model_dir);
    ExtractResult result;
    result.store_dir = o.store_root / (model_name + "-" + key.substr(0, 12));
    result.images = static_cast<std::int64_t>(manifest.size());
    result.slice = o.slice;
    result.shards = (result.images + o.shard_size - 1) / o.shard_size;
    result.shards_done = result.shards;
    const fs::path dir = result.store_dir;
    if (fs::exists(dir / "COMPLETE")) {
        read_complete_store(dir, result);
        return result;
    }
    RADPROBE_CHECK(!o.cached_only, dir.string(),
                   ": embedding store not complete (its extraction stage did not finish; "
                   "run it again)");
    ensure_writable_dir(o.store_root, "embedding store folder");
    start_store(o, dir, key, key_inputs, config);

    encoders::set_threads(o.threads);
    auto encoder = encoders::load_encoder(o.model_dir, o.load);
    result.load_note = encoder->load_report().note();
    Context ctx{o, manifest, preprocess::InputSpec::processor_input(effective_preprocess(o), 3),
                config.patch_size};
    if (roi_over_boxes(o)) {
        ctx.control_sizes = box_sizes(manifest, roi_box_label(o));
    }
    fold_input_channels(o, *encoder, ctx);
    encoder->to(device);
    Encoding enc{o, manifest, ctx, *encoder, dir, model_name};
    enc.decode_threads = decode_threads_for(o, device);
    result.decode_threads = enc.decode_threads;
    enc.resolve_layers(config);
    enc.probe_patch_grid(config);

    const std::int64_t N = result.images;
    const std::int64_t S = o.shard_size;
    const std::int64_t num_shards = (N + S - 1) / S;
    const auto [slice_total, slice_done] = slice_images(dir, N, S, o.slice);
    std::string label = "extract " + model_name;
    if (!o.slice.whole()) {
        label += " slice " + o.slice.text();
    }
    Progress progress(label, static_cast<std::size_t>(slice_total), "images");
    progress.set_enabled(o.progress && stderr_is_tty());
    progress.advance(static_cast<std::size_t>(slice_done));

    torch::InferenceMode guard;
    std::int64_t processed_this_run = 0;
    for (std::int64_t k = 0; k < num_shards; ++k) {
        if (!o.slice.owns(k) || fs::exists(dir / "shards" / (shard_name(k) + ".csv"))) {
            continue;
        }
        const std::int64_t begin = k * S, end = std::min(N, begin + S);
        if (!enc.run_shard(k, begin, end, progress, processed_this_run,
                           result.decode_wait_seconds)) {
            result.extracted = processed_this_run;
            result.seconds = seconds_since(t0);
            result.stopped = true;
            result.shards_done = num_shards - missing_shards(dir, num_shards);
            return result;  // simulated kill: the current shard is not written
        }
    }
    progress.finish();
    result.extracted = processed_this_run;
    result.seconds = seconds_since(t0);
    if (!o.slice.whole()) {  // the merge step (a run of the whole) writes the final files
        result.mask_note = manifest.resampled_masks().note("roi masks");
        result.shards_done = num_shards - missing_shards(dir, num_shards);
        return result;
    }
    note_resampled_masks(dir, num_shards, result);
    enc.merge_shards(num_shards, key, result);
    result.complete = true;
    result.seconds = seconds_since(t0);
    return result;
}

EmbeddingTable read_embeddings(const fs::path& store_dir, const std::string& pool) {
    RADPROBE_CHECK(fs::exists(store_dir / "COMPLETE"), store_dir.string(),
                   ": not a complete embedding store (run radprobe extract to finish it)");
    const auto index = CsvTable::read(store_dir / "index.csv");
    EmbeddingTable t;
    const auto ok = index.column("ok"), image = index.column("image"),
               roi = index.column("roi_valid");
    for (const auto& r : index.rows()) {
        if (r[ok] == "1") {
            t.image_ids.push_back(r[image]);
            t.roi_valid.push_back(r[roi] == "1");
        }
    }
    const NpyArray a = read_npy(store_dir / (pool + ".npy"));
    RADPROBE_CHECK(a.dtype == DType::kFloat32 && a.shape.size() == 2 &&
                       a.shape[0] == static_cast<std::int64_t>(t.image_ids.size()),
                   store_dir.string(), ": ", pool, ".npy does not match index.csv");
    t.dim = a.shape[1];
    t.values.assign(a.as<float>(), a.as<float>() + a.numel());
    return t;
}

PatchGridInfo read_patch_grid_info(const fs::path& store_dir) {
    RADPROBE_CHECK(fs::exists(store_dir / "COMPLETE"), store_dir.string(),
                   ": not a complete embedding store (run radprobe extract to finish it)");
    const fs::path file = store_dir / "patch_grid.json";
    RADPROBE_CHECK(fs::exists(file), store_dir.string(),
                   ": no patch grids in this store (extract with --pool patches)");
    PatchGridInfo info;
    try {
        const auto j = nlohmann::json::parse(read_file_text(file));
        info.grid_h = j.at("grid_h").get<std::int64_t>();
        info.grid_w = j.at("grid_w").get<std::int64_t>();
        info.dim = j.at("dim").get<std::int64_t>();
        info.layers = j.at("layers").get<std::vector<int>>();
        info.num_hidden_layers = j.at("num_hidden_layers").get<std::int64_t>();
        info.input_height = j.at("input_height").get<std::int64_t>();
        info.input_width = j.at("input_width").get<std::int64_t>();
        info.patch = j.at("patch").get<std::int64_t>();
        info.normalized_layers = j.at("normalized_layers").get<bool>();
    } catch (const nlohmann::json::exception& e) {
        throw InputError(str_cat(file.string(), ": ", e.what()));
    }
    RADPROBE_CHECK(info.grid_h > 0 && info.grid_w > 0 && info.dim > 0 && !info.layers.empty() &&
                       info.input_height > 0 && info.input_width > 0,
                   file.string(), ": grid, dim, layers and input size must be positive");
    return info;
}

}  // namespace radprobe::features
