/* otelkv.otlp._wire: the native core of otelkv.otlp.enrich, on the wire format.
 *
 * The pure-Python path (otelkv.otlp.enrich.enrich) is the reference; this module does the same
 * work on the bytes of an ExportLogsServiceRequest, in two calls around the Python steps that
 * stay in Python (parse_k8s_event and the migration tracker):
 *
 *   scan(payload, kinds, drop_others, delivered, attributes)
 *       walks request -> ResourceLogs -> ScopeLogs -> LogRecord, reads each record's key
 *       (k8s.event.uid, k8s.event.count, and the resource's k8s.cluster.name), deduplicates (within the request, then delivered(key)),
 *       and for each record under a resource whose k8s.object.kind is in `kinds` hands over the
 *       values otelkv.kubevirt.k8s.collector_event reads (a tuple in COLLECTOR_FIELDS' order:
 *       no mapping, no string the reader does not read; a resource's values made once for all
 *       its records). `attributes` (the kubevirt.* names) mark a record enriched before. Returns None for any shape it does not handle exactly as
 *       the reference does (a map body, a repeated singular field, a value of a type it does not
 *       read, a record enriched before, ...): the caller then takes the reference path. It has
 *       no side effects besides calling delivered(key).
 *   build(payload, plan, decisions, service_name, attributes, limit)
 *       writes the enriched request: records regrouped by (namespace, KubeVirt or not) as the
 *       reference groups them, resources and scopes copied as bytes, the kubevirt.* KeyValues
 *       spliced in after a record's own attributes, service.name and k8s.namespace.name set on
 *       the resource of KubeVirt records, summary records (serialized by Python) beside the
 *       record that ended a migration. Never fails on a plan that scan made from this very
 *       payload object (the plan holds it; any other bytes, even equal ones, are a ValueError).
 *       A plan builds any number of times; scan and build take bytes only (immutable). When the
 *       resources and scopes it would copy (once per group, as enrich._Copies counts them) take
 *       more than `limit` bytes (for groups after each resource's first), it writes nothing and
 *       returns their size, an int.
 *
 *   count_messages(payload)
 *       how many messages upb makes decoding the request (the receivers charge the in-flight cap
 *       by it before decoding, when it is more than 8x the size); -1 for malformed bytes.
 *
 * On input written by a canonical encoder (fields in number order, as upb and the collector's Go
 * encoder write them) the output is byte for byte what the reference serializes; on other input it
 * is the same message. The payload must have been parsed by upb before (the receivers do, to
 * validate it): this module reads only what it needs and trusts the rest of the bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define ABI_VERSION 5

/* Statuses: 0 handled, 1 a shape this module leaves to the reference path, -1 a Python error. */
#define OK 0
#define UNSUPPORTED 1
#define ERROR (-1)

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

typedef struct {
    Py_ssize_t start, end; /* a span of the payload; start < 0: absent */
} Span;

typedef struct {
    uint32_t number;
    int wire;
    Py_ssize_t start;      /* the tag's first byte */
    Py_ssize_t vstart, vend; /* the value (for WT_LEN its content) */
    uint64_t value;        /* WT_VARINT, WT_I64, WT_I32 */
} Field;

/* One field at *pos (before end); advances *pos. UNSUPPORTED for malformed bytes or groups. */
static int next_field(const uint8_t *b, Py_ssize_t end, Py_ssize_t *pos, Field *f) {
    Py_ssize_t p = *pos;
    uint64_t v = 0;
    int shift = 0;
    f->start = p;
    for (;;) {
        if (p >= end || shift > 63) return UNSUPPORTED;
        uint8_t c = b[p++];
        v |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) break;
        shift += 7;
    }
    f->number = (uint32_t)(v >> 3);
    f->wire = (int)(v & 7);
    if (f->number == 0 || (v >> 3) > 0x1FFFFFFF) return UNSUPPORTED;
    switch (f->wire) {
    case WT_VARINT:
        v = 0;
        shift = 0;
        for (;;) {
            if (p >= end || shift > 63) return UNSUPPORTED;
            uint8_t c = b[p++];
            v |= (uint64_t)(c & 0x7F) << shift;
            if (!(c & 0x80)) break;
            shift += 7;
        }
        f->value = v;
        f->vstart = f->vend = p;
        break;
    case WT_I64:
        if (end - p < 8) return UNSUPPORTED;
        memcpy(&f->value, b + p, 8); /* little-endian hosts only: checked at import */
        f->vstart = p;
        p += 8;
        f->vend = p;
        break;
    case WT_I32: {
        uint32_t u;
        if (end - p < 4) return UNSUPPORTED;
        memcpy(&u, b + p, 4);
        f->value = u;
        f->vstart = p;
        p += 4;
        f->vend = p;
        break;
    }
    case WT_LEN: {
        uint64_t n = 0;
        shift = 0;
        for (;;) {
            if (p >= end || shift > 63) return UNSUPPORTED;
            uint8_t c = b[p++];
            n |= (uint64_t)(c & 0x7F) << shift;
            if (!(c & 0x80)) break;
            shift += 7;
        }
        if (n > (uint64_t)(end - p)) return UNSUPPORTED;
        f->vstart = p;
        p += (Py_ssize_t)n;
        f->vend = p;
        break;
    }
    default:
        return UNSUPPORTED; /* groups are not OTLP */
    }
    *pos = p;
    return OK;
}

static int span_is(const uint8_t *b, Span s, const char *text, Py_ssize_t n) {
    return s.start >= 0 && s.end - s.start == n && memcmp(b + s.start, text, (size_t)n) == 0;
}
#define SPAN_IS(b, s, lit) span_is((b), (s), (lit), (Py_ssize_t)(sizeof(lit) - 1))

/* ---- AnyValue and KeyValue ---------------------------------------------------------------- */

enum { AV_NONE = 0, AV_STRING = 1, AV_BOOL = 2, AV_INT = 3, AV_DOUBLE = 4, AV_ARRAY = 5, AV_KVLIST = 6,
       AV_BYTES = 7 };
/* The wire type of each AnyValue field (1..7). */
static const int AV_WIRE[8] = {-1, WT_LEN, WT_VARINT, WT_VARINT, WT_I64, WT_LEN, WT_LEN, WT_LEN};

typedef struct {
    int kind;   /* AV_* */
    Field field;
    int fields; /* how many fields the AnyValue has (plain: at most one, numbered 1..7) */
} Any;

/* Read the AnyValue in [s, e): which value it holds. More than one field is left to the reference
 * (a merge of oneof members), as is a known field of the wrong wire type. */
static int read_any(const uint8_t *b, Py_ssize_t s, Py_ssize_t e, Any *a) {
    Py_ssize_t p = s;
    a->kind = AV_NONE;
    a->fields = 0;
    while (p < e) {
        Field f;
        if (next_field(b, e, &p, &f)) return UNSUPPORTED;
        if (++a->fields > 1) return UNSUPPORTED;
        /* Past 7: string_value_strindex (8) is a member of the oneof in newer schemas (the
         * opentelemetry-proto requirements.lock pins has it: value_of reads an int), and a later
         * field may be; the reference reads it by the schema installed. */
        if (f.number > 7 || f.wire != AV_WIRE[f.number]) return UNSUPPORTED;
        a->kind = (int)f.number;
        a->field = f;
    }
    return OK;
}

/* The value as Python (what otelkv.otlp.attributes.value_of gives), or UNSUPPORTED for arrays
 * and maps (never in the attributes of an event; the reference path reads them). */
