// radprobe extract end to end on real radiographs (nih-mini) with the tiny DINOv2 fixture:
// the store's rows equal a direct forward pass, resume after a kill gives identical files,
// re-running is a cache hit, failures are logged.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <map>

#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/npy.hpp"
#include "radprobe/encoders/encoder.hpp"
#include "radprobe/encoders/model_dir.hpp"
#include "radprobe/features/embeddings.hpp"
#include "radprobe/imaging/decode.hpp"
#include "radprobe/preprocess/preprocess.hpp"
#include "test_support.hpp"

namespace radprobe::features {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

const fs::path kModel = test::encoder_fixture("dinov2");

// A manifest of `n` nih-mini images (absolute paths), boxes on two of them, optionally a
// corrupt image at row 3.
fs::path make_manifest(const TempDir& tmp, int n, bool corrupt) {
    const auto labels = CsvTable::read(test::data_dir() / "nih-mini" / "labels.csv");
    std::string csv = "image,patient_id,split,abnormal\n";
    for (int i = 0; i < n; ++i) {
        const auto& row = labels.rows()[static_cast<std::size_t>(i * 7)];
        std::string path = (test::data_dir() / "nih-mini" / row[0]).string();
        if (corrupt && i == 3) {
            write_file_atomic(tmp / "broken.png", "\x89PNG\r\n\x1a\nnot really");
            path = (tmp / "broken.png").string();
        }
        csv += csv_line({path, "p" + std::to_string(i / 2), "train",
                         row[2] == "1_abnormal" ? "1" : "0"}) +
               "\n";
    }
    write_file_atomic(tmp / "manifest.csv", csv);
    const auto first = CsvTable::read(tmp / "manifest.csv").rows()[0][0];
    const auto second = CsvTable::read(tmp / "manifest.csv").rows()[1][0];
    write_file_atomic(tmp / "boxes.csv",
                      "image,label,x0,y0,x1,y1\n" +
                          csv_line({first, "nodule", "10", "12", "30", "40"}) + "\n" +
                          csv_line({second, "nodule", "40", "5", "60", "20"}) + "\n");
    return tmp / "manifest.csv";
}

std::string run_extract(const fs::path& manifest, const fs::path& store, const std::string& extra,
                        const std::string& env = "", int shard = 8, int batch = 4) {
    const std::string cmd = env + " '" + test::radprobe_binary().string() + "' extract --model '" +
                            kModel.string() + "' --manifest '" + manifest.string() + "' --out '" +
                            store.string() + "' --pool cls,mean,roi --batch " +
                            std::to_string(batch) + " --shard " + std::to_string(shard) +
                            " --threads 1 " + extra + " 2>&1";
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    char buf[512];
    while (fgets(buf, sizeof buf, p)) {
        out += buf;
    }
    const int status = pclose(p);
    out += "\nexit=" + std::to_string(WEXITSTATUS(status));
    return out;
}

fs::path only_store(const fs::path& root) {
    std::vector<fs::path> dirs;
    for (const auto& e : fs::directory_iterator(root)) {
        dirs.push_back(e.path());
    }
    EXPECT_EQ(dirs.size(), 1u);
    return dirs.empty() ? fs::path() : dirs[0];
}

TEST(Extract, RowsEqualADirectForwardPassForEveryPooling) {
    TempDir tmp;
    const auto manifest = make_manifest(tmp, 12, false);
    const std::string out = run_extract(manifest, tmp / "store", "");
    ASSERT_NE(out.find("exit=0"), std::string::npos) << out;
    const fs::path store = only_store(tmp / "store");
    const auto cls = read_embeddings(store, "cls");
    const auto mean = read_embeddings(store, "mean");
    const auto roi = read_embeddings(store, "roi");
    ASSERT_EQ(cls.image_ids.size(), 12u);
    EXPECT_EQ(roi.roi_valid[0], 1);
    EXPECT_EQ(roi.roi_valid[2], 1);  // no box: a control region (BoxesOnPositivesOnly below)

    // Direct: decode → preprocess (3 channels, unfolded) → forward.
    auto encoder = encoders::load_encoder(kModel);
    const auto pc = encoders::read_preprocess_config(kModel);
    const auto rows = CsvTable::read(manifest).rows();
    for (std::size_t i : {std::size_t{0}, std::size_t{5}}) {
        const auto img = imaging::decode(rows[i][0]);
        const auto grey = preprocess::quantise_u8(img.pixels.data(), img.pixels.size());
        const auto px = preprocess::preprocess_grey_u8(grey, img.rows, img.cols, pc, 3);
        const auto g = preprocess::processor_geometry(pc, img.rows, img.cols);
        auto x = torch::from_blob(const_cast<float*>(px.data()), {1, 3, g.out_height, g.out_width})
                     .clone();
        torch::InferenceMode guard;
        const auto o = encoder->forward(x);
        const auto c = o.tokens.cls[0].contiguous();
        const auto m = o.tokens.patches[0].reshape({-1, cls.dim}).mean(0).contiguous();
        for (std::int64_t d = 0; d < cls.dim; ++d) {
            // Folded grey patch embedding vs 3-channel: same maths, float rounding only.
            EXPECT_NEAR(cls.values[i * cls.dim + d], c[d].item<float>(), 1e-4);
            EXPECT_NEAR(mean.values[i * mean.dim + d], m[d].item<float>(), 1e-4);
        }
        if (i == 0) {
            // Box (10,12)-(30,40) of a 64×64 image → input 56×56 (resize 64, crop 56 at 4),
            // patch 14: check against the weights computed independently of the store.
            InputGeometry ig;
            ig.scale_x = g.scale_x;
            ig.scale_y = g.scale_y;
            ig.crop_left = static_cast<double>(g.crop_left);
            ig.crop_top = static_cast<double>(g.crop_top);
            ig.out_height = g.out_height;
            ig.out_width = g.out_width;
            ig.patch = encoder->config().patch_size;
            const auto w = roi_weights_from_boxes({{10, 12, 30, 40}}, ig, "x");
            const auto patches = o.tokens.patches[0].reshape({-1, cls.dim}).contiguous();
            const auto r = pool(Pooling::kRoi, nullptr, patches.data_ptr<float>(), patches.size(0),
                                cls.dim, w);
            for (std::int64_t d = 0; d < cls.dim; ++d) {
                EXPECT_NEAR(roi.values[d], r[static_cast<std::size_t>(d)], 1e-4);
            }
        }
    }
}

// Boxes on the positives only (as in ChestX-Det10 and the NIH box list): every other image
// gets a control region of a box's size in the lungs (here the prior: no lung masks), listed
// in control_boxes.csv with the seed, and pooled like a box; another seed is another store
// with other regions; a label without boxes is refused naming the labels that have some.
TEST(Extract, BoxesOnPositivesOnlyGiveEveryOtherImageAMatchedControlRegion) {
    TempDir tmp;
    const auto manifest = make_manifest(tmp, 8, false);
    std::string out = run_extract(manifest, tmp / "store", "--roi boxes:nodule --seed 3");
    ASSERT_NE(out.find("exit=0"), std::string::npos) << out;
    const fs::path store = only_store(tmp / "store");
    const auto roi = read_embeddings(store, "roi");
    ASSERT_EQ(roi.image_ids.size(), 8u);
    for (std::size_t i = 0; i < 8; ++i) {
        EXPECT_EQ(roi.roi_valid[i], 1) << i;
        EXPECT_FALSE(std::isnan(roi.values[i * roi.dim])) << i;
    }
    const auto controls = CsvTable::read(store / "control_boxes.csv");
    ASSERT_EQ(controls.num_rows(), 6u);  // images 2..7
    const auto ids = CsvTable::read(manifest).rows();
    for (std::size_t k = 0; k < 6; ++k) {
        const auto& c = controls.rows()[k];
        EXPECT_EQ(c[controls.column("image")], ids[k + 2][0]);
        EXPECT_EQ(c[controls.column("label")], "nodule");
        EXPECT_EQ(c[controls.column("seed")], "3");
        EXPECT_EQ(c[controls.column("region")], "prior");
        const double w = std::stod(c[controls.column("x1")]) - std::stod(c[controls.column("x0")]);
        const double h = std::stod(c[controls.column("y1")]) - std::stod(c[controls.column("y0")]);
        // The two boxes are 20×28 and 20×15.
        EXPECT_TRUE(w == 20 && (h == 28 || h == 15)) << w << "x" << h;
        // Its middle pixel in the prior (the central half of the 64×64 image).
        const double cx = std::stod(c[controls.column("x0")]) + std::floor(w / 2);
        const double cy = std::stod(c[controls.column("y0")]) + std::floor(h / 2);
        EXPECT_TRUE(cx >= 16 && cx < 48 && cy >= 16 && cy < 48) << cx << "," << cy;
    }

    // The roi row of a control image is the pooling over its control box.
    auto encoder = encoders::load_encoder(kModel);
    const auto pc = encoders::read_preprocess_config(kModel);
    const auto& c0 = controls.rows()[0];
    const RegionBox box{std::stod(c0[2]), std::stod(c0[3]), std::stod(c0[4]), std::stod(c0[5])};
    const auto img = imaging::decode(ids[2][0]);
    const auto grey = preprocess::quantise_u8(img.pixels.data(), img.pixels.size());
    const auto px = preprocess::preprocess_grey_u8(grey, img.rows, img.cols, pc, 3);
    const auto g = preprocess::processor_geometry(pc, img.rows, img.cols);
    auto x =
        torch::from_blob(const_cast<float*>(px.data()), {1, 3, g.out_height, g.out_width}).clone();
    torch::InferenceMode guard;
    const auto o = encoder->forward(x);
    const auto patches = o.tokens.patches[0].reshape({-1, roi.dim}).contiguous();
    const auto w =
        roi_weights_from_boxes({box}, patch_geometry(g, encoder->config().patch_size), "x");
    const auto ref =
        pool(Pooling::kRoi, nullptr, patches.data_ptr<float>(), patches.size(0), roi.dim, w);
    for (std::int64_t d = 0; d < roi.dim; ++d) {
        EXPECT_NEAR(roi.values[2 * roi.dim + d], ref[static_cast<std::size_t>(d)], 1e-4);
    }

    // Another seed: another store (the key holds the seed), other regions.
    out = run_extract(manifest, tmp / "store", "--roi boxes:nodule --seed 4");
    ASSERT_NE(out.find("exit=0"), std::string::npos) << out;
    std::size_t stores = 0;
    fs::path other;
    for (const auto& e : fs::directory_iterator(tmp / "store")) {
        ++stores;
        if (e.path() != store) {
            other = e.path();
        }
    }
    ASSERT_EQ(stores, 2u);
    EXPECT_NE(read_file_text(other / "control_boxes.csv"),
              read_file_text(store / "control_boxes.csv"));

    out = run_extract(manifest, tmp / "store", "--roi boxes:effusion");
    EXPECT_NE(out.find("exit=1"), std::string::npos) << out;
    EXPECT_NE(out.find("boxes.csv: --roi boxes:effusion: no boxes of label effusion (labels with "
                       "boxes: nodule); give --roi boxes:<label> or --roi mask_<name>"),
              std::string::npos)
        << out;
}

TEST(Extract, ResumeAfterStopAndAfterKill9GivesIdenticalStoreAndRerunIsCached) {
    TempDir tmp;
    const auto manifest = make_manifest(tmp, 30, true);
    // Reference: uninterrupted.
    ASSERT_NE(run_extract(manifest, tmp / "ref", "").find("exit=0"), std::string::npos);
    // Stopped after 13 images (one complete shard of 8), then resumed.
    const std::string stopped =
        run_extract(manifest, tmp / "resumed", "", "RADPROBE_TEST_STOP_AFTER=13");
    ASSERT_NE(stopped.find("stopped"), std::string::npos) << stopped;
    const fs::path partial = only_store(tmp / "resumed");
    EXPECT_FALSE(fs::exists(partial / "COMPLETE"));
    EXPECT_TRUE(fs::exists(partial / "shards" / "00000.csv"));
    EXPECT_FALSE(fs::exists(partial / "shards" / "00001.csv"));
    const std::string resumed = run_extract(manifest, tmp / "resumed", "");
    ASSERT_NE(resumed.find("extracted this run: 22"), std::string::npos) << resumed;

    // A real SIGKILL in the middle of a run, at a fixed point: right after shard 2 (of 15) is
    // complete, while the next one is being encoded.
    const pid_t pid = fork();
    if (pid == 0) {
        setenv("RADPROBE_TEST_EXTRACT_KILL_AFTER_SHARD", "2", 1);
        execl(test::radprobe_binary().c_str(), "radprobe", "extract", "--model", kModel.c_str(),
              "--manifest", manifest.c_str(), "--out", (tmp / "killed").c_str(), "--pool",
              "cls,mean,roi", "--batch", "1", "--shard", "2", "--threads", "1",
              static_cast<char*>(nullptr));
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the run was not killed mid-way (status " << status << ")";
    const fs::path killed_store = only_store(tmp / "killed");
    EXPECT_TRUE(fs::exists(killed_store / "shards" / "00002.csv"));
    EXPECT_FALSE(fs::exists(killed_store / "shards" / "00003.csv"));
    EXPECT_FALSE(fs::exists(only_store(tmp / "killed") / "COMPLETE"));
    const std::string after_kill = run_extract(manifest, tmp / "killed", "", "", 2, 1);
    // Batch composition changes float rounding, so the killed run is compared with an
    // uninterrupted run of the same arguments.
    ASSERT_NE(run_extract(manifest, tmp / "ref_b1", "", "", 2, 1).find("exit=0"),
              std::string::npos);
    ASSERT_NE(after_kill.find("exit=0"), std::string::npos) << after_kill;

    const fs::path ref = only_store(tmp / "ref");
    const fs::path res = only_store(tmp / "resumed");
    const fs::path kil = only_store(tmp / "killed");
    const fs::path ref_b1 = only_store(tmp / "ref_b1");
    for (const std::string f : {"cls.npy", "mean.npy", "roi.npy", "index.csv", "errors.csv"}) {
        EXPECT_EQ(read_file_bytes(ref / f), read_file_bytes(res / f)) << f;
    }
    for (const std::string f : {"cls.npy", "mean.npy", "roi.npy", "index.csv", "errors.csv"}) {
        EXPECT_EQ(read_file_bytes(ref_b1 / f), read_file_bytes(kil / f)) << f;
    }
    EXPECT_EQ(read_file_bytes(ref / "index.csv"), read_file_bytes(kil / "index.csv"));
    // No temporary files are left behind.
    for (const auto& e : fs::recursive_directory_iterator(tmp.path())) {
        EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
    }
    // The corrupt image is logged and excluded.
    const auto errors = CsvTable::read(ref / "errors.csv");
    ASSERT_EQ(errors.num_rows(), 1u);
    EXPECT_NE(errors.rows()[0][0].find("broken.png"), std::string::npos);
    EXPECT_EQ(read_embeddings(ref, "cls").image_ids.size(), 29u);
    // Same key again: nothing to do.
    const std::string again = run_extract(manifest, tmp / "ref", "");
    EXPECT_NE(again.find("cached"), std::string::npos) << again;
    // --strict makes the corrupt image fatal.
    const std::string strict = run_extract(manifest, tmp / "strict", "--strict");
    EXPECT_NE(strict.find("exit=1"), std::string::npos) << strict;
    EXPECT_NE(strict.find("broken.png"), std::string::npos) << strict;
}

// Every file under `dir` (relative path -> bytes).
std::map<std::string, std::vector<char>> tree(const fs::path& dir) {
    std::map<std::string, std::vector<char>> files;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
        if (e.is_regular_file()) {
            const auto bytes = read_file_bytes(e.path());
            files[fs::relative(e.path(), dir).string()].assign(bytes.begin(), bytes.end());
        }
    }
    return files;
}

TEST(Extract, SlicesOfTheShardsMergeIntoTheByteIdenticalStoreOfOneProcess) {
    TempDir tmp;
    const auto manifest = make_manifest(tmp, 30, true);  // 8 shards of 4, a corrupt image
    ASSERT_NE(run_extract(manifest, tmp / "one", "", "", 4, 2).find("exit=0"), std::string::npos);
    // Slice 0 by flag, slice 2 as a Slurm array task, slice 1 killed after 5 images.
    const std::string s0 = run_extract(manifest, tmp / "sliced", "--slice 0/3", "", 4, 2);
    ASSERT_NE(s0.find("exit=0"), std::string::npos) << s0;
    EXPECT_NE(s0.find("slice 0/3 (--slice): 12 images extracted"), std::string::npos) << s0;
    const std::string s2 = run_extract(
        manifest, tmp / "sliced", "",
        "SLURM_ARRAY_TASK_ID=12 SLURM_ARRAY_TASK_MIN=10 SLURM_ARRAY_TASK_COUNT=3", 4, 2);
    EXPECT_NE(s2.find("slice 2/3 (SLURM_ARRAY_TASK_ID): 8 images extracted"), std::string::npos)
        << s2;
    const std::string s1 =
        run_extract(manifest, tmp / "sliced", "--slice 1/3", "RADPROBE_TEST_STOP_AFTER=5", 4, 2);
    EXPECT_NE(s1.find("stopped"), std::string::npos) << s1;
    const fs::path store = only_store(tmp / "sliced");
    EXPECT_FALSE(fs::exists(store / "COMPLETE"));
    for (int k = 0; k < 8; ++k) {  // shard 1 done before the kill, 4 and 7 not
        const bool done = k % 3 != 1 || k == 1;
        EXPECT_EQ(fs::exists(store / "shards" / ("0000" + std::to_string(k) + ".csv")), done) << k;
    }
    // The merge step: a run of the whole computes shards 4 and 7 and writes the final files.
    const std::string merged = run_extract(manifest, tmp / "sliced", "", "", 4, 2);
    ASSERT_NE(merged.find("extracted this run: 6"), std::string::npos) << merged;
    EXPECT_EQ(tree(only_store(tmp / "one")), tree(store));
    EXPECT_EQ(read_embeddings(store, "cls").image_ids.size(), 29u);

    const std::string bad = run_extract(manifest, tmp / "bad", "--slice 3/3");
    EXPECT_NE(bad.find("--slice '3/3': expected I/N with 0 <= I < N"), std::string::npos) << bad;
    EXPECT_NE(bad.find("exit=2"), std::string::npos) << bad;
    if (encoders::cuda_device_count() == 0) {  // refused before anything is written
        const std::string cuda = run_extract(manifest, tmp / "cuda", "--device cuda");
        EXPECT_NE(cuda.find("--device cuda: this LibTorch build has no usable CUDA device"),
                  std::string::npos)
            << cuda;
        EXPECT_FALSE(fs::exists(tmp / "cuda"));
    }
}

TEST(Extract, MultiLayerConcatenatesLayersAndBadArgumentsAreUsageErrors) {
    TempDir tmp;
    const auto manifest = make_manifest(tmp, 4, false);
    const std::string out = run_extract(manifest, tmp / "s", "--layers -1,-2");
    ASSERT_NE(out.find("exit=0"), std::string::npos) << out;
    const auto t = read_embeddings(only_store(tmp / "s"), "cls");
    auto encoder = encoders::load_encoder(kModel);
    EXPECT_EQ(t.dim, 2 * encoder->config().hidden_size);
    EXPECT_NE(run_extract(manifest, tmp / "s2", "--layers -99").find("exit=2"), std::string::npos);
    EXPECT_NE(run_extract(manifest, tmp / "s2", "--pool max").find("exit=2"), std::string::npos);
}

// A subset manifest beside the full set's boxes.csv (boxes of images it does not hold, and a
// malformed row): boxes are read only by the steps that use them. cls/mean pooling runs; roi
// pooling over boxes refuses the malformed row, naming boxes.csv and the line.
TEST(Extract, SubsetManifestBesideTheFullBoxesFileNeedsNoBoxesForClsAndMean) {
    TempDir tmp;
    const auto full = make_manifest(tmp, 4, false);
    const CsvTable table = CsvTable::read(full);
    std::string subset = csv_line(table.header()) + "\n";
    for (std::size_t r = 2; r < 4; ++r) {
        subset += csv_line(table.rows()[r]) + "\n";
    }
    write_file_atomic(tmp / "subset.csv", subset);
    const std::string boxes = read_file_text(tmp / "boxes.csv");
    write_file_atomic(
        tmp / "boxes.csv",
        boxes + csv_line({table.rows()[2][0], "nodule", "1", "abc", "5", "9"}) + "\n");
    auto extract_with = [&](const std::string& pool, const std::string& store) {
        return test::run_cli("extract --model '" + kModel.string() + "' --manifest '" +
                             (tmp / "subset.csv").string() + "' --out '" + (tmp / store).string() +
                             "' --pool " + pool + " --threads 1");
    };
    const auto ok = extract_with("cls,mean", "s");
    EXPECT_EQ(ok.exit_code, 0) << ok.err;
    EXPECT_EQ(read_embeddings(only_store(tmp / "s"), "mean").image_ids.size(), 2u);
    const auto roi = extract_with("cls,roi", "r");
    EXPECT_EQ(roi.exit_code, 1);
    EXPECT_EQ(test::count_lines(roi.err), 1) << roi.err;
    EXPECT_NE(roi.err.find((tmp / "boxes.csv").string() + ":4: column 'y0': 'abc'"),
              std::string::npos)
        << roi.err;
}

ExtractOptions patch_options(const fs::path& manifest, const fs::path& store) {
    ExtractOptions o;
    o.model_dir = kModel;
    o.manifest = manifest;
    o.store_root = store;
    o.poolings = {Pooling::kMean, Pooling::kPatches};
    o.layers = {-1, 1};  // the last layer first, then block 1: stored in this order
    o.batch = 3;
    o.shard_size = 3;
    o.threads = 1;
    o.progress = false;
    return o;
}

// Row 3 (corrupt) opens the second batch/shard: its NaN row must sit at its own position in the
// shard, or every later image of the shard is shifted onto its neighbour's row.
TEST(ExtractPatches, StoreEqualsTheEncodersOwnPatchTokensForEveryRequestedLayer) {
    TempDir tmp;
    const auto manifest = make_manifest(tmp, 7, true);  // row 3 is a corrupt image
    const auto r = extract(patch_options(manifest, tmp / "store"));
    ASSERT_TRUE(r.complete);
    EXPECT_EQ(r.failures, 1);
    auto encoder = encoders::load_encoder(kModel);
    const auto& cfg = encoder->config();
    const auto info = read_patch_grid_info(r.store_dir);
    EXPECT_EQ(info.grid_h, 4);  // DINOv2 fixture: resize 64, crop 56, patch 14
    EXPECT_EQ(info.grid_w, 4);
    EXPECT_EQ(info.dim, cfg.hidden_size);
    EXPECT_EQ(info.layers, (std::vector<int>{static_cast<int>(cfg.num_hidden_layers), 1}));
    EXPECT_EQ(info.input_height, 56);
    EXPECT_EQ(info.input_width, 56);
    EXPECT_EQ(info.patch, 14);
    const auto t = read_embeddings(r.store_dir, "patches");
    const auto mean = read_embeddings(r.store_dir, "mean");
    ASSERT_EQ(t.image_ids.size(), 6u);
    ASSERT_EQ(t.dim, info.row_width());
    const std::int64_t G = info.grid_h * info.grid_w, D = info.dim;

    const auto pc = encoders::read_preprocess_config(kModel);
    const auto rows = CsvTable::read(manifest).rows();
    encoders::ForwardOptions fwd;
    fwd.layers = {1};
    fwd.normalize_layers = true;
    std::size_t checked = 0;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        if (i == 3) {
            continue;  // the corrupt image has no row
        }
        const std::size_t row = i < 3 ? i : i - 1;
        ASSERT_EQ(t.image_ids[row], rows[i][0]);
        const auto img = imaging::decode(rows[i][0]);
        const auto grey = preprocess::quantise_u8(img.pixels.data(), img.pixels.size());
        const auto px = preprocess::preprocess_grey_u8(grey, img.rows, img.cols, pc, 3);
        auto x = torch::from_blob(const_cast<float*>(px.data()), {1, 3, 56, 56}).clone();
        torch::InferenceMode guard;
        const auto o = encoder->forward(x, fwd);
        const auto last = o.tokens.patches[0].reshape({G, D}).contiguous();
        const auto block1 = encoders::split_tokens(o.layers.at(1), cfg.num_register_tokens,
                                                   o.grid_h, o.grid_w, true)
                                .patches[0]
                                .reshape({G, D})
                                .contiguous();
        const float* stored = t.values.data() + row * static_cast<std::size_t>(t.dim);
        double max_diff = 0.0;
        for (std::int64_t k = 0; k < G * D; ++k) {
            max_diff = std::max<double>(max_diff, std::abs(stored[k] - last.data_ptr<float>()[k]));
            max_diff = std::max<double>(max_diff,
                                        std::abs(stored[G * D + k] - block1.data_ptr<float>()[k]));
        }
        // Folded grey patch embedding vs the 3-channel input: float rounding only.
        EXPECT_LT(max_diff, 1e-4) << rows[i][0];
        // The mean pooling of the same pass is the mean of the stored last-layer grid.
        for (std::int64_t d = 0; d < D; ++d) {
            double acc = 0;
            for (std::int64_t g = 0; g < G; ++g) {
                acc += stored[g * D + d];
            }
            EXPECT_NEAR(mean.values[row * static_cast<std::size_t>(mean.dim) + d], acc / G, 1e-5);
        }
        ++checked;
    }
    EXPECT_EQ(checked, 6u);
    // A store without patches says so.
    auto no_patches = patch_options(manifest, tmp / "plain");
    no_patches.poolings = {Pooling::kMean};
    const auto plain = extract(no_patches);
    EXPECT_THROW(read_patch_grid_info(plain.store_dir), InputError);
}

TEST(ExtractPatches, ResumeAfterAStopGivesIdenticalFiles) {
    TempDir tmp;
    const auto manifest = make_manifest(tmp, 8, true);
    const auto ref = extract(patch_options(manifest, tmp / "ref"));
    ASSERT_TRUE(ref.complete);
    auto stopped = patch_options(manifest, tmp / "resumed");
    stopped.max_images = 4;  // one complete shard of 3, the second one lost
    const auto partial = extract(stopped);
    EXPECT_FALSE(partial.complete);
    stopped.max_images = 0;
    const auto resumed = extract(stopped);
    ASSERT_TRUE(resumed.complete);
    EXPECT_EQ(resumed.extracted, 5);
    for (const std::string f :
         {"patches.npy", "mean.npy", "patch_grid.json", "index.csv", "errors.csv"}) {
        EXPECT_EQ(read_file_bytes(ref.store_dir / f), read_file_bytes(resumed.store_dir / f)) << f;
    }
}

}  // namespace
}  // namespace radprobe::features
