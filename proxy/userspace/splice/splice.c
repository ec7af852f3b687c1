// Zero-copy byte relay for the userspace proxy: splice(2) between two TCP
// sockets through a pipe, as Go's io.Copy does between TCPConns (which is how
// upstream's userspace proxy moved its bytes). Node cannot call splice, and a
// copying relay costs two extra copies and a user-space round trip per chunk.
//
// One worker thread runs an epoll loop over every relayed pair; JS hands a
// pair over with start(fdA, fdB, done) (the fds are dup'ed, so the sockets
// stay open while JS still holds them, paused) and learns the end through
// done(errno, bytesAtoB, bytesBtoA) on its own thread. Each direction passes
// half-close on: EOF on one side is shutdown(SHUT_WR) on the other. An error
// on either side ends both directions. abort(id) ends a pair at once.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define PIPE_BYTES (1 << 20)
// Rounds of one direction per wakeup before other pairs get their turn.
#define BUDGET 16

typedef struct {
  int from, to;
  int p[2];
  size_t buffered;
  int eof, done, want_out;
  uint64_t bytes;
} dir_t;

typedef struct pair {
  uint32_t id;
  int fd[2];
  dir_t d[2];
  uint32_t ev[2];
  int reg[2];
  int dead;
  napi_threadsafe_function tsfn;
  struct pair *next;
} pair_t;

typedef struct {
  int err;
  double bytes[2];
} result_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t worker;
static int started, epfd = -1, wakefd = -1;
static uint32_t next_id = 1;
// Commands from JS to the worker: pairs to add, ids to abort.
static pair_t *adds;
static uint32_t *aborts;
static size_t naborts, abort_cap;
// Owned by the worker only: relays running, and ended ones freed after the current batch of events.
static pair_t *live, *dead;

static void close_dir(dir_t *d) {
  if (d->p[0] >= 0) close(d->p[0]);
  if (d->p[1] >= 0) close(d->p[1]);
  d->p[0] = d->p[1] = -1;
}

// Moves what it can; returns 0 or -errno. Leaves want_out set when the
// destination is full, clear when it waits for the source.
static int pump(dir_t *d) {
  d->want_out = 0;
  for (int round = 0; round < BUDGET && !d->done; round++) {
    while (d->buffered > 0) {
      ssize_t n = splice(d->p[0], NULL, d->to, NULL, d->buffered, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        d->buffered -= (size_t)n;
        d->bytes += (uint64_t)n;
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && errno == EAGAIN) {
        d->want_out = 1;
        return 0;
      } else {
        return n < 0 ? -errno : -EPIPE;
      }
    }
    if (d->eof) {
      shutdown(d->to, SHUT_WR);
      d->done = 1;
      return 0;
    }
    // The pipe is empty here, so EAGAIN means the source has nothing now.
    ssize_t n = splice(d->from, NULL, d->p[1], NULL, PIPE_BYTES, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) d->buffered = (size_t)n;
    else if (n == 0) d->eof = 1;
    else if (errno == EAGAIN) return 0;
    else if (errno != EINTR) return -errno;
  }
  // Out of budget with the source still readable: level-triggered epoll calls again.
  if (d->buffered > 0) d->want_out = 1;
  return 0;
}

static uint32_t interest(pair_t *p, int i) {
  // fd[i] is d[i]'s source and d[1-i]'s destination.
  uint32_t ev = 0;
  if (!p->d[i].done && !p->d[i].want_out) ev |= EPOLLIN;
  if (!p->d[1 - i].done && p->d[1 - i].want_out) ev |= EPOLLOUT;
  return ev;
}

static void finish(pair_t *p, int err) {
  for (int i = 0; i < 2; i++) {
    if (p->reg[i]) epoll_ctl(epfd, EPOLL_CTL_DEL, p->fd[i], NULL);
    if (err) shutdown(p->fd[i], SHUT_RDWR);
    close(p->fd[i]);
    close_dir(&p->d[i]);
  }
  result_t *r = malloc(sizeof *r);
  if (r) {
    r->err = err;
    r->bytes[0] = (double)p->d[0].bytes;
    r->bytes[1] = (double)p->d[1].bytes;
    if (napi_call_threadsafe_function(p->tsfn, r, napi_tsfn_blocking) != napi_ok) free(r);
  }
  napi_release_threadsafe_function(p->tsfn, napi_tsfn_release);
  // Not freed yet: the same batch of epoll events may still name it.
  p->dead = 1;
  p->next = dead;
  dead = p;
}