static int any_object(const uint8_t *b, const Any *a, PyObject **out) {
    const Field *f = &a->field;
    switch (a->kind) {
    case AV_NONE:
        Py_INCREF(Py_None);
        *out = Py_None;
        return OK;
    case AV_STRING:
        *out = PyUnicode_DecodeUTF8((const char *)b + f->vstart, f->vend - f->vstart, "strict");
        if (*out == NULL) {
            PyErr_Clear(); /* upb checked UTF-8 already; leave anything odd to the reference */
            return UNSUPPORTED;
        }
        return OK;
    case AV_BOOL:
        *out = PyBool_FromLong(f->value != 0);
        return OK;
    case AV_INT:
        *out = PyLong_FromLongLong((long long)f->value);
        return *out ? OK : ERROR;
    case AV_DOUBLE: {
        double d;
        memcpy(&d, &f->value, 8);
        *out = PyFloat_FromDouble(d);
        return *out ? OK : ERROR;
    }
    case AV_BYTES:
        *out = PyBytes_FromStringAndSize((const char *)b + f->vstart, f->vend - f->vstart);
        return *out ? OK : ERROR;
    default:
        return UNSUPPORTED;
    }
}

typedef struct {
    Span key;    /* content of field 1 (absent: start < 0) */
    Span value;  /* content of field 2 (absent: start < 0) */
    int plain;   /* exactly [key][value] with a plain AnyValue: rewritable as the reference sets it */
} KV;

static int read_kv(const uint8_t *b, Py_ssize_t s, Py_ssize_t e, KV *kv) {
    Py_ssize_t p = s;
    int index = 0;
    kv->key.start = kv->value.start = -1;
    kv->key.end = kv->value.end = -1;
    kv->plain = 1;
    while (p < e) {
        Field f;
        if (next_field(b, e, &p, &f)) return UNSUPPORTED;
        index++;
        if (f.number == 1 || f.number == 2) {
            if (f.wire != WT_LEN) return UNSUPPORTED;
            Span *target = f.number == 1 ? &kv->key : &kv->value;
            if (target->start >= 0) return UNSUPPORTED; /* repeated: a merge, left to the reference */
            target->start = f.vstart;
            target->end = f.vend;
            if ((int)f.number != index) kv->plain = 0;
        } else {
            kv->plain = 0;
        }
    }
    if (kv->key.start < 0) kv->key.start = kv->key.end = s; /* an empty key */
    if (kv->plain && kv->value.start >= 0) {
        Any a;
        if (read_any(b, kv->value.start, kv->value.end, &a)) kv->plain = 0; /* an unknown field too */
    }
    return OK;
}

/* The value of a KeyValue as Python. */
static int kv_object(const uint8_t *b, const KV *kv, PyObject **out) {
    Any a;
    if (kv->value.start < 0) {
        Py_INCREF(Py_None);
        *out = Py_None;
        return OK;
    }
    if (read_any(b, kv->value.start, kv->value.end, &a)) return UNSUPPORTED;
    return any_object(b, &a, out);
}

static PyObject *span_text(const uint8_t *b, Span s) {
    PyObject *text = PyUnicode_DecodeUTF8((const char *)b + s.start, s.end - s.start, "strict");
    if (text == NULL) PyErr_Clear();
    return text;
}

/* What otelkv.kubevirt.k8s.collector_event reads of a record, in the order of its parameters
   (otelkv.kubevirt.k8s.COLLECTOR_FIELDS: tests/test_native.py holds the two lists equal): the
   record's attributes of these names over its resource's (COLLECTOR_KEYS), and the record's own
   body, severity text and time. scan hands Python these values of a record, and nothing else. */
enum { F_REASON, F_BODY, F_SEVERITY, F_KIND, F_NAME, F_UID, F_NAMESPACE, F_CONTROLLER, F_NODE, F_INSTANCE,
       F_TIMESTAMP, F_START, F_COUNT, F_CLUSTER, NFIELDS };
static const char *const FIELD_KEYS[NFIELDS] = {
    "k8s.event.reason", "body", "severity_text", "k8s.object.kind", "k8s.object.name", "k8s.object.uid",
    "k8s.namespace.name", "k8s.event.reporting_controller", "k8s.node.name", "k8s.event.reporting_instance",
    "timestamp", "k8s.event.start_time", "k8s.event.count", "k8s.cluster.name",
};
static Py_ssize_t FIELD_LEN[NFIELDS];
static PyObject *KUBEVIRT_PREFIX; /* "kubevirt." */

/* Which field an attribute name is (-1: none the reader reads). A record attribute named body,
   severity_text or timestamp is not one (the record's own fields win, as in event_view); the
   resource gives no start time (`resource` set). */
static int field_of(const uint8_t *b, Span key, int resource) {
    Py_ssize_t n = key.end - key.start;
    for (int i = 0; i < NFIELDS; i++) {
        if (i == F_BODY || i == F_SEVERITY || i == F_TIMESTAMP || (resource && i == F_START)) continue;
        if (FIELD_LEN[i] == n && memcmp(FIELD_KEYS[i], b + key.start, (size_t)n) == 0) return i;
    }
    return -1;
}

/* A KeyValue's value must be one the reference reads as a plain value (not a list or a map, which
   the core leaves to the reference); *empty: it is the string "". */
static int plain_value(const uint8_t *b, const KV *kv, int *empty) {
    Any a;
    *empty = 0;
    if (kv->value.start < 0) return OK;
    if (read_any(b, kv->value.start, kv->value.end, &a)) return UNSUPPORTED;
    if (a.kind == AV_ARRAY || a.kind == AV_KVLIST) return UNSUPPORTED;
    *empty = a.kind == AV_STRING && a.field.vend == a.field.vstart;
    return OK;
}

/* ---- the plan --------------------------------------------------------------------------- */

enum { REC_DUPLICATE = 0, REC_DROPPED = 1, REC_PASSED = 2, REC_VIEW = 3 };

typedef struct {
    Span content;          /* the LogRecord's bytes */
    Py_ssize_t insert;     /* where new attributes go */
    int status;            /* REC_* */
    Py_ssize_t view;       /* REC_VIEW: index into the views and decisions */
    Py_ssize_t scope;      /* index of its ScopeLogs */
} Rec;

typedef struct {
    Span scope, schema_url;
    Py_ssize_t first, count; /* records */
} Scope;

typedef struct {
    Span resource, schema_url;
    Py_ssize_t insert;        /* where new resource attributes go */
    Span service, namespace;  /* the whole first service.name / k8s.namespace.name entries */
    Py_ssize_t first, count;  /* scopes */
} Res;

/* What scan found, for build; build only reads it. It holds the payload it was made from: its
 * spans are positions in those bytes (immutable), and build takes no other. */
typedef struct {
    PyObject *payload; /* owned */
    Res *res;
    Scope *scopes;
    Rec *recs;
    Py_ssize_t nres, nscopes, nrecs, capres, capscopes, caprecs;
} Plan;

static void plan_free(Plan *plan) {
    if (plan == NULL) return;
    Py_XDECREF(plan->payload);
    PyMem_Free(plan->res);
    PyMem_Free(plan->scopes);
    PyMem_Free(plan->recs);
    PyMem_Free(plan);
}

static void plan_capsule_free(PyObject *capsule) {
    plan_free((Plan *)PyCapsule_GetPointer(capsule, "otelkv.otlp._wire.plan"));
}

#define GROW(arr, n, cap)                                                         \
    do {                                                                          \
        if ((n) == (cap)) {                                                       \
            Py_ssize_t c2 = (cap) ? (cap)*2 : 16;                                 \
            void *p2 = PyMem_Realloc((arr), (size_t)c2 * sizeof(*(arr)));         \
            if (p2 == NULL) { PyErr_NoMemory(); goto error; }                     \
            (arr) = p2;                                                           \
            (cap) = c2;                                                           \
        }                                                                         \
    } while (0)

