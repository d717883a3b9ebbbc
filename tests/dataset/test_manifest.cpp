// Manifest parsing, label detection, boxes, masks lookup, and validation problem classes.

#include <gtest/gtest.h>

#include <algorithm>

#include "dataset_fixtures.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "test_support.hpp"

namespace {

using namespace radprobe;
using namespace radprobe::dataset;
using radprobe::test::TempDir;
using radprobe::test::write_png;
using radprobe::test::write_text;

bool contains(const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
}

TEST(DatasetManifest, ParsesQuotedFieldsLabelsAttributesAndMasks) {
    TempDir dir;
    write_text(dir / "m.csv",
               "image,patient_id,split,cardiomegaly,ctr,view,chest_tube,note,mask_heart,mask_ptx\n"
               "\"scans/a, first.png\",P1,train,1,0.55,PA,0,\"said \"\"hi\"\"\",masks/a.png,-1\n"
               "scans/b.png,P1,train,0,0.42,AP,1,\"two\nlines\",,\"3 2 5 2\"\n"
               "scans/c.png,P2,val,,0.48,PA,0,,,\n"
               "scans/d.png,P3,test,1,0.61,PA,1,,,\n");
    const Manifest m = Manifest::load(dir / "m.csv");
    EXPECT_TRUE(m.problems().empty()) << m.problems().front().to_string();
    ASSERT_EQ(m.size(), 4u);
    EXPECT_EQ(m.record(0).id, "scans/a, first.png");
    EXPECT_EQ(m.record(0).image_path, dir.path() / "scans/a, first.png");
    EXPECT_EQ(m.record(2).line, 5u);  // the quoted newline in row 2 spans two lines
    EXPECT_EQ(m.label_names(), (std::vector<std::string>{"cardiomegaly", "chest_tube"}));
    EXPECT_EQ(m.attribute_names(), (std::vector<std::string>{"ctr", "view", "note"}));
    EXPECT_EQ(m.mask_names(), (std::vector<std::string>{"heart", "ptx"}));
    EXPECT_EQ(m.label_vector("cardiomegaly"), (std::vector<std::int8_t>{1, 0, kLabelUnknown, 1}));
    EXPECT_EQ(m.attribute(0, "note"), "said \"hi\"");
    EXPECT_EQ(m.attribute(1, "note"), "two\nlines");
    EXPECT_EQ(m.attribute(1, "chest_tube"), "1");  // labels are readable as attributes
    EXPECT_DOUBLE_EQ(*m.numeric_attribute(3, "ctr"), 0.61);
    EXPECT_FALSE(m.numeric_attribute(0, "view").has_value());
    ASSERT_TRUE(m.find("scans/c.png").has_value());
    EXPECT_EQ(*m.find("scans/c.png"), 2u);
    EXPECT_FALSE(m.find("scans/zzz.png").has_value());
    EXPECT_EQ(m.record("scans/d.png").patient_id, "P3");
    EXPECT_THROW(m.record("nope.png"), InputError);
    EXPECT_EQ(m.indices(Split::kTrain), (std::vector<std::size_t>{0, 1}));
    EXPECT_EQ(m.indices(Split::kTest), (std::vector<std::size_t>{3}));
    EXPECT_EQ(m.patients(), (std::vector<std::string>{"P1", "P2", "P3"}));
    EXPECT_EQ(m.mask_ref(0, "heart").source, MaskSource::kFile);
    EXPECT_EQ(m.mask_ref(0, "heart").path, dir.path() / "masks/a.png");
    EXPECT_EQ(m.mask_ref(0, "ptx").source, MaskSource::kRle);
    EXPECT_EQ(m.mask_ref(1, "heart").source, MaskSource::kNone);
    // RLE masks need the image size; "-1" is an annotated empty mask, an empty cell is unknown.
    const auto empty = m.load_mask(0, "ptx", 3, 4);
    ASSERT_TRUE(empty.has_value());
    EXPECT_EQ(empty->count(), 0u);
    const auto ptx = m.load_mask(1, "ptx", 3, 4);
    ASSERT_TRUE(ptx.has_value());
    EXPECT_EQ(ptx->count(), 4u);
    EXPECT_FALSE(m.load_mask(2, "ptx", 3, 4).has_value());
    EXPECT_THROW(m.load_mask(0, "lungs", 3, 4), InputError);
}

TEST(DatasetManifest, LabelDetectionThresholdAndTypos) {
    TempDir dir;
    // nodule: 19 of 20 values are 0/1 (95%) → a label, the "yes" is reported.
    // mostly: 17 of 20 (85%) → an attribute, nothing reported.
    // ratio: continuous → an attribute. empty: no value → an attribute.
    std::string csv = "image,patient_id,nodule,mostly,ratio,empty\n";
    for (int i = 0; i < 20; ++i) {
        csv += "i" + std::to_string(i) + ".png,P" + std::to_string(i) + "," +
               (i == 7 ? "yes" : std::to_string(i % 2)) + "," +
               (i < 3 ? "maybe" : std::to_string(i % 2)) + ",0." + std::to_string(i + 10) + ",\n";
    }
    write_text(dir / "m.csv", csv);
    const Manifest m = Manifest::load(dir / "m.csv");
    EXPECT_EQ(m.label_names(), (std::vector<std::string>{"nodule"}));
    EXPECT_TRUE(contains(m.attribute_names(), "mostly"));
    EXPECT_TRUE(contains(m.attribute_names(), "ratio"));
    EXPECT_TRUE(contains(m.attribute_names(), "empty"));
    ASSERT_EQ(m.problems().size(), 1u);
    EXPECT_EQ(m.problems()[0].line, 9u);
    EXPECT_EQ(m.problems()[0].column, "nodule");
    EXPECT_NE(m.problems()[0].message.find("'yes'"), std::string::npos);
    EXPECT_EQ(m.label_vector("nodule")[7], kLabelUnknown);
    EXPECT_THROW(m.require_valid(), InputError);

    // "1.0" is a typo too (11 of 12 values are 0/1: 91.7%).
    write_text(dir / "t.csv",
               "image,patient_id,y\na,P,0\nb,P,1\nc,P,1.0\nd,P,0\ne,P,1\nf,P,0\ng,P,1\nh,P,0\n"
               "i,P,1\nj,P,0\nk,P,1\nl,P,0\n");
    const Manifest t = Manifest::load(dir / "t.csv");
    EXPECT_EQ(t.label_names(), (std::vector<std::string>{"y"}));
    ASSERT_EQ(t.problems().size(), 1u);
    EXPECT_EQ(t.problems()[0].line, 4u);
    EXPECT_NE(t.problems()[0].message.find("'1.0'"), std::string::npos);
}

TEST(DatasetManifest, ExplicitLabels) {
    TempDir dir;
    write_text(dir / "m.csv", "image,patient_id,a,b,ctr\nx.png,P,0,1,0.5\ny.png,Q,1,0,0.4\n");
    ManifestOptions o;
    o.labels = std::vector<std::string>{"b"};
    const Manifest m = Manifest::load(dir / "m.csv", o);
    EXPECT_EQ(m.label_names(), (std::vector<std::string>{"b"}));
    EXPECT_EQ(m.attribute_names(), (std::vector<std::string>{"a", "ctr"}));
    // Explicit: a continuous column is checked as a label.
    o.labels = std::vector<std::string>{"ctr"};
    EXPECT_EQ(Manifest::load(dir / "m.csv", o).problems().size(), 2u);
    o.labels = std::vector<std::string>{"nope"};
    EXPECT_THROW(Manifest::load(dir / "m.csv", o), InputError);
    o.labels = std::vector<std::string>{"patient_id"};
    EXPECT_THROW(Manifest::load(dir / "m.csv", o), InputError);
}

TEST(DatasetManifest, RequiredColumnsAndMalformedCsv) {
    TempDir dir;
    write_text(dir / "a.csv", "path,patient_id\nx.png,P\n");
    EXPECT_THROW(Manifest::load(dir / "a.csv"), InputError);
    write_text(dir / "b.csv", "image,label\nx.png,1\n");
    EXPECT_THROW(Manifest::load(dir / "b.csv"), InputError);
    write_text(dir / "c.csv", "image,patient_id\n\"x.png,P\n");
    EXPECT_THROW(Manifest::load(dir / "c.csv"), InputError);
    EXPECT_THROW(Manifest::load(dir / "missing.csv"), InputError);
}

TEST(DatasetManifest, BoxesNextToManifestOrExplicit) {
    TempDir dir;
    write_text(dir / "m.csv", "image,patient_id\na.png,P1\nb.png,P2\n");
    write_text(dir / "boxes.csv",
               "image,label,x0,y0,x1,y1\nb.png,nodule,1,2,3,4\na.png,mass,0,0,5.5,6\n"
               "b.png,nodule,\"10\",11,12,13\n");
    const Manifest m = Manifest::load(dir / "m.csv");
    EXPECT_TRUE(m.problems().empty());
    EXPECT_EQ(m.boxes_path(), dir.path() / "boxes.csv");
    ASSERT_EQ(m.record(1).boxes.size(), 2u);
    EXPECT_EQ(m.record(1).boxes[1].label, "nodule");
    EXPECT_DOUBLE_EQ(m.record(1).boxes[1].x0, 10);
    EXPECT_DOUBLE_EQ(m.record(1).boxes[1].y1, 13);
    EXPECT_EQ(m.record(1).boxes[1].line, 4u);
    ASSERT_EQ(m.record(0).boxes.size(), 1u);
    EXPECT_DOUBLE_EQ(m.record(0).boxes[0].x1, 5.5);

    write_text(dir / "other.csv", "image,label,x0,y0,x1,y1\na.png,nodule,1,1,2,2\n");
    ManifestOptions o;
    o.boxes = dir / "other.csv";
    const Manifest m2 = Manifest::load(dir / "m.csv", o);
    EXPECT_EQ(m2.record(0).boxes.size(), 1u);
    EXPECT_EQ(m2.record(1).boxes.size(), 0u);
    o.boxes = dir / "nope.csv";
    EXPECT_THROW(Manifest::load(dir / "m.csv", o), InputError);
}

// A subset manifest beside the full set's boxes.csv: boxes of the other images are ignored with
// one warning line, not problems; a malformed boxes file is a problem only for box users.
TEST(DatasetManifest, BoxesOfOtherImagesWarnAndBoxFileProblemsStayApart) {
    TempDir dir;
    write_text(dir / "m.csv", "image,patient_id\na.png,P1\n");
    write_text(dir / "boxes.csv",
               "image,label,x0,y0,x1,y1\nb.png,nodule,1,2,3,4\na.png,mass,0,0,5,6\n"
               "c.png,nodule,1,2,3,4\n");
    const Manifest m = Manifest::load(dir / "m.csv");
    EXPECT_TRUE(m.problems().empty());
    EXPECT_TRUE(m.box_problems().empty());
    EXPECT_NO_THROW(m.require_valid_boxes());
    ASSERT_EQ(m.record(0).boxes.size(), 1u);
    ASSERT_EQ(m.warnings().size(), 1u);
    const std::string w = m.warnings()[0].to_string();
    EXPECT_NE(w.find("2 boxes name images not in the manifest"), std::string::npos) << w;
    EXPECT_NE(w.find("line 2: 'b.png'"), std::string::npos) << w;
    EXPECT_EQ(validate(m, {}).size(), 1u);  // only a.png, which does not exist

    write_text(dir / "boxes.csv", "image,label,x0,y0,x1,y1\na.png,mass,0,zero,5,6\n");
    const Manifest bad = Manifest::load(dir / "m.csv");
    EXPECT_TRUE(bad.problems().empty());
    EXPECT_NO_THROW(bad.require_valid());
    ASSERT_EQ(bad.box_problems().size(), 1u);
    EXPECT_THROW(bad.require_valid_boxes(), InputError);
    ValidateOptions no_images;
    no_images.decode_images = false;
    const auto listed = validate(bad, no_images);
    EXPECT_TRUE(std::any_of(listed.begin(), listed.end(), [](const Problem& p) {
        return p.message.find("'zero' is not a finite number") != std::string::npos;
    }));
}

TEST(DatasetValidate, EveryProblemClassListedTogether) {
    TempDir dir;
    const auto expected = radprobe::test::write_bad_manifest(dir.path());
    const Manifest m = Manifest::load(dir / "manifest.csv");
    const auto problems = validate(m, {});
    std::string all;
    for (const auto& p : problems) {
        all += p.to_string() + "\n";
    }
    EXPECT_EQ(problems.size(), expected.size()) << all;
    for (const auto& e : expected) {
        const bool found = std::any_of(problems.begin(), problems.end(), [&](const Problem& p) {
            return std::filesystem::path(p.file).filename() == e.file && p.line == e.line &&
                   p.to_string().find(e.needle) != std::string::npos;
        });
        EXPECT_TRUE(found) << e.file << ":" << e.line << " '" << e.needle << "' not in:\n" << all;
    }
    ASSERT_EQ(m.warnings().size(), 1u);
    EXPECT_NE(m.warnings()[0].to_string().find("(first: line 5: 'zzz.png'); ignored"),
              std::string::npos)
        << m.warnings()[0].to_string();
    // Sorted by file, then line.
    for (std::size_t i = 1; i < problems.size(); ++i) {
        EXPECT_TRUE(
            problems[i - 1].file < problems[i].file ||
            (problems[i - 1].file == problems[i].file && problems[i - 1].line <= problems[i].line));
    }
    // The same result with one thread (per-image results are merged in order).
    ValidateOptions one;
    one.threads = 1;
    const auto again = validate(m, one);
    ASSERT_EQ(again.size(), problems.size());
    for (std::size_t i = 0; i < problems.size(); ++i) {
        EXPECT_EQ(again[i].to_string(), problems[i].to_string());
    }
}

TEST(DatasetValidate, WithoutImagesChecksExistenceOnly) {
    TempDir dir;
    radprobe::test::write_bad_manifest(dir.path());
    const Manifest m = Manifest::load(dir / "manifest.csv");
    ValidateOptions o;
    o.decode_images = false;
    const auto problems = validate(m, o);
    // Not checked without images: the unreadable image (line 5), the box outside its image, the
    // mask size, the RLE extent. Still found: everything else (9 of the 13).
    std::string all;
    for (const auto& p : problems) {
        all += p.to_string() + "\n";
    }
    EXPECT_EQ(problems.size(), 9u) << all;
    EXPECT_NE(all.find("manifest.csv:4: column 'image': image file not found"), std::string::npos)
        << all;
}

// Masks at half resolution (as several public sets ship them) are resampled to the image grid,
// counted, and not a problem; another aspect ratio is still one.
TEST(DatasetValidate, MasksAtAnotherResolutionAreResampledAndNoted) {
    TempDir dir;
    radprobe::test::write_synth_like(dir.path());
    // Image 2's heart mask (24x32, rectangle x 6..11, y 5..12) at half resolution.
    const Mask full = read_mask_png(dir / "masks/heart_2.png");
    const Mask half = resample_mask_nearest(full, 12, 16);
    write_mask_png(dir / "masks/heart_2.png", half);
    const Manifest m = Manifest::load(dir / "manifest.csv");
    std::vector<Problem> resampled;
    ValidateOptions o;
    o.resampled = &resampled;
    EXPECT_TRUE(validate(m, o).empty());
    ASSERT_EQ(resampled.size(), 1u);
    EXPECT_NE(resampled[0].to_string().find("manifest.csv:4: column 'mask_heart': mask"),
              std::string::npos)
        << resampled[0].to_string();
    EXPECT_EQ(m.resampled_masks().count, 0u);
    const auto heart = m.load_mask(2, "heart", 24, 32);
    ASSERT_TRUE(heart.has_value());
    ASSERT_EQ(heart->rows, 24);
    ASSERT_EQ(heart->cols, 32);
    for (int r = 0; r < 24; ++r) {  // an exact factor 2: each mask pixel covers 2 x 2 pixels
        for (int c = 0; c < 32; ++c) {
            ASSERT_EQ(heart->at(r, c), half.at(r / 2, c / 2)) << r << "," << c;
        }
    }
    EXPECT_EQ(m.resampled_masks().count, 1u);
    EXPECT_EQ(m.resampled_masks().example, "manifest.csv:4: mask_heart 16x12 for a 32x24 image");
    // Another aspect ratio: a problem for validate and an error for load_mask, naming both sizes.
    write_mask_png(dir / "masks/heart_2.png", Mask(12, 12));
    const Manifest bad = Manifest::load(dir / "manifest.csv");
    const auto problems = validate(bad, {});
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_NE(problems[0].to_string().find("is 12x12 (width x height), image is 32x24: another "
                                           "aspect ratio"),
              std::string::npos)
        << problems[0].to_string();
    try {
        (void)bad.load_mask(2, "heart", 24, 32);
        ADD_FAILURE() << "another aspect ratio was accepted";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("another aspect ratio"), std::string::npos)
            << e.what();
    }
}

