// The safetensors reader: round trips, dtype conversion, the shared fixtures, and a corpus of
// malformed files that must each give one-line InputErrors naming the file and the reason.

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/encoders/safetensors.hpp"
#include "test_support.hpp"

namespace radprobe::encoders {
namespace {

using test::TempDir;

std::string with_header(const std::string& json_text, const std::string& data) {
    std::string out(8, '\0');
    const std::uint64_t n = json_text.size();
    std::memcpy(out.data(), &n, 8);
    return out + json_text + data;
}

SafetensorsFile parse_string(const std::string& bytes, const std::string& name) {
    return SafetensorsFile::parse(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(),
                                  name);
}

TEST(Safetensors, RoundTripKeepsValuesShapesAndMetadata) {
    const std::vector<float> a = {1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, 7.0f};
    const std::string bytes = serialize_safetensors(
        {st_f32("b.weight", {2, 3}, a), st_f32("a.bias", {1}, {42.0f})}, {{"format", "pt"}});
    const auto file = parse_string(bytes, "mem");
    ASSERT_EQ(file.tensors().size(), 2u);
    EXPECT_EQ(file.tensors()[0].name, "a.bias");  // sorted by name
    EXPECT_EQ(file.metadata().at("format"), "pt");
    const auto* b = file.find("b.weight");
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->shape, (std::vector<std::int64_t>{2, 3}));
    EXPECT_EQ(file.read_float(*b), a);
    EXPECT_EQ(file.find("missing"), nullptr);
    std::uint64_t header_len = 0;
    std::memcpy(&header_len, bytes.data(), 8);
    EXPECT_EQ((8 + header_len) % 8, 0u);  // header padded to 8 bytes as the reference writer does
    EXPECT_EQ(bytes.size(), 8 + header_len + 7 * 4);
}

TEST(Safetensors, HalfBFloat16AndIntegersConvert) {
    // 1.0, -2.0, 65504 (max), 2^-24 (smallest subnormal), inf in IEEE half.
    const std::uint16_t half[] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00};
    const float expect_half[] = {1.0f, -2.0f, 65504.0f, 5.9604644775390625e-8f,
                                 std::numeric_limits<float>::infinity()};
    const std::uint16_t bf16[] = {0x3F80, 0xBF00, 0x4049};  // 1.0, -0.5, 3.140625
    const float expect_bf16[] = {1.0f, -0.5f, 3.140625f};
    const std::int64_t ints[] = {-7, 0, 1LL << 40};
    StTensorData h{"h", StDType::kF16, {5}, {}};
    h.bytes.resize(sizeof half);
    std::memcpy(h.bytes.data(), half, sizeof half);
    StTensorData b{"b", StDType::kBF16, {3}, {}};
    b.bytes.resize(sizeof bf16);
    std::memcpy(b.bytes.data(), bf16, sizeof bf16);
    StTensorData i{"i", StDType::kI64, {3}, {}};
    i.bytes.resize(sizeof ints);
    std::memcpy(i.bytes.data(), ints, sizeof ints);
    const std::string bytes = serialize_safetensors({h, b, i});
    const auto file = parse_string(bytes, "mem");
    const auto hv = file.read_float(*file.find("h"));
    for (int k = 0; k < 5; ++k) {
        EXPECT_EQ(hv[k], expect_half[k]) << k;
    }
    const auto bv = file.read_float(*file.find("b"));
    for (int k = 0; k < 3; ++k) {
        EXPECT_EQ(bv[k], expect_bf16[k]) << k;
    }
    EXPECT_EQ(file.read_int(*file.find("i")), (std::vector<std::int64_t>{-7, 0, 1LL << 40}));
    EXPECT_THROW(file.read_float(*file.find("i")), InputError);
    EXPECT_THROW(file.read_int(*file.find("h")), InputError);
}

TEST(Safetensors, ReadsEverySharedFixtureIncludingInt64Buffers) {
    const auto dir = test::data_dir() / "encoders";
    int files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        const auto path = entry.path() / "model.safetensors";
        if (!std::filesystem::exists(path)) {
            continue;
        }
        const auto index = nlohmann::json::parse(read_file_text(entry.path() / "index.json"));
        const auto& info = index["files"]["model.safetensors"];
        const auto file = SafetensorsFile::open(path);
        EXPECT_EQ(file.tensors().size(), info["num_tensors"].get<std::size_t>()) << path;
        EXPECT_EQ(file.metadata().at("format"), "pt");
        for (const auto& [name, t] : info["tensors"].items()) {
            const auto* found = file.find(name);
            ASSERT_NE(found, nullptr) << name;
            EXPECT_EQ(found->shape, t["shape"].get<std::vector<std::int64_t>>()) << name;
        }
        for (const auto& t : file.tensors()) {
            if (t.dtype == StDType::kI64) {
                EXPECT_EQ(file.read_int(t).size(), static_cast<std::size_t>(t.numel()));
            } else {
                EXPECT_EQ(file.read_float(t).size(), static_cast<std::size_t>(t.numel()));
            }
        }
        ++files;
    }
    EXPECT_GE(files, 11);
    // The ResNet fixture carries I64 num_batches_tracked buffers (a scalar each).
    const auto resnet = SafetensorsFile::open(dir / "resnet" / "model.safetensors");
    const auto* nbt = resnet.find("embedder.embedder.normalization.num_batches_tracked");
    ASSERT_NE(nbt, nullptr);
    EXPECT_EQ(nbt->dtype, StDType::kI64);
    EXPECT_TRUE(nbt->shape.empty());
}

