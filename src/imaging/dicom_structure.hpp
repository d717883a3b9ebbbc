#pragma once
// Private to imaging: structural validation of a DICOM byte stream (see dicom_structure.cpp).

#include <cstddef>
#include <cstdint>
#include <string>

namespace radprobe::imaging::detail {

/// Throws InputError naming `name` if any element, item or fragment runs past the end.
void check_dicom_structure(const std::uint8_t* data, std::size_t size, const std::string& name);

}  // namespace radprobe::imaging::detail
