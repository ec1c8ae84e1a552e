/*
 * cairn_native: the small N-API addon behind lib/codec/native.ts.
 *
 * Exports (see lib/codec/native.ts for the typed wrappers):
 *   flock(fd, op)                  try-lock; op 0 = unlock, 1 = shared, 2 = exclusive; -> boolean
 *   flockWait(fd, op, timeoutMs)   polls LOCK_NB on the libuv threadpool; -> Promise<boolean>
 *   syncfs(fd)                     Linux syncfs(2); -> undefined
 *   cdcScan(data, state, params)   gear content-defined boundary scan; -> cut index or -1
 *   listXattrs(path)               llistxattr(2); -> Buffer[] of names ([] on ENOTSUP)
 *   getXattr(path, name)           lgetxattr(2); -> Buffer
 *   setXattr(path, name, value)    lsetxattr(2) with flags 0; -> undefined
 *   mknod(path, mode, major, minor) mknod(2) with makedev(major, minor); -> undefined
 *   utimes(path, atimeNs, mtimeNs) utimensat(2), AT_SYMLINK_NOFOLLOW, BigInt nanoseconds; -> undefined
 *   seekData(fd, offset)           lseek(2) SEEK_DATA; -> offset, or -1 on ENXIO (no data after offset)
 *   seekHole(fd, offset)           lseek(2) SEEK_HOLE; -> offset
 *
 * Directory-fd calls (relative names are resolved against dirfd, which may be AT_FDCWD):
 *   openat(dirfd, name, flags, mode)             openat(2), O_CLOEXEC added; -> fd
 *   fstatat(dirfd, name, flags) / fstat(fd)      -> { dev, ino, mode, nlink, uid, gid, rdev, size,
 *                                                   blocks, atimeNs, mtimeNs, ctimeNs (BigInt) }
 *   readdir(dirfd)                               -> [{ name: Buffer, type: d_type }], without . and ..;
 *                                                   reads through a fresh open of "." so the caller's
 *                                                   fd and its position are untouched
 *   mkdirat(dirfd, name, mode), symlinkat(target, dirfd, name), linkat(od, on, nd, nn, flags),
 *   mknodat(dirfd, name, mode, major, minor), unlinkat(dirfd, name, flags),
 *   renameat(od, on, nd, nn, flags)              renameat2(2) flags (RENAME_NOREPLACE, ...)
 *   readlinkat(dirfd, name)                      -> Buffer
 *   fchownat(dirfd, name, uid, gid, flags), utimensat(dirfd, name, atimeNs, mtimeNs, flags),
 *   futimens(fd, atimeNs, mtimeNs), fchmod(fd, mode), fchown(fd, uid, gid)
 *   flistxattr(fd) / fgetxattr(fd, name) / fsetxattr(fd, name, value)
 *   constants                                    { AT_FDCWD, AT_SYMLINK_NOFOLLOW, AT_REMOVEDIR,
 *                                                   AT_EMPTY_PATH, O_PATH, RENAME_NOREPLACE, DT_* }
 *
 * Paths and xattr names are a string (encoded as UTF-8) or a Buffer/Uint8Array of raw bytes (file
 * names need not be valid UTF-8); either is copied into a NUL-terminated heap string, and an
 * embedded NUL byte is a TypeError. No function follows symlinks.
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
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(off_t) == 8, "cairn_native needs a 64-bit off_t");

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
  uv_strerror_r(-err, desc, sizeof desc);
  if (name[0] != 'E') {
    /* libuv does not know every errno (EDQUOT, for one); glibc >= 2.32 can name the rest. */
    const char *glibc_name = NULL;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
    glibc_name = strerrorname_np(err);
    const char *glibc_desc = glibc_name != NULL ? strerrordesc_np(err) : NULL;
    if (glibc_desc != NULL) snprintf(desc, sizeof desc, "%s", glibc_desc);
#endif
    snprintf(name, sizeof name, "%s", glibc_name != NULL ? glibc_name : "EUNKNOWN");
  }
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
/* Filesystem metadata: xattrs, device nodes, nanosecond times, sparse-file seeks             */

/* How often a size query + read is retried when the data grows between the two calls. */
#define XATTR_RETRIES 32

/* Throws TypeError("<fn>: <what> must be ..."), formatted. */
static napi_value throw_typef(napi_env env, const char *fn, const char *what, const char *must) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s must be %s", fn, what, must);
  return throw_type(env, msg);
}

/*
 * Copies a path or xattr name into a new NUL-terminated heap string: a JS string (as UTF-8) or a
 * Uint8Array/Buffer of raw bytes. An embedded NUL byte is refused. On false an exception is
 * pending and *out is NULL; on true the caller frees *out.
 */