/* ---- scan ------------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *b;
    PyObject *kinds, *delivered, *attributes; /* borrowed */
    int drop_others;
    PyObject *seen, *views, *keys;            /* owned */
    PyObject *cluster;                        /* owned: the current resource's cluster, or NULL */
    PyObject *rv[NFIELDS];                    /* owned: a KubeVirt resource's values of FIELD_KEYS, or NULL */
    Py_ssize_t received, duplicates, dropped, passed;
    PyObject *normal, *warning, *empty;       /* owned constants */
} Scan;

/* The longest uid or count text a key holds (otelkv.otlp.record_keys.MAX_KEY_BYTES). */
#define MAX_KEY_BYTES 64
/* The longest cluster name a key holds (otelkv.otlp.record_keys.MAX_CLUSTER_BYTES). */
#define MAX_CLUSTER_BYTES 253

/* A record's key (uid, count) or (uid, count, cluster) as the reference makes it (record_keys.key_of),
 * or None. */
static int record_key(Scan *sc, Span uid, Span count, PyObject **key) {
    const uint8_t *b = sc->b;
    *key = NULL;
    if (uid.start < 0) goto none;
    Any a;
    if (read_any(b, uid.start, uid.end, &a)) return UNSUPPORTED;
    if (a.kind != AV_STRING || a.field.vend == a.field.vstart) goto none;
    if (a.field.vend - a.field.vstart > MAX_KEY_BYTES) goto none; /* record_keys.MAX_KEY_BYTES */
    PyObject *text = span_text(b, (Span){a.field.vstart, a.field.vend});
    if (text == NULL) return UNSUPPORTED;
    PyObject *n;
    if (count.start < 0) {
        Py_INCREF(Py_None);
        n = Py_None;
    } else {
        Any c;
        int st = read_any(b, count.start, count.end, &c);
        if (st == OK && (c.kind == AV_STRING || c.kind == AV_BYTES) && c.field.vend - c.field.vstart > MAX_KEY_BYTES) {
            Py_DECREF(text);
            goto none; /* a count too long for a key: not deduplicated, as the reference */
        }
        if (st == OK) st = any_object(b, &c, &n);
        if (st != OK) {
            Py_DECREF(text);
            return st;
        }
        if (c.kind == AV_DOUBLE) { /* enrich._hashable: a float as its text (a NaN matches its retry) */
            PyObject *r = PyObject_Repr(n);
            Py_DECREF(n);
            if (r == NULL) {
                Py_DECREF(text);
                return ERROR;
            }
            n = r;
        }
    }
    *key = sc->cluster ? PyTuple_Pack(3, text, n, sc->cluster) : PyTuple_Pack(2, text, n);
    Py_DECREF(text);
    Py_DECREF(n);
    return *key ? OK : ERROR;
none:
    Py_INCREF(Py_None);
    *key = Py_None;
    return OK;
}

/* enrich._first_time: 1 first time (key remembered), 0 duplicate, -1 error. */
static int first_time(Scan *sc, PyObject *key) {
    if (key == Py_None) return 1;
    int in = PySet_Contains(sc->seen, key);
    if (in < 0) return -1;
    if (!in) {
        PyObject *answer = PyObject_CallOneArg(sc->delivered, key);
        if (answer == NULL) return -1;
        in = PyObject_IsTrue(answer);
        Py_DECREF(answer);
        if (in < 0) return -1;
    }
    if (in) {
        sc->duplicates++;
        return 0;
    }
    if (PySet_Add(sc->seen, key) < 0 || PyList_Append(sc->keys, key) < 0) return -1;
    return 1;
}

/* A small growable array of spans (a resource's or record's attribute entries). */
typedef struct {
    Span *items;
    Py_ssize_t n, cap;
} Spans;

static int spans_add(Spans *s, Py_ssize_t start, Py_ssize_t end) {
    if (s->n == s->cap) {
        Py_ssize_t c2 = s->cap ? s->cap * 2 : 32;
        Span *p2 = PyMem_Realloc(s->items, (size_t)c2 * sizeof(Span));
        if (p2 == NULL) {
            PyErr_NoMemory();
            return ERROR;
        }
        s->items = p2;
        s->cap = c2;
    }
    s->items[s->n].start = start;
    s->items[s->n].end = end;
    s->n++;
    return OK;
}

/* The values collector_event reads of a KubeVirt record (FIELD_KEYS' order), as the reference's
 * event_view gives them: of each attribute the record's last entry, unless its value is "" (then
 * the resource's); body (a string body, else ""), severity text (else the type of its number),
 * time (else the observed time). The start time only when the time is unset, the reporting
 * instance only when the node is not named: the reader reads them only then. */
static int record_values(Scan *sc, Spans *attrs, Span body, Span sevtext, uint64_t sevnum, uint64_t time,
                         uint64_t observed, PyObject **out) {
    const uint8_t *b = sc->b;
    KV last[NFIELDS];
    int have[NFIELDS] = {0}, empty[NFIELDS] = {0};
    for (Py_ssize_t i = 0; i < attrs->n; i++) {
        KV kv;
        int blank;
        if (read_kv(b, attrs->items[i].start, attrs->items[i].end, &kv)) return UNSUPPORTED;
        if (plain_value(b, &kv, &blank)) return UNSUPPORTED;
        Py_ssize_t n = kv.key.end - kv.key.start;
        if (n > 9 && memcmp(b + kv.key.start, "kubevirt.", 9) == 0) { /* set before: replaced in place */
            PyObject *key = span_text(b, kv.key);
            if (key == NULL) return UNSUPPORTED;
            int in = PySet_Contains(sc->attributes, key);
            Py_DECREF(key);
            if (in != 0) return in < 0 ? ERROR : UNSUPPORTED;
        }
        int f = field_of(b, kv.key, 0);
        if (f >= 0) {
            last[f] = kv;
            have[f] = 1;
            empty[f] = blank;
        }
    }
    PyObject *values = PyTuple_New(NFIELDS);
    if (values == NULL) return ERROR;
    uint64_t when = time ? time : observed;
    int st = OK;
    for (int f = 0; f < NFIELDS && st == OK; f++) {
        PyObject *v = NULL;
        if (f == F_BODY) {
            if (body.start >= 0) {
                Any a;
                if (read_any(b, body.start, body.end, &a) || a.kind == AV_KVLIST) {
                    st = UNSUPPORTED; /* a map body: k8sobjects shapes are the reference's */
                    break;
                }
                if (a.kind == AV_STRING && (v = span_text(b, (Span){a.field.vstart, a.field.vend})) == NULL) {
                    st = UNSUPPORTED;
                    break;
                }
            }
            if (v == NULL) {
                v = sc->empty;
                Py_INCREF(v);
            }
        } else if (f == F_SEVERITY) {
            if (sevtext.start >= 0 && sevtext.end > sevtext.start) {
                if ((v = span_text(b, sevtext)) == NULL) {
                    st = UNSUPPORTED;
                    break;
                }
            } else {
                int32_t number = (int32_t)(uint32_t)sevnum;
                v = number == 9 ? sc->normal : number == 13 ? sc->warning : sc->empty;
                Py_INCREF(v);
            }
        } else if (f == F_TIMESTAMP) {
            if ((v = PyLong_FromUnsignedLongLong(when)) == NULL) st = ERROR;
        } else if ((f == F_START && when != 0) ||
                   (f == F_INSTANCE && PyUnicode_Check(PyTuple_GET_ITEM(values, F_NODE)) &&
                    PyUnicode_GET_LENGTH(PyTuple_GET_ITEM(values, F_NODE)) > 0)) {
            v = NULL; /* not read */
        } else if (have[f] && !empty[f]) {
            st = kv_object(b, &last[f], &v);
        } else if (f != F_START && sc->rv[f] != NULL) {
            v = sc->rv[f];
            Py_INCREF(v);
        }
        if (st != OK) break;
        if (v == NULL) {
            v = Py_None;
            Py_INCREF(v);
        }
        PyTuple_SET_ITEM(values, f, v);
    }
    if (st != OK) {
        Py_DECREF(values); /* unset items are NULL: tuple dealloc skips them */
        return st;
    }
    *out = values;
    return OK;
}

