#include "rlhf/checkpoint/safetensors.h"

#include <torch/torch.h>

#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/core/mapped_file.h"

namespace rlhf {

namespace {

struct DtypeName {
    torch::ScalarType type;
    const char* name;
};

constexpr DtypeName kDtypes[] = {
    {torch::kFloat32, "F32"}, {torch::kFloat64, "F64"}, {torch::kBFloat16, "BF16"}, {torch::kFloat16, "F16"},
    {torch::kInt64, "I64"},   {torch::kInt32, "I32"},   {torch::kInt16, "I16"},     {torch::kInt8, "I8"},
    {torch::kUInt8, "U8"},    {torch::kBool, "BOOL"},
};

const char* dtype_name(torch::ScalarType t) {
    for (const auto& d : kDtypes) if (d.type == t) return d.name;
    throw Error(std::string("cannot store dtype ") + c10::toString(t) + " in safetensors", "", "");
}

bool dtype_from_name(const std::string& name, torch::ScalarType& out) {
    for (const auto& d : kDtypes) {
        if (name == d.name) {
            out = d.type;
            return true;
        }
    }
    return false;
}

}  // namespace

void save_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
    nlohmann::json header = nlohmann::json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    std::vector<torch::Tensor> cpu;
    std::set<std::string> names;
    size_t offset = 0;
    for (const auto& [name, t] : tensors) {
        if (!names.insert(name).second) throw Error("duplicate tensor name '" + name + "'", path.string(), "");
        auto c = t.detach().to(torch::kCPU).contiguous();
        const size_t nbytes = static_cast<size_t>(c.numel()) * c.element_size();
        header[name] = {{"dtype", dtype_name(c.scalar_type())},
                        {"shape", c.sizes().vec()},
                        {"data_offsets", {offset, offset + nbytes}}};
        offset += nbytes;
        cpu.push_back(c);
    }
    std::string json = header.dump();
    json.append((8 - json.size() % 8) % 8, ' ');  // align the data section to 8 bytes
    std::string buf(8 + json.size() + offset, '\0');
    const uint64_t header_len = json.size();
    std::memcpy(buf.data(), &header_len, 8);
    std::memcpy(buf.data() + 8, json.data(), json.size());
    char* data = buf.data() + 8 + json.size();
    size_t pos = 0;
    for (const auto& c : cpu) {
        const size_t nbytes = static_cast<size_t>(c.numel()) * c.element_size();
        if (nbytes) std::memcpy(data + pos, c.data_ptr(), nbytes);
        pos += nbytes;
    }
    atomic_write(path, buf);
}

SafetensorsFile load_safetensors(const std::filesystem::path& path) {
    const std::string where = path.string();
    const std::string hint = "the checkpoint is damaged; use an earlier one (checkpoints/step-*)";
    MappedFile file(path);
    if (file.size() < 8) throw Error("truncated safetensors file", where, hint);
    uint64_t header_len = 0;
    std::memcpy(&header_len, file.data(), 8);
    if (header_len > file.size() - 8) throw Error("truncated safetensors file (header)", where, hint);
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(file.data() + 8, file.data() + 8 + header_len);
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("corrupted safetensors header: ") + e.what(), where, hint);
    }
    if (!header.is_object()) throw Error("corrupted safetensors header (not an object)", where, hint);
    const unsigned char* data = file.data() + 8 + header_len;
    const size_t data_len = file.size() - 8 - header_len;

    SafetensorsFile out;
    for (const auto& [name, entry] : header.items()) {
        try {
            if (name == "__metadata__") {
                for (const auto& [k, v] : entry.items()) out.metadata[k] = v.get<std::string>();
                continue;
            }
            torch::ScalarType dtype;
            if (!dtype_from_name(entry.at("dtype").get<std::string>(), dtype)) {
                throw Error("tensor '" + name + "' has unsupported dtype " + entry.at("dtype").dump(), where, hint);
            }
            auto shape = entry.at("shape").get<std::vector<int64_t>>();
            auto offsets = entry.at("data_offsets").get<std::vector<uint64_t>>();
            // The size is checked for overflow here, in the order LibTorch multiplies, so that a
            // damaged shape is this file's error and not LibTorch's nameless "Storage size
            // calculation overflowed".
            uint64_t numel = 1, nbytes = 0;
            bool overflow = false;
            for (auto d : shape) {
                if (d < 0) throw Error("tensor '" + name + "' has a negative dimension", where, hint);
                overflow |= __builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel);
            }
            const auto elem = static_cast<uint64_t>(c10::elementSize(dtype));
            overflow |= __builtin_mul_overflow(numel, elem, &nbytes);
            if (overflow || nbytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
                throw Error("tensor '" + name + "' has a shape " + entry.at("shape").dump() +
                                " whose size overflows 64 bits",
                            where, hint);
            }
            if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > data_len ||
                offsets[1] - offsets[0] != nbytes) {
                throw Error("tensor '" + name + "' lies outside the file or has the wrong size (truncated?)", where,
                            hint);
            }
            auto t = torch::empty(shape, torch::TensorOptions().dtype(dtype));
            if (numel) std::memcpy(t.data_ptr(), data + offsets[0], offsets[1] - offsets[0]);
            out.tensors.emplace(name, t);
        } catch (const nlohmann::json::exception& e) {
            throw Error("corrupted safetensors entry '" + name + "': " + e.what(), where, hint);
        }
    }
    return out;
}

}  // namespace rlhf
