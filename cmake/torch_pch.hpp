// Precompiled LibTorch header shared by every LibTorch-heavy translation unit.
#pragma once
#include <torch/torch.h>