static bool get_cstr(napi_env env, napi_value v, const char *fn, const char *what, char **out) {
  napi_valuetype t;
  *out = NULL;
  if (napi_typeof(env, v, &t) != napi_ok) {
    throw_napi_failure(env);
    return false;
  }
  if (t == napi_string) {
    size_t len = 0, copied = 0;
    if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
      throw_napi_failure(env);
      return false;
    }
    char *s = (char *)malloc(len + 1);
    if (s == NULL) {
      throw_errno(env, ENOMEM, fn);
      return false;
    }
    if (napi_get_value_string_utf8(env, v, s, len + 1, &copied) != napi_ok) {
      free(s);
      throw_napi_failure(env);
      return false;
    }
    s[copied] = '\0';
    if (copied != len || strlen(s) != len) {
      free(s);
      throw_typef(env, fn, what, "a string without NUL characters");
      return false;
    }
    *out = s;
    return true;
  }
  void *data = NULL;
  size_t len = 0;
  if (!get_typed(env, v, napi_uint8_array, 0, &data, &len)) {
    throw_typef(env, fn, what, "a string or a Buffer/Uint8Array");
    return false;
  }
  if (len > 0 && memchr(data, '\0', len) != NULL) {
    throw_typef(env, fn, what, "free of NUL bytes");
    return false;
  }
  char *s = (char *)malloc(len + 1);
  if (s == NULL) {
    throw_errno(env, ENOMEM, fn);
    return false;
  }
  if (len > 0) memcpy(s, data, len);
  s[len] = '\0';
  *out = s;
  return true;
}

/* Reads an integer number in [0, max]. */
static bool get_uint(napi_env env, napi_value v, double max, double *out) {
  napi_valuetype t;
  double d;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return false;
  if (napi_get_value_double(env, v, &d) != napi_ok) return false;
  if (!(d >= 0 && d <= max) || d != floor(d)) return false;
  *out = d;
  return true;
}

/* Reads a BigInt that fits an int64_t. */
static bool get_int64_bigint(napi_env env, napi_value v, int64_t *out) {
  napi_valuetype t;
  bool lossless = false;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_bigint) return false;
  if (napi_get_value_bigint_int64(env, v, out, &lossless) != napi_ok) return false;
  return lossless;
}

/* Nanoseconds since the epoch (negative before 1970) to a timespec with tv_nsec in [0, 1e9). */
static struct timespec ns_to_timespec(int64_t ns) {
  struct timespec ts;
  int64_t sec = ns / 1000000000LL;
  int64_t rem = ns % 1000000000LL;
  if (rem < 0) {
    rem += 1000000000LL;
    sec -= 1;
  }
  ts.tv_sec = (time_t)sec;
  ts.tv_nsec = (long)rem;
  return ts;
}

/* Extended attributes of a path (not following a symlink) or of an open descriptor ---------- */

/* Where xattr calls go: a path (l*xattr) when `path` is set, else a descriptor (f*xattr). */
struct xattr_target {
  const char *path;
  int fd;
};

/* One list (name == NULL) or get call on the target. */
static ssize_t xattr_call(const struct xattr_target *t, const char *name, char *buf, size_t cap) {
  if (name == NULL) return t->path != NULL ? llistxattr(t->path, buf, cap) : flistxattr(t->fd, buf, cap);
  return t->path != NULL ? lgetxattr(t->path, name, buf, cap) : fgetxattr(t->fd, name, buf, cap);
}

/*
 * Reads the name list (name == NULL) or one value into a malloc'ed buffer (*out, freed by the
 * caller): a size query, then the read, again while the list or value grows in between (ERANGE).
 * Returns the byte count, or -1 with *err set.
 */
static ssize_t xattr_read(const struct xattr_target *t, const char *name, char **out, int *err) {
  *out = NULL;
  *err = 0;
  for (int attempt = 0;; attempt++) {
    ssize_t size = xattr_call(t, name, NULL, 0);
    if (size < 0) {
      *err = errno;
      return -1;
    }
    size_t cap = size > 0 ? (size_t)size : 1; /* a 0-byte buffer would be another size query */
    char *buf = (char *)malloc(cap);
    if (buf == NULL) {
      *err = ENOMEM;
      return -1;
    }
    ssize_t n = xattr_call(t, name, buf, cap);
    if (n >= 0) {
      *out = buf;
      return n;
    }
    *err = errno;
    free(buf);
    if (*err != ERANGE || attempt + 1 >= XATTR_RETRIES) return -1;
  }
}

/* The NUL-separated names of a list as an array of Buffers (NULL with an exception pending). */
static napi_value xattr_names(napi_env env, const char *buf, ssize_t n) {
  napi_value result;
  if (napi_create_array(env, &result) != napi_ok) {
    throw_napi_failure(env);
    return NULL;
  }
  uint32_t index = 0;
  for (size_t i = 0; n > 0 && i < (size_t)n;) {
    const char *name = buf + i;
    const char *nul = (const char *)memchr(name, '\0', (size_t)n - i);
    size_t len = nul != NULL ? (size_t)(nul - name) : (size_t)n - i;
    if (len > 0) {
      napi_value b;
      if (napi_create_buffer_copy(env, len, name, NULL, &b) != napi_ok || napi_set_element(env, result, index++, b) != napi_ok) {
        throw_napi_failure(env);
        return NULL;
      }
    }
    i += len + 1;
  }
  return result;
}

