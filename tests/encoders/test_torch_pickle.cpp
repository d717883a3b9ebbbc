// The weights-only torch.save reader: golden fixtures written by torch 1.13 itself
// (tests/golden/encoders/make_torch_pickles.py → tests/data/pickles), a live malicious corpus
// that must not run, hand-made hostile pickles, and truncated / byte-flipped variants of every
// fixture that must give one-line InputErrors naming the file, never a crash.

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/encoders/torch_pickle.hpp"
#include "test_support.hpp"

namespace radprobe::encoders {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::string_literals;

fs::path pickles_dir() {
    return test::data_dir() / "pickles";
}

std::string file_bytes(const fs::path& p) {
    const std::string s = test::read_text(p);
    EXPECT_FALSE(s.empty()) << p;
    return s;
}

const std::uint8_t* u8(const std::string& s) {
    return reinterpret_cast<const std::uint8_t*>(s.data());
}

TorchCheckpoint parse_string(const std::string& bytes, const std::string& name) {
    return TorchCheckpoint::parse(u8(bytes), bytes.size(), name);
}

std::string to_hex(const std::vector<std::uint8_t>& bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (auto b : bytes) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

// The InputError message of `fn`, "" when it does not throw; fails on any other exception.
template <typename Fn>
std::string input_error(Fn&& fn) {
    try {
        fn();
    } catch (const InputError& e) {
        return e.what();
    }
    return "";
}

json expected_cases() {
    return json::parse(test::read_text(pickles_dir() / "expected.json"))["cases"];
}

void expect_tensor(const PtTensorInfo& t, const json& want, const std::string& where) {
    EXPECT_STREQ(st_dtype_name(t.dtype), want["dtype"].get<std::string>().c_str()) << where;
    EXPECT_EQ(t.shape, want["shape"].get<std::vector<std::int64_t>>()) << where;
    EXPECT_EQ(t.strides, want["strides"].get<std::vector<std::int64_t>>()) << where;
    EXPECT_EQ(t.storage_offset, want["storage_offset"].get<std::int64_t>()) << where;
    EXPECT_EQ(to_hex(t.contiguous_bytes()), want["hex"].get<std::string>()) << where;
    if (st_dtype_is_float(t.dtype)) {
        std::vector<float> values;
        for (const auto& v : want["values"]) {
            values.push_back(static_cast<float>(v.get<double>()));
        }
        EXPECT_EQ(t.read_float(), values) << where;
        EXPECT_THROW(t.read_int(), InputError) << where;
    } else {
        EXPECT_EQ(t.read_int(), want["values"].get<std::vector<std::int64_t>>()) << where;
        EXPECT_THROW(t.read_float(), InputError) << where;
    }
}

TEST(TorchPickle, GoldenCasesMatchTorchExactly) {
    const json cases = expected_cases();
    ASSERT_GE(cases.size(), 15u);
    int checked_tensors = 0;
    for (const auto& c : cases) {
        const fs::path path = pickles_dir() / c["file"].get<std::string>();
        const std::string key = c["checkpoint_key"];
        const std::string where = path.filename().string() + " [" + key + "]";
        if (c.contains("error")) {
            const std::string msg =
                input_error([&] { (void)TorchCheckpoint::open(path).state_dict_tensors(key); });
            EXPECT_NE(msg.find(c["error"].get<std::string>()), std::string::npos) << where << msg;
            EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
            continue;
        }
        const auto ckpt = TorchCheckpoint::open(path);
        EXPECT_EQ(ckpt.format(), c["format"] == "zip" ? PtFormat::kZip : PtFormat::kLegacy);
        EXPECT_EQ(ckpt.archive_name(), c["archive"].get<std::string>()) << where;
        const auto tensors = ckpt.state_dict_tensors(key);
        ASSERT_EQ(tensors.size(), c["tensors"].size()) << where;
        for (const auto& [name, want] : c["tensors"].items()) {
            const auto it = tensors.find(name);
            ASSERT_NE(it, tensors.end()) << where << " misses " << name;
            EXPECT_EQ(it->second.name, name);
            expect_tensor(it->second, want, where + " " + name);
            ++checked_tensors;
        }
    }
    EXPECT_GE(checked_tensors, 100);
}

TEST(TorchPickle, ViewsShareStoragesAndKeepTheirLayout) {
    const auto tensors = load_torch_state_dict(pickles_dir() / "state_zip.pt");
    const auto& a = tensors.at("shared_a");
    const auto& b = tensors.at("shared_b");
    EXPECT_EQ(a.storage_key, b.storage_key);
    EXPECT_EQ(a.storage.data(), b.storage.data());
    EXPECT_EQ(a.storage.size(), 10u * 4);
    EXPECT_TRUE(a.is_contiguous());
    EXPECT_FALSE(tensors.at("transposed").is_contiguous());
    EXPECT_FALSE(tensors.at("strided").is_contiguous());
    EXPECT_EQ(tensors.at("expanded").strides, (std::vector<std::int64_t>{0, 1}));
    EXPECT_EQ(tensors.at("scalar").numel(), 1);
    EXPECT_EQ(tensors.at("empty").nbytes(), 0u);
    EXPECT_EQ(tensors.at("bf16").dtype, StDType::kBF16);  // kept, not converted
    // The tensors keep the mapping alive after the checkpoint object is gone.
    EXPECT_EQ(tensors.at("param").read_float(), (std::vector<float>{0.125f, -4.0f}));
    std::vector<std::uint8_t> out(tensors.at("transposed").nbytes());
    tensors.at("transposed").copy_to(out.data());
    float first[2];
    std::memcpy(first, out.data(), sizeof first);
    EXPECT_EQ(first[0], 0.25f);
    EXPECT_EQ(first[1], 3.25f);
}

TEST(TorchPickle, RecognisesBothContainersButNotOtherFiles) {
    for (const char* name : {"state_zip.pt", "state_legacy.pt", "state_zip64.pt"}) {
        const std::string bytes = file_bytes(pickles_dir() / name);
        EXPECT_TRUE(looks_like_torch_checkpoint(u8(bytes), bytes.size())) << name;
    }
    const std::string json_text = "{\"a\": 1}";
    EXPECT_FALSE(looks_like_torch_checkpoint(u8(json_text), json_text.size()));
    const std::string msg = input_error([&] { (void)parse_string(json_text, "x.json"); });
    EXPECT_NE(msg.find("x.json: not a torch checkpoint"), std::string::npos) << msg;
    EXPECT_EQ(TorchCheckpoint::open(pickles_dir() / "state_legacy.pt").archive_name(), "");
}

TEST(TorchPickle, TreeKeepsNonTensorEntriesInert) {
    const auto ckpt = TorchCheckpoint::open(pickles_dir() / "nested_state_dict.pt");
    const PtValue& root = ckpt.root();
    ASSERT_TRUE(root.is_dict());
    ASSERT_NE(root.get("epoch"), nullptr);
    EXPECT_EQ(root.get("epoch")->kind, PtKind::kInt);
    EXPECT_EQ(root.get("epoch")->i, 3);
    EXPECT_EQ(root.get("best_acc")->f, 0.5);
    const PtValue* args = root.get("args");
    ASSERT_EQ(args->kind, PtKind::kObject);
    EXPECT_EQ(args->describe(), "argparse.Namespace object (not loaded)");
    const auto all = ckpt.flatten(root);
    EXPECT_EQ(all.count("optimizer.state.0.momentum_buffer"), 1u);
    EXPECT_EQ(all.count("state_dict.0.weight"), 1u);
    EXPECT_EQ(&ckpt.select_state_dict(), root.get("state_dict"));
    const auto sd = ckpt.state_dict_tensors();
    EXPECT_EQ(sd.count("1.num_batches_tracked"), 1u);
    EXPECT_EQ(sd.at("1.num_batches_tracked").read_int(), (std::vector<std::int64_t>{1}));
}

TEST(TorchPickle, PicksTeacherThenStripsModulePrefixOnlyWhenEveryKeyHasIt) {
    const auto teacher = load_torch_state_dict(pickles_dir() / "nested_teacher.pt");
    EXPECT_EQ(teacher.count("0.weight"), 1u);
    const auto student = load_torch_state_dict(pickles_dir() / "nested_teacher.pt", "student");
    EXPECT_EQ(student.count("0.weight"), 1u);
    EXPECT_EQ(student.count("module.0.weight"), 0u);
    const auto partial = load_torch_state_dict(pickles_dir() / "module_partial.pt");
    EXPECT_EQ(partial.count("module.a"), 1u);
    EXPECT_EQ(partial.count("b"), 1u);
}

TEST(TorchPickle, MissingStateDictErrorsDescribeWhatWasFound) {
    const fs::path none = pickles_dir() / "no_tensors.pt";
    const std::string msg = input_error([&] { (void)load_torch_state_dict(none); });
    EXPECT_NE(msg.find(none.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("\"epoch\" (int)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("\"args\" (argparse.Namespace object"), std::string::npos) << msg;
    EXPECT_NE(msg.find("\"teacher\", \"state_dict\", \"model\""), std::string::npos) << msg;
    const fs::path nested = pickles_dir() / "nested_state_dict.pt";
    const std::string absent = input_error([&] { (void)load_torch_state_dict(nested, "ema"); });
    EXPECT_NE(absent.find("no top-level key \"ema\""), std::string::npos) << absent;
    EXPECT_NE(absent.find("\"state_dict\" (dict"), std::string::npos) << absent;
    const std::string missing =
        input_error([&] { (void)TorchCheckpoint::open(pickles_dir() / "absent.pt"); });
    EXPECT_NE(missing.find("absent.pt: does not exist"), std::string::npos) << missing;
}

// --- the malicious corpus ------------------------------------------------------------------

void remove_markers() {
    for (const auto& e : fs::directory_iterator("/tmp")) {
        if (e.path().filename().string().rfind("radprobe_pwned_", 0) == 0) {
            fs::remove(e.path());
        }
    }
}

std::string expected_global(const std::string& case_name) {
    // The global that each case calls (rebuild_from_type first: its name also ends in os_system).
    const std::vector<std::pair<std::string, std::string>> globals = {
        {"rebuild_from_type", "torch._tensor._rebuild_from_type_v2"},
        {"posix_system", "posix.system"},
        {"os_system", "os.system"},
        {"builtins_eval", "builtins.eval"},
        {"builtins_exec", "builtins.exec"},
        {"subprocess_popen", "subprocess.Popen"},
    };
    for (const auto& [tag, global] : globals) {
        if (case_name.find(tag) != std::string::npos) {
            return global;
        }
    }
    return "?";
}

// Loads one malicious file as radprobe would; returns the inert object that stands for the call.
std::string load_malicious(const fs::path& path, const std::string& kind) {
    if (kind == "torch") {
        const auto ckpt = TorchCheckpoint::open(path);
        const auto tensors = ckpt.state_dict_tensors();
        EXPECT_EQ(tensors.size(), 1u);
        EXPECT_EQ(tensors.at("weight").read_float(), (std::vector<float>{1.0f, 2.0f}));
        return ckpt.root().get("evil")->describe();
    }
    // A bare pickle is no checkpoint: refused after being unpickled inertly...
    const std::string msg = input_error([&] { (void)TorchCheckpoint::open(path); });
    EXPECT_NE(msg.find("not a torch checkpoint"), std::string::npos) << msg;
    // ... and, read as a bare pickle, it is a tree with a placeholder in it.
    const std::string bytes = file_bytes(path);
    const auto ckpt = TorchCheckpoint::parse_pickle(u8(bytes), bytes.size(), path.string());
    const PtValue* x = ckpt.root().is_dict() ? ckpt.root().get("x") : &ckpt.root();
    return x->describe();
}

TEST(TorchPickleMalicious, LiveCorpusLoadsInertlyAndRunsNothing) {
    const json index = json::parse(test::read_text(pickles_dir() / "malicious" / "index.json"));
    ASSERT_EQ(index.size(), 21u);
    remove_markers();
    for (const auto& entry : index) {
        const std::string name = entry["case"];
        const fs::path path = pickles_dir() / "malicious" / entry["file"].get<std::string>();
        const std::string object = load_malicious(path, entry["kind"]);
        EXPECT_EQ(object.rfind(expected_global(name), 0), 0u) << name << ": " << object;
        EXPECT_NE(object.find("object (not loaded)"), std::string::npos) << object;
        EXPECT_FALSE(fs::exists(entry["marker"].get<std::string>())) << name << " ran";
    }
    for (const auto& e : fs::directory_iterator("/tmp")) {
        EXPECT_NE(e.path().filename().string().rfind("radprobe_pwned_", 0), 0u) << e.path();
    }
}

// --- hand-made pickles ---------------------------------------------------------------------

std::string le32(std::uint32_t v) {
    std::string s(4, '\0');
    std::memcpy(s.data(), &v, 4);
    return s;
}
std::string le64(std::uint64_t v) {
    std::string s(8, '\0');
    std::memcpy(s.data(), &v, 8);
    return s;
}
std::string str(const std::string& s) {
    return "X" + le32(static_cast<std::uint32_t>(s.size())) + s;
}
std::string num(std::int32_t v) {
    return "J" + le32(static_cast<std::uint32_t>(v));
}
std::string tuple(const std::vector<std::int32_t>& v) {
    std::string s = "(";
    for (auto x : v) {
        s += num(x);
    }
    return s + "t";
}
std::string glob(const std::string& module, const std::string& name) {
    return "c" + module + "\n" + name + "\n";
}

struct LegacyTensor {
    LegacyTensor(std::vector<std::int32_t> size, std::vector<std::int32_t> strides,
                 std::int32_t storage_offset, std::string view_metadata = "")
        : shape(std::move(size)),
          stride(std::move(strides)),
          offset(storage_offset),
          view(std::move(view_metadata)) {}
    std::vector<std::int32_t> shape, stride;
    std::int32_t offset = 0;
    std::string view;  // view metadata pickle ("": None)
};

// A legacy checkpoint {"w<k>": tensor k} over one FloatStorage "0" of `numel` elements.
std::string legacy_file(const std::vector<LegacyTensor>& tensors, std::uint64_t numel,
                        const std::string& storage_type = "FloatStorage") {
    const std::string magic =
        std::string("\x80\x02\x8a\x0a", 4) + "\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19" + ".";
    const std::string version = "\x80\x02M\xe9\x03.";
    const std::string sys_info = "\x80\x02}" + str("little_endian") + "\x88s.";
    std::string main = "\x80\x02}(";
    for (std::size_t k = 0; k < tensors.size(); ++k) {
        const auto& t = tensors[k];
        const std::string pid = "(" + str("storage") + glob("torch", storage_type) + str("0") +
                                str("cpu") + num(static_cast<std::int32_t>(numel)) +
                                (t.view.empty() ? "N" : t.view) + "tQ";
        main += str("w" + std::to_string(k)) + glob("torch._utils", "_rebuild_tensor_v2") + "(" +
                pid + num(t.offset) + tuple(t.shape) + tuple(t.stride) + "\x89" +
                glob("collections", "OrderedDict") + ")RtR";
    }
    main += "u.";
    const std::string keys = "\x80\x02(" + str("0") + "l.";
    std::string data(numel * 4, '\0');
    for (std::uint64_t k = 0; k < numel; ++k) {
        const float v = static_cast<float>(k);
        std::memcpy(data.data() + k * 4, &v, 4);
    }
    return magic + version + sys_info + main + keys + le64(numel) + data;
}

TEST(TorchPickle, HandMadeLegacyFilesCheckViewsAgainstStorages) {
    // parse() borrows the buffer: it must outlive the checkpoint and its tensors.
    const std::string ok_bytes = legacy_file({{{2, 2}, {1, 2}, 1}}, 6);
    const auto ok = parse_string(ok_bytes, "ok.pt");
    const auto tensors = ok.state_dict_tensors();
    EXPECT_EQ(tensors.at("w0").read_float(), (std::vector<float>{1, 3, 2, 4}));
    // A legacy storage view (torch < 0.4): ('1', offset 2, size 3) of storage "0".
    const std::string view_bytes =
        legacy_file({{{3}, {1}, 0, "(" + str("1") + num(2) + num(3) + "t"}}, 6);
    const auto view = parse_string(view_bytes, "view.pt");
    EXPECT_EQ(view.state_dict_tensors().at("w0").read_float(), (std::vector<float>{2, 3, 4}));
    const std::vector<std::pair<std::string, std::string>> bad = {
        {legacy_file({{{2, 3}, {3, 1}, 1}}, 6), "reaches past its storage"},
        {legacy_file({{{2, 3}, {3}, 0}}, 6), "dimensions but stride"},
        {legacy_file({{{3}, {1}, 0, "(" + str("1") + num(4) + num(3) + "t"}}, 6),
         "reaches past storage"},
        {legacy_file({{{1 << 20, 1 << 12}, {0, 0}, 0}}, 6), "once materialised"},
        {legacy_file({{{2}, {1}, 0}}, 6, "ComplexFloatStorage"), "unsupported storage type"},
        {[] {
             const std::string f = legacy_file({{{2}, {1}, 0}}, 6);
             return f.substr(0, f.size() - 5);
         }(),
         "truncated"},
    };
    for (const auto& [bytes, reason] : bad) {
        const std::string msg = input_error([&] { (void)parse_string(bytes, "bad.pt"); });
        EXPECT_NE(msg.find("torch checkpoint bad.pt: "), std::string::npos) << msg;
        EXPECT_NE(msg.find(reason), std::string::npos) << reason << " | " << msg;
    }
}

TEST(TorchPickle, HostilePicklesGiveInputErrors) {
    const std::string p = "\x80\x02";
    const std::vector<std::pair<std::string, std::string>> cases = {
        {p + "\x8d" + le64(~0ull), "needs"},                        // BINUNICODE8 of 2^64-1 bytes
        {p + "X" + le32(0xFFFFFFFF), "needs"},                      // BINUNICODE past the end
        {p + "h\x07.", "memo key 7 is not defined"},                // BINGET
        {p + "\x82\x01.", "unsupported pickle opcode 0x82"},        // EXT1
        {p + "S'x'\n.", "unsupported pickle opcode 0x53"},          // protocol-0 STRING
        {"\x80\x06N.", "protocol 6"},                               // PROTO 6
        {p + "\x8b" + le32(0x80000000u) + ".", "negative length"},  // LONG4
        {p + "a.", "pops an empty stack"},                          // APPEND on nothing
        {p + "t.", "without a MARK"},                               // TUPLE without MARK
        {p + "J\x01\x00\x00\x00)R."s, "not callable"},              // REDUCE on an int
        {p + "(" + str("storage") + "tQ.", "may not reference storages"},
        {p + "N", "without a STOP"},
        {p + "\x95" + le64(1000) + "N.", "frame of 1000 bytes"},
    };
    for (const auto& [bytes, reason] : cases) {
        const std::string msg = input_error(
            [&] { (void)TorchCheckpoint::parse_pickle(u8(bytes), bytes.size(), "hostile.pkl"); });
        EXPECT_NE(msg.find("torch checkpoint hostile.pkl: "), std::string::npos) << msg;
        EXPECT_NE(msg.find(reason), std::string::npos) << reason << " | " << msg;
    }
}

TEST(TorchPickle, DeepAndCyclicTreesAreWalkedSafely) {
    // 100000 nested lists: unpickled without recursion; the walks stop at 64 levels.
    std::string deep = "\x80\x02";
    for (int k = 0; k < 100000; ++k) {
        deep += "]";
    }
    for (int k = 0; k < 99999; ++k) {
        deep += "a";
    }
    deep += ".";
    const auto nested = TorchCheckpoint::parse_pickle(u8(deep), deep.size(), "deep.pkl");
    EXPECT_NE(input_error([&] { (void)nested.flatten(nested.root()); }).find("deeper than 64"),
              std::string::npos);
    // A list that contains itself, and a dict whose value is itself.
    const std::string cyclic = "\x80\x02]q\x00h\x00\x61."s;
    const auto list = TorchCheckpoint::parse_pickle(u8(cyclic), cyclic.size(), "cycle.pkl");
    EXPECT_EQ(list.root().items.size(), 1u);
    EXPECT_EQ(list.root().items[0], &list.root());
    EXPECT_TRUE(list.flatten(list.root()).empty());
    const std::string self_dict = "\x80\x02}q\x00"s + str("a") + "h\x00s."s;
    const auto dict = TorchCheckpoint::parse_pickle(u8(self_dict), self_dict.size(), "d.pkl");
    EXPECT_NE(input_error([&] { (void)dict.state_dict_tensors(); }).find("no state dict found"),
              std::string::npos);
    // Placeholders swallow calls, attributes and items.
    const std::string inert = "\x80\x02" + glob("os", "system") + str("rm -rf /") + "\x85R" +
                              ")\x81}b]N\x61" + glob("builtins", "eval") + ")R.";
    const auto obj = TorchCheckpoint::parse_pickle(u8(inert), inert.size(), "inert.pkl");
    EXPECT_EQ(obj.root().describe(), "builtins.eval object (not loaded)");
}

// --- truncated and byte-flipped fixtures ---------------------------------------------------

std::vector<fs::path> corpus() {
    std::vector<fs::path> files;
    for (const auto& e : fs::recursive_directory_iterator(pickles_dir())) {
        const auto ext = e.path().extension();
        if (e.is_regular_file() && (ext == ".pt" || ext == ".bin")) {
            files.push_back(e.path());
        }
    }
    std::sort(files.begin(), files.end());
    return files;
}

// Parses, flattens and touches every tensor; returns whether it loaded. Only InputError may
// escape the reader (gtest reports anything else, and a crash fails the binary).
bool exercise(const std::string& bytes, const std::string& name) {
    try {
        const auto ckpt = parse_string(bytes, name);
        for (const auto& t : ckpt.tensors()) {
            if (t.nbytes() <= (1u << 20)) {
                (void)t.contiguous_bytes();
            }
        }
        (void)ckpt.flatten(ckpt.root());
        (void)ckpt.state_dict_tensors();
        return true;
    } catch (const InputError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(name), std::string::npos) << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos);
        return false;
    }
}

TEST(TorchPickleCorrupt, EveryTruncationGivesAnInputErrorNamingTheFile) {
    int runs = 0;
    for (const auto& path : corpus()) {
        const std::string bytes = file_bytes(path);
        const std::string name = "trunc-" + path.filename().string();
        for (std::size_t n = 0; n < bytes.size(); ++n) {
            const std::string cut = bytes.substr(0, n);
            const std::string msg = input_error([&] { (void)parse_string(cut, name); });
            EXPECT_NE(msg.find("torch checkpoint " + name + ": "), std::string::npos)
                << n << " bytes: " << msg;
            ++runs;
        }
    }
    EXPECT_GT(runs, 50000);
    // Through the file system too: the message names the path.
    test::TempDir tmp;
    const std::string bytes = file_bytes(pickles_dir() / "state_legacy.pt");
    write_file_atomic(tmp / "cut.pt", bytes.substr(0, bytes.size() - 3));
    const std::string msg = input_error([&] { (void)TorchCheckpoint::open(tmp / "cut.pt"); });
    EXPECT_NE(msg.find((tmp / "cut.pt").string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
}

TEST(TorchPickleCorrupt, ByteFlipsNeverCrash) {
    int runs = 0;
    int loaded = 0;
    for (const auto& path : corpus()) {
        const std::string bytes = file_bytes(path);
        const std::string name = "flip-" + path.filename().string();
        for (std::size_t k = 0; k < bytes.size(); ++k) {
            for (const std::uint8_t mask : {0xFF, 0x01, 0x80}) {
                std::string flipped = bytes;
                flipped[k] = static_cast<char>(flipped[k] ^ mask);
                loaded += exercise(flipped, name);
                ++runs;
            }
        }
    }
    EXPECT_GT(runs, 150000);
    EXPECT_GT(loaded, 0);  // flips inside tensor data still load
}

}  // namespace
}  // namespace radprobe::encoders
