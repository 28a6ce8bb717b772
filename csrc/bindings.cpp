// The only file that knows about Python. Each binding checks dtype, contiguity and sizes,
// takes raw pointers, then releases the GIL in a sub-scope that makes no Python calls
// (pybind11 #4748: no call_guard with array_t arguments).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "codec.h"
#include "cpu.h"

namespace py = pybind11;
using namespace edgeinf;

namespace {

void check_status(int status, const char* what) {
    if (status == kOk) return;
    if (status == kBadArgument)
        throw std::invalid_argument(std::string(what) + ": invalid argument (scale must be finite and > 0, zero_point in [-128, 127])");
    if (status == kOutOfBounds)
        throw std::out_of_range(std::string(what) + ": output buffer too small");
    throw std::runtime_error(std::string(what) + ": kernel error " + std::to_string(status));
}

template <typename T>
const T* c_contig_ptr(const py::array& a, const char* name) {
    if (!(a.flags() & py::array::c_style))
        throw std::invalid_argument(std::string(name) + " must be C-contiguous (use np.ascontiguousarray)");
    return static_cast<const T*>(a.data());
}

py::array_t<int8_t> quantize_int8(py::array_t<float, py::array::forcecast> x, float scale,
                                  int zero_point) {
    const float* src = c_contig_ptr<float>(x, "x");
    py::array_t<int8_t> out(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
    int8_t* dst = out.mutable_data();
    size_t n = static_cast<size_t>(x.size());
    int st;
    {
        py::gil_scoped_release nogil;
        st = quantize_int8_generic(src, n, scale, zero_point, dst, n);
    }
    check_status(st, "quantize_int8");
    return out;
}

py::array_t<float> dequantize_int8(py::array_t<int8_t, py::array::forcecast> q, float scale,
                                   int zero_point) {
    const int8_t* src = c_contig_ptr<int8_t>(q, "q");
    py::array_t<float> out(std::vector<py::ssize_t>(q.shape(), q.shape() + q.ndim()));
    float* dst = out.mutable_data();
    size_t n = static_cast<size_t>(q.size());
    int st;
    {
        py::gil_scoped_release nogil;
        st = dequantize_int8_generic(src, n, scale, zero_point, dst, n);
    }
    check_status(st, "dequantize_int8");
    return out;
}

py::dict build_info() {
    py::dict d;
    d["version"] = EDGEINF_VERSION_INFO;
    d["flags"] = EDGEINF_BUILD_FLAGS;
#if defined(__clang__)
    d["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
    d["compiler"] = std::string("gcc ") + __VERSION__;
#else
    d["compiler"] = "unknown";
#endif
    Isa isa = best_isa();
    d["isa"] = isa_name(isa);
    d["simd_width_bits"] = simd_width_bits(isa);
    return d;
}

}  // namespace

PYBIND11_MODULE(_kernels, m) {
    m.doc() = "edgeinf native kernels (see csrc/)";
    m.attr("__version__") = EDGEINF_VERSION_INFO;
    m.def("build_info", &build_info, "Compiler, flags and the ISA path chosen at run time.");
    m.def("quantize_int8", &quantize_int8, py::arg("x"), py::arg("scale"), py::arg("zero_point") = 0,
          "Affine int8 quantization: clamp(round(x / scale) + zero_point, -128, 127).");
    m.def("dequantize_int8", &dequantize_int8, py::arg("q"), py::arg("scale"), py::arg("zero_point") = 0,
          "Inverse of quantize_int8: (q - zero_point) * scale.");
}