/* Read one LogRecord in [s, e) into rec; views and keys as the reference makes them. */
static int scan_record(Scan *sc, Rec *rec, int kubevirt, Spans *attrs) {
    const uint8_t *b = sc->b;
    Py_ssize_t s = rec->content.start, e = rec->content.end, p = s;
    Span body = {-1, -1}, sevtext = {-1, -1}, uid = {-1, -1}, count = {-1, -1};
    uint64_t time = 0, observed = 0, sevnum = 0;
    Py_ssize_t last_attr = -1, after = -1;
    static const int wire[13] = {-1, WT_I64, WT_VARINT, WT_LEN, -1, WT_LEN, WT_LEN, WT_VARINT, WT_I32, WT_LEN,
                                 WT_LEN, WT_I64, WT_LEN};
    attrs->n = 0;
    while (p < e) {
        Field f;
        if (next_field(b, e, &p, &f)) return UNSUPPORTED;
        int known = f.number <= 12 && f.number != 4;
        if (known && f.wire != wire[f.number]) return UNSUPPORTED;
        if (after < 0 && (!known || f.number > 6)) after = f.start;
        switch (f.number) {
        case 1:
            time = f.value;
            break;
        case 2:
            sevnum = f.value;
            break;
        case 3:
            sevtext.start = f.vstart;
            sevtext.end = f.vend;
            break;
        case 5:
            if (body.start >= 0) return UNSUPPORTED; /* merged by upb */
            body.start = f.vstart;
            body.end = f.vend;
            break;
        case 6: {
            KV kv;
            last_attr = f.vend;
            if (kubevirt && spans_add(attrs, f.vstart, f.vend)) return ERROR;
            if (read_kv(b, f.vstart, f.vend, &kv)) return UNSUPPORTED;
            if (kv.value.start >= 0) {
                if (SPAN_IS(b, kv.key, "k8s.event.uid")) uid = kv.value;
                else if (SPAN_IS(b, kv.key, "k8s.event.count")) count = kv.value;
            } else if (SPAN_IS(b, kv.key, "k8s.event.uid")) {
                uid.start = -1;
            } else if (SPAN_IS(b, kv.key, "k8s.event.count")) {
                count.start = count.end = -1;
            }
            break;
        }
        case 11:
            observed = f.value;
            break;
        default:
            break;
        }
    }
    rec->insert = last_attr >= 0 ? last_attr : after >= 0 ? after : e;
    if (body.start >= 0 && !kubevirt) { /* the short path's test: any map body goes long */
        Any a;
        if (read_any(b, body.start, body.end, &a) || a.kind == AV_KVLIST) return UNSUPPORTED;
    }
    PyObject *key;
    int st = record_key(sc, uid, count, &key);
    if (st != OK) return st;
    sc->received++;
    int first = first_time(sc, key);
    if (first < 0) {
        Py_DECREF(key);
        return ERROR;
    }
    if (!first) {
        rec->status = REC_DUPLICATE;
        Py_DECREF(key);
        return OK;
    }
    if (!kubevirt) {
        Py_DECREF(key);
        if (sc->drop_others) {
            rec->status = REC_DROPPED;
            sc->dropped++;
        } else {
            rec->status = REC_PASSED;
            sc->passed++;
        }
        return OK;
    }
    PyObject *view;
    st = record_values(sc, attrs, body, sevtext, sevnum, time, observed, &view);
    if (st != OK) {
        Py_DECREF(key);
        return st;
    }
    PyObject *item = Py_BuildValue("(NNnnn)", view, key, s, e, PyList_GET_SIZE(sc->keys));
    if (item == NULL) return ERROR;
    rec->status = REC_VIEW;
    rec->view = PyList_GET_SIZE(sc->views);
    st = PyList_Append(sc->views, item) < 0 ? ERROR : OK;
    Py_DECREF(item);
    return st;
}

/* Read a Resource: where new attributes go, the entries set_value would rewrite, its kind, and
 * (when the kind is one of `kinds`: *kubevirt) the values of FIELD_KEYS it gives its records
 * (sc->rv: the last entry of each, as to_dict; made once for all its records). */
static int scan_resource(Scan *sc, Res *res, Spans *attrs, int *kubevirt) {
    const uint8_t *b = sc->b;
    Py_ssize_t s = res->resource.start, e = res->resource.end, p = s;
    Py_ssize_t last_attr = -1, first = -1;
    Span kind = {-1, -1}, cluster = {-1, -1};
    int kind_set = 0, service_plain = 1, namespace_plain = 1;
    *kubevirt = 0;
    Py_CLEAR(sc->cluster);
    for (int i = 0; i < NFIELDS; i++) Py_CLEAR(sc->rv[i]);
    res->service.start = res->namespace.start = -1;
    res->service.end = res->namespace.end = -1;
    attrs->n = 0;
    if (s < 0) { /* no resource: the reference writes an empty one */
        res->insert = 0;
        return OK;
    }
    while (p < e) {
        Field f;
        if (next_field(b, e, &p, &f)) return UNSUPPORTED;
        if (first < 0) first = f.start;
        if (f.number == 1) {
            KV kv;
            if (f.wire != WT_LEN) return UNSUPPORTED;
            if (read_kv(b, f.vstart, f.vend, &kv)) return UNSUPPORTED;
            if (spans_add(attrs, f.vstart, f.vend)) return ERROR;
            last_attr = f.vend;
            if (res->service.start < 0 && SPAN_IS(b, kv.key, "service.name")) {
                res->service = (Span){f.start, f.vend};
                service_plain = kv.plain;
            } else if (res->namespace.start < 0 && SPAN_IS(b, kv.key, "k8s.namespace.name")) {
                res->namespace = (Span){f.start, f.vend};
                namespace_plain = kv.plain;
            }
            if (SPAN_IS(b, kv.key, "k8s.object.kind")) {
                kind = kv.value;
                kind_set = 1;
            } else if (SPAN_IS(b, kv.key, "k8s.cluster.name")) {
                cluster = kv.value; /* the last one wins, as to_dict */
            }
        } else if ((f.number == 2 && f.wire != WT_VARINT) || (f.number == 3 && f.wire != WT_LEN)) {
            return UNSUPPORTED;
        }
    }
    res->insert = last_attr >= 0 ? last_attr : first >= 0 ? first : s;
    if (cluster.start >= 0) { /* record_keys.cluster_of: a non-empty string of a bounded length */
        Any c;
        if (read_any(b, cluster.start, cluster.end, &c)) return UNSUPPORTED;
        Py_ssize_t len = c.field.vend - c.field.vstart;
        if (c.kind == AV_STRING && len > 0 && len <= MAX_CLUSTER_BYTES) {
            sc->cluster = span_text(b, (Span){c.field.vstart, c.field.vend});
            if (sc->cluster == NULL) return UNSUPPORTED;
        }
    }
    if (!kind_set || kind.start < 0) return OK;
    Any a;
    if (read_any(b, kind.start, kind.end, &a)) return UNSUPPORTED;
    if (a.kind != AV_STRING) return OK;
    PyObject *text = span_text(b, (Span){a.field.vstart, a.field.vend});
    if (text == NULL) return UNSUPPORTED;
    int in = PySet_Contains(sc->kinds, text);
    Py_DECREF(text);
    if (in <= 0) return in < 0 ? ERROR : OK;
    if (!service_plain || !namespace_plain) return UNSUPPORTED;
    KV last[NFIELDS];
    int have[NFIELDS] = {0};
    for (Py_ssize_t i = 0; i < attrs->n; i++) {
        KV kv;
        int blank;
        if (read_kv(b, attrs->items[i].start, attrs->items[i].end, &kv)) return UNSUPPORTED;
        if (plain_value(b, &kv, &blank)) return UNSUPPORTED; /* a list or a map: the reference's */
        int f = field_of(b, kv.key, 1);
        if (f >= 0) {
            last[f] = kv;
            have[f] = 1;
        }
    }
    for (int f = 0; f < NFIELDS; f++) {
        if (!have[f]) continue;
        int st = kv_object(b, &last[f], &sc->rv[f]);
        if (st != OK) return st;
    }
    *kubevirt = 1;
    return OK;
}

