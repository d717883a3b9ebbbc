// `radprobe manifest --format nih|chexpert|siim` on tiny synthetic copies of each public set,
// written here from the set's documented schema; every result must validate.

#include <gtest/gtest.h>

#include <map>
#include <stdexcept>

#include "dataset_fixtures.hpp"
#include "radprobe/core/csv.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "test_support.hpp"

namespace {

using radprobe::CsvTable;
using radprobe::test::CliResult;
using radprobe::test::q;
using radprobe::test::run_cli;
using radprobe::test::TempDir;
using radprobe::test::write_png;
using radprobe::test::write_text;

/// Row of `t` whose column `col` is `value`.
const std::vector<std::string>& row_where(const CsvTable& t, const std::string& col,
                                          const std::string& value) {
    const std::size_t c = t.column(col);
    for (const auto& row : t.rows()) {
        if (row[c] == value) {
            return row;
        }
    }
    throw std::runtime_error("no row with " + col + " = " + value);
}

std::string cell(const CsvTable& t, const std::vector<std::string>& row, const std::string& col) {
    return row[t.column(col)];
}

// NIH ChestX-ray14: Data_Entry_2017.csv with the 2017 header (its trailing comma included),
// BBox_List_2017.csv with its odd header, the official split lists.
void write_nih(const std::filesystem::path& dir) {
    write_text(dir / "Data_Entry_2017.csv",
               "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
               "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],\n"
               "00000001_000.png,Cardiomegaly|Effusion,0,1,58,M,PA,2682,2749,0.143,0.143,\n"
               "00000001_001.png,No Finding,1,1,058Y,M,AP,2894,2729,0.143,0.143,\n"
               "00000002_000.png,Infiltration|Mass,0,2,81,F,PA,2500,2048,0.168,0.168,\n"
               "00000003_000.png,Nodule,0,3,74,F,PA,2500,2048,0.168,0.168,\n"
               "00000003_001.png,Pleural_Thickening,1,3,75,F,AP,2500,2048,0.168,0.168,\n");
    write_text(dir / "BBox_List_2017.csv",
               "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
               "00000003_000.png,Nodule,2.5,3,10,8,,,\n"
               "00000002_000.png,Infiltrate,1,1,5,5,,,\n");
    write_text(dir / "train_val_list.txt",
               "00000001_000.png\n00000001_001.png\n00000002_000.png\n");
    write_text(dir / "test_list.txt", "00000003_000.png\n00000003_001.png\n");
    for (const char* name :
         {"00000001_000", "00000001_001", "00000002_000", "00000003_000", "00000003_001"}) {
        write_png(dir / "images" / (std::string(name) + ".png"), 24, 32);
    }
}

TEST(DatasetPublicNih, LabelsAttributesBoxesSplitsAndValidates) {
    TempDir dir;
    write_nih(dir.path());
    const auto manifest = dir / "manifest.csv";
    const CliResult r =
        run_cli("manifest --from " + q(dir / "Data_Entry_2017.csv") +
                " --format nih --train-list " + q(dir / "train_val_list.txt") + " --test-list " +
                q(dir / "test_list.txt") + " --out " + q(manifest));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("5 images, 3 patients, 14 labels"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("2 boxes"), std::string::npos) << r.out;

    const CsvTable t = CsvTable::read(manifest);
    EXPECT_EQ(radprobe::csv_line(t.header()),
              "image,patient_id,split,atelectasis,cardiomegaly,consolidation,edema,effusion,"
              "emphysema,fibrosis,hernia,infiltration,mass,nodule,pleural_thickening,pneumonia,"
              "pneumothorax,sex,age,view");
    const auto& a = row_where(t, "image", "images/00000001_000.png");
    EXPECT_EQ(cell(t, a, "patient_id"), "00000001");
    EXPECT_EQ(cell(t, a, "split"), "train");
    EXPECT_EQ(cell(t, a, "cardiomegaly"), "1");
    EXPECT_EQ(cell(t, a, "effusion"), "1");
    EXPECT_EQ(cell(t, a, "nodule"), "0");
    EXPECT_EQ(cell(t, a, "sex"), "M");
    EXPECT_EQ(cell(t, a, "view"), "PA");
    const auto& none = row_where(t, "image", "images/00000001_001.png");
    for (std::size_t c = 3; c < 17; ++c) {
        EXPECT_EQ(none[c], "0") << t.header()[c];  // No Finding → all 0
    }
    EXPECT_EQ(cell(t, none, "age"), "58");  // the older "058Y" spelling
    const auto& pt = row_where(t, "image", "images/00000003_001.png");
    EXPECT_EQ(cell(t, pt, "pleural_thickening"), "1");
    EXPECT_EQ(cell(t, pt, "split"), "test");
    EXPECT_EQ(cell(t, pt, "patient_id"), "00000003");

    EXPECT_EQ(radprobe::read_file_text(dir / "boxes.csv"),
              "image,label,x0,y0,x1,y1\n"
              "images/00000003_000.png,nodule,2.5,3,12.5,11\n"
              "images/00000002_000.png,infiltration,1,1,6,6\n");

    const CliResult v = run_cli("validate " + q(manifest));
    EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
    EXPECT_NE(v.out.find("no problems found"), std::string::npos) << v.out;
    EXPECT_NE(v.out.find("boxes: 2 on 2 images"), std::string::npos) << v.out;
}

TEST(DatasetPublicNih, BadInputNamesFileLineAndColumnAndWritesNothing) {
    TempDir dir;
    write_nih(dir.path());
    write_text(dir / "Data_Entry_2017.csv",
               "Image Index,Finding Labels,Patient ID\n"
               "00000001_000.png,Cardiomegaly,1\n"
               "00000001_001.png,Cardiomegally|Effusion,1\n");
    const std::string base = "manifest --from " + q(dir / "Data_Entry_2017.csv") +
                             " --format nih --out " + q(dir / "out/manifest.csv");
    CliResult r = run_cli(base);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("Data_Entry_2017.csv:3: column 'Finding Labels': unknown finding "
                         "'Cardiomegally'"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(radprobe::test::count_lines(r.err), 1) << r.err;

    write_text(dir / "Data_Entry_2017.csv",
               "Image Index,Finding Labels,Patient ID\n00000003_000.png,Nodule,3\n");
    write_text(
        dir / "BBox_List_2017.csv",
        "Image Index,Finding Label,Bbox [x,y,w,h],,,\n00000003_000.png,Nodule,1,2,wide,4,,,\n");
    r = run_cli(base);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("BBox_List_2017.csv:2: column 'w': 'wide' is not a positive number"),
              std::string::npos)
        << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir / "out/manifest.csv"));
    EXPECT_FALSE(std::filesystem::exists(dir / "out/boxes.csv"));

    // Options of another format, and the generic column options, are refused.
    r = run_cli(base + " --frontal-only");
    EXPECT_EQ(r.exit_code, 2) << r.err;
    r = run_cli(base + " --image-col path");
    EXPECT_EQ(r.exit_code, 2) << r.err;
    r = run_cli("manifest --from " + q(dir / "Data_Entry_2017.csv") + " --format padchest --out " +
                q(dir / "m.csv"));
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("expected nih, chexpert, siim, chestx-det10 or jsrt"), std::string::npos)
        << r.err;
}

