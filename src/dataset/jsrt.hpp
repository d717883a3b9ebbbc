#pragma once
// `radprobe manifest --format jsrt` (public_sets.hpp): the JSRT database with the SCR masks.
// Private to the dataset library; public_sets.cpp dispatches to it.

#include "radprobe/dataset/public_sets.hpp"

namespace radprobe::dataset::detail {

/// Reads CLNDAT_EN.txt (options.table) and CNNDAT_EN.txt beside it, converts every .IMG under
/// the image root to a 16-bit PNG and every SCR GIF mask under options.masks to an 8-bit PNG
/// under options.png_dir, and gives the manifest and boxes.csv texts.
PublicSetResult build_jsrt(const PublicSetOptions& options);

}  // namespace radprobe::dataset::detail
