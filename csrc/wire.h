// Native framing of the wire format's common case (csrc/wire.cpp; edgeinf/transport/protocol.py
// is the reference).
#pragma once

#include <Python.h>

namespace edgeinf {

// protocol.PROTOCOL_VERSION: protocol.py refuses a build whose number differs
constexpr unsigned char kWireVersion = 1;

// Adds wire_setup, wire_decode, wire_encode, wire_views and wire_check to the module; -1 on error.
int add_wire_functions(PyObject* module);

}  // namespace edgeinf