// CheXpert: CheXpert-v1.0-small/train.csv with paths starting with the folder's own name.
void write_chexpert(const std::filesystem::path& dir) {
    const auto root = dir / "CheXpert-v1.0-small";
    std::string csv =
        "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,"
        "Lung Opacity,Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,"
        "Pleural Effusion,Pleural Other,Fracture,Support Devices\n";
    const char* rows[] = {
        "train/patient00001/study1/"
        "view1_frontal.jpg,Female,68,Frontal,AP,,,1.0,,,-1.0,,,,0.0,,,,1.0",
        "train/patient00001/study1/view2_lateral.jpg,Female,68,Lateral,,,,1.0,,,-1.0,,,,0.0,,,,",
        "train/patient00002/study2/view1_frontal.jpg,Male,87,Frontal,PA,1.0,,0.0,,,0.0,,,,0.0,,,,",
        "train/patient00003/study1/view1_frontal.jpg,Male,41,Frontal,AP,,,-1.0,,,1.0,,,,,,,,",
    };
    for (const char* row : rows) {
        csv += std::string("CheXpert-v1.0-small/") + row + "\n";
        const std::string path = row;
        write_png(root / path.substr(0, path.find(',')), 24, 32);
    }
    write_text(root / "train.csv", csv);
}

TEST(DatasetPublicChexpert, UncertainPolicyIdsFrontalFilterAndValidates) {
    TempDir dir;
    write_chexpert(dir.path());
    const auto manifest = dir / "manifest.csv";
    const std::string base = "manifest --from " + q(dir / "CheXpert-v1.0-small/train.csv") +
                             " --format chexpert --out " + q(manifest);
    const std::string first = "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg";
    std::map<std::string, std::string> edema_of = {{"", ""},
                                                   {" --uncertain ignore", ""},
                                                   {" --uncertain zeros", "0"},
                                                   {" --uncertain ones", "1"}};
    for (const auto& [flag, edema] : edema_of) {
        const CliResult r = run_cli(base + flag);
        ASSERT_EQ(r.exit_code, 0) << flag << r.err;
        EXPECT_NE(r.out.find("4 images, 3 patients, 14 labels"), std::string::npos) << r.out;
        const CsvTable t = CsvTable::read(manifest);
        const auto& a = row_where(t, "image", first);
        EXPECT_EQ(cell(t, a, "edema"), edema) << flag;
        EXPECT_EQ(cell(t, a, "cardiomegaly"), "1") << flag;
        EXPECT_EQ(cell(t, a, "pneumothorax"), "0") << flag;
        EXPECT_EQ(cell(t, a, "no_finding"), "") << flag;  // blank → unknown
        EXPECT_EQ(cell(t, a, "patient_id"), "patient00001");
        EXPECT_EQ(cell(t, a, "study_id"), "patient00001/study1");
        EXPECT_EQ(cell(t, a, "sex"), "Female");
        EXPECT_EQ(cell(t, a, "view"), "Frontal");
    }
    CliResult r = run_cli(base + " --frontal-only --uncertain zeros");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("3 images, 3 patients"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("skipped 1 rows: lateral views"), std::string::npos) << r.out;
    const CsvTable t = CsvTable::read(manifest);
    for (const auto& row : t.rows()) {
        EXPECT_EQ(cell(t, row, "view"), "Frontal");
    }
    EXPECT_EQ(cell(t, row_where(t, "patient_id", "patient00003"), "cardiomegaly"), "0");
    r = run_cli("validate " + q(manifest));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("no problems found"), std::string::npos) << r.out;

    // A value outside the schema names the file, line and column.
    std::string csv = radprobe::read_file_text(dir / "CheXpert-v1.0-small/train.csv");
    csv.replace(csv.find("-1.0"), 4, "-2");
    write_text(dir / "CheXpert-v1.0-small/train.csv", csv);
    r = run_cli(base);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("train.csv:2: column 'Edema': '-2' is not 1, 0, -1"), std::string::npos)
        << r.err;
    r = run_cli(base + " --uncertain maybe");
    EXPECT_EQ(r.exit_code, 2);
}