/* The names of a target (an empty list where xattrs are not supported). */
static napi_value xattr_list_js(napi_env env, const struct xattr_target *t, const char *syscall) {
  char *buf;
  int err;
  ssize_t n = xattr_read(t, NULL, &buf, &err);
  napi_value result = NULL;
  if (n < 0 && err != ENOTSUP) throw_errno(env, err, syscall);
  else result = xattr_names(env, buf, n);
  free(buf);
  return result;
}

/* One value of a target as a Buffer. */
static napi_value xattr_get_js(napi_env env, const struct xattr_target *t, const char *name, const char *syscall) {
  char *buf;
  int err;
  ssize_t n = xattr_read(t, name, &buf, &err);
  napi_value result = NULL;
  if (n < 0) throw_errno(env, err, syscall);
  else if (napi_create_buffer_copy(env, (size_t)n, buf, NULL, &result) != napi_ok) {
    result = NULL;
    throw_napi_failure(env);
  }
  free(buf);
  return result;
}

/* listXattrs(path): Buffer[] ------------------------------------------------------------- */

static napi_value js_list_xattrs(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char *path = NULL;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return throw_type(env, "listXattrs(path) needs 1 argument");
  if (!get_cstr(env, argv[0], "listXattrs", "path", &path)) return NULL;
  struct xattr_target t = {path, -1};
  napi_value result = xattr_list_js(env, &t, "llistxattr");
  free(path);
  return result;
}

/* getXattr(path, name): Buffer ----------------------------------------------------------- */

static napi_value js_get_xattr(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char *path = NULL, *name = NULL;
  napi_value result = NULL;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_type(env, "getXattr(path, name) needs 2 arguments");
  if (get_cstr(env, argv[0], "getXattr", "path", &path) && get_cstr(env, argv[1], "getXattr", "name", &name)) {
    struct xattr_target t = {path, -1};
    result = xattr_get_js(env, &t, name, "lgetxattr");
  }
  free(name);
  free(path);
  return result;
}

/* setXattr(path, name, value): undefined ------------------------------------------------- */

static napi_value js_set_xattr(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  char *path = NULL, *name = NULL;
  void *value = NULL;
  size_t len = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return throw_type(env, "setXattr(path, name, value) needs 3 arguments");
  if (!get_typed(env, argv[2], napi_uint8_array, 0, &value, &len))
    return throw_type(env, "setXattr: value must be a Buffer/Uint8Array");
  if (!get_cstr(env, argv[0], "setXattr", "path", &path)) goto done;
  if (!get_cstr(env, argv[1], "setXattr", "name", &name)) goto done;
  if (lsetxattr(path, name, len > 0 ? value : "", len, 0) != 0) throw_errno(env, errno, "lsetxattr");
done:
  free(name);
  free(path);
  return NULL; /* undefined, or the pending exception */
}

/* mknod(path, mode, major, minor): undefined --------------------------------------------- */

static napi_value js_mknod(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  double mode, major, minor;
  char *path = NULL;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) return throw_type(env, "mknod(path, mode, major, minor) needs 4 arguments");
  if (!get_uint(env, argv[1], 0xFFFF, &mode)) return throw_type(env, "mknod: mode must be an integer in [0, 0o177777]");
  if (!get_uint(env, argv[2], UINT32_MAX, &major)) return throw_type(env, "mknod: major must be an integer in [0, 2**32)");
  if (!get_uint(env, argv[3], UINT32_MAX, &minor)) return throw_type(env, "mknod: minor must be an integer in [0, 2**32)");
  if (!get_cstr(env, argv[0], "mknod", "path", &path)) return NULL;
  dev_t dev = makedev((unsigned int)major, (unsigned int)minor);
  if (mknod(path, (mode_t)mode, dev) != 0) throw_errno(env, errno, "mknod");
  free(path);
  return NULL;
}

/* utimes(path, atimeNs, mtimeNs): undefined ---------------------------------------------- */

static napi_value js_utimes(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int64_t atime, mtime;
  char *path = NULL;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return throw_type(env, "utimes(path, atimeNs, mtimeNs) needs 3 arguments");
  if (!get_int64_bigint(env, argv[1], &atime))
    return throw_type(env, "utimes: atimeNs must be a BigInt in the int64 range (nanoseconds)");
  if (!get_int64_bigint(env, argv[2], &mtime))
    return throw_type(env, "utimes: mtimeNs must be a BigInt in the int64 range (nanoseconds)");
  if (!get_cstr(env, argv[0], "utimes", "path", &path)) return NULL;
  struct timespec ts[2] = {ns_to_timespec(atime), ns_to_timespec(mtime)};
  if (utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) != 0) throw_errno(env, errno, "utimensat");
  free(path);
  return NULL;
}

/* seekData(fd, offset) / seekHole(fd, offset): number ------------------------------------ */

