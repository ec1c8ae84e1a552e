/*
 * cairn_native: the small N-API addon behind lib/codec/native.ts.
 *
 * Exports (see lib/codec/native.ts for the typed wrappers):
 *   flock(fd, op)                  try-lock; op 0 = unlock, 1 = shared, 2 = exclusive; -> boolean
 *   flockWait(fd, op, timeoutMs)   polls LOCK_NB on the libuv threadpool; -> Promise<boolean>
 *   syncfs(fd)                     Linux syncfs(2); -> undefined
 *   cdcScan(data, state, params)   gear content-defined boundary scan; -> cut index or -1
 *
 * System errors are thrown as Error objects with .code (errno name, e.g. 'EBADF'), .errno
 * (negative, as in Node) and .syscall. Bad arguments throw TypeError.
 *
 * The CDC scan must stay bit-for-bit identical to the TypeScript reference in lib/codec/gear.ts
 * (gear table generator, phases, mask tests). Both are pinned by test/codec/chunker.test.ts.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* syncfs(2) */
#endif
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                    */

/* Throws a generic Error for a failed N-API call unless an exception is already pending. */
static void throw_napi_failure(napi_env env) {
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  const char *msg = (info != NULL && info->error_message != NULL) ? info->error_message : "N-API call failed";
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, "ERR_NATIVE", msg);
}

#define CHECK(call)                  \
  do {                               \
    if ((call) != napi_ok) {         \
      throw_napi_failure(env);       \
      return NULL;                   \
    }                                \
  } while (0)

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

/* Builds `Error("<CODE>: <description>, <syscall>")` with .code, .errno and .syscall. */
static napi_value make_errno_error(napi_env env, int err, const char *syscall) {
  char name[64];
  char desc[160];
  char msg[320];
  uv_err_name_r(-err, name, sizeof name);
  if (name[0] != 'E') snprintf(name, sizeof name, "EUNKNOWN");
  uv_strerror_r(-err, desc, sizeof desc);
  snprintf(msg, sizeof msg, "%s: %s, %s", name, desc, syscall);

  napi_value code_v, msg_v, error, errno_v, syscall_v;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code_v) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &msg_v) != napi_ok) return NULL;
  if (napi_create_error(env, code_v, msg_v, &error) != napi_ok) return NULL;
  if (napi_create_int32(env, -err, &errno_v) == napi_ok) napi_set_named_property(env, error, "errno", errno_v);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_v) == napi_ok)
    napi_set_named_property(env, error, "syscall", syscall_v);
  return error;
}

static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  napi_value error = make_errno_error(env, err, syscall);
  if (error != NULL) napi_throw(env, error);
  else throw_napi_failure(env);
  return NULL;
}

/* Reads a file descriptor: an integer number in [0, INT_MAX]. */
static bool get_fd(napi_env env, napi_value v, int *fd) {
  napi_valuetype t;
  double d;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return false;
  if (napi_get_value_double(env, v, &d) != napi_ok) return false;
  if (!(d >= 0 && d <= INT_MAX) || d != floor(d)) return false;
  *fd = (int)d;
  return true;
}

/* Reads a lock op (0 unlock, 1 shared, 2 exclusive) and maps it to LOCK_UN/LOCK_SH/LOCK_EX. */
static bool get_lock_op(napi_env env, napi_value v, int *op) {
  napi_valuetype t;
  double d;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return false;
  if (napi_get_value_double(env, v, &d) != napi_ok) return false;
  if (d == 0) *op = LOCK_UN;
  else if (d == 1) *op = LOCK_SH;
  else if (d == 2) *op = LOCK_EX;
  else return false;
  return true;
}

