/*
 * The load generator's native receive path (bench only; Herald never loads it).
 *
 * Once a connection is upgraded and subscribed in JavaScript, its descriptor is handed over here:
 * one thread reads every handed-over socket with recvmsg(2) and SO_TIMESTAMPNS, parses the
 * server's WebSocket frames and, for each delivery, records the connection, the publisher's seq
 * and two latencies measured against the publisher's `sentAt` (CLOCK_REALTIME milliseconds):
 *
 *   wire:    the kernel's receive timestamp of the packet. On loopback it is taken as the server's
 *            send(2) hands the packet to the stack, so it measures the server alone, whatever the
 *            load generator is doing.
 *   arrival: the time this thread has read the frame (what a lean client would see).
 *
 * JavaScript drains the records (`drain`) and does the accounting it does for its own receive
 * path. Heartbeats are answered here (WebSocket ping, Herald's {"type":"ping"}, Engine.IO "2"), so
 * a long run is not dropped for a missed pong. Frames that are not deliveries are counted (and
 * error frames apart); a close frame or EOF is queued for JavaScript with its code.
 *
 * Not handled, by design: acknowledgements (the `reliable` scenario uses the JavaScript client),
 * fragmented messages (counted as `other`).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DIALECT_HERALD 0
#define DIALECT_SOCKETIO 1
#define RECORDS (1u << 20)
#define CLOSES 65536u
#define READ_BUF (256 * 1024)

typedef struct {
  int fd;
  int id;
  int dialect;
  uint8_t *pending;
  size_t pending_len;
} conn_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t thread;
static int running = 0;
static int epfd = -1;
static int stop_pipe[2] = {-1, -1};
static conn_t **by_fd = NULL;
static size_t by_fd_cap = 0;

/* Ring of delivery records, written by the thread, drained by JavaScript; guarded by `lock`. */
static int32_t rec_id[RECORDS];
static double rec_seq[RECORDS], rec_wire[RECORDS], rec_arrival[RECORDS];
static uint32_t rec_head = 0, rec_count = 0;
static int32_t close_id[CLOSES], close_code[CLOSES];
static uint32_t close_count = 0;
/* Counters: pings answered, error frames, other frames, records dropped (ring full), reads, bytes. */
static double counters[6];

static double realtime_ms(const struct timespec *ts) { return ts->tv_sec * 1e3 + ts->tv_nsec / 1e6; }

/* Reads a non-negative JSON number at p (digits, optional fraction); NaN if none. */
static double read_number(const uint8_t *p, const uint8_t *end) {
  double whole = 0;
  int digits = 0;
  while (p < end && *p >= '0' && *p <= '9') whole = whole * 10 + (*p++ - '0'), digits++;
  if (!digits) return __builtin_nan("");
  if (p < end && *p == '.') {
    double scale = 0.1;
    p++;
    while (p < end && *p >= '0' && *p <= '9') whole += (*p++ - '0') * scale, scale /= 10;
  }
  return whole;
}

static const uint8_t *find(const uint8_t *hay, size_t n, const char *needle) {
  return memmem(hay, n, needle, strlen(needle));
}