/* Fields of a ResourceLogs or ScopeLogs: 1 (message, once), 2 (repeated), 3 (string, once). */
static int scan_level(const uint8_t *b, Span within, Span *one, Span *three) {
    Py_ssize_t p = within.start;
    one->start = three->start = -1;
    one->end = three->end = -1;
    while (p < within.end) {
        Field f;
        if (next_field(b, within.end, &p, &f)) return UNSUPPORTED;
        if (f.number >= 1 && f.number <= 3 && f.wire != WT_LEN) return UNSUPPORTED;
        if (f.number == 1 || f.number == 3) {
            Span *target = f.number == 1 ? one : three;
            if (target->start >= 0) return UNSUPPORTED; /* merged or replaced by upb */
            target->start = f.vstart;
            target->end = f.vend;
        }
    }
    return OK;
}

static PyObject *scan(PyObject *module, PyObject *args) {
    PyObject *payload, *kinds, *delivered, *attributes, *result = NULL, *capsule = NULL;
    int kubevirt = 0; /* the current resource's kind is one of `kinds` */
    int drop_others;
    (void)module;
    /* bytes, not any buffer: the plan's spans must stay valid while delivered() runs and until build */
    if (!PyArg_ParseTuple(args, "O!O!pOO!:scan", &PyBytes_Type, &payload, &PyFrozenSet_Type, &kinds,
                          &drop_others, &delivered, &PyFrozenSet_Type, &attributes))
        return NULL;
    { /* record_values looks names up only when they start so */
        PyObject *names = PyObject_GetIter(attributes), *name;
        if (names == NULL) return NULL;
        while ((name = PyIter_Next(names)) != NULL) {
            int good = PyUnicode_Check(name) && PyUnicode_GET_LENGTH(name) > 9 &&
                       PyUnicode_Tailmatch(name, KUBEVIRT_PREFIX, 0, 9, -1) == 1;
            Py_DECREF(name);
            if (!good) {
                Py_DECREF(names);
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_ValueError, "scan: every attribute name starts with 'kubevirt.'");
                return NULL;
            }
        }
        Py_DECREF(names);
        if (PyErr_Occurred()) return NULL;
    }
    const uint8_t *b = (const uint8_t *)PyBytes_AS_STRING(payload);
    Py_ssize_t end = PyBytes_GET_SIZE(payload), p = 0;
    Scan sc = {.b = b, .kinds = kinds, .delivered = delivered, .attributes = attributes,
               .drop_others = drop_others};
    Plan *plan = PyMem_Calloc(1, sizeof(Plan));
    Spans attrs = {0}, own = {0}; /* a resource's attribute entries, a record's */
    int st = ERROR;
    sc.seen = PySet_New(NULL);
    sc.views = PyList_New(0);
    sc.keys = PyList_New(0);
    sc.normal = PyUnicode_FromString("Normal");
    sc.warning = PyUnicode_FromString("Warning");
    sc.empty = PyUnicode_FromString("");
    if (!plan || !sc.seen || !sc.views || !sc.keys || !sc.normal || !sc.warning || !sc.empty) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto error;
    }
    Py_INCREF(payload);
    plan->payload = payload;
    while (p < end) {
        Field f;
        if (next_field(b, end, &p, &f)) goto unsupported;
        if (f.number != 1) continue; /* unknown at the request: the reference's new request drops it */
        if (f.wire != WT_LEN) goto unsupported;
        GROW(plan->res, plan->nres, plan->capres);
        Res *res = &plan->res[plan->nres];
        Span rl = {f.vstart, f.vend};
        if (scan_level(b, rl, &res->resource, &res->schema_url)) goto unsupported;
        st = scan_resource(&sc, res, &attrs, &kubevirt);
        if (st != OK) goto status;
        res->first = plan->nscopes;
        res->count = 0;
        plan->nres++;
        /* the ScopeLogs, in order */
        Py_ssize_t q = rl.start;
        while (q < rl.end) {
            Field g;
            if (next_field(b, rl.end, &q, &g)) goto unsupported; /* read once already by scan_level */
            if (g.number != 2) continue;
            GROW(plan->scopes, plan->nscopes, plan->capscopes);
            Scope *scope = &plan->scopes[plan->nscopes];
            Span sl = {g.vstart, g.vend};
            if (scan_level(b, sl, &scope->scope, &scope->schema_url)) goto unsupported;
            scope->first = plan->nrecs;
            scope->count = 0;
            plan->nscopes++;
            res->count++;
            Py_ssize_t r = sl.start;
            while (r < sl.end) {
                Field h;
                if (next_field(b, sl.end, &r, &h)) goto unsupported; /* read once already by scan_level */
                if (h.number != 2) continue;
                GROW(plan->recs, plan->nrecs, plan->caprecs);
                Rec *rec = &plan->recs[plan->nrecs];
                rec->content = (Span){h.vstart, h.vend};
                rec->view = -1;
                rec->scope = plan->nscopes - 1;
                st = scan_record(&sc, rec, kubevirt, &own);
                if (st != OK) goto status;
                plan->nrecs++;
                scope->count++;
            }
        }
    }
    capsule = PyCapsule_New(plan, "otelkv.otlp._wire.plan", plan_capsule_free);
    if (capsule == NULL) goto error;
    plan = NULL;
    result = Py_BuildValue("(NOO(nnnn))", capsule, sc.views, sc.keys, sc.received, sc.duplicates, sc.dropped,
                           sc.passed);
    goto done;
status:
    if (st == ERROR) goto error;
unsupported:
    Py_INCREF(Py_None);
    result = Py_None;
    goto done;
error:
    result = NULL;
done:
    for (int i = 0; i < NFIELDS; i++) Py_XDECREF(sc.rv[i]);
    PyMem_Free(attrs.items);
    PyMem_Free(own.items);
    plan_free(plan);
    Py_XDECREF(sc.cluster);
    Py_XDECREF(sc.seen);
    Py_XDECREF(sc.views);
    Py_XDECREF(sc.keys);
    Py_XDECREF(sc.normal);
    Py_XDECREF(sc.warning);
    Py_XDECREF(sc.empty);
    return result;
}

/* ---- build ------------------------------------------------------------------------------ */

/* A writer that only counts when buf is NULL. */
typedef struct {
    char *buf;
    Py_ssize_t len;
} Out;

