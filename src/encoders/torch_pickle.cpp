// The weights-only torch.save reader: an unpickler whose globals are an allow-list of pure
// constructors (everything else is an inert placeholder), the zip and legacy containers, and the
// tensor views. LibTorch-free (also built alone into the fuzz target under fuzz/torch_pickle/).

#include "radprobe/encoders/torch_pickle.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "radprobe/core/error.hpp"
#include "zip_archive.hpp"

static_assert(std::endian::native == std::endian::little,
              "torch_pickle reads little-endian storages in place");

namespace radprobe::encoders {

namespace {

// Caps that keep hostile input from exhausting memory: objects per checkpoint (each opcode
// makes at most one, and a real state dict needs ~15 per tensor), text-opcode line length,
// tensor rank, nesting depth of the tree walks.
constexpr std::size_t kMaxObjects = std::size_t{1} << 21;
constexpr std::size_t kMaxLine = 4096;
constexpr std::size_t kMaxDims = 64;
constexpr int kMaxDepth = 64;
// Tensors per checkpoint (also entries of a flattened tree), dimensions over all tensors, the
// length of a global's module or name (longer ones are cut), distinct globals, and the length of
// a flattened key path.
constexpr std::size_t kMaxTensors = std::size_t{1} << 18;
constexpr std::size_t kMaxTotalDims = std::size_t{1} << 22;
constexpr std::size_t kMaxGlobalName = 128;
constexpr std::size_t kMaxGlobals = std::size_t{1} << 16;
constexpr std::size_t kMaxKeyPath = 1024;
// Tensors may overlap (views of one storage) or expand (stride 0); their materialised size is
// capped at this multiple of the file size plus kExpansionSlack.
constexpr std::uint64_t kExpansionFactor = 4;
constexpr std::uint64_t kExpansionSlack = std::uint64_t{256} << 20;
constexpr std::int64_t kLegacyProtocolVersion = 1001;
// torch.serialization.MAGIC_NUMBER = 0x1950a86a20f9469cfc6c as pickle's LONG1 bytes.
constexpr std::uint8_t kLegacyMagic[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                         0x20, 0x6a, 0xa8, 0x50, 0x19};

std::string where_of(const std::string& name) {
    return "torch checkpoint " + name + ": ";
}

// ---------------------------------------------------------------------------------------------
// The allow-list. A kGlobal's `i` says which allow-listed callable it is (kInert: any other).

enum Callable : std::int64_t {
    kInert = 0,
    kOrderedDict,
    kRebuildTensor,
    kRebuildTensorV2,
    kRebuildTensorV3,
    kRebuildParameter,
    kRebuildParameterWithState,
    kRebuildFromTypeV2,
};

struct NamedGlobal {
    const char* module;
    const char* name;
    Callable callable;
};

constexpr NamedGlobal kCallables[] = {
    {"collections", "OrderedDict", kOrderedDict},
    {"torch._utils", "_rebuild_tensor", kRebuildTensor},
    {"torch._utils", "_rebuild_tensor_v2", kRebuildTensorV2},
    {"torch._utils", "_rebuild_tensor_v3", kRebuildTensorV3},
    {"torch._utils", "_rebuild_parameter", kRebuildParameter},
    {"torch._utils", "_rebuild_parameter_with_state", kRebuildParameterWithState},
    {"torch._tensor", "_rebuild_from_type_v2", kRebuildFromTypeV2},
};

struct NamedType {
    const char* name;
    StDType dtype;
};

// Storage classes (module torch, torch.cuda for old CUDA checkpoints, torch.storage for the
// untyped storage of newer torch).
constexpr NamedType kStorageTypes[] = {
    {"FloatStorage", StDType::kF32},  {"DoubleStorage", StDType::kF64},
    {"HalfStorage", StDType::kF16},   {"BFloat16Storage", StDType::kBF16},
    {"LongStorage", StDType::kI64},   {"IntStorage", StDType::kI32},
    {"ShortStorage", StDType::kI16},  {"CharStorage", StDType::kI8},
    {"ByteStorage", StDType::kU8},    {"BoolStorage", StDType::kBool},
    {"UntypedStorage", StDType::kU8}, {"_UntypedStorage", StDType::kU8},
};

constexpr NamedType kDtypes[] = {
    {"float32", StDType::kF32},   {"float", StDType::kF32},   {"float64", StDType::kF64},
    {"double", StDType::kF64},    {"float16", StDType::kF16}, {"half", StDType::kF16},
    {"bfloat16", StDType::kBF16}, {"int64", StDType::kI64},   {"long", StDType::kI64},
    {"int32", StDType::kI32},     {"int", StDType::kI32},     {"int16", StDType::kI16},
    {"short", StDType::kI16},     {"int8", StDType::kI8},     {"uint8", StDType::kU8},
    {"bool", StDType::kBool},     {"uint16", StDType::kU16},  {"uint32", StDType::kU32},
    {"uint64", StDType::kU64},
};

bool find_type(const NamedType* begin, const NamedType* end, const std::string& name,
               StDType* out) {
    for (const auto* t = begin; t != end; ++t) {
        if (name == t->name) {
            *out = t->dtype;
            return true;
        }
    }
    return false;
}

// ---------------------------------------------------------------------------------------------
// Storages and tensors as the pickle declares them, resolved against the file afterwards.

struct StorageRec {
    std::string key;
    StDType dtype = StDType::kU8;
    std::uint64_t nbytes = 0;  ///< declared: numel * element size
    std::span<const std::uint8_t> bytes;
    bool resolved = false;
    PtValue* value = nullptr;
    // A legacy storage view (torch < 0.4): bytes [view_begin, +nbytes) of storage `root`.
    bool is_view = false;
    std::string root;
    std::uint64_t view_begin = 0;
};

struct TensorRec {
    std::size_t storage = 0;
    StDType dtype = StDType::kF32;
    std::vector<std::int64_t> shape;
    std::vector<std::int64_t> strides;
    std::int64_t offset = 0;
};

bool checked_mul(std::uint64_t a, std::uint64_t b, std::uint64_t* out) {
    return !__builtin_mul_overflow(a, b, out);
}

}  // namespace

struct TorchCheckpoint::Impl {
    std::deque<PtValue> values;
    std::vector<StorageRec> storages;
    std::map<std::string, std::size_t> storage_index;
    std::vector<TensorRec> tensors;
    std::size_t total_dims = 0;
    std::map<std::string, PtValue*> globals;  ///< interned, by "module\nname"
    std::string where;
    PtValue* none = nullptr;
    PtValue* yes = nullptr;
    PtValue* no = nullptr;

    explicit Impl(std::string w) : where(std::move(w)) {
        none = make(PtKind::kNone);
        yes = make(PtKind::kBool);
        yes->i = 1;
        no = make(PtKind::kBool);
    }
    PtValue* make(PtKind kind) {
        RADPROBE_CHECK(values.size() < kMaxObjects, where, "the pickle makes more than ",
                       kMaxObjects, " objects");
        values.emplace_back().kind = kind;
        return &values.back();
    }
    // An inert placeholder made by calling or building `origin` (a global or a placeholder).
    PtValue* object(const PtValue* origin) {
        PtValue* v = make(PtKind::kObject);
        v->items.push_back(
            origin->kind == PtKind::kObject && !origin->items.empty() ? origin->items[0] : origin);
        return v;
    }
    PtValue* object(const std::string& global_name) {
        PtValue* g = make(PtKind::kGlobal);
        g->s = global_name;
        return object(g);
    }
};

namespace {

using Arena = TorchCheckpoint::Impl;

// ---------------------------------------------------------------------------------------------
// The unpickler: pickle's stack machine over a bounds-checked byte range. It never recurses, so
// nesting depth costs heap, not stack; every object it makes counts against kMaxObjects.

class Unpickler {
public:
    using PersistentLoad = std::function<PtValue*(const PtValue& pid)>;

    Unpickler(Arena& arena, std::span<const std::uint8_t> bytes, std::size_t pos,
              PersistentLoad load)
        : arena_(arena),
          data_(bytes.data()),
          size_(bytes.size()),
          pos_(pos),
          load_(std::move(load)) {}