// MIMIC-CXR-JPG: the per-study CheXpert labels joined with the per-image metadata and split.
TEST(DatasetPublicMimic, JoinsStudiesToImagesWithIdsSplitAndFrontalFilter) {
    TempDir dir;
    const std::string labels =
        "No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,Lung Lesion,Edema,"
        "Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,"
        "Fracture,Support Devices";
    write_text(dir / "mimic-cxr-2.0.0-chexpert.csv", "subject_id,study_id," + labels +
                                                         "\n"
                                                         "10000032,50414267,,,1.0,,,-1.0,,,,,,,,\n"
                                                         "10000764,57375967,1.0,,0.0,,,,,,,,,,,\n");
    write_text(dir / "mimic-cxr-2.0.0-metadata.csv",
               "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,"
               "Columns\n"
               "aaa-1,10000032,50414267,CHEST (PA AND LAT),PA,3056,2544\n"
               "aaa-2,10000032,50414267,CHEST (PA AND LAT),LATERAL,3056,2544\n"
               "bbb-1,10000764,57375967,CHEST (PORTABLE AP),AP,2705,2539\n"
               "ccc-1,10000898,50771383,CHEST (PA AND LAT),PA,2544,3056\n");
    write_text(dir / "mimic-cxr-2.0.0-split.csv",
               "dicom_id,study_id,subject_id,split\n"
               "aaa-1,50414267,10000032,train\naaa-2,50414267,10000032,train\n"
               "bbb-1,57375967,10000764,validate\nccc-1,50771383,10000898,test\n");
    for (const char* p : {"p10/p10000032/s50414267/aaa-1.jpg", "p10/p10000032/s50414267/aaa-2.jpg",
                          "p10/p10000764/s57375967/bbb-1.jpg"}) {
        write_png(dir / "files" / p, 24, 32);
    }
    const auto manifest = dir / "manifest.csv";
    const std::string base = "manifest --from " + q(dir / "mimic-cxr-2.0.0-chexpert.csv") +
                             " --format chexpert --out " + q(manifest);
    CliResult r = run_cli(base + " --uncertain ones");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("3 images, 2 patients, 14 labels"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("skipped 1 rows: 1 images of studies without labels"), std::string::npos)
        << r.out;
    CsvTable t = CsvTable::read(manifest);
    const auto& a = row_where(t, "image", "files/p10/p10000032/s50414267/aaa-1.jpg");
    EXPECT_EQ(cell(t, a, "patient_id"), "10000032");
    EXPECT_EQ(cell(t, a, "study_id"), "50414267");
    EXPECT_EQ(cell(t, a, "split"), "train");
    EXPECT_EQ(cell(t, a, "cardiomegaly"), "1");
    EXPECT_EQ(cell(t, a, "edema"), "1");  // uncertain → ones
    EXPECT_EQ(cell(t, a, "view"), "PA");
    const auto& b = row_where(t, "image", "files/p10/p10000764/s57375967/bbb-1.jpg");
    EXPECT_EQ(cell(t, b, "split"), "val");
    EXPECT_EQ(cell(t, b, "no_finding"), "1");
    r = run_cli("validate " + q(manifest));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("no problems found"), std::string::npos) << r.out;

    r = run_cli(base + " --frontal-only");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("2 images, 2 patients"), std::string::npos) << r.out;
    t = CsvTable::read(manifest);
    EXPECT_EQ(cell(t, row_where(t, "patient_id", "10000032"), "edema"), "");  // ignore
    for (const auto& row : t.rows()) {
        EXPECT_NE(cell(t, row, "view"), "LATERAL");
    }

    write_text(dir / "mimic-cxr-2.0.0-split.csv",
               "dicom_id,study_id,subject_id,split\naaa-1,50414267,10000032,dev\n");
    r = run_cli(base);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("mimic-cxr-2.0.0-split.csv:2: column 'split': 'dev'"), std::string::npos)
        << r.err;
}

