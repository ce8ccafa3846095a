/*
 * LD_PRELOAD shim for tests: XRootD has no setting for its listening address and always binds
 * the wildcard address. This turns a bind() to INADDR_ANY / in6addr_any into a bind to the
 * loopback address of the same family, so the test server is reachable from this machine only.
 * Built by tools/services/xrootd.sh with the system compiler.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn next_bind;
    if (next_bind == NULL) next_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    if (addr != NULL && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in v4;
        memcpy(&v4, addr, sizeof v4);
        if (v4.sin_addr.s_addr == htonl(INADDR_ANY)) {
            v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            return next_bind(fd, (const struct sockaddr *)&v4, sizeof v4);
        }
    }
    if (addr != NULL && addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 v6;
        memcpy(&v6, addr, sizeof v6);
        if (memcmp(&v6.sin6_addr, &in6addr_any, sizeof in6addr_any) == 0) {
            v6.sin6_addr = in6addr_loopback;
            return next_bind(fd, (const struct sockaddr *)&v6, sizeof v6);
        }
    }
    return next_bind(fd, addr, len);
}
