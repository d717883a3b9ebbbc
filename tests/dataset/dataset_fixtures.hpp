#pragma once
// Small fixtures for the dataset tests: text files, PNG images and masks, and a phantom-like
// manifest with the columns `radprobe synth` writes.

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace radprobe::test {

inline void write_text(const std::filesystem::path& path, const std::string& text) {
    std::filesystem::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary);
    out << text;
}

/// A grey 8-bit PNG of rows × cols (a gradient, so it is a real image).
inline void write_png(const std::filesystem::path& path, int rows, int cols) {
    std::filesystem::create_directories(path.parent_path());
    cv::Mat img(rows, cols, CV_8U);
    for (int r = 0; r < rows; ++r) {
        for (int c = 0; c < cols; ++c) {
            img.at<unsigned char>(r, c) = static_cast<unsigned char>((r * 7 + c * 3) % 256);
        }
    }
    cv::imwrite(path.string(), img);
}

/// Writes a manifest shaped like `radprobe synth` output into dir: 6 images of 24×32 (rows ×
/// cols), 3 patients, masks as PNGs and one as RLE, boxes.csv.
inline void write_synth_like(const std::filesystem::path& dir) {
    std::string csv =
        "image,patient_id,split,cardiomegaly,pneumothorax,nodule,chest_tube,ctr,mask_heart,"
        "mask_lung_left,mask_lung_right,mask_pneumothorax\n";
    const char* splits[] = {"train", "train", "val", "val", "test", "test"};
    std::filesystem::create_directories(dir / "masks");
    for (int i = 0; i < 6; ++i) {
        const std::string id = "images/img_" + std::to_string(i) + ".png";
        write_png(dir / id, 24, 32);
        for (const char* m : {"heart", "lung_left", "lung_right"}) {
            cv::Mat mask = cv::Mat::zeros(24, 32, CV_8U);
            mask(cv::Rect(4 + i, 5, 6, 8)).setTo(255);
            cv::imwrite(
                (dir / ("masks/" + std::string(m) + "_" + std::to_string(i) + ".png")).string(),
                mask);
        }
        const std::string ptx = i % 2 ? "\"30 4 20 4\"" : "-1";
        csv += id + ",P" + std::to_string(i / 2) + "," + splits[i] + "," + std::to_string(i % 2) +
               "," + std::to_string((i + 1) % 2) + "," + std::to_string(i / 3) + "," +
               std::to_string(i % 2) + ",0." + std::to_string(40 + i) + ",masks/heart_" +
               std::to_string(i) + ".png,masks/lung_left_" + std::to_string(i) +
               ".png,masks/lung_right_" + std::to_string(i) + ".png," + ptx + "\n";
    }
    write_text(dir / "manifest.csv", csv);
    write_text(dir / "boxes.csv",
               "image,label,x0,y0,x1,y1\n"
               "images/img_3.png,nodule,2.5,3,10,9.5\n"
               "images/img_4.png,nodule,0,0,32,24\n"
               "images/img_5.png,nodule,20,10,24,14\n");
}

/// One expected problem of the bad manifest: file name, line, a substring of the message.
struct ExpectedProblem {
    std::string file;
    std::size_t line;
    std::string needle;
};

/// A manifest with one instance of every problem class `radprobe validate` detects, in dir
/// (manifest.csv + boxes.csv + images of 16 × 20, rows × cols). Returns the problems expected.
inline std::vector<ExpectedProblem> write_bad_manifest(const std::filesystem::path& dir) {
    for (const char* name : {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"}) {
        write_png(dir / (std::string(name) + ".png"), 16, 20);
    }
    write_text(dir / "notimage.png", "this is not an image\n");
    std::filesystem::create_directories(dir / "masks");
    cv::imwrite((dir / "masks/a.png").string(), cv::Mat::zeros(16, 20, CV_8U));
    cv::imwrite((dir / "masks/small.png").string(), cv::Mat::zeros(8, 8, CV_8U));
    write_text(dir / "manifest.csv",
               "image,patient_id,split,cardiomegaly,ctr,mask_heart,mask_ptx\n"  // 1
               "a.png,P1,train,0,0.41,masks/a.png,-1\n"                         // 2 ok
               "b.png,P1,test,1,0.55,,\n"                                       // 3 leakage
               "missing.png,P2,train,0,0.40,,\n"                                // 4 missing
               "notimage.png,P3,train,1,0.52,,\n"                               // 5 unreadable
               "a.png,P4,val,0,0.3,,\n"                                         // 6 duplicate
               "c.png,,val,2,0.5,,\n"                   // 7 empty patient + bad label
               "d.png,P5,training,0,0.45,,\n"           // 8 invalid split
               "e.png,P6,val,,0.44,masks/small.png,\n"  // 9 mask size
               "f.png,P7,val,0,0.43,,\"100 400\"\n"     // 10 RLE beyond 16x20
               "g.png,P8,test,0,0.4,,\"5 2 7\"\n"       // 11 malformed RLE
               "h.png,P9,test,1,0.6,,\n"
               "i.png,P10,test,0,0.4,,\n"
               "j.png,P11,test,1,0.6,,\n"
               "k.png,P12,test,0,0.4,,\n");
    write_text(dir / "boxes.csv",
               "image,label,x0,y0,x1,y1\n"   // 1
               "a.png,nodule,1,1,5,5\n"      // 2 ok
               "a.png,nodule,10,2,4,8\n"     // 3 inverted
               "b.png,nodule,15,10,25,14\n"  // 4 outside (cols = 20)
               "zzz.png,nodule,1,1,2,2\n"    // 5 unknown image: a warning, not a problem
               "b.png,nodule,1,abc,2,3\n");  // 6 not a number
    return {
        {"boxes.csv", 3, "inverted"},
        {"boxes.csv", 4, "outside image 'b.png'"},
        {"boxes.csv", 6, "column 'y0': 'abc' is not a finite number"},
        {"manifest.csv", 3, "patient 'P1' is in 2 splits"},
        {"manifest.csv", 4, "cannot read image"},
        {"manifest.csv", 5, "cannot read image"},
        {"manifest.csv", 6, "duplicate image id 'a.png' (first at line 2)"},
        {"manifest.csv", 7, "column 'patient_id': empty patient id"},
        {"manifest.csv", 7, "column 'cardiomegaly': label value '2'"},
        {"manifest.csv", 8, "column 'split': invalid split 'training'"},
        {"manifest.csv", 9, "column 'mask_heart': mask"},
        {"manifest.csv", 10, "column 'mask_ptx': RLE runs reach pixel 500, beyond rows x cols"},
        {"manifest.csv", 11, "column 'mask_ptx': RLE has 3 numbers"},
    };
}

}  // namespace radprobe::test