static Py_ssize_t varint_size(uint64_t v) {
    Py_ssize_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static void put_varint(Out *o, uint64_t v) {
    if (o->buf == NULL) {
        o->len += varint_size(v);
        return;
    }
    while (v >= 0x80) {
        o->buf[o->len++] = (char)((v & 0x7F) | 0x80);
        v >>= 7;
    }
    o->buf[o->len++] = (char)v;
}

static void put(Out *o, const void *data, Py_ssize_t n) {
    if (o->buf != NULL && n > 0) memcpy(o->buf + o->len, data, (size_t)n);
    o->len += n;
}

/* A length-delimited field: tag, length, content. */
static void put_len(Out *o, int number, Py_ssize_t n) {
    put_varint(o, ((uint64_t)number << 3) | WT_LEN);
    put_varint(o, (uint64_t)n);
}

static Py_ssize_t len_field_size(Py_ssize_t n) { return 1 + varint_size((uint64_t)n) + n; }

/* A KeyValue entry (field `number`) with a string or double value, as new_values makes it. */
typedef struct {
    const char *key, *text;
    Py_ssize_t keylen, textlen;
    int is_text;
    double number;
} Fact;

static int fact_of(PyObject *key, PyObject *value, Fact *fact) {
    fact->key = PyUnicode_AsUTF8AndSize(key, &fact->keylen);
    if (fact->key == NULL) return ERROR;
    if (PyUnicode_Check(value)) {
        fact->is_text = 1;
        fact->text = PyUnicode_AsUTF8AndSize(value, &fact->textlen);
        return fact->text ? OK : ERROR;
    }
    fact->is_text = 0;
    fact->number = PyFloat_AsDouble(value);
    return fact->number == -1.0 && PyErr_Occurred() ? ERROR : OK;
}

static Py_ssize_t fact_content_size(const Fact *fact) {
    Py_ssize_t any = fact->is_text ? len_field_size(fact->textlen) : 9;
    return (fact->keylen ? len_field_size(fact->keylen) : 0) + len_field_size(any);
}

static void put_fact(Out *o, int number, const Fact *fact) {
    Py_ssize_t any = fact->is_text ? len_field_size(fact->textlen) : 9;
    put_len(o, number, fact_content_size(fact));
    if (fact->keylen) {
        put_len(o, 1, fact->keylen);
        put(o, fact->key, fact->keylen);
    }
    put_len(o, 2, any);
    if (fact->is_text) {
        put_len(o, 1, fact->textlen);
        put(o, fact->text, fact->textlen);
    } else {
        char tag = (char)((4 << 3) | WT_I64);
        put(o, &tag, 1);
        put(o, &fact->number, 8);
    }
}

/* An output ResourceLogs: the records of one received ResourceLogs with one (namespace, KubeVirt
 * or not), as enrich._Out groups them. */
typedef struct {
    PyObject *namespace; /* borrowed (from the decisions); NULL: none */
    int kubevirt;
    Py_ssize_t first, last; /* its first and last record (in order, chained by Build.next) */
} Group;

/* One call of build. Everything Python can run in (getattr on an event, a namespace's hash) is done
 * before the bytes are measured and written; those two passes call no Python code, so they see the
 * same groups and facts and write exactly the bytes they measured. The plan is only read. */
typedef struct {
    const uint8_t *b;
    const Plan *plan;
    PyObject *decisions; /* a tuple (a copy of the list: Python code cannot change it under us) */
    PyObject *facts; /* per record view: its encoded kubevirt.* attributes (None: passed as it came) */
    Fact service;
    Group *groups;          /* all ResourceLogs' groups, resource after resource */
    Py_ssize_t *res_groups; /* resource r's groups: res_groups[r] .. res_groups[r + 1] - 1 */
    Py_ssize_t *next;       /* per record: the next record of its group, -1 after the last */
    Py_ssize_t copies;      /* bytes of resources and scopes copied for groups after the first of
                             * each resource (as enrich._Copies counts them) */
    Py_ssize_t limit;       /* copies past it: grouping stops there (the count cannot overflow) */
} Build;

/* A change to a resource's bytes: [at, until) replaced by a KeyValue entry (at == until: inserted). */
typedef struct {
    Py_ssize_t at, until;
    const Fact *fact;
} Edit;

/* The resource of a group: as received, or (KubeVirt) with service.name and the namespace set. */
static void put_resource(const Build *bd, Out *o, const Res *res, const Group *g) {
    const uint8_t *b = bd->b;
    if (!g->kubevirt) {
        if (res->resource.start >= 0) put(o, b + res->resource.start, res->resource.end - res->resource.start);
        return;
    }
    Fact ns = {0};
    int has_ns = g->namespace != NULL;
    if (has_ns) { /* checked to be a str by the caller */
        ns.key = "k8s.namespace.name";
        ns.keylen = 18;
        ns.is_text = 1;
        ns.text = PyUnicode_AsUTF8AndSize(g->namespace, &ns.textlen);
    }
    /* edits in order of position: (at, replaced until, fact) */
    Edit edits[4];
    int n = 0;
    if (res->service.start >= 0) edits[n++] = (Edit){res->service.start, res->service.end, &bd->service};
    if (has_ns && res->namespace.start >= 0) edits[n++] = (Edit){res->namespace.start, res->namespace.end, &ns};
    if (res->service.start < 0) edits[n++] = (Edit){res->insert, res->insert, &bd->service};
    if (has_ns && res->namespace.start < 0) edits[n++] = (Edit){res->insert, res->insert, &ns};
    /* sort by position, stable (service.name before the namespace at the same point) */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && edits[j].at < edits[j - 1].at; j--) {
            Edit t = edits[j];
            edits[j] = edits[j - 1];
            edits[j - 1] = t;
        }
    Py_ssize_t at = res->resource.start >= 0 ? res->resource.start : 0;
    Py_ssize_t end = res->resource.start >= 0 ? res->resource.end : 0;
    for (int i = 0; i < n; i++) {
        put(o, b + at, edits[i].at - at);
        put_fact(o, 1, edits[i].fact);
        at = edits[i].until;
    }
    put(o, b + at, end - at);
}

/* The decision for a record view: None (passed as it came) or (namespace, facts, summary). */
static PyObject *decision(const Build *bd, const Rec *rec) {
    PyObject *d = PyTuple_GET_ITEM(bd->decisions, rec->view);
    return d == Py_None ? NULL : d;
}

static Py_ssize_t span_len(Span s) { return s.start >= 0 ? s.end - s.start : 0; }

/* Each record's group, in the order of their first record, as enrich._Out makes them: a dict from
 * namespace to group per resource keeps this linear in the records (a request of many namespaces
 * must not cost their square). Counts what groups after each resource's first copy: the resource
 * once per group, a scope once per group with records in it. */
static int group_records(Build *bd) {
    const Plan *plan = bd->plan;
    Py_ssize_t ngroups = 0;
    PyObject *index = PyDict_New(); /* namespace -> group, of KubeVirt records in one resource */
    if (index == NULL) return ERROR;
    for (Py_ssize_t r = 0; r < plan->nres; r++) {
        const Res *res = &plan->res[r];
        Py_ssize_t unnamed = -1, other = -1; /* KubeVirt records without a namespace; the rest */
        bd->res_groups[r] = ngroups;
        if (PyDict_GET_SIZE(index)) PyDict_Clear(index);
        if (res->count == 0) continue;
        const Scope *last = &plan->scopes[res->first + res->count - 1];
        for (Py_ssize_t i = plan->scopes[res->first].first; i < last->first + last->count; i++) {
            const Rec *rec = &plan->recs[i];
            bd->next[i] = -1;
            if (rec->status == REC_DUPLICATE || rec->status == REC_DROPPED) continue;
            PyObject *d = rec->status == REC_VIEW ? decision(bd, rec) : NULL;
            PyObject *ns = d != NULL && PyTuple_GET_ITEM(d, 0) != Py_None ? PyTuple_GET_ITEM(d, 0) : NULL;
            Py_ssize_t *slot = d == NULL ? &other : ns == NULL ? &unnamed : NULL, g = -1;
            if (slot != NULL) {
                g = *slot;
            } else {
                PyObject *found = PyDict_GetItemWithError(index, ns);
                if (found != NULL) g = PyLong_AsSsize_t(found);
                else if (PyErr_Occurred()) goto error;
            }
            if (g >= 0) {
                if (g != bd->res_groups[r] && plan->recs[bd->groups[g].last].scope != rec->scope)
                    bd->copies += span_len(plan->scopes[rec->scope].scope);
                if (bd->copies > bd->limit) goto over;
                bd->next[bd->groups[g].last] = i;
                bd->groups[g].last = i;
                continue;
            }
            if (ngroups > bd->res_groups[r]) {
                bd->copies += span_len(res->resource) + span_len(plan->scopes[rec->scope].scope);
                if (bd->copies > bd->limit) goto over;
            }
            g = ngroups++; /* at most one group per record: the array has room */
            bd->groups[g] = (Group){ns, d != NULL, i, i};
            if (slot != NULL) {
                *slot = g;
            } else {
                PyObject *number = PyLong_FromSsize_t(g);
                int failed = number == NULL || PyDict_SetItem(index, ns, number) < 0;
                Py_XDECREF(number);
                if (failed) goto error;
            }
        }
    }
over: /* or past the limit: build writes nothing */
    bd->res_groups[plan->nres] = ngroups;
    Py_DECREF(index);
    return OK;
error:
    Py_DECREF(index);
    return ERROR;
}

