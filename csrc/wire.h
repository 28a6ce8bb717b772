// Native framing of the wire format's common case (csrc/wire.cpp; edgeinf/transport/protocol.py
// is the reference).
#pragma once

#include <Python.h>

namespace edgeinf {

// protocol.PROTOCOL_VERSION: protocol.py refuses a build whose number differs
constexpr unsigned char kWireVersion = 1;

// Adds wire_setup, wire_decode, wire_encode, wire_views and wire_check to the module; -1 on error.
int add_wire_functions(PyObject* module);

// numpy's PyArray_NewFromDescr and PyArray_SetBaseObject, from pybind11's table of numpy's C
// API (csrc/bindings.cpp: pybind11 keeps the table's indices): false, no error set, when
// numpy cannot give them (wire_views then builds its views through numpy.ndarray).
using NewFromDescr = PyObject* (*)(PyTypeObject*, PyObject*, int, const Py_intptr_t*, const Py_intptr_t*, void*, int,
                                   PyObject*);
using SetBaseObject = int (*)(PyObject*, PyObject*);
bool numpy_array_api(NewFromDescr* new_from_descr, SetBaseObject* set_base);

}  // namespace edgeinf
