/* otelkv.otlp._wire: the optional compiled core of otelkv.otlp.enrich (docs/performance.md).
 *
 * Placeholder: module init only. The real core (issue 13 item 2) replaces this file; what
 * packaging, selection and reporting rely on is the module name and ABI_VERSION, which
 * otelkv.otlp.native checks before using the module.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Raise it with any change to the functions otelkv.otlp.enrich calls (and native.ABI_VERSION). */
#define OTELKV_WIRE_ABI_VERSION 1

static struct PyModuleDef wire_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "otelkv.otlp._wire",
    .m_doc = "The optional compiled core of otelkv.otlp.enrich.",
    .m_size = 0,
};

PyMODINIT_FUNC
PyInit__wire(void)
{
    PyObject *module = PyModule_Create(&wire_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "ABI_VERSION", OTELKV_WIRE_ABI_VERSION) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