/* A masked client frame (RFC 6455 requires clients to mask); payloads here are tiny. */
static void send_frame(int fd, int opcode, const uint8_t *payload, size_t len) {
  uint8_t out[2 + 4 + 125];
  if (len > 125) len = 125;
  uint32_t key = (uint32_t)random();
  out[0] = 0x80 | opcode;
  out[1] = 0x80 | (uint8_t)len;
  memcpy(out + 2, &key, 4);
  for (size_t i = 0; i < len; i++) out[6 + i] = payload[i] ^ ((uint8_t *)&key)[i & 3];
  send(fd, out, 6 + len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void queue_close(conn_t *c, int code) {
  if (close_count < CLOSES) close_id[close_count] = c->id, close_code[close_count++] = code;
}

static void on_message(conn_t *c, const uint8_t *p, size_t n, double wire_ms, double arrival_ms) {
  const uint8_t *seq_at = find(p, n, "\"seq\":");
  if (!seq_at) {
    if (c->dialect == DIALECT_HERALD && n < 64 && find(p, n, "\"ping\"")) {
      static const char pong[] = "{\"type\":\"pong\"}";
      send_frame(c->fd, 0x1, (const uint8_t *)pong, sizeof pong - 1);
      counters[0]++;
    } else if (c->dialect == DIALECT_SOCKETIO && n == 1 && p[0] == '2') {
      send_frame(c->fd, 0x1, (const uint8_t *)"3", 1);
      counters[0]++;
    } else if (find(p, n, "\"type\":\"error\"")) {
      counters[1]++;
    } else {
      counters[2]++;
    }
    return;
  }
  const uint8_t *end = p + n;
  double seq = read_number(seq_at + 6, end);
  const uint8_t *sent_at = find(p, n, "\"sentAt\":");
  double sent = sent_at ? read_number(sent_at + 9, end) : __builtin_nan("");
  if (rec_count == RECORDS) {
    counters[3]++;
    return;
  }
  uint32_t at = (rec_head + rec_count++) & (RECORDS - 1);
  rec_id[at] = c->id;
  rec_seq[at] = seq;
  rec_wire[at] = wire_ms - sent;
  rec_arrival[at] = arrival_ms - sent;
}

/* Parses every complete frame in buf[0..len); returns the bytes consumed, or -1 to drop the connection. */
static ssize_t parse(conn_t *c, const uint8_t *buf, size_t len, double wire_ms, double arrival_ms) {
  size_t off = 0;
  while (len - off >= 2) {
    uint8_t b0 = buf[off], b1 = buf[off + 1];
    uint64_t plen = b1 & 0x7f;
    size_t header = 2;
    if (b1 & 0x80) return -1; /* servers never mask */
    if (plen == 126) {
      if (len - off < 4) break;
      plen = ((uint64_t)buf[off + 2] << 8) | buf[off + 3];
      header = 4;
    } else if (plen == 127) {
      if (len - off < 10) break;
      plen = 0;
      for (int i = 0; i < 8; i++) plen = (plen << 8) | buf[off + 2 + i];
      header = 10;
    }
    if (plen > (64u << 20)) return -1;
    if (len - off < header + plen) break;
    const uint8_t *payload = buf + off + header;
    off += header + plen;
    int opcode = b0 & 0x0f, fin = (b0 & 0x80) != 0;
    if ((opcode == 0x1 || opcode == 0x2) && fin) on_message(c, payload, plen, wire_ms, arrival_ms);
    else if (opcode == 0x9) send_frame(c->fd, 0xA, payload, plen), counters[0]++;
    else if (opcode == 0x8) {
      queue_close(c, plen >= 2 ? (payload[0] << 8) | payload[1] : 1005);
      return -2;
    } else if (opcode != 0xA) counters[2]++;
  }
  return (ssize_t)off;
}

static void forget(conn_t *c) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
  if ((size_t)c->fd < by_fd_cap && by_fd[c->fd] == c) by_fd[c->fd] = NULL;
  free(c->pending);
  free(c);
}

/* Reads what `c` has; caller holds `lock`. */
static void read_conn(conn_t *c, uint8_t *buf) {
  for (;;) {
    char control[256];
    struct iovec iov;
    size_t keep = c->pending_len;
    if (keep > READ_BUF / 2) { /* a frame this large is not a benchmark delivery */
      queue_close(c, 1009);
      forget(c);
      return;
    }
    if (keep) memcpy(buf, c->pending, keep);
    iov.iov_base = buf + keep;
    iov.iov_len = READ_BUF - keep;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    ssize_t n = recvmsg(c->fd, &msg, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
      queue_close(c, 1006);
      forget(c);
      return;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double arrival = realtime_ms(&now), wire = arrival;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
      if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_TIMESTAMPNS) {
        struct timespec ts;
        memcpy(&ts, CMSG_DATA(cm), sizeof ts);
        wire = realtime_ms(&ts);
      }
    }
    counters[4]++;
    counters[5] += n;
    size_t total = keep + (size_t)n;
    ssize_t used = parse(c, buf, total, wire, arrival);
    if (used < 0) {
      if (used == -1) queue_close(c, 1002);
      forget(c);
      return;
    }
    size_t rest = total - (size_t)used;
    if (rest) {
      uint8_t *p = realloc(c->pending, rest);
      if (!p) {
        queue_close(c, 1009);
        forget(c);
        return;
      }
      memcpy(p, buf + used, rest);
      c->pending = p;
    }
    c->pending_len = rest;
    if ((size_t)n < iov.iov_len) return; /* drained for now */
  }
}