/* One non-blocking flock attempt, retried on EINTR. Returns 1 acquired, 0 would block, -errno. */
static int try_flock(int fd, int op) {
  int flags = op == LOCK_UN ? LOCK_UN : (op | LOCK_NB);
  for (;;) {
    if (flock(fd, flags) == 0) return 1;
    int e = errno;
    if (e == EINTR) continue;
    if (e == EWOULDBLOCK || e == EAGAIN) return 0;
    return -e;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* flock(fd, op): boolean                                                                     */

static napi_value js_flock(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int fd, op;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_type(env, "flock(fd, op) needs 2 arguments");
  if (!get_fd(env, argv[0], &fd)) return throw_type(env, "flock: fd must be a non-negative integer");
  if (!get_lock_op(env, argv[1], &op)) return throw_type(env, "flock: op must be 0 (unlock), 1 (shared) or 2 (exclusive)");
  int r = try_flock(fd, op);
  if (r < 0) return throw_errno(env, -r, "flock");
  napi_value out;
  CHECK(napi_get_boolean(env, r == 1, &out));
  return out;
}

/* ------------------------------------------------------------------------------------------ */
/* flockWait(fd, op, timeoutMs): Promise<boolean>                                             */

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int fd;
  int op;
  double timeout_ms; /* may be +Infinity */
  int result;        /* 1 acquired, 0 timed out */
  int err;           /* errno, 0 when none */
} flock_wait_t;

static double monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(double ms) {
  struct timespec ts;
  ts.tv_sec = (time_t)(ms / 1e3);
  ts.tv_nsec = (long)((ms - (double)ts.tv_sec * 1e3) * 1e6);
  if (ts.tv_nsec < 0) ts.tv_nsec = 0;
  if (ts.tv_nsec > 999999999L) ts.tv_nsec = 999999999L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Runs on a threadpool thread: no N-API calls here. */
static void flock_wait_execute(napi_env env, void *data) {
  flock_wait_t *w = (flock_wait_t *)data;
  const double start = monotonic_ms();
  double delay = 2.0;
  for (;;) {
    int r = try_flock(w->fd, w->op);
    if (r == 1) { w->result = 1; return; }
    if (r < 0) { w->err = -r; return; }
    double elapsed = monotonic_ms() - start;
    if (elapsed >= w->timeout_ms) { w->result = 0; return; }
    double left = w->timeout_ms - elapsed;
    sleep_ms(delay < left ? delay : left);
    delay = delay * 2 > 20.0 ? 20.0 : delay * 2;
  }
}

static void flock_wait_complete(napi_env env, napi_status status, void *data) {
  flock_wait_t *w = (flock_wait_t *)data;
  napi_value value = NULL;
  if (status != napi_ok) {
    napi_value msg;
    if (napi_create_string_utf8(env, "flockWait: async work was cancelled", NAPI_AUTO_LENGTH, &msg) == napi_ok &&
        napi_create_error(env, NULL, msg, &value) == napi_ok)
      napi_reject_deferred(env, w->deferred, value);
  } else if (w->err != 0) {
    value = make_errno_error(env, w->err, "flock");
    if (value != NULL) napi_reject_deferred(env, w->deferred, value);
  } else if (napi_get_boolean(env, w->result == 1, &value) == napi_ok) {
    napi_resolve_deferred(env, w->deferred, value);
  }
  napi_delete_async_work(env, w->work);
  free(w);
}

static napi_value js_flock_wait(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int fd, op;
  double timeout;
  napi_valuetype t;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return throw_type(env, "flockWait(fd, op, timeoutMs) needs 3 arguments");
  if (!get_fd(env, argv[0], &fd)) return throw_type(env, "flockWait: fd must be a non-negative integer");
  if (!get_lock_op(env, argv[1], &op))
    return throw_type(env, "flockWait: op must be 0 (unlock), 1 (shared) or 2 (exclusive)");
  CHECK(napi_typeof(env, argv[2], &t));
  if (t != napi_number) return throw_type(env, "flockWait: timeoutMs must be a number");
  CHECK(napi_get_value_double(env, argv[2], &timeout));
  if (!(timeout >= 0)) return throw_type(env, "flockWait: timeoutMs must be >= 0 (Infinity allowed)");

  flock_wait_t *w = (flock_wait_t *)calloc(1, sizeof *w);
  if (w == NULL) return throw_errno(env, ENOMEM, "flockWait");
  w->fd = fd;
  w->op = op;
  w->timeout_ms = timeout;

  napi_value promise, name;
  if (napi_create_promise(env, &w->deferred, &promise) != napi_ok) {
    free(w);
    throw_napi_failure(env);
    return NULL;
  }
  if (napi_create_string_utf8(env, "cairn.flockWait", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, flock_wait_execute, flock_wait_complete, w, &w->work) != napi_ok) {
    /* The deferred must be settled, or the promise leaks. */
    napi_value err;
    napi_value msg;
    if (napi_create_string_utf8(env, "flockWait: could not create async work", NAPI_AUTO_LENGTH, &msg) == napi_ok &&
        napi_create_error(env, NULL, msg, &err) == napi_ok)
      napi_reject_deferred(env, w->deferred, err);
    free(w);
    return promise;
  }
  if (napi_queue_async_work(env, w->work) != napi_ok) {
    napi_value err;
    napi_value msg;
    if (napi_create_string_utf8(env, "flockWait: could not queue async work", NAPI_AUTO_LENGTH, &msg) == napi_ok &&
        napi_create_error(env, NULL, msg, &err) == napi_ok)
      napi_reject_deferred(env, w->deferred, err);
    napi_delete_async_work(env, w->work);
    free(w);
  }
  return promise;
}

/* ------------------------------------------------------------------------------------------ */
/* syncfs(fd): undefined                                                                      */

static napi_value js_syncfs(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !get_fd(env, argv[0], &fd)) return throw_type(env, "syncfs: fd must be a non-negative integer");
#ifdef __linux__
  if (syncfs(fd) != 0) return throw_errno(env, errno, "syncfs");
#else
  return throw_errno(env, ENOSYS, "syncfs");
#endif
  return NULL; /* undefined */
}

/* ------------------------------------------------------------------------------------------ */
/* Gear table and the CDC scan (mirror of lib/codec/gear.ts)                                  */

/* Seed of the gear generator: the ASCII bytes "CAIR". Frozen: changing it changes every chunk. */
#define CAIRN_GEAR_SEED 0x43414952u

static uint32_t gear[256];
static pthread_once_t gear_once = PTHREAD_ONCE_INIT;

/* splitmix32: a Weyl sequence (step 0x9E3779B9) passed through the murmur3 32-bit finaliser. */
static void gear_init(void) {
  uint32_t s = CAIRN_GEAR_SEED;
  for (int i = 0; i < 256; i++) {
    s += 0x9E3779B9u;
    uint32_t z = s;
    z = (z ^ (z >> 16)) * 0x85EBCA6Bu;
    z = (z ^ (z >> 13)) * 0xC2B2AE35u;
    z ^= z >> 16;
    gear[i] = z;
  }
}

/*
 * Scans data[0..n) for the end of the current chunk. st = {chunkLen, hash}, pr = {min, avg, max,
 * maskS, maskL}. Returns the cut index (1..n) and resets st, or -1 with st updated.
 *
 * Phases by the chunk length L after a byte is added:
 *   L <= min-32        not hashed: with a 32-bit gear hash a byte's contribution is shifted out
 *                      after 32 more bytes, so it cannot influence the hash at any L >= min;
 *   L <  min           hashed, never cut;
 *   min <= L < avg     cut when (hash & maskS) == 0;
 *   avg <= L < max     cut when (hash & maskL) == 0;
 *   L == max           cut.
 */
static int64_t cdc_scan(const uint8_t *p, size_t n, uint32_t *st, const uint32_t *pr) {
  const uint32_t min = pr[0], avg = pr[1], max = pr[2], ms = pr[3], ml = pr[4];
  uint32_t len = st[0], h = st[1];
  size_t i = 0, k, end;

  const uint32_t skip_end = min > 32 ? min - 32 : 0;
  if (len < skip_end) {
    k = skip_end - len;
    if (k > n) k = n;
    i = k;
    len += (uint32_t)k;
  }
  if (len + 1 < min) {
    k = min - 1 - len;
    if (k > n - i) k = n - i;
    for (end = i + k; i < end; i++) h = (h << 1) + gear[p[i]];
    len += (uint32_t)k;
  }
  if (len + 1 < avg) {
    k = avg - 1 - len;
    if (k > n - i) k = n - i;
    for (end = i + k; i < end; i++) {
      h = (h << 1) + gear[p[i]];
      if ((h & ms) == 0) return (int64_t)(i + 1);
    }
    len += (uint32_t)k;
  }
  if (len + 1 < max) {
    k = max - 1 - len;
    if (k > n - i) k = n - i;
    for (end = i + k; i < end; i++) {
      h = (h << 1) + gear[p[i]];
      if ((h & ml) == 0) return (int64_t)(i + 1);
    }
    len += (uint32_t)k;
  }
  if (i < n) return (int64_t)(i + 1); /* L reaches max */
  st[0] = len;
  st[1] = h;
  return -1;
}

/* Reads a typed array of the given type with at least min_len elements. */
static bool get_typed(napi_env env, napi_value v, napi_typedarray_type want, size_t min_len, void **data, size_t *len) {
  bool is_ta = false;
  napi_typedarray_type type;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) return false;
  if (napi_get_typedarray_info(env, v, &type, len, data, NULL, NULL) != napi_ok) return false;
  if (type != want || *len < min_len) return false;
  if (*len > 0 && *data == NULL) return false;
  return true;
}