static napi_value seek(napi_env env, napi_callback_info info, int whence, const char *fn) {
  size_t argc = 2;
  napi_value argv[2];
  int fd;
  double offset;
  char msg[96];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    snprintf(msg, sizeof msg, "%s(fd, offset) needs 2 arguments", fn);
    return throw_type(env, msg);
  }
  if (!get_fd(env, argv[0], &fd)) return throw_typef(env, fn, "fd", "a non-negative integer");
  if (!get_uint(env, argv[1], 9007199254740991.0, &offset))
    return throw_typef(env, fn, "offset", "an integer in [0, Number.MAX_SAFE_INTEGER]");
  off_t r = lseek(fd, (off_t)offset, whence);
  if (r < 0) {
    if (errno == ENXIO && whence == SEEK_DATA) r = -1; /* no data at or after offset */
    else return throw_errno(env, errno, "lseek");
  }
  napi_value out;
  CHECK(napi_create_double(env, (double)r, &out));
  return out;
}

static napi_value js_seek_data(napi_env env, napi_callback_info info) {
  return seek(env, info, SEEK_DATA, "seekData");
}

static napi_value js_seek_hole(napi_env env, napi_callback_info info) {
  return seek(env, info, SEEK_HOLE, "seekHole");
}

/* ------------------------------------------------------------------------------------------ */
/* Directory-fd calls: openat, fstatat, readdir, mkdirat, ... and fd-based metadata           */

/* Reads a directory fd: AT_FDCWD or an integer in [0, INT_MAX]. */
static bool get_dirfd(napi_env env, napi_value v, int *fd) {
  napi_valuetype t;
  double d;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return false;
  if (napi_get_value_double(env, v, &d) != napi_ok) return false;
  if (d == (double)AT_FDCWD) {
    *fd = AT_FDCWD;
    return true;
  }
  if (!(d >= 0 && d <= INT_MAX) || d != floor(d)) return false;
  *fd = (int)d;
  return true;
}

/* Reads flags: an integer in [0, INT_MAX]. */
static bool get_flags(napi_env env, napi_value v, int *out) {
  double d;
  if (!get_uint(env, v, INT_MAX, &d)) return false;
  *out = (int)d;
  return true;
}