static void *loop(void *arg) {
  (void)arg;
  uint8_t *buf = malloc(READ_BUF);
  struct epoll_event events[256];
  for (;;) {
    int n = epoll_wait(epfd, events, 256, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    int stop = 0;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == stop_pipe[0]) {
        stop = 1;
        continue;
      }
      conn_t *c = (size_t)fd < by_fd_cap ? by_fd[fd] : NULL;
      if (c) read_conn(c, buf);
    }
    pthread_mutex_unlock(&lock);
    if (stop) break;
  }
  free(buf);
  return NULL;
}

/* ---- JavaScript API ------------------------------------------------------------------------ */

static napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

static int start_thread(void) {
  if (running) return 0;
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0 || pipe(stop_pipe) != 0) return -errno;
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = stop_pipe[0]};
  epoll_ctl(epfd, EPOLL_CTL_ADD, stop_pipe[0], &ev);
  if (pthread_create(&thread, NULL, loop, NULL) != 0) return -EAGAIN;
  running = 1;
  return 0;
}

/* add(fd, id, dialect, leftover: Buffer) → 0 or -errno. The socket must no longer be read by libuv. */
static napi_value add(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], result;
  int32_t fd, id, dialect;
  void *data = NULL;
  size_t length = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_int32(env, argv[1], &id) != napi_ok || napi_get_value_int32(env, argv[2], &dialect) != napi_ok ||
      napi_get_buffer_info(env, argv[3], &data, &length) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "add(fd, id, dialect, leftover: Buffer)");
    return NULL;
  }
  int err = start_thread();
  if (err == 0) {
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) != 0) err = -errno;
  }
  if (err == 0) {
    conn_t *c = calloc(1, sizeof *c);
    c->fd = fd;
    c->id = id;
    c->dialect = dialect;
    pthread_mutex_lock(&lock);
    if ((size_t)fd >= by_fd_cap) {
      size_t cap = by_fd_cap ? by_fd_cap : 1024;
      while (cap <= (size_t)fd) cap *= 2;
      by_fd = realloc(by_fd, cap * sizeof *by_fd);
      memset(by_fd + by_fd_cap, 0, (cap - by_fd_cap) * sizeof *by_fd);
      by_fd_cap = cap;
    }
    if (by_fd[fd]) forget(by_fd[fd]);
    by_fd[fd] = c;
    /* Bytes JavaScript read past the last frame it handled are parsed first, stamped now. */
    if (length > 0) {
      struct timespec now;
      clock_gettime(CLOCK_REALTIME, &now);
      ssize_t used = parse(c, data, length, realtime_ms(&now), realtime_ms(&now));
      if (used >= 0 && (size_t)used < length) {
        c->pending = malloc(length - used);
        memcpy(c->pending, (uint8_t *)data + used, length - used);
        c->pending_len = length - used;
      }
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) err = -errno, by_fd[fd] = NULL, free(c->pending), free(c);
    pthread_mutex_unlock(&lock);
  }
  napi_create_int32(env, err, &result);
  return result;
}

/* remove(fd): stop reading fd (before JavaScript closes it, so a reused number is never read). */
static napi_value remove_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) return undefined(env);
  pthread_mutex_lock(&lock);
  if (fd >= 0 && (size_t)fd < by_fd_cap && by_fd[fd]) forget(by_fd[fd]);
  pthread_mutex_unlock(&lock);
  return undefined(env);
}

static void *typed(napi_env env, napi_value v, napi_typedarray_type want, size_t *len) {
  napi_typedarray_type type;
  void *data = NULL;
  if (napi_get_typedarray_info(env, v, &type, len, &data, NULL, NULL) != napi_ok || type != want) return NULL;
  return data;
}