static PyObject *build(PyObject *module, PyObject *args);

/* ---- messages ---------------------------------------------------------------------------- */

/* The message types of the OTLP logs request, and which of their fields hold messages: what upb
 * allocates a message for when it decodes the request (the in-flight cap charges by that count). */
enum { M_REQUEST, M_RESOURCE_LOGS, M_RESOURCE, M_SCOPE_LOGS, M_SCOPE, M_RECORD, M_KEYVALUE, M_ANYVALUE,
       M_ARRAY, M_KVLIST, M_LEAF, M_NONE };

static int child_type(int type, uint32_t number) {
    switch (type) {
    case M_REQUEST: return number == 1 ? M_RESOURCE_LOGS : M_NONE;
    case M_RESOURCE_LOGS: return number == 1 ? M_RESOURCE : number == 2 ? M_SCOPE_LOGS : M_NONE;
    case M_RESOURCE: return number == 1 ? M_KEYVALUE : number == 3 ? M_LEAF : M_NONE; /* 3: entity refs */
    case M_SCOPE_LOGS: return number == 1 ? M_SCOPE : number == 2 ? M_RECORD : M_NONE;
    case M_SCOPE: return number == 3 ? M_KEYVALUE : M_NONE;
    case M_RECORD: return number == 5 ? M_ANYVALUE : number == 6 ? M_KEYVALUE : M_NONE;
    case M_KEYVALUE: return number == 2 ? M_ANYVALUE : M_NONE;
    case M_ANYVALUE: return number == 5 ? M_ARRAY : number == 6 ? M_KVLIST : M_NONE;
    case M_ARRAY: return number == 1 ? M_ANYVALUE : M_NONE;
    case M_KVLIST: return number == 1 ? M_KEYVALUE : M_NONE;
    default: return M_NONE;
    }
}

#define COUNT_DEPTH 256

/* count_messages(payload) -> int: how many messages upb makes decoding the request (the request
 * itself included); -1 when the bytes are malformed or nest deeper than this walk goes (the
 * decoder then says what is wrong, or the caller charges by size alone). Nothing else is read. */
static PyObject *count_messages(PyObject *module, PyObject *arg) {
    Py_buffer buf;
    (void)module;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "count_messages takes bytes");
        return NULL;
    }
    if (PyObject_GetBuffer(arg, &buf, PyBUF_SIMPLE) < 0) return NULL;
    const uint8_t *b = buf.buf;
    int types[COUNT_DEPTH];
    Py_ssize_t ends[COUNT_DEPTH];
    int depth = 0;
    long long count = 1;
    Py_ssize_t p = 0;
    types[0] = M_REQUEST;
    ends[0] = buf.len;
    while (depth >= 0) {
        if (p == ends[depth]) {
            depth--;
            continue;
        }
        Field f;
        if (next_field(b, ends[depth], &p, &f)) {
            count = -1;
            break;
        }
        if (f.wire != WT_LEN) continue;
        int child = child_type(types[depth], f.number);
        if (child == M_NONE) continue;
        count++;
        if (child == M_LEAF) continue;
        if (depth + 1 >= COUNT_DEPTH) {
            count = -1;
            break;
        }
        p = f.vstart; /* into the submessage */
        depth++;
        types[depth] = child;
        ends[depth] = f.vend;
    }
    PyBuffer_Release(&buf);
    return PyLong_FromLongLong(count);
}

static PyMethodDef methods[] = {
    {"count_messages", count_messages, METH_O, "How many messages decoding the request makes (-1: unknown)."},
    {"scan", scan, METH_VARARGS, "Scan an ExportLogsServiceRequest (see the module docstring)."},
    {"build", build, METH_VARARGS, "Write the enriched request (see the module docstring)."},
    {NULL, NULL, 0, NULL},
};

/* The kubevirt.* attributes of an enriched record (enrich._facts, new_values): for each (attribute,
 * field) of `pairs`, the event's field when it is not None or "", as a KeyValue entry of a record
 * (field 6): a string value, else a double. */
static PyObject *encode_facts(PyObject *event, PyObject *pairs) {
    Fact facts[32];
    PyObject *values[32];
    Py_ssize_t n = PyTuple_GET_SIZE(pairs), count = 0, size = 0;
    PyObject *out = NULL;
    if (n > 32) {
        PyErr_SetString(PyExc_ValueError, "at most 32 attributes");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyTuple_GET_ITEM(pairs, i);
        PyObject *value = PyObject_GetAttr(event, PyTuple_GET_ITEM(pair, 1));
        if (value == NULL) goto done;
        if (value == Py_None || (PyUnicode_Check(value) && PyUnicode_GET_LENGTH(value) == 0)) {
            Py_DECREF(value);
            continue;
        }
        values[count] = value;
        if (fact_of(PyTuple_GET_ITEM(pair, 0), value, &facts[count++])) goto done;
        size += len_field_size(fact_content_size(&facts[count - 1]));
    }
    out = PyBytes_FromStringAndSize(NULL, size);
    if (out != NULL) {
        Out o = {PyBytes_AS_STRING(out), 0};
        for (Py_ssize_t i = 0; i < count; i++) put_fact(&o, 6, &facts[i]);
    }
done:
    for (Py_ssize_t i = 0; i < count; i++) Py_DECREF(values[i]);
    return out;
}

/* The ScopeLogs of the records of a group from record i on that are in i's scope (summaries beside
 * them); returns the group's first record after them (-1: none). */
static Py_ssize_t put_scope(const Build *bd, Out *o, Py_ssize_t i) {
    const uint8_t *b = bd->b;
    const Plan *plan = bd->plan;
    Py_ssize_t si = plan->recs[i].scope;
    const Scope *scope = &plan->scopes[si];
    Py_ssize_t slen = scope->scope.start >= 0 ? scope->scope.end - scope->scope.start : 0;
    put_len(o, 1, slen);
    if (slen) put(o, b + scope->scope.start, slen);
    for (; i >= 0 && plan->recs[i].scope == si; i = bd->next[i]) {
        const Rec *rec = &plan->recs[i];
        Py_ssize_t clen = rec->content.end - rec->content.start;
        PyObject *d = rec->status == REC_VIEW ? decision(bd, rec) : NULL;
        if (d == NULL) {
            put_len(o, 2, clen);
            put(o, b + rec->content.start, clen);
            continue;
        }
        PyObject *facts = PyList_GET_ITEM(bd->facts, rec->view);
        put_len(o, 2, clen + PyBytes_GET_SIZE(facts));
        put(o, b + rec->content.start, rec->insert - rec->content.start);
        put(o, PyBytes_AS_STRING(facts), PyBytes_GET_SIZE(facts));
        put(o, b + rec->insert, rec->content.end - rec->insert);
        PyObject *summary = PyTuple_GET_ITEM(d, 2);
        if (summary != Py_None) {
            put_len(o, 2, PyBytes_GET_SIZE(summary));
            put(o, PyBytes_AS_STRING(summary), PyBytes_GET_SIZE(summary));
        }
    }
    if (scope->schema_url.start >= 0 && scope->schema_url.end > scope->schema_url.start) {
        put_len(o, 3, scope->schema_url.end - scope->schema_url.start);
        put(o, b + scope->schema_url.start, scope->schema_url.end - scope->schema_url.start);
    }
    return i;
}