// SIIM-ACR: train-rle.csv with the real header's leading space, several masks of one image,
// an image without a file.
TEST(DatasetPublicSiim, MergesMasksSkipsMissingImagesAndValidates) {
    TempDir dir;
    write_png(dir / "dicom-images-train/1.2.3/1.2.4/img.a.png", 16, 16);
    write_png(dir / "dicom-images-train/1.2.5/1.2.6/img.b.png", 16, 16);
    write_text(dir / "train-rle.csv",
               "ImageId, EncodedPixels\n"
               "img.a, -1\n"
               "img.b, 5 3 10 2\n"
               "img.c, 1 1\n"
               "img.b, 2 2\n");
    const auto manifest = dir / "manifest.csv";
    CliResult r = run_cli("manifest --from " + q(dir / "train-rle.csv") + " --format siim --out " +
                          q(manifest));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("2 images, 2 patients, 1 labels"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("skipped 1 rows: images without a file"), std::string::npos) << r.out;
    const CsvTable t = CsvTable::read(manifest);
    EXPECT_EQ(radprobe::csv_line(t.header()), "image,patient_id,pneumothorax,mask_pneumothorax");
    const auto& a = row_where(t, "patient_id", "img.a");
    EXPECT_EQ(cell(t, a, "image"), "dicom-images-train/1.2.3/1.2.4/img.a.png");
    EXPECT_EQ(cell(t, a, "pneumothorax"), "0");
    EXPECT_EQ(cell(t, a, "mask_pneumothorax"), "-1");
    const auto& b = row_where(t, "patient_id", "img.b");
    EXPECT_EQ(cell(t, b, "pneumothorax"), "1");
    // Pixels 5-7 and 18-19 (relative starts) united with 2-3.
    EXPECT_EQ(cell(t, b, "mask_pneumothorax"), "2 2 1 3 10 2");
    const auto mask = radprobe::dataset::rle_decode(
        cell(t, b, "mask_pneumothorax"), 16, 16, radprobe::dataset::RleConvention::kSiimRelative);
    EXPECT_EQ(mask.count(), 7u);
    r = run_cli("validate " + q(manifest));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("no problems found"), std::string::npos) << r.out;

    write_text(dir / "train-rle.csv", "ImageId, EncodedPixels\nimg.a, -1\nimg.a, 4 2\n");
    r = run_cli("manifest --from " + q(dir / "train-rle.csv") + " --format siim --out " +
                q(dir / "m2.csv"));
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("train-rle.csv:3: column 'EncodedPixels': image 'img.a' has both -1"),
              std::string::npos)
        << r.err;
    write_text(dir / "train-rle.csv", "ImageId, EncodedPixels\nimg.a, 4 2 7\n");
    r = run_cli("manifest --from " + q(dir / "train-rle.csv") + " --format siim --out " +
                q(dir / "m2.csv"));
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("train-rle.csv:2: column 'EncodedPixels'"), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir / "m2.csv"));
}