/* drain(ids: Int32Array, seqs, wire, arrival: Float64Array) → records copied (oldest first). */
static napi_value drain(napi_env env, napi_callback_info info) {
  size_t argc = 4, n0, n1, n2, n3;
  napi_value argv[4], result;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t *ids = argc >= 4 ? typed(env, argv[0], napi_int32_array, &n0) : NULL;
  double *seqs = argc >= 4 ? typed(env, argv[1], napi_float64_array, &n1) : NULL;
  double *wire = argc >= 4 ? typed(env, argv[2], napi_float64_array, &n2) : NULL;
  double *arrival = argc >= 4 ? typed(env, argv[3], napi_float64_array, &n3) : NULL;
  if (!ids || !seqs || !wire || !arrival) {
    napi_throw_type_error(env, NULL, "drain(ids: Int32Array, seqs: Float64Array, wire: Float64Array, arrival: Float64Array)");
    return NULL;
  }
  size_t room = n0;
  if (n1 < room) room = n1;
  if (n2 < room) room = n2;
  if (n3 < room) room = n3;
  pthread_mutex_lock(&lock);
  uint32_t take = rec_count < room ? rec_count : (uint32_t)room;
  for (uint32_t i = 0; i < take; i++) {
    uint32_t at = (rec_head + i) & (RECORDS - 1);
    ids[i] = rec_id[at], seqs[i] = rec_seq[at], wire[i] = rec_wire[at], arrival[i] = rec_arrival[at];
  }
  rec_head = (rec_head + take) & (RECORDS - 1);
  rec_count -= take;
  pthread_mutex_unlock(&lock);
  napi_create_uint32(env, take, &result);
  return result;
}

/* closes(ids: Int32Array, codes: Int32Array) → closes copied (connection id, close code; 1006 = EOF). */
static napi_value closes(napi_env env, napi_callback_info info) {
  size_t argc = 2, n0, n1;
  napi_value argv[2], result;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t *ids = argc >= 2 ? typed(env, argv[0], napi_int32_array, &n0) : NULL;
  int32_t *codes = argc >= 2 ? typed(env, argv[1], napi_int32_array, &n1) : NULL;
  if (!ids || !codes) {
    napi_throw_type_error(env, NULL, "closes(ids: Int32Array, codes: Int32Array)");
    return NULL;
  }
  size_t room = n0 < n1 ? n0 : n1;
  pthread_mutex_lock(&lock);
  uint32_t take = close_count < room ? close_count : (uint32_t)room;
  memcpy(ids, close_id, take * sizeof *ids);
  memcpy(codes, close_code, take * sizeof *codes);
  memmove(close_id, close_id + take, (close_count - take) * sizeof *close_id);
  memmove(close_code, close_code + take, (close_count - take) * sizeof *close_code);
  close_count -= take;
  pthread_mutex_unlock(&lock);
  napi_create_uint32(env, take, &result);
  return result;
}

/* counters(out: Float64Array(6)): pings answered, error frames, other frames, records dropped, reads, bytes. */
static napi_value get_counters(napi_env env, napi_callback_info info) {
  size_t argc = 1, n = 0;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  double *out = argc >= 1 ? typed(env, argv[0], napi_float64_array, &n) : NULL;
  if (!out || n < 6) {
    napi_throw_type_error(env, NULL, "counters(out: Float64Array(6))");
    return NULL;
  }
  pthread_mutex_lock(&lock);
  memcpy(out, counters, sizeof counters);
  pthread_mutex_unlock(&lock);
  return undefined(env);
}

/* stop(): ends the thread and forgets every connection (their descriptors stay open: JavaScript owns them). */
static napi_value stop(napi_env env, napi_callback_info info) {
  (void)info;
  if (!running) return undefined(env);
  ssize_t w = write(stop_pipe[1], "x", 1);
  (void)w;
  pthread_join(thread, NULL);
  running = 0;
  for (size_t fd = 0; fd < by_fd_cap; fd++)
    if (by_fd[fd]) forget(by_fd[fd]);
  close(epfd), close(stop_pipe[0]), close(stop_pipe[1]);
  epfd = stop_pipe[0] = stop_pipe[1] = -1;
  return undefined(env);
}

static napi_value init(napi_env env, napi_value exports) {
  static const struct { const char *name; napi_callback fn; } api[] = {
      {"add", add}, {"remove", remove_fd}, {"drain", drain}, {"closes", closes}, {"counters", get_counters}, {"stop", stop},
  };
  for (size_t i = 0; i < sizeof api / sizeof api[0]; i++) {
    napi_value fn;
    napi_create_function(env, api[i].name, NAPI_AUTO_LENGTH, api[i].fn, NULL, &fn);
    napi_set_named_property(env, exports, api[i].name, fn);
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