static void put_resource_logs(const Build *bd, Out *o, const Res *res, const Group *g) {
    const uint8_t *b = bd->b;
    Out m = {NULL, 0};
    put_resource(bd, &m, res, g);
    put_len(o, 1, m.len);
    put_resource(bd, o, res, g);
    for (Py_ssize_t i = g->first; i >= 0;) { /* a ScopeLogs per scope the group has records in */
        Out n = {NULL, 0};
        Py_ssize_t after = put_scope(bd, &n, i);
        put_len(o, 2, n.len);
        put_scope(bd, o, i);
        i = after;
    }
    if (res->schema_url.start >= 0 && res->schema_url.end > res->schema_url.start) {
        put_len(o, 3, res->schema_url.end - res->schema_url.start);
        put(o, b + res->schema_url.start, res->schema_url.end - res->schema_url.start);
    }
}

static PyObject *build(PyObject *module, PyObject *args) {
    PyObject *payload, *capsule, *list, *service, *pairs, *out = NULL;
    Py_ssize_t limit;
    Build bd = {0};
    (void)module;
    if (!PyArg_ParseTuple(args, "O!OO!UO!n:build", &PyBytes_Type, &payload, &capsule, &PyList_Type, &list,
                          &service, &PyTuple_Type, &pairs, &limit))
        return NULL;
    Plan *plan = PyCapsule_GetPointer(capsule, "otelkv.otlp._wire.plan");
    if (plan == NULL) return NULL;
    if (plan->payload != payload) { /* its spans are positions in the bytes it was scanned from */
        PyErr_SetString(PyExc_ValueError, "the plan was scanned from another payload");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(pairs); i++) {
        PyObject *pair = PyTuple_GET_ITEM(pairs, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(pair, 0)) ||
            !PyUnicode_Check(PyTuple_GET_ITEM(pair, 1))) {
            PyErr_SetString(PyExc_TypeError, "attributes are (attribute, field) pairs of str");
            return NULL;
        }
    }
    bd.b = (const uint8_t *)PyBytes_AS_STRING(payload);
    bd.plan = plan;
    bd.service.key = "service.name";
    bd.service.keylen = 12;
    bd.service.is_text = 1;
    bd.service.text = PyUnicode_AsUTF8AndSize(service, &bd.service.textlen);
    if (bd.service.text == NULL) return NULL;
    bd.decisions = PyList_AsTuple(list);
    if (bd.decisions == NULL) goto error;
    PyObject *decisions = bd.decisions;
    bd.facts = PyList_New(PyTuple_GET_SIZE(decisions));
    if (bd.facts == NULL) goto error;
    /* check the decisions, encode the attributes of each enriched record */
    for (Py_ssize_t i = 0; i < plan->nrecs; i++) {
        const Rec *rec = &plan->recs[i];
        if (rec->status != REC_VIEW) continue;
        if (rec->view >= PyTuple_GET_SIZE(decisions)) {
            PyErr_SetString(PyExc_ValueError, "fewer decisions than record views");
            goto error;
        }
        PyObject *d = PyTuple_GET_ITEM(decisions, rec->view);
        if (d == Py_None) continue;
        if (!PyTuple_Check(d) || PyTuple_GET_SIZE(d) != 3 ||
            (PyTuple_GET_ITEM(d, 0) != Py_None && !PyUnicode_Check(PyTuple_GET_ITEM(d, 0))) ||
            (PyTuple_GET_ITEM(d, 2) != Py_None && !PyBytes_Check(PyTuple_GET_ITEM(d, 2)))) {
            PyErr_SetString(PyExc_TypeError, "a decision is None or (namespace: str | None, event, "
                                             "summary: bytes | None)");
            goto error;
        }
        if (PyTuple_GET_ITEM(d, 0) != Py_None && PyUnicode_AsUTF8(PyTuple_GET_ITEM(d, 0)) == NULL) goto error;
        PyObject *encoded = encode_facts(PyTuple_GET_ITEM(d, 1), pairs);
        if (encoded == NULL) goto error;
        PyObject *before = PyList_GET_ITEM(bd.facts, rec->view); /* NULL: scan makes each view once */
        PyList_SET_ITEM(bd.facts, rec->view, encoded);
        Py_XDECREF(before);
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(bd.facts); i++) { /* views passed as they came */
        if (PyList_GET_ITEM(bd.facts, i) == NULL) {
            Py_INCREF(Py_None);
            PyList_SET_ITEM(bd.facts, i, Py_None);
        }
    }
    /* the groups, then the bytes (twice: measure, write) */
    size_t nrecs = (size_t)plan->nrecs + 1;
    bd.groups = PyMem_Malloc(nrecs * sizeof(Group));
    bd.next = PyMem_Malloc(nrecs * sizeof(Py_ssize_t));
    bd.res_groups = PyMem_Malloc(((size_t)plan->nres + 1) * sizeof(Py_ssize_t));
    if (bd.groups == NULL || bd.next == NULL || bd.res_groups == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    bd.limit = limit;
    if (group_records(&bd)) goto error;
    if (bd.copies > limit) {
        out = PyLong_FromSsize_t(bd.copies);
        goto done;
    }
    Out o = {NULL, 0};
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            out = PyBytes_FromStringAndSize(NULL, o.len);
            if (out == NULL) goto error;
            o.buf = PyBytes_AS_STRING(out);
            o.len = 0;
        }
        for (Py_ssize_t r = 0; r < plan->nres; r++) {
            for (Py_ssize_t g = bd.res_groups[r]; g < bd.res_groups[r + 1]; g++) {
                Out m = {NULL, 0};
                put_resource_logs(&bd, &m, &plan->res[r], &bd.groups[g]);
                put_len(&o, 1, m.len);
                put_resource_logs(&bd, &o, &plan->res[r], &bd.groups[g]);
            }
        }
    }
    goto done;
error:
    Py_CLEAR(out);
done:
    Py_XDECREF(bd.decisions);
    Py_XDECREF(bd.facts);
    PyMem_Free(bd.groups);
    PyMem_Free(bd.next);
    PyMem_Free(bd.res_groups);
    return out;
}

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "otelkv.otlp._wire",
    "The native core of otelkv.otlp.enrich on the OTLP wire format (see _wire.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__wire(void) {
    const uint16_t probe = 1;
    if (*(const uint8_t *)&probe != 1) { /* fixed64 and double are read and written with memcpy */
        PyErr_SetString(PyExc_ImportError, "otelkv.otlp._wire needs a little-endian machine");
        return NULL;
    }
    for (int i = 0; i < NFIELDS; i++) FIELD_LEN[i] = (Py_ssize_t)strlen(FIELD_KEYS[i]);
    if (KUBEVIRT_PREFIX == NULL && (KUBEVIRT_PREFIX = PyUnicode_InternFromString("kubevirt.")) == NULL) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "ABI_VERSION", ABI_VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
