/*
 * send(fd, buffer) for Herald's fan-out: one non-blocking send(2) on a connected socket, the
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

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "send", NAPI_AUTO_LENGTH, herald_send, NULL, &fn);
  napi_set_named_property(env, exports, "send", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
