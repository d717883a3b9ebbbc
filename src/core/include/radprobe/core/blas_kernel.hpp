#pragma once
/// @file blas_kernel.hpp
/// Which OpenBLAS kernels run, and which this CPU could run. OpenBLAS (Debian's 0.3.21, built
/// with DYNAMIC_ARCH) picks its kernels once, when it is loaded, from a table of CPU models; a CPU
/// newer than the table (a KVM guest on Emerald Rapids reports model 207) gets its Prescott (SSE3)
/// kernels: five times slower matrix products on a CPU with AVX-512 (bench/encoders). The
/// environment variable OPENBLAS_CORETYPE overrides the choice, and is read only at load time,
/// so the radprobe command sets it and re-executes itself (src/cli/main.cpp).

#include <string>

namespace radprobe {

/// The instruction-set class of an OpenBLAS core name (as openblas_get_corename() gives it or
/// OPENBLAS_CORETYPE takes it, any case): 1 SSE (Prescott, Core2, Nehalem, Opteron, ...),
/// 2 AVX (Sandybridge, Bulldozer, Piledriver), 3 AVX2 (Haswell, Zen, Excavator), 4 AVX-512
/// (SkylakeX, Cooperlake, SapphireRapids); 0 for a name it does not know.
int openblas_core_level(const std::string& core);

/// The best OpenBLAS core this CPU supports: "SkylakeX" with AVX-512 F/CD/BW/DQ/VL, "Haswell"
/// with AVX2 and FMA, "" otherwise (or on a CPU other than x86-64).
std::string cpu_openblas_core();

/// The core OpenBLAS chose in this process; "" when the BLAS linked is not OpenBLAS.
std::string openblas_core();

/// The OPENBLAS_CORETYPE that would do better than `chosen` on a CPU whose best core is
/// `cpu_core`: `cpu_core` when OpenBLAS fell back to SSE or AVX kernels below what the CPU has,
/// "" otherwise (an AVX2 or AVX-512 choice of OpenBLAS's own is left alone; "" when `chosen` is
/// "", a BLAS other than OpenBLAS).
std::string better_openblas_core(const std::string& chosen, const std::string& cpu_core);

/// The OPENBLAS_CORETYPE this process should have been started with: better_openblas_core() of
/// OpenBLAS's choice and the CPU's, "" when OPENBLAS_CORETYPE is set already (the user's choice,
/// or ours after the re-exec) or nothing is better. What the radprobe command and bench_encoders
/// set before re-executing, and what load_encoder warns a library caller of.
std::string openblas_core_to_set();

/// One line for --version and calibration output, e.g. "OpenBLAS core SkylakeX
/// (OPENBLAS_CORETYPE=SkylakeX)" or "OpenBLAS core Prescott, below this CPU's SkylakeX
/// (OPENBLAS_CORETYPE=SkylakeX selects it; ...)"; "BLAS: not OpenBLAS" otherwise.
std::string blas_description();

}  // namespace radprobe