    // Runs to STOP; returns the pickled object.
    PtValue* run() {
        for (;;) {
            RADPROBE_CHECK(pos_ < size_, arena_.where, "pickle ends at byte ", pos_,
                           " without a STOP opcode (truncated?)");
            op_pos_ = pos_;
            op_ = data_[pos_++];
            if (op_ == '.') {
                return pop();
            }
            RADPROBE_CHECK(
                push_scalar() || build_container() || use_memo() || call() || handle_stack(), at(),
                "unknown or unsupported pickle opcode 0x", hex(op_));
        }
    }
    std::size_t pos() const { return pos_; }

private:
    static std::string hex(std::uint8_t b) {
        const char* digits = "0123456789abcdef";
        return {digits[b >> 4], digits[b & 15]};
    }
    std::string at() const {
        return arena_.where + "pickle byte " + std::to_string(op_pos_) + ": ";
    }

    // --- reading -----------------------------------------------------------------------------
    const std::uint8_t* take(std::uint64_t n) {
        RADPROBE_CHECK(n <= size_ - pos_, at(), "opcode 0x", hex(op_), " needs ", n,
                       " bytes, only ", size_ - pos_, " left (truncated?)");
        const std::uint8_t* p = data_ + pos_;
        pos_ += static_cast<std::size_t>(n);
        return p;
    }
    template <typename T>
    T read() {
        T v;
        std::memcpy(&v, take(sizeof(T)), sizeof(T));
        return v;
    }
    std::string read_line() {
        const std::size_t limit = std::min(size_ - pos_, kMaxLine);
        const auto* begin = data_ + pos_;
        const auto* nl = static_cast<const std::uint8_t*>(std::memchr(begin, '\n', limit));
        RADPROBE_CHECK(nl != nullptr, at(), "text argument of opcode 0x", hex(op_),
                       " has no newline within ", limit, " bytes");
        pos_ += static_cast<std::size_t>(nl - begin) + 1;
        return {reinterpret_cast<const char*>(begin), static_cast<std::size_t>(nl - begin)};
    }

    // --- the stack ---------------------------------------------------------------------------
    void push(PtValue* v) {
        RADPROBE_CHECK(stack_.size() < kMaxObjects, at(), "stack exceeds ", kMaxObjects,
                       " objects");
        stack_.push_back(v);
    }
    PtValue* pop() {
        RADPROBE_CHECK(!stack_.empty(), at(), "opcode 0x", hex(op_), " pops an empty stack");
        PtValue* v = stack_.back();
        stack_.pop_back();
        return v;
    }
    PtValue* top() {
        RADPROBE_CHECK(!stack_.empty(), at(), "opcode 0x", hex(op_),
                       " needs an object on the stack");
        return stack_.back();
    }
    std::vector<PtValue*> pop_mark() {
        RADPROBE_CHECK(!marks_.empty(), at(), "opcode 0x", hex(op_), " without a MARK");
        std::vector<PtValue*> items = std::move(stack_);
        stack_ = std::move(marks_.back());
        marks_.pop_back();
        return items;
    }

