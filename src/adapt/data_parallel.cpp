// Data parallelism across processes with LibTorch's c10d (see training.hpp): a TCP rendezvous at
// MASTER_ADDR:MASTER_PORT, Gloo for CPU tensors, NCCL for CUDA ones where LibTorch has it.

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdlib>

#include "radprobe/adapt/training.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe::adapt::training {

namespace {

// An environment variable as a non-negative integer, or -1 when unset.
long env_count(const char* name) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') {
        return -1;
    }
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    RADPROBE_USAGE_CHECK(*end == '\0' && n >= 0, name, "=", v, ": expected a number >= 0");
    return n;
}

}  // namespace

struct DataParallel::Impl {
    c10::intrusive_ptr<c10d::ProcessGroup> group;
};

DataParallel::DataParallel(int rank, int world, const std::string& host, int port,
                           const torch::Device& device)
    : rank_(rank), world_(world), impl_(std::make_unique<Impl>()) {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(port);
    so.isServer = rank == 0;
    so.numWorkers = world;
    so.waitWorkers = true;
    so.timeout = std::chrono::seconds(300);
    c10::intrusive_ptr<c10d::Store> store;
    try {
        store = c10::make_intrusive<c10d::TCPStore>(host, so);
    } catch (const std::exception& e) {
        throw InputError(str_cat("data parallel rank ", rank, " of ", world, ": rendezvous at ",
                                 host, ":", port, " failed: ", Error::one_line(e.what())));
    }
#ifdef USE_C10D_NCCL
    if (device.is_cuda()) {
        impl_->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world);
        return;
    }
#endif
    RADPROBE_CHECK(!device.is_cuda(), "data parallel on ", device.str(),
                   ": this LibTorch has no NCCL (use --device cpu, or a CUDA build of LibTorch)");
    auto options = c10d::ProcessGroupGloo::Options::create();
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(host));
    impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, options);
}

DataParallel::~DataParallel() = default;

std::unique_ptr<DataParallel> DataParallel::from_environment(const torch::Device& device) {
    // srun sets SLURM_PROCID / SLURM_NTASKS for each task of a step; torchrun-style launchers
    // RANK / WORLD_SIZE.
    long rank = env_count("RANK"), world = env_count("WORLD_SIZE");
    if (world < 0) {
        rank = env_count("SLURM_PROCID");
        world = env_count("SLURM_NTASKS");
    }
    if (world <= 1) {
        return nullptr;
    }
    RADPROBE_USAGE_CHECK(rank >= 0 && rank < world, "data parallel: rank ", rank, " is not in 0..",
                         world - 1);
    const char* host = std::getenv("MASTER_ADDR");
    const long port = env_count("MASTER_PORT");
    RADPROBE_USAGE_CHECK(host != nullptr && *host != '\0' && port > 0 && port < 65536,
                         "data parallel over ", world,
                         " processes needs MASTER_ADDR and MASTER_PORT (the host and a free "
                         "port of rank 0, e.g. export MASTER_ADDR=$(scontrol show hostnames "
                         "\"$SLURM_JOB_NODELIST\" | head -n 1) MASTER_PORT=29500)");
    return std::make_unique<DataParallel>(static_cast<int>(rank), static_cast<int>(world), host,
                                          static_cast<int>(port), device);
}

namespace {

// The tensors as one float32 buffer (one collective instead of one per tensor), and back.
torch::Tensor flatten(const std::vector<torch::Tensor>& tensors) {
    std::vector<torch::Tensor> views;
    for (const auto& t : tensors) {
        views.push_back(t.detach().reshape({-1}).to(torch::kFloat32));
    }
    return torch::cat(views);
}

void unflatten(const torch::Tensor& flat, const std::vector<torch::Tensor>& tensors) {
    torch::NoGradGuard no_grad;
    std::int64_t at = 0;
    for (const auto& t : tensors) {
        const auto n = t.numel();
        t.detach().copy_(flat.slice(0, at, at + n).view(t.sizes()));
        at += n;
    }
}

// c10d reports with a stack trace: one line, saying which collective failed.
template <typename F>
void collective(const char* what, const DataParallel& dp, F&& run) {
    try {
        run();
    } catch (const c10::Error& e) {
        throw InputError(str_cat("data parallel rank ", dp.rank(), " of ", dp.world(), ": ", what,
                                 " failed: ", Error::one_line(e.what_without_backtrace())));
    }
}

}  // namespace

void DataParallel::all_reduce_sum(std::vector<torch::Tensor>& tensors) {
    if (tensors.empty()) {
        return;
    }
    std::vector<torch::Tensor> flat{flatten(tensors)};
    collective("all-reduce", *this, [&] { impl_->group->allreduce(flat)->wait(); });
    unflatten(flat[0], tensors);
}

void DataParallel::all_reduce_gradients(const std::vector<torch::Tensor>& params) {
    std::vector<torch::Tensor> grads;
    for (const auto& p : params) {
        if (p.requires_grad()) {
            if (!p.grad().defined()) {  // a parameter this rank's batch did not reach
                p.mutable_grad() = torch::zeros_like(p);
            }
            grads.push_back(p.grad());
        }
    }
    all_reduce_sum(grads);
}

void DataParallel::broadcast(const std::vector<torch::Tensor>& tensors) {
    if (tensors.empty()) {
        return;
    }
    std::vector<torch::Tensor> flat{flatten(tensors)};
    collective("broadcast", *this, [&] { impl_->group->broadcast(flat)->wait(); });
    unflatten(flat[0], tensors);
}

void DataParallel::barrier() {
    collective("barrier", *this, [&] { impl_->group->barrier()->wait(); });
}

}  // namespace radprobe::adapt::training
