// Writes the seed corpus of the image fuzz target with OpenCV (the library radprobe decodes
// with): tiny PNG (8/16-bit grey, RGB, RGBA), JPEG (grey, colour) and TIFF (8/16-bit grey, LZW,
// float, colour) files. Built and run by fuzz/image/make_seeds.sh.
//   make_seeds OUT_DIR

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <string>
#include <vector>

int main(int argc, char** argv) {
    if (argc != 2) {
        return 2;
    }
    const std::string out = argv[1];
    cv::Mat grey(12, 10, CV_8UC1);
    for (int r = 0; r < grey.rows; ++r) {
        for (int c = 0; c < grey.cols; ++c) {
            grey.at<unsigned char>(r, c) = static_cast<unsigned char>(r * 20 + c * 3);
        }
    }
    cv::Mat grey16, rgb, rgba, grey32f;
    grey.convertTo(grey16, CV_16U, 257.0);
    grey.convertTo(grey32f, CV_32F, 1.0 / 100.0);
    cv::cvtColor(grey, rgb, cv::COLOR_GRAY2BGR);
    cv::cvtColor(grey, rgba, cv::COLOR_GRAY2BGRA);
    const std::vector<int> lzw = {cv::IMWRITE_TIFF_COMPRESSION, 5};
    const std::vector<int> none = {cv::IMWRITE_TIFF_COMPRESSION, 1};
    const std::vector<int> q70 = {cv::IMWRITE_JPEG_QUALITY, 70};
    bool ok = true;
    ok &= cv::imwrite(out + "/grey8.png", grey);
    ok &= cv::imwrite(out + "/grey16.png", grey16);
    ok &= cv::imwrite(out + "/rgb.png", rgb);
    ok &= cv::imwrite(out + "/rgba.png", rgba);
    ok &= cv::imwrite(out + "/grey.jpg", grey, q70);
    ok &= cv::imwrite(out + "/rgb.jpg", rgb, q70);
    ok &= cv::imwrite(out + "/grey8.tif", grey, none);
    ok &= cv::imwrite(out + "/grey16_lzw.tif", grey16, lzw);
    ok &= cv::imwrite(out + "/float.tif", grey32f, none);
    ok &= cv::imwrite(out + "/rgb_lzw.tif", rgb, lzw);
    return ok ? 0 : 1;
}