static void unlink_live(pair_t *p) {
  for (pair_t **pp = &live; *pp; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      return;
    }
}

static int socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  return getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 ? err : errno;
}

static void watch(pair_t *p, int i, uint32_t ev) {
  if (p->reg[i] && ev == p->ev[i]) return;
  struct epoll_event e = {.events = ev, .data.u64 = (uint64_t)(uintptr_t)p | (uint64_t)i};
  if (epoll_ctl(epfd, p->reg[i] ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, p->fd[i], &e) == 0) {
    p->reg[i] = 1;
    p->ev[i] = ev;
  }
}

// Pumps both directions and sets the epoll interest; ends the pair when both
// are done or on error. `i` is the fd the event was for (-1: none), `events`
// what epoll said of it. epoll reports ERR and HUP whatever the interest: an
// error (a reset) ends the pair even on a side nothing waits on, and a hung-up
// side nothing waits on is taken out of the set, so it cannot wake the loop
// while the other direction drains.
static void service(pair_t *p, int i, uint32_t events) {
  int err = 0;
  if (i >= 0 && (events & EPOLLERR)) err = socket_error(p->fd[i]);
  for (int k = 0; k < 2 && !err; k++) err = -pump(&p->d[k]);
  if (err || (p->d[0].done && p->d[1].done)) {
    unlink_live(p);
    finish(p, err);
    return;
  }
  for (int k = 0; k < 2; k++) {
    uint32_t ev = interest(p, k);
    if (ev == 0 && k == i && (events & (EPOLLHUP | EPOLLERR))) {
      if (p->reg[k]) epoll_ctl(epfd, EPOLL_CTL_DEL, p->fd[k], NULL);
      p->reg[k] = 0;
    } else {
      watch(p, k, ev);
    }
  }
}

static void take_commands(void) {
  pthread_mutex_lock(&mu);
  pair_t *a = adds;
  adds = NULL;
  uint32_t *ab = NULL;
  size_t nab = naborts;
  if (nab) {
    ab = malloc(nab * sizeof *ab);
    if (ab) memcpy(ab, aborts, nab * sizeof *ab);
  }
  naborts = 0;
  pthread_mutex_unlock(&mu);
  while (a) {
    pair_t *p = a;
    a = a->next;
    int err = 0;
    for (int i = 0; i < 2 && !err; i++) {
      watch(p, i, 0);
      if (!p->reg[i]) err = errno;
    }
    if (err) {
      finish(p, err);
      continue;
    }
    p->next = live;
    live = p;
    service(p, -1, 0);
  }
  for (size_t k = 0; ab && k < nab; k++)
    for (pair_t *p = live; p; p = p->next)
      if (p->id == ab[k]) {
        unlink_live(p);
        finish(p, ECANCELED);
        break;
      }
  free(ab);
}

static void *run(void *arg) {
  (void)arg;
  struct epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(epfd, evs, 64, -1);
    for (int i = 0; i < n; i++) {
      if (evs[i].data.u64 == 0) {
        uint64_t v;
        if (read(wakefd, &v, sizeof v) < 0) { /* nothing to read: another wakeup took it */ }
        continue;
      }
      pair_t *p = (pair_t *)(uintptr_t)(evs[i].data.u64 & ~(uint64_t)1);
      if (!p->dead) service(p, (int)(evs[i].data.u64 & 1), evs[i].events);
    }
    take_commands();
    while (dead) {
      pair_t *p = dead;
      dead = p->next;
      free(p);
    }
  }
  return NULL;
}