    // --- scalars -----------------------------------------------------------------------------
    PtValue* make_int(std::int64_t v) {
        PtValue* x = arena_.make(PtKind::kInt);
        x->i = v;
        return x;
    }
    PtValue* make_text(PtKind kind, std::uint64_t n) {
        const auto* p = take(n);
        PtValue* x = arena_.make(kind);
        x->s.assign(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
        return x;
    }
    // LONG1 / LONG4: little-endian two's complement.
    PtValue* make_long(std::uint64_t n) {
        const auto* p = take(n);
        std::size_t used = static_cast<std::size_t>(n);
        const std::uint8_t fill = (n > 0 && (p[n - 1] & 0x80)) ? 0xFF : 0x00;
        while (used > 8 && p[used - 1] == fill && (p[used - 2] & 0x80) == (fill & 0x80)) {
            --used;  // drop redundant sign bytes
        }
        if (used > 8) {
            PtValue* x = arena_.make(PtKind::kBigInt);
            x->s.assign(reinterpret_cast<const char*>(p), used);
            return x;
        }
        std::uint64_t v = fill == 0xFF ? ~std::uint64_t{0} : 0;
        for (std::size_t k = 0; k < used; ++k) {
            v &= ~(std::uint64_t{0xFF} << (8 * k));
            v |= std::uint64_t{p[k]} << (8 * k);
        }
        return make_int(static_cast<std::int64_t>(v));
    }
    PtValue* make_float(double v) {
        PtValue* x = arena_.make(PtKind::kFloat);
        x->f = v;
        return x;
    }
    PtValue* parse_int_line() {
        std::string line = read_line();
        if (line == "01" || line == "00") {
            return line == "01" ? arena_.yes : arena_.no;
        }
        if (!line.empty() && line.back() == 'L') {
            line.pop_back();
        }
        std::int64_t v = 0;
        const auto r = std::from_chars(line.data(), line.data() + line.size(), v);
        RADPROBE_CHECK(r.ec == std::errc() && r.ptr == line.data() + line.size(), at(),
                       "bad integer \"", line.substr(0, 40), "\"");
        return make_int(v);
    }
    PtValue* parse_float_line() {
        const std::string line = read_line();
        double v = 0;
        const auto r = std::from_chars(line.data(), line.data() + line.size(), v);
        RADPROBE_CHECK(r.ec == std::errc() && r.ptr == line.data() + line.size(), at(),
                       "bad float \"", line.substr(0, 40), "\"");
        return make_float(v);
    }
    double read_binfloat() {
        std::uint64_t bits = 0;
        const auto* p = take(8);
        for (int k = 0; k < 8; ++k) {
            bits = (bits << 8) | p[k];  // big-endian
        }
        return std::bit_cast<double>(bits);
    }
    std::uint64_t signed_length(std::int32_t n) {
        RADPROBE_CHECK(n >= 0, at(), "negative length ", n);
        return static_cast<std::uint64_t>(n);
    }

    bool push_scalar() {
        switch (op_) {
            case 'N':
                push(arena_.none);
                return true;
            case 0x88:
                push(arena_.yes);
                return true;
            case 0x89:
                push(arena_.no);
                return true;
            case 'J':
                push(make_int(read<std::int32_t>()));
                return true;
            case 'K':
                push(make_int(read<std::uint8_t>()));
                return true;
            case 'M':
                push(make_int(read<std::uint16_t>()));
                return true;
            case 0x8a:
                push(make_long(read<std::uint8_t>()));
                return true;
            case 0x8b:
                push(make_long(signed_length(read<std::int32_t>())));
                return true;
            case 'G':
                push(make_float(read_binfloat()));
                return true;
            case 'I':
            case 'L':
                push(parse_int_line());
                return true;
            case 'F':
                push(parse_float_line());
                return true;
            case 'X':
                push(make_text(PtKind::kString, read<std::uint32_t>()));
                return true;
            case 0x8c:
                push(make_text(PtKind::kString, read<std::uint8_t>()));
                return true;
            case 0x8d:
                push(make_text(PtKind::kString, read<std::uint64_t>()));
                return true;
            case 'T':
                push(make_text(PtKind::kString, signed_length(read<std::int32_t>())));
                return true;
            case 'U':
                push(make_text(PtKind::kString, read<std::uint8_t>()));
                return true;
            case 'B':
                push(make_text(PtKind::kBytes, read<std::uint32_t>()));
                return true;
            case 'C':
                push(make_text(PtKind::kBytes, read<std::uint8_t>()));
                return true;
            case 0x8e:
            case 0x96:
                push(make_text(PtKind::kBytes, read<std::uint64_t>()));
                return true;
            default:
                return false;
        }
    }

    // --- containers --------------------------------------------------------------------------
    PtValue* make_sequence(PtKind kind, std::vector<PtValue*> items) {
        PtValue* x = arena_.make(kind);
        x->items.assign(items.begin(), items.end());
        return x;
    }
    PtValue* tuple_of(std::size_t n) {
        RADPROBE_CHECK(stack_.size() >= n, at(), "TUPLE", n, " needs ", n, " objects on the stack");
        std::vector<PtValue*> items(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
        stack_.resize(stack_.size() - n);
        return make_sequence(PtKind::kTuple, std::move(items));
    }
    // SETITEM(S) / APPEND(S) / ADDITEMS into `target`; placeholders swallow the items (Python
    // would call their methods), anything else is an error.
    void add_items(PtValue* target, const std::vector<PtValue*>& items, PtKind want) {
        if (target->kind == PtKind::kObject) {
            return;
        }
        RADPROBE_CHECK(target->kind == want, at(), "opcode 0x", hex(op_), " adds items to ",
                       target->describe());
        RADPROBE_CHECK(want != PtKind::kDict || items.size() % 2 == 0, at(),
                       "SETITEMS with an odd number of objects");
        target->items.insert(target->items.end(), items.begin(), items.end());
    }
    PtValue* dict_from(const std::vector<PtValue*>& items) {
        PtValue* d = arena_.make(PtKind::kDict);
        add_items(d, items, PtKind::kDict);
        return d;
    }

    bool build_container() {
        switch (op_) {
            case '}':
                push(arena_.make(PtKind::kDict));
                return true;
            case ']':
                push(arena_.make(PtKind::kList));
                return true;
            case ')':
                push(arena_.make(PtKind::kTuple));
                return true;
            case 0x8f:
                push(arena_.make(PtKind::kSet));
                return true;
            case 't':
                push(make_sequence(PtKind::kTuple, pop_mark()));
                return true;
            case 'l':
                push(make_sequence(PtKind::kList, pop_mark()));
                return true;
            case 0x91:
                push(make_sequence(PtKind::kSet, pop_mark()));
                return true;
            case 'd':
                push(dict_from(pop_mark()));
                return true;
            case 0x85:
            case 0x86:
            case 0x87:
                push(tuple_of(op_ - 0x84u));
                return true;
            case 'a': {
                PtValue* v = pop();
                add_items(top(), {v}, PtKind::kList);
                return true;
            }
            case 's': {
                PtValue* value = pop();
                PtValue* key = pop();
                add_items(top(), {key, value}, PtKind::kDict);
                return true;
            }
            case 'e': {
                auto items = pop_mark();
                add_items(top(), items, PtKind::kList);
                return true;
            }
            case 'u': {
                auto items = pop_mark();
                add_items(top(), items, PtKind::kDict);
                return true;
            }
            case 0x90: {
                auto items = pop_mark();
                add_items(top(), items, PtKind::kSet);
                return true;
            }
            default:
                return false;
        }
    }

    // --- memo --------------------------------------------------------------------------------
    void put(std::uint64_t key) {
        RADPROBE_CHECK(memo_.size() < kMaxObjects, at(), "memo exceeds ", kMaxObjects, " entries");
        memo_[key] = top();
    }
    void get(std::uint64_t key) {
        const auto it = memo_.find(key);
        RADPROBE_CHECK(it != memo_.end(), at(), "memo key ", key, " is not defined");
        push(it->second);
    }
    std::uint64_t line_key() {
        const std::string line = read_line();
        std::uint64_t v = 0;
        const auto r = std::from_chars(line.data(), line.data() + line.size(), v);
        RADPROBE_CHECK(r.ec == std::errc() && r.ptr == line.data() + line.size(), at(),
                       "bad memo key \"", line.substr(0, 40), "\"");
        return v;
    }
    bool use_memo() {
        switch (op_) {
            case 'q':
                put(read<std::uint8_t>());
                return true;
            case 'r':
                put(read<std::uint32_t>());
                return true;
            case 0x94:
                put(memo_.size());
                return true;
            case 'p':
                put(line_key());
                return true;
            case 'h':
                get(read<std::uint8_t>());
                return true;
            case 'j':
                get(read<std::uint32_t>());
                return true;
            case 'g':
                get(line_key());
                return true;
            default:
                return false;
        }
    }

    // --- globals and calls -------------------------------------------------------------------
    PtValue* global(const std::string& module, const std::string& name);
    PtValue* apply(const PtValue& fn, const PtValue& args);
    PtValue* rebuild_tensor(const PtValue& args, Callable how);
    PtValue* rebuild_from_type(const PtValue& args);
    PtValue* ordered_dict(const PtValue& args);
    std::int64_t int_arg(const PtValue& v, const char* what);
    std::vector<std::int64_t> int_tuple(const PtValue& v, const char* what);

    PtValue* stack_global() {
        PtValue* name = pop();
        PtValue* module = pop();
        RADPROBE_CHECK(module->kind == PtKind::kString && name->kind == PtKind::kString, at(),
                       "STACK_GLOBAL needs two strings");
        return global(module->s, name->s);
    }
    static bool is_callable(const PtValue& v) {
        return v.kind == PtKind::kGlobal || v.kind == PtKind::kObject ||
               v.kind == PtKind::kStorageType || v.kind == PtKind::kDtype;
    }
    // NEWOBJ / NEWOBJ_EX: cls.__new__(cls, *args): an OrderedDict or a placeholder.
    PtValue* new_object(bool with_kwargs) {
        if (with_kwargs) {
            pop();
        }
        pop();  // args
        PtValue* cls = pop();
        RADPROBE_CHECK(is_callable(*cls), at(), "NEWOBJ on ", cls->describe());
        if (cls->kind == PtKind::kGlobal && cls->i == kOrderedDict) {
            return arena_.make(PtKind::kDict);
        }
        return arena_.object(cls);
    }
    void build() {
        PtValue* state = pop();
        (void)state;  // BUILD sets attributes: ignored for dicts and tensors, inert for objects
        top();
    }
    PtValue* persistent() {
        PtValue* pid = pop();
        RADPROBE_CHECK(load_ != nullptr, at(),
                       "persistent id in a pickle that may not reference storages");
        return load_(*pid);
    }
    PtValue* inst() {
        const std::string module = read_line();
        PtValue* cls = global(module, read_line());
        pop_mark();
        return arena_.object(cls);
    }
    PtValue* obj() {
        auto items = pop_mark();
        RADPROBE_CHECK(!items.empty() && is_callable(*items[0]), at(), "OBJ without a class");
        return arena_.object(items[0]);
    }

    bool call() {
        switch (op_) {
            case 'c': {
                const std::string module = read_line();
                push(global(module, read_line()));
                return true;
            }
            case 0x93:
                push(stack_global());
                return true;
            case 'R': {
                PtValue* args = pop();
                PtValue* fn = pop();
                push(apply(*fn, *args));
                return true;
            }
            case 0x81:
                push(new_object(false));
                return true;
            case 0x92:
                push(new_object(true));
                return true;
            case 'b':
                build();
                return true;
            case 'Q':
                push(persistent());
                return true;
            case 'i':
                push(inst());
                return true;
            case 'o':
                push(obj());
                return true;
            default:
                return false;
        }
    }

    // --- stack and framing -------------------------------------------------------------------
    bool handle_stack() {
        switch (op_) {
            case '(':
                RADPROBE_CHECK(marks_.size() < kMaxObjects, at(), "too many MARKs");
                marks_.push_back(std::move(stack_));
                stack_.clear();
                return true;
            case '0':
                if (stack_.empty()) {
                    pop_mark();
                } else {
                    stack_.pop_back();
                }
                return true;
            case '1':
                pop_mark();
                return true;
            case '2':
                push(top());
                return true;
            case 0x80: {
                const auto proto = read<std::uint8_t>();
                RADPROBE_CHECK(proto <= 5, at(), "pickle protocol ", int{proto},
                               " is newer than 5");
                return true;
            }
            case 0x95: {
                const auto n = read<std::uint64_t>();
                RADPROBE_CHECK(n <= size_ - pos_, at(), "frame of ", n, " bytes runs past the end");
                return true;
            }
            default:
                return false;
        }
    }

    Arena& arena_;
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t pos_;
    PersistentLoad load_;
    std::size_t op_pos_ = 0;
    std::uint8_t op_ = 0;
    std::vector<PtValue*> stack_;
    std::vector<std::vector<PtValue*>> marks_;
    std::unordered_map<std::uint64_t, PtValue*> memo_;
};

// Globals are interned (as Python's find_class returns the same object each time), which also
// bounds the memory that repeated GLOBAL / STACK_GLOBAL opcodes can claim. Names are cut at
// kMaxGlobalName: every allow-listed name is shorter, so a cut name is never allow-listed.
PtValue* Unpickler::global(const std::string& full_module, const std::string& full_name) {
    const std::string module = full_module.substr(0, kMaxGlobalName);
    const std::string name = full_name.substr(0, kMaxGlobalName);
    auto [it, fresh] = arena_.globals.emplace(module + "\n" + name, nullptr);
    if (!fresh) {
        return it->second;
    }
    RADPROBE_CHECK(arena_.globals.size() <= kMaxGlobals, at(), "more than ", kMaxGlobals,
                   " distinct globals");
    PtValue* g = it->second = arena_.make(PtKind::kGlobal);
    g->s = module + "." + name;
    g->i = kInert;
    for (const auto& c : kCallables) {
        if (module == c.module && name == c.name) {
            g->i = c.callable;
            return g;
        }
    }
    StDType dtype;
    const bool storage_module =
        module == "torch" || module == "torch.cuda" || module == "torch.storage";
    if (storage_module &&
        find_type(std::begin(kStorageTypes), std::end(kStorageTypes), name, &dtype)) {
        g->kind = PtKind::kStorageType;
        g->i = static_cast<std::int64_t>(dtype);
    } else if (module == "torch" &&
               find_type(std::begin(kDtypes), std::end(kDtypes), name, &dtype)) {
        g->kind = PtKind::kDtype;
        g->i = static_cast<std::int64_t>(dtype);
    }
    return g;
}

std::int64_t Unpickler::int_arg(const PtValue& v, const char* what) {
    RADPROBE_CHECK(v.kind == PtKind::kInt && v.i >= 0, at(), "tensor ", what,
                   " is not a non-negative int (", v.describe(), ")");
    return v.i;
}

std::vector<std::int64_t> Unpickler::int_tuple(const PtValue& v, const char* what) {
    RADPROBE_CHECK(v.kind == PtKind::kTuple || v.kind == PtKind::kList, at(), "tensor ", what,
                   " is not a tuple (", v.describe(), ")");
    RADPROBE_CHECK(v.items.size() <= kMaxDims, at(), "tensor ", what, " has ", v.items.size(),
                   " dimensions (at most ", kMaxDims, ")");
    std::vector<std::int64_t> out;
    for (const auto* item : v.items) {
        out.push_back(int_arg(*item, what));
    }
    return out;
}

PtValue* Unpickler::rebuild_tensor(const PtValue& args, Callable how) {
    const std::size_t need = how == kRebuildTensorV3 ? 7 : 4;
    RADPROBE_CHECK(args.kind == PtKind::kTuple && args.items.size() >= need, at(),
                   "tensor rebuild needs ", need, " arguments, got ", args.describe());
    const PtValue& storage = *args.items[0];
    RADPROBE_CHECK(storage.kind == PtKind::kStorage, at(), "tensor rebuild expects a storage, got ",
                   storage.describe());
    TensorRec rec;
    rec.storage = static_cast<std::size_t>(storage.i);
    rec.dtype = arena_.storages[rec.storage].dtype;
    rec.offset = int_arg(*args.items[1], "storage offset");
    rec.shape = int_tuple(*args.items[2], "size");
    rec.strides = int_tuple(*args.items[3], "stride");
    RADPROBE_CHECK(rec.shape.size() == rec.strides.size(), at(), "tensor size has ",
                   rec.shape.size(), " dimensions but stride ", rec.strides.size());
    if (how == kRebuildTensorV3) {
        const PtValue& dtype = *args.items[6];
        RADPROBE_CHECK(dtype.kind == PtKind::kDtype, at(), "tensor dtype is ", dtype.describe());
        rec.dtype = static_cast<StDType>(dtype.i);
    }
    arena_.total_dims += rec.shape.size();
    RADPROBE_CHECK(arena_.tensors.size() < kMaxTensors && arena_.total_dims <= kMaxTotalDims, at(),
                   "more than ", kMaxTensors, " tensors or ", kMaxTotalDims, " dimensions in all");
    PtValue* t = arena_.make(PtKind::kTensor);
    t->i = static_cast<std::int64_t>(arena_.tensors.size());
    arena_.tensors.push_back(std::move(rec));
    return t;
}

// _rebuild_from_type_v2(func, new_type, args, state): only an allow-listed `func` is applied;
// the type (a tensor subclass) and the state (Python attributes) are dropped.
PtValue* Unpickler::rebuild_from_type(const PtValue& args) {
    RADPROBE_CHECK(args.kind == PtKind::kTuple && args.items.size() >= 3, at(),
                   "_rebuild_from_type_v2 needs 4 arguments, got ", args.describe());
    const PtValue& fn = *args.items[0];
    const bool tensor_fn = fn.kind == PtKind::kGlobal && fn.i != kInert && fn.i != kOrderedDict &&
                           fn.i != kRebuildFromTypeV2;
    if (!tensor_fn) {
        return arena_.object("torch._tensor._rebuild_from_type_v2");
    }
    return apply(fn, *args.items[2]);
}

PtValue* Unpickler::ordered_dict(const PtValue& args) {
    PtValue* d = arena_.make(PtKind::kDict);
    if (args.kind != PtKind::kTuple || args.items.empty()) {
        return d;
    }
    const PtValue& pairs = *args.items[0];
    if (pairs.kind != PtKind::kList && pairs.kind != PtKind::kTuple) {
        return arena_.object("collections.OrderedDict");
    }
    for (const auto* pair : pairs.items) {
        RADPROBE_CHECK(pair->kind == PtKind::kTuple && pair->items.size() == 2, at(),
                       "OrderedDict item is not a pair");
        d->items.push_back(pair->items[0]);
        d->items.push_back(pair->items[1]);
    }
    return d;
}

PtValue* Unpickler::apply(const PtValue& fn, const PtValue& args) {
    if (fn.kind != PtKind::kGlobal || fn.i == kInert) {
        RADPROBE_CHECK(is_callable(fn), at(), "REDUCE calls ", fn.describe(),
                       ", which is not callable");
        return arena_.object(&fn);
    }
    switch (fn.i) {
        case kOrderedDict:
            return ordered_dict(args);
        case kRebuildTensor:
        case kRebuildTensorV2:
        case kRebuildTensorV3:
            return rebuild_tensor(args, static_cast<Callable>(fn.i));
        case kRebuildParameter:
        case kRebuildParameterWithState: {
            RADPROBE_CHECK(args.kind == PtKind::kTuple && !args.items.empty() &&
                               args.items[0]->kind == PtKind::kTensor,
                           at(), fn.s, " expects a tensor, got ", args.describe());
            return const_cast<PtValue*>(args.items[0]);
        }
        default:
            return rebuild_from_type(args);
    }
}

// ---------------------------------------------------------------------------------------------
// Tensor views.

std::uint64_t view_nbytes(const PtTensorInfo& t, const std::string& where) {
    const std::uint64_t es = st_dtype_size(t.dtype);
    std::uint64_t numel = 1;
    for (auto d : t.shape) {
        RADPROBE_CHECK(d >= 0 && checked_mul(numel, static_cast<std::uint64_t>(d), &numel), where,
                       "tensor size overflows");
    }
    std::uint64_t nbytes = 0;
    RADPROBE_CHECK(
        checked_mul(numel, es, &nbytes) &&
            nbytes <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()),
        where, "tensor size overflows");
    return nbytes;
}

// Checks that every element of the strided view lies inside the storage; returns nbytes().
std::uint64_t check_view(const PtTensorInfo& t, const std::string& where) {
    RADPROBE_CHECK(t.shape.size() == t.strides.size() && t.storage_offset >= 0, where,
                   "malformed tensor view");
    const std::uint64_t nbytes = view_nbytes(t, where);
    if (nbytes == 0) {
        return 0;
    }
    std::uint64_t last = static_cast<std::uint64_t>(t.storage_offset);
    bool ok = true;
    for (std::size_t d = 0; d < t.shape.size(); ++d) {
        std::uint64_t span = 0;
        ok = ok && t.strides[d] >= 0 &&
             checked_mul(static_cast<std::uint64_t>(t.shape[d] - 1),
                         static_cast<std::uint64_t>(t.strides[d]), &span) &&
             !__builtin_add_overflow(last, span, &last);
    }
    const std::uint64_t es = st_dtype_size(t.dtype);
    std::uint64_t end = 0;
    ok = ok && checked_mul(last + 1, es, &end) && last + 1 != 0;
    RADPROBE_CHECK(ok && end <= t.storage.size(), where, "tensor view (offset ", t.storage_offset,
                   ", ", t.shape.size(), " dims) reaches past its storage \"", t.storage_key,
                   "\" of ", t.storage.size(), " bytes");
    return nbytes;
}

template <typename T>
T load_le(const std::uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
}

std::int64_t int_at(StDType dtype, const std::uint8_t* p) {
    switch (dtype) {
        case StDType::kBool:
        case StDType::kU8:
            return *p;
        case StDType::kI8:
            return static_cast<std::int8_t>(*p);
        case StDType::kI16:
            return load_le<std::int16_t>(p);
        case StDType::kU16:
            return load_le<std::uint16_t>(p);
        case StDType::kI32:
            return load_le<std::int32_t>(p);
        case StDType::kU32:
            return load_le<std::uint32_t>(p);
        case StDType::kI64:
            return load_le<std::int64_t>(p);
        case StDType::kU64:
            return static_cast<std::int64_t>(load_le<std::uint64_t>(p));
        default:
            RADPROBE_ASSERT(false, "float dtype in int_at");
            return 0;
    }
}

float float_at(StDType dtype, const std::uint8_t* p) {
    switch (dtype) {
        case StDType::kF16:
            return half_to_float(load_le<std::uint16_t>(p));
        case StDType::kBF16:
            return bfloat16_to_float(load_le<std::uint16_t>(p));
        case StDType::kF32:
            return load_le<float>(p);
        case StDType::kF64:
            return static_cast<float>(load_le<double>(p));
        default:
            RADPROBE_ASSERT(false, "integer dtype in float_at");
            return 0;
    }
}

void copy_row(const std::uint8_t* src, std::int64_t stride, std::int64_t n, std::size_t es,
              std::uint8_t* dst) {
    if (stride == 1) {
        std::memcpy(dst, src, static_cast<std::size_t>(n) * es);
        return;
    }
    for (std::int64_t k = 0; k < n; ++k) {
        std::memcpy(dst + static_cast<std::size_t>(k) * es,
                    src + static_cast<std::size_t>(k * stride) * es, es);
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// PtValue

const PtValue* PtValue::get(const std::string& key) const {
    if (kind != PtKind::kDict) {
        return nullptr;
    }
    for (std::size_t k = items.size() / 2; k-- > 0;) {
        const PtValue* name = items[2 * k];
        if (name->kind == PtKind::kString && name->s == key) {
            return items[2 * k + 1];
        }
    }
    return nullptr;
}

std::string PtValue::describe() const {
    switch (kind) {
        case PtKind::kNone:
            return "None";
        case PtKind::kBool:
            return "bool";
        case PtKind::kInt:
        case PtKind::kBigInt:
            return "int";
        case PtKind::kFloat:
            return "float";
        case PtKind::kString:
            return "str";
        case PtKind::kBytes:
            return "bytes";
        case PtKind::kTuple:
            return str_cat("tuple (", items.size(), " items)");
        case PtKind::kList:
            return str_cat("list (", items.size(), " items)");
        case PtKind::kDict:
            return str_cat("dict (", items.size() / 2, " entries)");
        case PtKind::kSet:
            return "set";
        case PtKind::kGlobal:
            return "global " + s;
        case PtKind::kObject:
            return (items.empty() ? std::string("an") : items[0]->s) + " object (not loaded)";
        case PtKind::kStorageType:
            return "storage type";
        case PtKind::kDtype:
            return "dtype";
        case PtKind::kStorage:
            return "storage";
        case PtKind::kTensor:
            return "tensor";
    }
    return "?";
}

// ---------------------------------------------------------------------------------------------
// PtTensorInfo

std::int64_t PtTensorInfo::numel() const {
    std::int64_t n = 1;
    for (auto d : shape) {
        n *= d;
    }
    return n;
}

std::size_t PtTensorInfo::nbytes() const {
    return static_cast<std::size_t>(numel()) * st_dtype_size(dtype);
}

bool PtTensorInfo::is_contiguous() const {
    std::int64_t expected = 1;
    for (std::size_t d = shape.size(); d-- > 0;) {
        if (shape[d] == 0) {
            return true;
        }
        if (shape[d] != 1 && strides[d] != expected) {
            return false;
        }
        expected *= shape[d];
    }
    return true;
}

void PtTensorInfo::copy_to(void* out) const {
    const std::uint64_t n = check_view(*this, where_of(file) + "tensor \"" + name + "\": ");
    if (n == 0) {
        return;
    }
    const std::size_t es = st_dtype_size(dtype);
    const std::uint8_t* base = storage.data() + static_cast<std::size_t>(storage_offset) * es;
    auto* dst = static_cast<std::uint8_t*>(out);
    if (is_contiguous()) {
        std::memcpy(dst, base, n);
        return;
    }
    // Rows along the last dimension, an odometer over the others.
    const std::size_t nd = shape.size();
    const std::int64_t row = shape[nd - 1];
    std::vector<std::int64_t> index(nd - 1, 0);
    std::int64_t offset = 0;
    for (std::uint64_t r = 0; r < n / es / static_cast<std::uint64_t>(row); ++r) {
        copy_row(base + static_cast<std::size_t>(offset) * es, strides[nd - 1], row, es, dst);
        dst += static_cast<std::size_t>(row) * es;
        for (std::size_t d = nd - 1; d-- > 0;) {
            if (++index[d] < shape[d]) {
                offset += strides[d];
                break;
            }
            offset -= strides[d] * (shape[d] - 1);
            index[d] = 0;
        }
    }
}

std::vector<std::uint8_t> PtTensorInfo::contiguous_bytes() const {
    std::vector<std::uint8_t> out(nbytes());
    copy_to(out.data());
    return out;
}

void PtTensorInfo::read_float(float* out) const {
    RADPROBE_CHECK(st_dtype_is_float(dtype), where_of(file), "tensor \"", name, "\" has dtype ",
                   st_dtype_name(dtype), ", expected a float dtype");
    if (dtype == StDType::kF32) {
        copy_to(out);
        return;
    }
    const auto bytes = contiguous_bytes();
    const std::size_t es = st_dtype_size(dtype);
    for (std::size_t k = 0; k < bytes.size() / es; ++k) {
        out[k] = float_at(dtype, bytes.data() + k * es);
    }
}

std::vector<float> PtTensorInfo::read_float() const {
    std::vector<float> out(static_cast<std::size_t>(numel()));
    read_float(out.data());
    return out;
}

std::vector<std::int64_t> PtTensorInfo::read_int() const {
    RADPROBE_CHECK(!st_dtype_is_float(dtype), where_of(file), "tensor \"", name, "\" has dtype ",
                   st_dtype_name(dtype), ", expected an integer dtype");
    const auto bytes = contiguous_bytes();
    const std::size_t es = st_dtype_size(dtype);
    std::vector<std::int64_t> out(bytes.size() / es);
    for (std::size_t k = 0; k < out.size(); ++k) {
        out[k] = int_at(dtype, bytes.data() + k * es);
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Loading: the zip and legacy containers around the pickles.

class TorchCheckpointBuilder {
public:
    TorchCheckpointBuilder(const std::uint8_t* data, std::size_t size, const std::string& name)
        : data_(data), size_(size), where_(where_of(name)) {
        ckpt_.name_ = name;
        ckpt_.impl_ = std::make_shared<TorchCheckpoint::Impl>(where_);
    }

    TorchCheckpoint bare_pickle() {
        ckpt_.format_ = PtFormat::kBarePickle;
        ckpt_.root_ = Unpickler(*ckpt_.impl_, {data_, size_}, 0, nullptr).run();
        return finish();
    }

    TorchCheckpoint container() {
        if (zip::looks_like_zip(data_, size_)) {
            return zip_format();
        }
        RADPROBE_CHECK(!(size_ > 262 && std::memcmp(data_ + 257, "ustar", 5) == 0), where_,
                       "a tar archive (the checkpoint format of torch < 0.4) is not supported");
        RADPROBE_CHECK(size_ >= 2 && data_[0] == 0x80, where_,
                       "not a torch checkpoint: neither a zip archive nor a pickle (",
                       size_ < 2 ? "too short" : "first byte is not the pickle PROTO opcode", ")");
        return legacy_format();
    }

private:
    Arena& arena() { return *ckpt_.impl_; }

    // --- zip -----------------------------------------------------------------------------
    TorchCheckpoint zip_format() {
        ckpt_.format_ = PtFormat::kZip;
        for (auto& e : zip::read_entries(data_, size_, where_)) {
            entries_.emplace(e.name, e);
        }
        const zip::Entry& pkl = find_data_pkl();
        const std::string& prefix = ckpt_.archive_;
        RADPROBE_CHECK(!entries_.count(prefix + "/constants.pkl"), where_,
                       "a TorchScript archive (torch.jit.save), not a torch.save checkpoint");
        check_byteorder(prefix + "/byteorder");
        zip::require_stored(pkl, where_);
        const std::span<const std::uint8_t> bytes(data_ + pkl.offset, pkl.size);
        ckpt_.root_ = Unpickler(arena(), bytes, 0, [this](const PtValue& pid) {
                          return load_storage(pid, false);
                      }).run();
        return finish();
    }

    const zip::Entry& find_data_pkl() {
        const zip::Entry* found = nullptr;
        for (const auto& [name, entry] : entries_) {
            const auto slash = name.find('/');
            if (slash != std::string::npos && name.substr(slash) == "/data.pkl") {
                RADPROBE_CHECK(found == nullptr, where_, "zip archive has two data.pkl records (\"",
                               found ? found->name : "", "\" and \"", name, "\")");
                found = &entry;
                ckpt_.archive_ = name.substr(0, slash);
            }
        }
        RADPROBE_CHECK(found != nullptr, where_,
                       "zip archive without an <archive>/data.pkl record: not a torch.save file");
        return *found;
    }

    void check_byteorder(const std::string& record) {
        const auto it = entries_.find(record);
        if (it == entries_.end()) {
            return;
        }
        zip::require_stored(it->second, where_);
        const std::string order(reinterpret_cast<const char*>(data_ + it->second.offset),
                                std::min<std::uint64_t>(it->second.size, 16));
        RADPROBE_CHECK(order == "little", where_, "byteorder record says \"", order,
                       "\"; only little-endian checkpoints are supported");
    }

    std::span<const std::uint8_t> zip_storage_bytes(const std::string& key) {
        const auto it = entries_.find(ckpt_.archive_ + "/data/" + key);
        RADPROBE_CHECK(it != entries_.end(), where_, "storage \"", key, "\" has no record ",
                       ckpt_.archive_, "/data/", key);
        zip::require_stored(it->second, where_);
        return {data_ + it->second.offset, static_cast<std::size_t>(it->second.size)};
    }

    // --- persistent ids: ('storage', storage_type, key, location, numel[, view_metadata]) -
    PtValue* load_storage(const PtValue& pid, bool legacy) {
        RADPROBE_CHECK(pid.kind == PtKind::kTuple && !pid.items.empty() &&
                           pid.items[0]->kind == PtKind::kString,
                       where_, "persistent id is ", pid.describe(),
                       ", not a ('storage', ...) tuple");
        if (legacy && pid.items[0]->s == "module") {
            return arena().object("module source");
        }
        RADPROBE_CHECK(pid.items[0]->s == "storage" && pid.items.size() >= 5, where_,
                       "unsupported persistent id \"", pid.items[0]->s.substr(0, 40), "\"");
        const PtValue& type = *pid.items[1];
        const PtValue& key = *pid.items[2];
        const PtValue& numel = *pid.items[4];
        RADPROBE_CHECK(type.kind == PtKind::kStorageType, where_, "unsupported storage type ",
                       type.describe());
        RADPROBE_CHECK(key.kind == PtKind::kString && numel.kind == PtKind::kInt && numel.i >= 0,
                       where_, "malformed storage persistent id");
        const auto dtype = static_cast<StDType>(type.i);
        const std::size_t index = declare_storage(key.s, dtype, numel.i);
        if (legacy && pid.items.size() >= 6 && pid.items[5]->kind != PtKind::kNone) {
            return declare_view(*pid.items[5], index);
        }
        if (!legacy) {
            resolve_zip_storage(index);
        }
        return arena().storages[index].value;
    }

    std::size_t declare_storage(const std::string& key, StDType dtype, std::int64_t numel) {
        std::uint64_t nbytes = 0;
        RADPROBE_CHECK(
            checked_mul(static_cast<std::uint64_t>(numel), st_dtype_size(dtype), &nbytes), where_,
            "storage \"", key, "\" size overflows");
        auto& index = arena().storage_index;
        const auto it = index.find(key);
        if (it != index.end()) {
            const StorageRec& s = arena().storages[it->second];
            RADPROBE_CHECK(s.dtype == dtype && s.nbytes == nbytes, where_, "storage \"", key,
                           "\" is declared twice with different types or sizes");
            return it->second;
        }
        StorageRec rec;
        rec.key = key;
        rec.dtype = dtype;
        rec.nbytes = nbytes;
        rec.value = arena().make(PtKind::kStorage);
        rec.value->i = static_cast<std::int64_t>(arena().storages.size());
        index.emplace(key, arena().storages.size());
        arena().storages.push_back(std::move(rec));
        return arena().storages.size() - 1;
    }

    void resolve_zip_storage(std::size_t index) {
        StorageRec& s = arena().storages[index];
        if (s.resolved) {
            return;
        }
        s.bytes = zip_storage_bytes(s.key);
        RADPROBE_CHECK(s.bytes.size() == s.nbytes, where_, "storage \"", s.key, "\" declares ",
                       s.nbytes, " bytes but its record has ", s.bytes.size());
        s.resolved = true;
    }

    // view_metadata = (view_key, offset, view_size) in elements of the root storage.
    PtValue* declare_view(const PtValue& meta, std::size_t root) {
        RADPROBE_CHECK(meta.kind == PtKind::kTuple && meta.items.size() == 3 &&
                           meta.items[0]->kind == PtKind::kString &&
                           meta.items[1]->kind == PtKind::kInt && meta.items[1]->i >= 0 &&
                           meta.items[2]->kind == PtKind::kInt && meta.items[2]->i >= 0,
                       where_, "malformed storage view metadata");
        const StorageRec& r = arena().storages[root];
        const std::string root_key = r.key;
        const StDType dtype = r.dtype;
        const std::string& view_key = meta.items[0]->s;
        RADPROBE_CHECK(view_key != root_key, where_, "storage \"", root_key,
                       "\" is a view of itself");
        const std::size_t index = declare_storage(view_key, dtype, meta.items[2]->i);
        StorageRec& v = arena().storages[index];
        std::uint64_t begin = 0;
        RADPROBE_CHECK(
            checked_mul(static_cast<std::uint64_t>(meta.items[1]->i), st_dtype_size(dtype), &begin),
            where_, "storage view offset overflows");
        RADPROBE_CHECK(!v.is_view || (v.root == root_key && v.view_begin == begin), where_,
                       "storage view \"", view_key, "\" is declared twice differently");
        v.is_view = true;
        v.root = root_key;
        v.view_begin = begin;
        return v.value;
    }

    // --- legacy --------------------------------------------------------------------------
    PtValue* next_pickle(std::size_t* pos, Unpickler::PersistentLoad load = nullptr) {
        Unpickler u(arena(), {data_, size_}, *pos, std::move(load));
        PtValue* v = u.run();
        *pos = u.pos();
        return v;
    }

    void check_legacy_header(std::size_t* pos) {
        const PtValue* magic = next_pickle(pos);
        RADPROBE_CHECK(magic->kind == PtKind::kBigInt && magic->s.size() == sizeof kLegacyMagic &&
                           std::memcmp(magic->s.data(), kLegacyMagic, sizeof kLegacyMagic) == 0,
                       where_, "not a torch checkpoint: the first pickle is ", magic->describe(),
                       ", not torch's magic number");
        const PtValue* version = next_pickle(pos);
        RADPROBE_CHECK(version->kind == PtKind::kInt && version->i == kLegacyProtocolVersion,
                       where_, "legacy protocol version is not ", kLegacyProtocolVersion);
        const PtValue* sys_info = next_pickle(pos);
        RADPROBE_CHECK(sys_info->kind == PtKind::kDict, where_, "legacy sys_info is ",
                       sys_info->describe(), ", not a dict");
        const PtValue* little = sys_info->get("little_endian");
        RADPROBE_CHECK(little == nullptr || little->kind != PtKind::kBool || little->i == 1, where_,
                       "big-endian checkpoint; only little-endian is supported");
    }

    TorchCheckpoint legacy_format() {
        ckpt_.format_ = PtFormat::kLegacy;
        std::size_t pos = 0;
        check_legacy_header(&pos);
        ckpt_.root_ =
            next_pickle(&pos, [this](const PtValue& pid) { return load_storage(pid, true); });
        const PtValue* keys = next_pickle(&pos);
        RADPROBE_CHECK(keys->kind == PtKind::kList || keys->kind == PtKind::kTuple, where_,
                       "legacy storage key list is ", keys->describe());
        for (const auto* key : keys->items) {
            RADPROBE_CHECK(key->kind == PtKind::kString, where_, "legacy storage key is ",
                           key->describe());
            read_legacy_storage(key->s, &pos);
        }
        resolve_views();
        return finish();
    }

    void read_legacy_storage(const std::string& key, std::size_t* pos) {
        const auto it = arena().storage_index.find(key);
        RADPROBE_CHECK(it != arena().storage_index.end(), where_, "storage \"", key,
                       "\" is listed but never referenced");
        StorageRec& s = arena().storages[it->second];
        RADPROBE_CHECK(!s.resolved && !s.is_view, where_, "storage \"", key,
                       "\" is listed twice or is a view");
        RADPROBE_CHECK(size_ - *pos >= 8, where_, "storage \"", key,
                       "\": file ends before its element count (truncated?)");
        const auto count = load_le<std::uint64_t>(data_ + *pos);
        *pos += 8;
        const std::size_t es = st_dtype_size(s.dtype);
        RADPROBE_CHECK(count <= (size_ - *pos) / es, where_, "storage \"", key, "\": ", count,
                       " elements run past the end of the file (truncated?)");
        RADPROBE_CHECK(count * es == s.nbytes, where_, "storage \"", key, "\" declares ",
                       s.nbytes / es, " elements but the file holds ", count);
        s.bytes = {data_ + *pos, static_cast<std::size_t>(s.nbytes)};
        s.resolved = true;
        *pos += static_cast<std::size_t>(s.nbytes);
    }

    void resolve_views() {
        for (auto& s : arena().storages) {
            if (!s.is_view) {
                continue;
            }
            const StorageRec& root = arena().storages[arena().storage_index.at(s.root)];
            RADPROBE_CHECK(root.resolved && !root.is_view, where_, "storage view \"", s.key,
                           "\" refers to storage \"", s.root, "\" which has no data");
            RADPROBE_CHECK(
                s.view_begin <= root.bytes.size() && s.nbytes <= root.bytes.size() - s.view_begin,
                where_, "storage view \"", s.key, "\" reaches past storage \"", s.root, "\"");
            s.bytes = root.bytes.subspan(static_cast<std::size_t>(s.view_begin),
                                         static_cast<std::size_t>(s.nbytes));
            s.resolved = true;
        }
    }

    // --- tensors -------------------------------------------------------------------------
    TorchCheckpoint finish() {
        std::uint64_t total = 0;
        for (const auto& rec : arena().tensors) {
            const StorageRec& s = arena().storages[rec.storage];
            RADPROBE_CHECK(s.resolved, where_, "storage \"", s.key, "\" has no data in the file");
            PtTensorInfo t;
            t.dtype = rec.dtype;
            t.shape = rec.shape;
            t.strides = rec.strides;
            t.storage_offset = rec.offset;
            t.storage_key = s.key;
            t.storage = s.bytes;
            t.file = ckpt_.name_;
            const std::uint64_t n = check_view(t, where_);
            RADPROBE_CHECK(!__builtin_add_overflow(total, n, &total), where_,
                           "tensor sizes overflow");
            ckpt_.tensors_.push_back(std::move(t));
        }
        const std::uint64_t cap = kExpansionFactor * size_ + kExpansionSlack;
        RADPROBE_CHECK(total <= cap, where_, "tensors would occupy ", total,
                       " bytes once materialised, more than ", kExpansionFactor,
                       " x the file size + 256 MiB (overlapping or expanded views)");
        return std::move(ckpt_);
    }

    const std::uint8_t* data_;
    std::size_t size_;
    std::string where_;
    TorchCheckpoint ckpt_;
    std::map<std::string, zip::Entry> entries_;
};

// ---------------------------------------------------------------------------------------------
// TorchCheckpoint

namespace {

struct Mapping {
    void* addr = nullptr;
    std::size_t size = 0;
    ~Mapping() {
        if (addr != nullptr) {
            ::munmap(addr, size);
        }
    }
};

std::shared_ptr<Mapping> map_file(const std::filesystem::path& path) {
    const std::string where = where_of(path.string());
    std::error_code ec;
    RADPROBE_CHECK(std::filesystem::exists(path, ec), where, "does not exist");
    RADPROBE_CHECK(std::filesystem::is_regular_file(path, ec), where, "not a regular file");
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    RADPROBE_CHECK(fd >= 0, where, "cannot open (", std::strerror(errno), ")");
    struct stat st {};
    if (::fstat(fd, &st) != 0 || st.st_size == 0) {
        ::close(fd);
        RADPROBE_CHECK(false, where, "cannot stat or empty file");
    }
    auto mapping = std::make_shared<Mapping>();
    mapping->size = static_cast<std::size_t>(st.st_size);
    void* addr = ::mmap(nullptr, mapping->size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    RADPROBE_CHECK(addr != MAP_FAILED, where, "mmap failed (", std::strerror(errno), ")");
    mapping->addr = addr;
    return mapping;
}

bool is_container(const PtValue& v) {
    return v.kind == PtKind::kDict || v.kind == PtKind::kList || v.kind == PtKind::kTuple;
}

// Calls visit(path, tensor value) for every tensor under a value (see TorchCheckpoint::flatten).
// The path is built in one string (push / pop), so no key is copied per element.
class TensorWalker {
public:
    using Visit = std::function<void(const std::string&, const PtValue&)>;
    TensorWalker(std::string where, Visit visit)
        : where_(std::move(where)), visit_(std::move(visit)) {}

    void walk(const PtValue& v, int depth) {
        if (v.kind == PtKind::kTensor) {
            RADPROBE_CHECK(++visited_ <= kMaxTensors, where_, "more than ", kMaxTensors,
                           " tensor entries");
            visit_(path_, v);
            return;
        }
        if (!is_container(v) || !seen_.insert(&v).second) {
            return;  // leaves, placeholders, and containers already walked (shared or cyclic)
        }
        RADPROBE_CHECK(depth < kMaxDepth, where_, "objects nested deeper than ", kMaxDepth,
                       " levels at \"", path_.substr(0, 200), "\"");
        if (v.kind == PtKind::kDict) {
            walk_dict(v, depth);
            return;
        }
        for (std::size_t k = 0; k < v.items.size(); ++k) {
            descend(std::to_string(k), *v.items[k], depth);
        }
    }

private:
    void descend(const std::string& key, const PtValue& child, int depth) {
        const std::size_t old = path_.size();
        RADPROBE_CHECK(old + 1 + key.size() <= kMaxKeyPath, where_, "key path \"",
                       path_.substr(0, 100), "...\" is longer than ", kMaxKeyPath, " bytes");
        path_ += (old == 0 ? "" : ".") + key;
        walk(child, depth + 1);
        path_.resize(old);
    }
    // String and int keys; later entries win over earlier ones with the same key, as in Python.
    void walk_dict(const PtValue& v, int depth) {
        std::set<std::string> done;
        for (std::size_t k = v.items.size() / 2; k-- > 0;) {
            const PtValue& key = *v.items[2 * k];
            if (key.kind != PtKind::kString && key.kind != PtKind::kInt) {
                continue;
            }
            RADPROBE_CHECK(key.kind != PtKind::kString || key.s.size() <= kMaxKeyPath, where_,
                           "dict key of ", key.s.size(), " bytes is longer than ", kMaxKeyPath);
            std::string name = key.kind == PtKind::kString ? key.s : std::to_string(key.i);
            if (done.insert(name).second) {
                descend(name, *v.items[2 * k + 1], depth);
            }
        }
    }

    std::string where_;
    Visit visit_;
    std::string path_;
    std::size_t visited_ = 0;
    std::unordered_set<const PtValue*> seen_;
};

// Whether a value holds any tensor, memoised per container so that shared sub-trees are walked
// once (a container on the current path counts as empty: cycles end there).
class TensorFinder {
public:
    explicit TensorFinder(std::string where) : where_(std::move(where)) {}

    bool holds(const PtValue& v, int depth = 0) {
        if (v.kind == PtKind::kTensor) {
            return true;
        }
        if (!is_container(v)) {
            return false;
        }
        const auto [it, fresh] = known_.emplace(&v, false);
        if (!fresh) {
            return it->second;
        }
        RADPROBE_CHECK(depth < kMaxDepth, where_, "objects nested deeper than ", kMaxDepth,
                       " levels");
        const bool dict = v.kind == PtKind::kDict;
        bool found = false;
        for (std::size_t k = dict ? 1 : 0; k < v.items.size() && !found; k += dict ? 2 : 1) {
            found = holds(*v.items[k], depth + 1);
        }
        known_[&v] = found;
        return found;
    }

private:
    std::string where_;
    std::unordered_map<const PtValue*, bool> known_;
};

bool has_direct_tensor(const PtValue& dict) {
    for (std::size_t k = 1; k < dict.items.size(); k += 2) {
        if (dict.items[k]->kind == PtKind::kTensor) {
            return true;
        }
    }
    return false;
}

bool has_nested_state_dict(const PtValue& dict, TensorFinder& finder) {
    for (std::size_t k = 1; k < dict.items.size(); k += 2) {
        if (dict.items[k]->kind == PtKind::kDict && finder.holds(*dict.items[k])) {
            return true;
        }
    }
    return false;
}

// "\"epoch\" (int), \"args\" (argparse.Namespace object (not loaded)), ..."
std::string summarize(const PtValue& dict) {
    constexpr std::size_t kShown = 12;
    std::string out;
    const std::size_t n = dict.items.size() / 2;
    for (std::size_t k = 0; k < n && k < kShown; ++k) {
        const PtValue& key = *dict.items[2 * k];
        out += out.empty() ? "" : ", ";
        out += key.kind == PtKind::kString ? "\"" + key.s.substr(0, 80) + "\"" : key.describe();
        out += " (" + dict.items[2 * k + 1]->describe() + ")";
    }
    if (n > kShown) {
        out += str_cat(", ... (", n - kShown, " more)");
    }
    return out.empty() ? "none" : out;
}

std::string candidate_list() {
    std::string out;
    for (const auto& k : default_checkpoint_keys()) {
        out += (out.empty() ? "\"" : ", \"") + k + "\"";
    }
    return out;
}

}  // namespace

TorchCheckpoint TorchCheckpoint::open(const std::filesystem::path& path) {
    auto mapping = map_file(path);
    TorchCheckpoint ckpt =
        parse(static_cast<const std::uint8_t*>(mapping->addr), mapping->size, path.string());
    for (auto& t : ckpt.tensors_) {
        t.owner = mapping;
    }
    ckpt.mapping_ = std::move(mapping);
    return ckpt;
}

TorchCheckpoint TorchCheckpoint::parse(const std::uint8_t* data, std::size_t size,
                                       const std::string& name) {
    return TorchCheckpointBuilder(data, size, name).container();
}

TorchCheckpoint TorchCheckpoint::parse_pickle(const std::uint8_t* data, std::size_t size,
                                              const std::string& name) {
    return TorchCheckpointBuilder(data, size, name).bare_pickle();
}

const PtTensorInfo& TorchCheckpoint::tensor(const PtValue& value) const {
    RADPROBE_ASSERT(value.kind == PtKind::kTensor && value.i >= 0 &&
                        static_cast<std::size_t>(value.i) < tensors_.size(),
                    "not a tensor of this checkpoint");
    return tensors_[static_cast<std::size_t>(value.i)];
}

std::map<std::string, PtTensorInfo> TorchCheckpoint::flatten(const PtValue& value) const {
    std::map<std::string, PtTensorInfo> out;
    const std::string where = where_of(name_);
    TensorWalker(where, [&](const std::string& path, const PtValue& v) {
        PtTensorInfo t = tensor(v);
        t.name = path;
        RADPROBE_CHECK(out.emplace(path, std::move(t)).second, where, "two tensors are named \"",
                       path.substr(0, 200), "\"");
    }).walk(value, 0);
    return out;
}

const PtValue& TorchCheckpoint::select_state_dict(const std::string& checkpoint_key) const {
    const std::string where = where_of(name_);
    const PtValue& top = root();
    TensorFinder finder(where);
    if (!checkpoint_key.empty()) {
        RADPROBE_CHECK(top.is_dict(), where, "checkpoint key \"", checkpoint_key,
                       "\" given but the top level is ", top.describe());
        const PtValue* v = top.get(checkpoint_key);
        RADPROBE_CHECK(v != nullptr, where, "no top-level key \"", checkpoint_key,
                       "\" (top-level keys: ", summarize(top), ")");
        RADPROBE_CHECK(v->is_dict() && finder.holds(*v), where, "\"", checkpoint_key, "\" is ",
                       v->describe(), ", not a dict of tensors");
        return *v;
    }
    RADPROBE_CHECK(top.is_dict(), where, "the top level is ", top.describe(),
                   ", not a dict of tensors (a pickled module? save its state_dict())");
    if (has_direct_tensor(top) && !has_nested_state_dict(top, finder)) {
        return top;
    }
    for (const auto& key : default_checkpoint_keys()) {
        const PtValue* v = top.get(key);
        if (v != nullptr && v->is_dict() && finder.holds(*v)) {
            return *v;
        }
    }
    RADPROBE_CHECK(false, where, "no state dict found: top-level keys ", summarize(top),
                   "; none of ", candidate_list(),
                   " holds tensors (pass the checkpoint key that does)");
    return top;
}

namespace {

const std::string kModulePrefix = "module.";

bool all_module_prefixed(const std::map<std::string, PtTensorInfo>& tensors) {
    return !tensors.empty() && std::all_of(tensors.begin(), tensors.end(), [](const auto& kv) {
        return kv.first.size() > kModulePrefix.size() &&
               kv.first.compare(0, kModulePrefix.size(), kModulePrefix) == 0;
    });
}

}  // namespace

std::string TorchCheckpoint::state_dict_entry(const std::string& checkpoint_key) const {
    const PtValue& chosen = select_state_dict(checkpoint_key);
    const PtValue& top = root();
    for (std::size_t k = 0; &chosen != &top && k + 1 < top.items.size(); k += 2) {
        if (top.items[k + 1] == &chosen && top.items[k]->kind == PtKind::kString) {
            return top.items[k]->s;
        }
    }
    return "";
}

bool TorchCheckpoint::strips_module_prefix(const std::string& checkpoint_key) const {
    return all_module_prefixed(flatten(select_state_dict(checkpoint_key)));
}

std::map<std::string, PtTensorInfo> TorchCheckpoint::state_dict_tensors(
    const std::string& checkpoint_key) const {
    auto tensors = flatten(select_state_dict(checkpoint_key));
    const std::string& prefix = kModulePrefix;
    if (!all_module_prefixed(tensors)) {
        return tensors;
    }
    std::map<std::string, PtTensorInfo> stripped;
    for (auto& [key, info] : tensors) {
        info.name = key.substr(prefix.size());
        stripped.emplace(info.name, std::move(info));
    }
    return stripped;
}

const std::vector<std::string>& default_checkpoint_keys() {
    // The teacher first: self-distillation checkpoints (DINO, Ark) keep the student under
    // "student" or "state_dict" beside it, and the teacher is the network their authors publish.
    static const std::vector<std::string> keys = {"teacher", "state_dict", "model",      "module",
                                                  "net",     "network",    "model_state"};
    return keys;
}

std::map<std::string, PtTensorInfo> load_torch_state_dict(const std::filesystem::path& path,
                                                          const std::string& checkpoint_key) {
    return TorchCheckpoint::open(path).state_dict_tensors(checkpoint_key);
}

bool looks_like_torch_checkpoint(const std::uint8_t* data, std::size_t size) {
    return zip::looks_like_zip(data, size) || (size >= 2 && data[0] == 0x80 && data[1] <= 5);
}

}  // namespace radprobe::encoders
