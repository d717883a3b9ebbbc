// DICOM output through GDCM's ImageWriter: a DX "for presentation" image, MONOCHROME2, 16 bits
// stored, explicit VR little endian, with every UID derived from the seed so that a run is
// byte-reproducible.

#include <gdcmAttribute.h>
#include <gdcmDataElement.h>
#include <gdcmDataSet.h>
#include <gdcmFile.h>
#include <gdcmImage.h>
#include <gdcmImageWriter.h>
#include <gdcmTrace.h>
#include <gdcmTransferSyntax.h>

#include <cstdio>
#include <mutex>
#include <sstream>

#include "radprobe/core/error.hpp"
#include "radprobe/synth/phantom.hpp"
#include "raster.hpp"

namespace radprobe::synth {

namespace {

enum UidKind : std::uint64_t { kUidStudy = 11, kUidSeries = 12, kUidInstance = 13 };

// DX Image Storage - For Presentation.
constexpr const char* kDxForPresentation = "1.2.840.10008.5.1.4.1.1.1.1";

void put(gdcm::DataSet& ds, std::uint16_t group, std::uint16_t element, gdcm::VR vr,
         std::string value) {
    if (value.size() % 2 != 0) {
        value.push_back(vr == gdcm::VR::UI ? '\0' : ' ');
    }
    gdcm::DataElement de(gdcm::Tag(group, element));
    de.SetVR(vr);
    de.SetByteValue(value.data(), static_cast<std::uint32_t>(value.size()));
    ds.Replace(de);
}

std::string decimal(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.10g", v);
    return buf;
}

}  // namespace

std::string derived_uid(std::uint64_t seed, std::uint64_t kind, std::uint64_t index) {
    // 128 bits from two mixed words, printed in decimal under the UUID-derived root 2.25
    // (PS3.5 B.2); at most 39 digits, so the UID stays within 64 characters.
    const std::uint64_t base = detail::mix_seed(detail::mix_seed(seed, kind), index);
    std::uint32_t limbs[4] = {static_cast<std::uint32_t>(base >> 32),
                              static_cast<std::uint32_t>(base),
                              static_cast<std::uint32_t>(detail::mix_seed(base, 1) >> 32),
                              static_cast<std::uint32_t>(detail::mix_seed(base, 2))};
    limbs[0] &= 0x7FFFFFFFu;  // keep it clearly below 2^127
    std::string digits;
    bool nonzero = true;
    while (nonzero) {
        std::uint64_t rem = 0;
        nonzero = false;
        for (auto& limb : limbs) {
            const std::uint64_t cur = (rem << 32) | limb;
            limb = static_cast<std::uint32_t>(cur / 10);
            rem = cur % 10;
            nonzero = nonzero || limb != 0;
        }
        digits.insert(digits.begin(), static_cast<char>('0' + rem));
    }
    return "2.25." + digits;
}

std::string dicom_bytes(const PhantomCase& pc, const std::vector<std::uint16_t>& stored,
                        std::uint64_t seed) {
    static std::once_flag quiet;
    std::call_once(quiet, [] {
        gdcm::Trace::SetDebug(false);
        gdcm::Trace::SetWarning(false);
        gdcm::Trace::SetError(false);
    });
    const auto size = static_cast<unsigned int>(pc.size);
    RADPROBE_ASSERT(stored.size() == static_cast<std::size_t>(size) * size, "pixel count");

    gdcm::ImageWriter writer;
    gdcm::Image& image = writer.GetImage();
    image.SetNumberOfDimensions(2);
    image.SetDimension(0, size);
    image.SetDimension(1, size);
    image.SetPixelFormat(gdcm::PixelFormat(gdcm::PixelFormat::UINT16));
    image.SetPhotometricInterpretation(gdcm::PhotometricInterpretation::MONOCHROME2);
    image.SetTransferSyntax(gdcm::TransferSyntax::ExplicitVRLittleEndian);
    const double spacing = kFieldOfViewMm / pc.size;
    image.SetSpacing(0, spacing);
    image.SetSpacing(1, spacing);
    gdcm::DataElement pixels(gdcm::Tag(0x7fe0, 0x0010));
    pixels.SetByteValue(reinterpret_cast<const char*>(stored.data()),
                        static_cast<std::uint32_t>(stored.size() * sizeof(std::uint16_t)));
    image.SetDataElement(pixels);

    gdcm::DataSet& ds = writer.GetFile().GetDataSet();
    const std::string sop_uid = derived_uid(seed, kUidInstance, pc.index);
    put(ds, 0x0008, 0x0008, gdcm::VR::CS, "DERIVED\\PRIMARY");
    put(ds, 0x0008, 0x0016, gdcm::VR::UI, kDxForPresentation);
    put(ds, 0x0008, 0x0018, gdcm::VR::UI, sop_uid);
    put(ds, 0x0008, 0x0020, gdcm::VR::DA, "20000101");
    put(ds, 0x0008, 0x0030, gdcm::VR::TM, "000000");
    put(ds, 0x0008, 0x0050, gdcm::VR::SH, pc.image_id.substr(0, 16));
    put(ds, 0x0008, 0x0060, gdcm::VR::CS, "DX");
    put(ds, 0x0008, 0x0068, gdcm::VR::CS, "FOR PRESENTATION");
    put(ds, 0x0008, 0x0070, gdcm::VR::LO, "radprobe synth");
    put(ds, 0x0008, 0x103e, gdcm::VR::LO, "radprobe phantom");
    put(ds, 0x0010, 0x0010, gdcm::VR::PN, "PHANTOM^" + pc.patient_id);
    put(ds, 0x0010, 0x0020, gdcm::VR::LO, pc.patient_id);
    put(ds, 0x0018, 0x0015, gdcm::VR::CS, "CHEST");
    put(ds, 0x0018, 0x1164, gdcm::VR::DS, decimal(spacing) + "\\" + decimal(spacing));
    put(ds, 0x0018, 0x5101, gdcm::VR::CS, "PA");
    put(ds, 0x0020, 0x000d, gdcm::VR::UI, derived_uid(seed, kUidStudy, pc.index));
    put(ds, 0x0020, 0x000e, gdcm::VR::UI, derived_uid(seed, kUidSeries, pc.index));
    put(ds, 0x0020, 0x0010, gdcm::VR::SH, "1");
    put(ds, 0x0020, 0x0011, gdcm::VR::IS, "1");
    put(ds, 0x0020, 0x0013, gdcm::VR::IS, "1");
    put(ds, 0x0020, 0x0020, gdcm::VR::CS, "L\\F");
    put(ds, 0x0028, 0x0030, gdcm::VR::DS, decimal(spacing) + "\\" + decimal(spacing));
    put(ds, 0x0028, 0x0301, gdcm::VR::CS, "NO");
    // Linear VOI with centre 32768 and width 65536 maps stored s to exactly s / 65535.
    put(ds, 0x0028, 0x1050, gdcm::VR::DS, "32768");
    put(ds, 0x0028, 0x1051, gdcm::VR::DS, "65536");
    put(ds, 0x0028, 0x1052, gdcm::VR::DS, "0");
    put(ds, 0x0028, 0x1053, gdcm::VR::DS, "1");
    put(ds, 0x0028, 0x1054, gdcm::VR::LO, "US");
    put(ds, 0x2050, 0x0020, gdcm::VR::CS, "IDENTITY");

    std::ostringstream os;
    writer.SetStream(os);
    RADPROBE_CHECK(writer.Write(), pc.image_id, ": GDCM could not write the DICOM image");
    return os.str();
}

}  // namespace radprobe::synth
