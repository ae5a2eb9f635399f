/* One feature row through an XGBoost model's trees: the service's per-sbatch path.
 *
 * predictor/service/fast_trees.py packs the trees depth-first (a split's left
 * child is the next node) into `nodes`, and checks this walk against the booster
 * before serving with it. Built when a C compiler is there (setup.py marks the
 * extension optional); without it fast_trees.py walks the same trees with numpy.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

#define MISSING_RIGHT (1 << 24) /* added to a split's feature when a missing value goes right */

typedef struct {
    int32_t key;   /* feature (+ MISSING_RIGHT), or -1 for a leaf */
    float value;   /* split threshold, or the leaf's output */
    int32_t right; /* index of the right child */
} Node;

static PyObject *walk(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyList_CheckExact(args[0]) || !PyBytes_CheckExact(args[1]) ||
        !PyBytes_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "walk(row: list[float], nodes: bytes, roots: bytes)");
        return NULL;
    }
    PyObject *row = args[0];
    const Py_ssize_t n_features = PyList_GET_SIZE(row);
    const Node *nodes = (const Node *)PyBytes_AS_STRING(args[1]);
    const Py_ssize_t n_nodes = PyBytes_GET_SIZE(args[1]) / (Py_ssize_t)sizeof(Node);
    const int32_t *roots = (const int32_t *)PyBytes_AS_STRING(args[2]);
    const Py_ssize_t n_trees = PyBytes_GET_SIZE(args[2]) / (Py_ssize_t)sizeof(int32_t);
    float total = 0.0f;
    for (Py_ssize_t t = 0; t < n_trees; t++) {
        int32_t node = roots[t];
        for (Py_ssize_t steps = 0;; steps++) {
            if (node < 0 || node >= n_nodes) {
                PyErr_Format(PyExc_ValueError, "tree %zd points outside its %zd nodes", t, n_nodes);
                return NULL;
            }
            if (steps > n_nodes) { /* a cycle: no walk through a tree visits a node twice */
                PyErr_Format(PyExc_ValueError, "tree %zd does not reach a leaf", t);
                return NULL;
            }
            const Node *here = &nodes[node];
            if (here->key < 0) {
                total += here->value;
                break;
            }
            const Py_ssize_t feature = here->key & (MISSING_RIGHT - 1);
            if (feature >= n_features) {
                PyErr_Format(PyExc_ValueError, "a row of %zd features has no feature %zd",
                             n_features, feature);
                return NULL;
            }
            PyObject *item = PyList_GET_ITEM(row, feature);
            const double wide = PyFloat_CheckExact(item) ? PyFloat_AS_DOUBLE(item)
                                                         : PyFloat_AsDouble(item);
            if (wide == -1.0 && PyErr_Occurred()) {
                return NULL;
            }
            const float x = (float)wide; /* XGBoost compares in float32 */
            const int go_right = isnan(x) ? here->key >= MISSING_RIGHT : x >= here->value;
            node = go_right ? here->right : node + 1;
        }
    }
    return PyFloat_FromDouble((double)total);
}

static PyMethodDef methods[] = {
    {"walk", (PyCFunction)(void (*)(void))walk, METH_FASTCALL,
     "walk(row, nodes, roots) -> the sum of the leaves one row reaches"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_tree_walk", "Compiled single-row tree walk (see fast_trees.py).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__tree_walk(void) { return PyModule_Create(&module); }