#define NEED_ARGS(n, usage)                                              \
  size_t argc = (n);                                                     \
  napi_value argv[(n) > 0 ? (n) : 1];                                    \
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));           \
  if (argc < (n)) return throw_type(env, usage " needs " #n " arguments")

#define DIRFD_ARG(i, fn, var) \
  if (!get_dirfd(env, argv[i], &var)) return throw_typef(env, fn, #var, "AT_FDCWD or a non-negative integer")
#define FD_ARG(i, fn, var) \
  if (!get_fd(env, argv[i], &var)) return throw_typef(env, fn, #var, "a non-negative integer")
#define FLAGS_ARG(i, fn, var) \
  if (!get_flags(env, argv[i], &var)) return throw_typef(env, fn, #var, "an integer in [0, 2**31)")

static int64_t timespec_ns(struct timespec ts) {
  return (int64_t)ts.tv_sec * 1000000000LL + (int64_t)ts.tv_nsec;
}

static napi_value make_stat(napi_env env, const struct stat *st) {
  napi_value o, v;
  CHECK(napi_create_object(env, &o));
#define SETNUM(key, val)                                   \
  CHECK(napi_create_double(env, (double)(val), &v));       \
  CHECK(napi_set_named_property(env, o, key, v))
#define SETNS(key, ts)                                     \
  CHECK(napi_create_bigint_int64(env, timespec_ns(ts), &v)); \
  CHECK(napi_set_named_property(env, o, key, v))
  SETNUM("dev", st->st_dev);
  SETNUM("ino", st->st_ino);
  SETNUM("mode", st->st_mode);
  SETNUM("nlink", st->st_nlink);
  SETNUM("uid", st->st_uid);
  SETNUM("gid", st->st_gid);
  SETNUM("rdev", st->st_rdev);
  SETNUM("size", st->st_size);
  SETNUM("blocks", st->st_blocks);
  SETNS("atimeNs", st->st_atim);
  SETNS("mtimeNs", st->st_mtim);
  SETNS("ctimeNs", st->st_ctim);
#undef SETNUM
#undef SETNS
  return o;
}

/* openat(dirfd, name, flags, mode): fd ---------------------------------------------------- */

static napi_value js_openat(napi_env env, napi_callback_info info) {
  NEED_ARGS(4, "openat(dirfd, name, flags, mode)");
  int dirfd, flags;
  double mode;
  char *name = NULL;
  DIRFD_ARG(0, "openat", dirfd);
  FLAGS_ARG(2, "openat", flags);
  if (!get_uint(env, argv[3], 07777, &mode)) return throw_type(env, "openat: mode must be an integer in [0, 0o7777]");
  if (!get_cstr(env, argv[1], "openat", "name", &name)) return NULL;
  int fd;
  do fd = openat(dirfd, name, flags | O_CLOEXEC, (mode_t)mode);
  while (fd < 0 && errno == EINTR);
  int err = errno;
  free(name);
  if (fd < 0) return throw_errno(env, err, "openat");
  napi_value out;
  CHECK(napi_create_int32(env, fd, &out));
  return out;
}

/* fstatat(dirfd, name, flags) / fstat(fd): stat object ----------------------------------- */

static napi_value js_fstatat(napi_env env, napi_callback_info info) {
  NEED_ARGS(3, "fstatat(dirfd, name, flags)");
  int dirfd, flags;
  char *name = NULL;
  DIRFD_ARG(0, "fstatat", dirfd);
  FLAGS_ARG(2, "fstatat", flags);
  if (!get_cstr(env, argv[1], "fstatat", "name", &name)) return NULL;
  struct stat st;
  int r = fstatat(dirfd, name, &st, flags);
  int err = errno;
  free(name);
  if (r != 0) return throw_errno(env, err, "fstatat");
  return make_stat(env, &st);
}

static napi_value js_fstat(napi_env env, napi_callback_info info) {
  NEED_ARGS(1, "fstat(fd)");
  int fd;
  FD_ARG(0, "fstat", fd);
  struct stat st;
  if (fstat(fd, &st) != 0) return throw_errno(env, errno, "fstat");
  return make_stat(env, &st);
}

/* readdir(dirfd): [{ name, type }] ------------------------------------------------------- */

static napi_value js_readdir(napi_env env, napi_callback_info info) {
  NEED_ARGS(1, "readdir(dirfd)");
  int dirfd;
  DIRFD_ARG(0, "readdir", dirfd);
  /* A new open file description of the same directory: reads from the start, and closedir()
     does not close (or move) the caller's descriptor. Works on O_PATH descriptors too. */
  int fd;
  do fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return throw_errno(env, errno, "openat");
  DIR *d = fdopendir(fd);
  if (d == NULL) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "fdopendir");
  }
  napi_value arr = NULL, ok_arr = NULL;
  if (napi_create_array(env, &arr) != napi_ok) goto napi_fail;
  uint32_t index = 0;
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (de == NULL) {
      if (errno != 0) {
        int err = errno;
        closedir(d);
        return throw_errno(env, err, "readdir");
      }
      break;
    }
    const char *n = de->d_name;
    if (n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'))) continue;
    napi_value entry, name_v, type_v;
    if (napi_create_object(env, &entry) != napi_ok ||
        napi_create_buffer_copy(env, strlen(n), n, NULL, &name_v) != napi_ok ||
        napi_create_uint32(env, de->d_type, &type_v) != napi_ok ||
        napi_set_named_property(env, entry, "name", name_v) != napi_ok ||
        napi_set_named_property(env, entry, "type", type_v) != napi_ok ||
        napi_set_element(env, arr, index++, entry) != napi_ok)
      goto napi_fail;
  }
  ok_arr = arr;
  closedir(d);
  return ok_arr;
napi_fail:
  closedir(d);
  throw_napi_failure(env);
  return NULL;
}

/* mkdirat(dirfd, name, mode) -------------------------------------------------------------- */

static napi_value js_mkdirat(napi_env env, napi_callback_info info) {
  NEED_ARGS(3, "mkdirat(dirfd, name, mode)");
  int dirfd;
  double mode;
  char *name = NULL;
  DIRFD_ARG(0, "mkdirat", dirfd);
  if (!get_uint(env, argv[2], 07777, &mode)) return throw_type(env, "mkdirat: mode must be an integer in [0, 0o7777]");
  if (!get_cstr(env, argv[1], "mkdirat", "name", &name)) return NULL;
  if (mkdirat(dirfd, name, (mode_t)mode) != 0) throw_errno(env, errno, "mkdirat");
  free(name);
  return NULL;
}

/* symlinkat(target, dirfd, name) ---------------------------------------------------------- */

static napi_value js_symlinkat(napi_env env, napi_callback_info info) {
  NEED_ARGS(3, "symlinkat(target, dirfd, name)");
  int dirfd;
  char *target = NULL, *name = NULL;
  DIRFD_ARG(1, "symlinkat", dirfd);
  if (!get_cstr(env, argv[0], "symlinkat", "target", &target)) return NULL;
  if (get_cstr(env, argv[2], "symlinkat", "name", &name)) {
    if (symlinkat(target, dirfd, name) != 0) throw_errno(env, errno, "symlinkat");
  }
  free(name);
  free(target);
  return NULL;
}

/* linkat(oldDirfd, oldName, newDirfd, newName, flags) ------------------------------------ */

static napi_value js_linkat(napi_env env, napi_callback_info info) {
  NEED_ARGS(5, "linkat(oldDirfd, oldName, newDirfd, newName, flags)");
  int od, nd, flags;
  char *on = NULL, *nn = NULL;
  DIRFD_ARG(0, "linkat", od);
  DIRFD_ARG(2, "linkat", nd);
  FLAGS_ARG(4, "linkat", flags);
  if (!get_cstr(env, argv[1], "linkat", "oldName", &on)) return NULL;
  if (get_cstr(env, argv[3], "linkat", "newName", &nn)) {
    if (linkat(od, on, nd, nn, flags) != 0) throw_errno(env, errno, "linkat");
  }
  free(nn);
  free(on);
  return NULL;
}

/* mknodat(dirfd, name, mode, major, minor) ----------------------------------------------- */

static napi_value js_mknodat(napi_env env, napi_callback_info info) {
  NEED_ARGS(5, "mknodat(dirfd, name, mode, major, minor)");
  int dirfd;
  double mode, major, minor;
  char *name = NULL;
  DIRFD_ARG(0, "mknodat", dirfd);
  if (!get_uint(env, argv[2], 0xFFFF, &mode)) return throw_type(env, "mknodat: mode must be an integer in [0, 0o177777]");
  if (!get_uint(env, argv[3], UINT32_MAX, &major)) return throw_type(env, "mknodat: major must be an integer in [0, 2**32)");
  if (!get_uint(env, argv[4], UINT32_MAX, &minor)) return throw_type(env, "mknodat: minor must be an integer in [0, 2**32)");
  if (!get_cstr(env, argv[1], "mknodat", "name", &name)) return NULL;
  if (mknodat(dirfd, name, (mode_t)mode, makedev((unsigned int)major, (unsigned int)minor)) != 0)
    throw_errno(env, errno, "mknodat");
  free(name);
  return NULL;
}

/* unlinkat(dirfd, name, flags) ------------------------------------------------------------ */

static napi_value js_unlinkat(napi_env env, napi_callback_info info) {
  NEED_ARGS(3, "unlinkat(dirfd, name, flags)");
  int dirfd, flags;
  char *name = NULL;
  DIRFD_ARG(0, "unlinkat", dirfd);
  FLAGS_ARG(2, "unlinkat", flags);
  if (!get_cstr(env, argv[1], "unlinkat", "name", &name)) return NULL;
  if (unlinkat(dirfd, name, flags) != 0) throw_errno(env, errno, "unlinkat");
  free(name);
  return NULL;
}

/* renameat(oldDirfd, oldName, newDirfd, newName, flags) ---------------------------------- */

static napi_value js_renameat(napi_env env, napi_callback_info info) {
  NEED_ARGS(5, "renameat(oldDirfd, oldName, newDirfd, newName, flags)");
  int od, nd, flags;
  char *on = NULL, *nn = NULL;
  DIRFD_ARG(0, "renameat", od);
  DIRFD_ARG(2, "renameat", nd);
  FLAGS_ARG(4, "renameat", flags);
  if (!get_cstr(env, argv[1], "renameat", "oldName", &on)) return NULL;
  if (get_cstr(env, argv[3], "renameat", "newName", &nn)) {
    int r = flags == 0 ? renameat(od, on, nd, nn) : renameat2(od, on, nd, nn, (unsigned int)flags);
    if (r != 0) throw_errno(env, errno, flags == 0 ? "renameat" : "renameat2");
  }
  free(nn);
  free(on);
  return NULL;
}

/* readlinkat(dirfd, name): Buffer --------------------------------------------------------- */

static napi_value js_readlinkat(napi_env env, napi_callback_info info) {
  NEED_ARGS(2, "readlinkat(dirfd, name)");
  int dirfd;
  char *name = NULL, *buf = NULL;
  napi_value out = NULL;
  DIRFD_ARG(0, "readlinkat", dirfd);
  if (!get_cstr(env, argv[1], "readlinkat", "name", &name)) return NULL;
  for (size_t cap = 256;; cap *= 2) {
    char *nb = (char *)realloc(buf, cap);
    if (nb == NULL) {
      throw_errno(env, ENOMEM, "readlinkat");
      goto done;
    }
    buf = nb;
    ssize_t n = readlinkat(dirfd, name, buf, cap);
    if (n < 0) {
      throw_errno(env, errno, "readlinkat");
      goto done;
    }
    if ((size_t)n < cap) {
      if (napi_create_buffer_copy(env, (size_t)n, buf, NULL, &out) != napi_ok) {
        out = NULL;
        throw_napi_failure(env);
      }
      goto done;
    }
    if (cap >= ((size_t)1 << 24)) {
      throw_errno(env, ENAMETOOLONG, "readlinkat");
      goto done;
    }
  }
done:
  free(buf);
  free(name);
  return out;
}

/* fchownat(dirfd, name, uid, gid, flags) -------------------------------------------------- */

/* Reads a uid/gid: an integer in [0, 2**32 - 1] (-1 means "unchanged" and is given as 2**32 - 1). */
static bool get_id(napi_env env, napi_value v, uint32_t *out) {
  double d;
  if (!get_uint(env, v, UINT32_MAX, &d)) return false;
  *out = (uint32_t)d;
  return true;
}

static napi_value js_fchownat(napi_env env, napi_callback_info info) {
  NEED_ARGS(5, "fchownat(dirfd, name, uid, gid, flags)");
  int dirfd, flags;
  uint32_t uid, gid;
  char *name = NULL;
  DIRFD_ARG(0, "fchownat", dirfd);
  if (!get_id(env, argv[2], &uid)) return throw_type(env, "fchownat: uid must be an integer in [0, 2**32)");
  if (!get_id(env, argv[3], &gid)) return throw_type(env, "fchownat: gid must be an integer in [0, 2**32)");
  FLAGS_ARG(4, "fchownat", flags);
  if (!get_cstr(env, argv[1], "fchownat", "name", &name)) return NULL;
  if (fchownat(dirfd, name, (uid_t)uid, (gid_t)gid, flags) != 0) throw_errno(env, errno, "fchownat");
  free(name);
  return NULL;
}

/* utimensat(dirfd, name, atimeNs, mtimeNs, flags) / futimens(fd, atimeNs, mtimeNs) ------- */

static napi_value js_utimensat(napi_env env, napi_callback_info info) {
  NEED_ARGS(5, "utimensat(dirfd, name, atimeNs, mtimeNs, flags)");
  int dirfd, flags;
  int64_t atime, mtime;
  char *name = NULL;
  DIRFD_ARG(0, "utimensat", dirfd);
  if (!get_int64_bigint(env, argv[2], &atime))
    return throw_type(env, "utimensat: atimeNs must be a BigInt in the int64 range (nanoseconds)");
  if (!get_int64_bigint(env, argv[3], &mtime))
    return throw_type(env, "utimensat: mtimeNs must be a BigInt in the int64 range (nanoseconds)");
  FLAGS_ARG(4, "utimensat", flags);
  if (!get_cstr(env, argv[1], "utimensat", "name", &name)) return NULL;
  struct timespec ts[2] = {ns_to_timespec(atime), ns_to_timespec(mtime)};
  if (utimensat(dirfd, name, ts, flags) != 0) throw_errno(env, errno, "utimensat");
  free(name);
  return NULL;
}

static napi_value js_futimens(napi_env env, napi_callback_info info) {
  NEED_ARGS(3, "futimens(fd, atimeNs, mtimeNs)");
  int fd;
  int64_t atime, mtime;
  FD_ARG(0, "futimens", fd);
  if (!get_int64_bigint(env, argv[1], &atime))
    return throw_type(env, "futimens: atimeNs must be a BigInt in the int64 range (nanoseconds)");
  if (!get_int64_bigint(env, argv[2], &mtime))
    return throw_type(env, "futimens: mtimeNs must be a BigInt in the int64 range (nanoseconds)");
  struct timespec ts[2] = {ns_to_timespec(atime), ns_to_timespec(mtime)};
  if (futimens(fd, ts) != 0) return throw_errno(env, errno, "futimens");
  return NULL;
}

/* fchmod(fd, mode) / fchown(fd, uid, gid) ------------------------------------------------- */

static napi_value js_fchmod(napi_env env, napi_callback_info info) {
  NEED_ARGS(2, "fchmod(fd, mode)");
  int fd;
  double mode;
  FD_ARG(0, "fchmod", fd);
  if (!get_uint(env, argv[1], 07777, &mode)) return throw_type(env, "fchmod: mode must be an integer in [0, 0o7777]");
  if (fchmod(fd, (mode_t)mode) != 0) return throw_errno(env, errno, "fchmod");
  return NULL;
}

static napi_value js_fchown(napi_env env, napi_callback_info info) {
  NEED_ARGS(3, "fchown(fd, uid, gid)");
  int fd;
  uint32_t uid, gid;
  FD_ARG(0, "fchown", fd);
  if (!get_id(env, argv[1], &uid)) return throw_type(env, "fchown: uid must be an integer in [0, 2**32)");
  if (!get_id(env, argv[2], &gid)) return throw_type(env, "fchown: gid must be an integer in [0, 2**32)");
  if (fchown(fd, (uid_t)uid, (gid_t)gid) != 0) return throw_errno(env, errno, "fchown");
  return NULL;
}

/* flistxattr(fd) / fgetxattr(fd, name) / fsetxattr(fd, name, value) ---------------------- */

static napi_value js_flistxattr(napi_env env, napi_callback_info info) {
  NEED_ARGS(1, "flistxattr(fd)");
  int fd;
  FD_ARG(0, "flistxattr", fd);
  struct xattr_target t = {NULL, fd};
  return xattr_list_js(env, &t, "flistxattr");
}

static napi_value js_fgetxattr(napi_env env, napi_callback_info info) {
  NEED_ARGS(2, "fgetxattr(fd, name)");
  int fd;
  char *name = NULL;
  FD_ARG(0, "fgetxattr", fd);
  if (!get_cstr(env, argv[1], "fgetxattr", "name", &name)) return NULL;
  struct xattr_target t = {NULL, fd};
  napi_value result = xattr_get_js(env, &t, name, "fgetxattr");
  free(name);
  return result;
}

static napi_value js_fsetxattr(napi_env env, napi_callback_info info) {
  NEED_ARGS(3, "fsetxattr(fd, name, value)");
  int fd;
  char *name = NULL;
  void *value = NULL;
  size_t len = 0;
  FD_ARG(0, "fsetxattr", fd);
  if (!get_typed(env, argv[2], napi_uint8_array, 0, &value, &len))
    return throw_type(env, "fsetxattr: value must be a Buffer/Uint8Array");
  if (!get_cstr(env, argv[1], "fsetxattr", "name", &name)) return NULL;
  if (fsetxattr(fd, name, len > 0 ? value : "", len, 0) != 0) throw_errno(env, errno, "fsetxattr");
  free(name);
  return NULL;
}

/* constants ------------------------------------------------------------------------------- */

static napi_value make_constants(napi_env env) {
  napi_value o, v;
  CHECK(napi_create_object(env, &o));
#define SETC(name)                                 \
  CHECK(napi_create_int32(env, (int32_t)(name), &v)); \
  CHECK(napi_set_named_property(env, o, #name, v))
  SETC(AT_FDCWD);
  SETC(AT_SYMLINK_NOFOLLOW);
  SETC(AT_REMOVEDIR);
  SETC(AT_EMPTY_PATH);
  SETC(AT_SYMLINK_FOLLOW);
  SETC(O_PATH);
  SETC(O_NOFOLLOW);
  SETC(O_DIRECTORY);
  SETC(O_NONBLOCK);
  SETC(O_NOCTTY);
  SETC(O_CLOEXEC);
  SETC(RENAME_NOREPLACE);
  SETC(RENAME_EXCHANGE);
  SETC(DT_UNKNOWN);
  SETC(DT_FIFO);
  SETC(DT_CHR);
  SETC(DT_DIR);
  SETC(DT_BLK);
  SETC(DT_REG);
  SETC(DT_LNK);
  SETC(DT_SOCK);
#undef SETC
  return o;
}

/* ------------------------------------------------------------------------------------------ */

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  pthread_once(&gear_once, gear_init);
  napi_value constants = make_constants(env);
  if (constants == NULL) return NULL;
  napi_property_descriptor props[] = {
    {"flock", NULL, js_flock, NULL, NULL, NULL, napi_enumerable, NULL},
    {"flockWait", NULL, js_flock_wait, NULL, NULL, NULL, napi_enumerable, NULL},
    {"syncfs", NULL, js_syncfs, NULL, NULL, NULL, napi_enumerable, NULL},
    {"cdcScan", NULL, js_cdc_scan, NULL, NULL, NULL, napi_enumerable, NULL},
    {"listXattrs", NULL, js_list_xattrs, NULL, NULL, NULL, napi_enumerable, NULL},
    {"getXattr", NULL, js_get_xattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"setXattr", NULL, js_set_xattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"mknod", NULL, js_mknod, NULL, NULL, NULL, napi_enumerable, NULL},
    {"utimes", NULL, js_utimes, NULL, NULL, NULL, napi_enumerable, NULL},
    {"seekData", NULL, js_seek_data, NULL, NULL, NULL, napi_enumerable, NULL},
    {"seekHole", NULL, js_seek_hole, NULL, NULL, NULL, napi_enumerable, NULL},
    {"openat", NULL, js_openat, NULL, NULL, NULL, napi_enumerable, NULL},
    {"fstatat", NULL, js_fstatat, NULL, NULL, NULL, napi_enumerable, NULL},
    {"fstat", NULL, js_fstat, NULL, NULL, NULL, napi_enumerable, NULL},
    {"readdir", NULL, js_readdir, NULL, NULL, NULL, napi_enumerable, NULL},
    {"mkdirat", NULL, js_mkdirat, NULL, NULL, NULL, napi_enumerable, NULL},
    {"symlinkat", NULL, js_symlinkat, NULL, NULL, NULL, napi_enumerable, NULL},
    {"linkat", NULL, js_linkat, NULL, NULL, NULL, napi_enumerable, NULL},
    {"mknodat", NULL, js_mknodat, NULL, NULL, NULL, napi_enumerable, NULL},
    {"unlinkat", NULL, js_unlinkat, NULL, NULL, NULL, napi_enumerable, NULL},
    {"renameat", NULL, js_renameat, NULL, NULL, NULL, napi_enumerable, NULL},
    {"readlinkat", NULL, js_readlinkat, NULL, NULL, NULL, napi_enumerable, NULL},
    {"fchownat", NULL, js_fchownat, NULL, NULL, NULL, napi_enumerable, NULL},
    {"utimensat", NULL, js_utimensat, NULL, NULL, NULL, napi_enumerable, NULL},
    {"futimens", NULL, js_futimens, NULL, NULL, NULL, napi_enumerable, NULL},
    {"fchmod", NULL, js_fchmod, NULL, NULL, NULL, napi_enumerable, NULL},
    {"fchown", NULL, js_fchown, NULL, NULL, NULL, napi_enumerable, NULL},
    {"flistxattr", NULL, js_flistxattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"fgetxattr", NULL, js_fgetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"fsetxattr", NULL, js_fsetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"constants", NULL, NULL, NULL, NULL, constants, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) {
    throw_napi_failure(env);
    return NULL;
  }
  return exports;
}