static void call_js(napi_env env, napi_value cb, void *context, void *data) {
  (void)context;
  result_t *r = data;
  if (env && cb) {
    napi_value args[3], undef;
    napi_create_int32(env, r->err, &args[0]);
    napi_create_double(env, r->bytes[0], &args[1]);
    napi_create_double(env, r->bytes[1], &args[2]);
    napi_get_undefined(env, &undef);
    napi_call_function(env, undef, cb, 3, args, NULL);
  }
  free(r);
}

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, "PROXY_SPLICE_FAILED", msg);
  return NULL;
}

static int ensure_worker(void) {
  if (started) return 0;
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return errno;
  wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakefd < 0) return errno;
  struct epoll_event e = {.events = EPOLLIN, .data.u64 = 0};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &e) < 0) return errno;
  int rc = pthread_create(&worker, NULL, run, NULL);
  if (rc) return rc;
  pthread_detach(worker);
  started = 1;
  return 0;
}

static void wake(void) {
  uint64_t one = 1;
  if (write(wakefd, &one, sizeof one) < 0) { /* counter full: the worker is awake anyway */ }
}

// start(fdA, fdB, done) -> id
static napi_value start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fa, fb;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fa) != napi_ok || napi_get_value_int32(env, argv[1], &fb) != napi_ok) {
    napi_throw_type_error(env, "PROXY_SPLICE_ARGS", "start(fdA, fdB, done)");
    return NULL;
  }
  pthread_mutex_lock(&mu);
  int rc = ensure_worker();
  pthread_mutex_unlock(&mu);
  if (rc) return throw_errno(env, "splice worker", rc);
  pair_t *p = calloc(1, sizeof *p);
  if (!p) return throw_errno(env, "splice pair", ENOMEM);
  p->fd[0] = p->fd[1] = -1;
  for (int i = 0; i < 2; i++) p->d[i].p[0] = p->d[i].p[1] = -1;
  int err = 0;
  p->fd[0] = fcntl(fa, F_DUPFD_CLOEXEC, 0);
  if (p->fd[0] < 0) err = errno;
  if (!err && (p->fd[1] = fcntl(fb, F_DUPFD_CLOEXEC, 0)) < 0) err = errno;
  for (int i = 0; i < 2 && !err; i++) {
    if (pipe2(p->d[i].p, O_NONBLOCK | O_CLOEXEC) < 0) {
      err = errno;
      break;
    }
    fcntl(p->d[i].p[1], F_SETPIPE_SZ, PIPE_BYTES);  // best effort: a smaller pipe only means more rounds
    p->d[i].from = p->fd[i];
    p->d[i].to = p->fd[1 - i];
  }
  napi_value name;
  napi_create_string_utf8(env, "splice-done", NAPI_AUTO_LENGTH, &name);
  if (!err && napi_create_threadsafe_function(env, argv[2], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &p->tsfn) != napi_ok) err = EINVAL;
  if (err) {
    for (int i = 0; i < 2; i++) {
      if (p->fd[i] >= 0) close(p->fd[i]);
      close_dir(&p->d[i]);
    }
    free(p);
    return throw_errno(env, "splice start", err);
  }
  pthread_mutex_lock(&mu);
  p->id = next_id++;
  p->next = adds;
  adds = p;
  pthread_mutex_unlock(&mu);
  wake();
  napi_value id;
  napi_create_uint32(env, p->id, &id);
  return id;
}

// abort(id): ends the pair (done gets ECANCELED); unknown or ended ids are ignored.
static napi_value abort_pair(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint32_t id;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_uint32(env, argv[0], &id) != napi_ok) {
    napi_throw_type_error(env, "PROXY_SPLICE_ARGS", "abort(id)");
    return NULL;
  }
  pthread_mutex_lock(&mu);
  if (naborts == abort_cap) {
    size_t cap = abort_cap ? abort_cap * 2 : 16;
    uint32_t *grown = realloc(aborts, cap * sizeof *grown);
    if (grown) {
      aborts = grown;
      abort_cap = cap;
    }
  }
  if (naborts < abort_cap) aborts[naborts++] = id;
  int running = started;
  pthread_mutex_unlock(&mu);
  if (running) wake();
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"start", NULL, start, NULL, NULL, NULL, napi_default, NULL},
      {"abort", NULL, abort_pair, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, 2, props);
  return exports;
}