// ChestX-Det10: the JSON list with one box per sym.
TEST(DatasetPublicDet10, LabelsAndBoxesFromJsonAndValidates) {
    TempDir dir;
    write_text(dir / "train.json",
               R"([{"file_name": "36199.png", "syms": [], "boxes": []},
 {"file_name": "36204.png", "syms": ["Nodule", "Effusion"],
  "boxes": [[2, 3.5, 10, 12], [20, 1, 31, 23]]},
 {"file_name": "36211.png", "syms": ["Nodule"], "boxes": [[0, 0, 4, 4]]}])");
    for (const char* name : {"36199.png", "36204.png", "36211.png"}) {
        write_png(dir / "train_data" / name, 24, 32);
    }
    const auto manifest = dir / "manifest.csv";
    const std::string base =
        "manifest --from " + q(dir / "train.json") + " --format chestx-det10 --out " + q(manifest);
    CliResult r = run_cli(base);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("3 images, 3 patients, 10 labels"), std::string::npos) << r.out;
    const CsvTable t = CsvTable::read(manifest);
    EXPECT_EQ(radprobe::csv_line(t.header()),
              "image,patient_id,atelectasis,calcification,consolidation,effusion,emphysema,"
              "fibrosis,fracture,mass,nodule,pneumothorax");
    EXPECT_EQ(radprobe::csv_line(t.rows()[1]), "train_data/36204.png,36204,0,0,0,1,0,0,0,0,1,0");
    EXPECT_EQ(radprobe::csv_line(t.rows()[0]), "train_data/36199.png,36199,0,0,0,0,0,0,0,0,0,0");
    EXPECT_EQ(radprobe::read_file_text(dir / "boxes.csv"),
              "image,label,x0,y0,x1,y1\n"
              "train_data/36204.png,nodule,2,3.5,10,12\n"
              "train_data/36204.png,effusion,20,1,31,23\n"
              "train_data/36211.png,nodule,0,0,4,4\n");
    r = run_cli("validate " + q(manifest));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("boxes: 3 on 2 images"), std::string::npos) << r.out;

    write_text(dir / "train.json",
               R"([{"file_name": "36199.png", "syms": ["Nodule"], "boxes": [[5, 3, 2, 9]]}])");
    r = run_cli(base);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("train.json: entry 1 (36199.png): field 'boxes' item 1: [5,3,2,9]"),
              std::string::npos)
        << r.err;
    write_text(dir / "train.json",
               R"([{"file_name": "36199.png", "syms": ["Nodules"], "boxes": [[1, 1, 2, 2]]}])");
    r = run_cli(base);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("field 'syms' item 1: \"Nodules\" is not one of"), std::string::npos)
        << r.err;
}

TEST(DatasetPublicSets, HelpDocumentsEachFormat) {
    const CliResult m = run_cli("manifest --help");
    for (const char* s :
         {"--format", "Data_Entry_2017.csv", "BBox_List_2017.csv", "--uncertain ignore|zeros|ones",
          "--frontal-only", "train-rle.csv", "chestx-det10", "mimic-cxr-2.0.0-metadata.csv"}) {
        EXPECT_NE(m.out.find(s), std::string::npos) << s;
    }
}

}  // namespace