static napi_value js_cdc_scan(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  void *data, *state, *params;
  size_t n, state_len, params_len;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return throw_type(env, "cdcScan(data, state, params) needs 3 arguments");
  if (!get_typed(env, argv[0], napi_uint8_array, 0, &data, &n))
    return throw_type(env, "cdcScan: data must be a Uint8Array");
  if (!get_typed(env, argv[1], napi_uint32_array, 2, &state, &state_len))
    return throw_type(env, "cdcScan: state must be a Uint32Array [chunkLen, hash]");
  if (!get_typed(env, argv[2], napi_uint32_array, 5, &params, &params_len))
    return throw_type(env, "cdcScan: params must be a Uint32Array [min, avg, max, maskS, maskL]");
  uint32_t *st = (uint32_t *)state;
  const uint32_t *pr = (const uint32_t *)params;
  if (pr[0] < 1 || pr[0] > pr[1] || pr[1] > pr[2])
    return throw_type(env, "cdcScan: params must satisfy 1 <= min <= avg <= max");
  if (st[0] >= pr[2]) return throw_type(env, "cdcScan: state chunkLen must be < max");

  int64_t r = cdc_scan((const uint8_t *)data, n, st, pr);
  if (r > 0) {
    st[0] = 0;
    st[1] = 0;
  }
  napi_value out;
  CHECK(napi_create_double(env, (double)r, &out));
  return out;
}

/* ------------------------------------------------------------------------------------------ */

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  pthread_once(&gear_once, gear_init);
  napi_property_descriptor props[] = {
    {"flock", NULL, js_flock, NULL, NULL, NULL, napi_enumerable, NULL},
    {"flockWait", NULL, js_flock_wait, NULL, NULL, NULL, napi_enumerable, NULL},
    {"syncfs", NULL, js_syncfs, NULL, NULL, NULL, napi_enumerable, NULL},
    {"cdcScan", NULL, js_cdc_scan, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) {
    throw_napi_failure(env);
    return NULL;
  }
  return exports;
}
