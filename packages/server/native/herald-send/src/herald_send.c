/*
 * send(fd, buffer) and sendMany(fds, …) for Herald's fan-out: one non-blocking send(2) on a connected socket, the
 * result returned as bytes written or -errno. MSG_NOSIGNAL so a peer that went away yields EPIPE
 * instead of a signal; MSG_DONTWAIT so a full socket buffer yields EAGAIN instead of blocking
 * (libuv's sockets are non-blocking already; this makes it explicit).
 */
#include <errno.h>
#include <node_api.h>
#include <sys/socket.h>

static napi_value herald_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_value result;
  int32_t fd = -1;
  void *data = NULL;
  size_t length = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_buffer_info(env, argv[1], &data, &length) != napi_ok || fd < 0) {
    napi_create_int32(env, -EINVAL, &result);
    return result;
  }
  ssize_t n = send(fd, data, length, MSG_NOSIGNAL | MSG_DONTWAIT);
  napi_create_int32(env, n < 0 ? -errno : (int32_t)n, &result);
  return result;
}

/*
 * sendMany(fds: Int32Array, count, data: Buffer, results: Int32Array): the same bytes to the first
 * `count` sockets of `fds`, results[i] = bytes written or -errno. One call for a whole fan-out
 * keeps the JavaScript cost per recipient to filling in one array slot.
 */
static napi_value herald_send_many(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_typedarray_type fd_type, out_type;
  size_t fd_len = 0, out_len = 0, length = 0;
  void *fd_data = NULL, *out_data = NULL, *data = NULL;
  uint32_t count = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 ||
      napi_get_typedarray_info(env, argv[0], &fd_type, &fd_len, &fd_data, NULL, NULL) != napi_ok ||
      napi_get_value_uint32(env, argv[1], &count) != napi_ok ||
      napi_get_buffer_info(env, argv[2], &data, &length) != napi_ok ||
      napi_get_typedarray_info(env, argv[3], &out_type, &out_len, &out_data, NULL, NULL) != napi_ok ||
      fd_type != napi_int32_array || out_type != napi_int32_array || count > fd_len || count > out_len) {
    napi_throw_type_error(env, NULL, "sendMany(fds: Int32Array, count, data: Buffer, results: Int32Array)");
    return NULL;
  }
  const int32_t *fds = (const int32_t *)fd_data;
  int32_t *results = (int32_t *)out_data;
  for (uint32_t i = 0; i < count; i++) {
    if (fds[i] < 0) {
      results[i] = -EBADF;
      continue;
    }
    ssize_t n = send(fds[i], data, length, MSG_NOSIGNAL | MSG_DONTWAIT);
    results[i] = n < 0 ? -errno : (int32_t)n;
  }
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "send", NAPI_AUTO_LENGTH, herald_send, NULL, &fn);
  napi_set_named_property(env, exports, "send", fn);
  napi_create_function(env, "sendMany", NAPI_AUTO_LENGTH, herald_send_many, NULL, &fn);
  napi_set_named_property(env, exports, "sendMany", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