TEST(DatasetValidate, SynthLikeManifestIsClean) {
    TempDir dir;
    radprobe::test::write_synth_like(dir.path());
    const Manifest m = Manifest::load(dir / "manifest.csv");
    const auto problems = validate(m, {});
    for (const auto& p : problems) {
        ADD_FAILURE() << p.to_string();
    }
    EXPECT_EQ(m.label_names(),
              (std::vector<std::string>{"cardiomegaly", "pneumothorax", "nodule", "chest_tube"}));
    EXPECT_EQ(m.attribute_names(), (std::vector<std::string>{"ctr"}));
    EXPECT_EQ(m.mask_names(),
              (std::vector<std::string>{"heart", "lung_left", "lung_right", "pneumothorax"}));
    const auto heart = m.load_mask(2, "heart", 24, 32);
    ASSERT_TRUE(heart.has_value());
    EXPECT_EQ(heart->count(), 6u * 8u);
    EXPECT_EQ(heart->at(5, 6), 1);  // rectangle x 6..11, y 5..12 for image 2
    EXPECT_EQ(heart->at(5, 5), 0);
    EXPECT_THROW(m.load_mask(2, "heart", 32, 24), InputError);  // transposed size
    EXPECT_EQ(m.record(3).boxes.size(), 1u);
    const std::string summary = summary_text(m);
    EXPECT_NE(summary.find("images: 6  patients: 3"), std::string::npos) << summary;
    EXPECT_NE(summary.find("cardiomegaly: train 1/2 (0.500) val 1/2 (0.500) test 1/2 (0.500)"),
              std::string::npos)
        << summary;
}

}  // namespace