struct Malformed {
    const char* label;
    std::string bytes;
    const char* reason;  // a substring the one-line message must contain
};

std::vector<Malformed> malformed_corpus() {
    const std::string f8(8, '\0');  // two F32 zeros
    const std::string ok = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
    std::string huge_len(8, '\0');
    huge_len[7] = 0x7f;
    return {
        {"empty", "", "too short"},
        {"short", "abc", "too short"},
        {"header_past_end", huge_len + "{}", "runs past the end"},
        {"header_len_one_past", with_header("{}", "").substr(0, 9), "runs past the end"},
        {"not_json", with_header("{not json}", ""), "not valid JSON"},
        {"array_header", with_header("[1,2]   ", ""), "must start with '{'"},
        {"truncated_json", with_header(R"({"a":{"dtype":"F32")", ""), "not valid JSON"},
        {"duplicated_name", with_header("{" + ok + "," + ok + "}", f8), "duplicated name \"a\""},
        {"duplicated_field",
         with_header(R"({"a":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}})", f8),
         "duplicated name \"dtype\""},
        {"overlap",
         with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                     R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                     std::string(12, '\0')),
         "overlaps"},
        {"out_of_range",
         with_header(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", f8),
         "run past the data section"},
        {"size_disagrees",
         with_header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", f8),
         "but data_offsets span"},
        {"dtype_disagrees",
         with_header(R"({"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}})", f8),
         "but data_offsets span"},
        {"unknown_dtype",
         with_header(R"({"a":{"dtype":"F8","shape":[2],"data_offsets":[0,8]}})", f8),
         "unknown dtype"},
        {"reversed", with_header(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", f8),
         "reversed"},
        {"negative_shape",
         with_header(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", f8),
         "non-negative"},
        {"float_offset",
         with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0.0,8]}})", f8),
         "non-negative integers"},
        {"shape_overflow",
         with_header(
             R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", f8),
         "overflows"},
        {"hole", with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", f8),
         "hole"},
        {"trailing", with_header("{" + ok + "}", f8 + "xx"), "trailing bytes"},
        {"missing_offsets", with_header(R"({"a":{"dtype":"F32","shape":[2]}})", f8),
         "data_offsets is not a pair"},
        {"entry_not_object", with_header(R"({"a":3})", ""), "entry is not an object"},
        {"metadata_not_string", with_header(R"({"__metadata__":{"format":3}})", ""),
         "__metadata__ value"},
    };
}

TEST(Safetensors, MalformedCorpusGivesOneLineErrorsNamingFileAndReason) {
    TempDir tmp;
    for (const auto& m : malformed_corpus()) {
        const auto path = tmp / (std::string(m.label) + ".safetensors");
        write_file_atomic(path, m.bytes);
        for (int via_file = 0; via_file < 2; ++via_file) {
            try {
                if (via_file) {
                    SafetensorsFile::open(path);
                } else {
                    parse_string(m.bytes, path.string());
                }
                ADD_FAILURE() << m.label << ": accepted";
            } catch (const InputError& e) {
                const std::string msg = e.what();
                EXPECT_NE(msg.find(path.string()), std::string::npos) << m.label << ": " << msg;
                EXPECT_NE(msg.find(m.reason), std::string::npos) << m.label << ": " << msg;
                EXPECT_EQ(msg.find('\n'), std::string::npos) << m.label;
            }
        }
    }
}

TEST(Safetensors, CorpusCasesDifferFromAValidFileOnlyByTheirDefect) {
    // Guards the corpus itself: the well-formed twin of the malformed files parses.
    const std::string ok = with_header(
        R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
        std::string(8, '\0'));
    EXPECT_NO_THROW(parse_string(ok, "ok"));
    const std::string zero =
        with_header(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})", "");
    EXPECT_EQ(parse_string(zero, "zero").find("a")->numel(), 0);
    EXPECT_THROW(SafetensorsFile::open("/nonexistent/x.safetensors"), InputError);
}

}  // namespace
}  // namespace radprobe::encoders
