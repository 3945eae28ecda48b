/* The in-sandbox launcher in C: the same job as _launcher.py, without a Python start-up.
 *
 *   astrid-launcher [--read=P]... [--write=P]... [--rlimit=NAME=VALUE]... [--no-network]
 *       [--landlock-optional] [--seccomp-bpf=HEX] [--bridge=PORT=SOCKET] -- CMD ARGS...
 *
 * Inside bubblewrap: starts the proxy bridge (if asked), restricts itself with Landlock (every
 * path is listed by the host: nothing is discovered here), sets rlimits, installs the seccomp
 * program the host built (astrid_workspace._seccomp.build_program, hex of struct sock_filter
 * records), then execs CMD. Any failure exits 126 and runs nothing; CMD not found: 127.
 * Built by the host with the system `cc` on first use into $ASTRID_HOME/cache, keyed by the
 * hash of this file, and verified before each use (_native.py).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PATHS 512
#define EXIT_FAILURE_SANDBOX 126
#define EXIT_NOT_FOUND 127

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

struct ruleset_attr { uint64_t fs, net, scoped; };
struct path_beneath { uint64_t allowed; int32_t fd; } __attribute__((packed));

static void say(const char *what, const char *detail) {
    fprintf(stderr, "astrid-sandbox: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
}

static uint64_t handled_fs(long abi) {
    uint64_t rights = (1ULL << 13) - 1;
    if (abi >= 2) rights |= 1ULL << 13;  /* REFER */
    if (abi >= 3) rights |= 1ULL << 14;  /* TRUNCATE */
    if (abi >= 5) rights |= 1ULL << 15;  /* IOCTL_DEV */
    return rights;
}

static int add_rule(int ruleset, const char *path, uint64_t rights) {
    const uint64_t file_rights = 1 | 2 | 4 | (1ULL << 14) | (1ULL << 15);
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 0 : -1;  /* a listed path may not exist here */
    struct stat st;
    if (fstat(fd, &st) != 0) { close(fd); return -1; }
    if (!S_ISDIR(st.st_mode)) rights &= file_rights;
    struct path_beneath attr = { rights, fd };
    long rc = syscall(SYS_landlock_add_rule, ruleset, 1 /* PATH_BENEATH */, &attr, 0);
    close(fd);
    return rc < 0 ? -1 : 0;
}

static int landlock(char **reads, int nreads, char **writes, int nwrites, int deny_tcp,
                    int optional) {
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, 1 /* VERSION */);
    if (abi <= 0) {
        if (optional && !deny_tcp) return 0;  /* bubblewrap confines; status reports it */
        say("refusing to run: the kernel has no Landlock", NULL);
        return -1;
    }
    if (deny_tcp && abi < 4) {
        say("refusing to run: Landlock cannot deny the network on this kernel", NULL);
        return -1;
    }
    uint64_t fs = handled_fs(abi);
    struct ruleset_attr attr = { fs, deny_tcp ? 3 : 0, abi >= 6 ? 3 : 0 };
    size_t size = abi >= 6 ? 24 : abi >= 4 ? 16 : 8;
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (ruleset < 0) { say("landlock_create_ruleset failed", strerror(errno)); return -1; }
    for (int i = 0; i < nreads; i++)
        if (add_rule(ruleset, reads[i], 1 | 4 | 8) != 0) {
            say("cannot grant", reads[i]); return -1;
        }
    for (int i = 0; i < nwrites; i++)
        if (add_rule(ruleset, writes[i], fs) != 0) { say("cannot grant", writes[i]); return -1; }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) { say("no_new_privs", strerror(errno)); return -1; }
    if (syscall(SYS_landlock_restrict_self, ruleset, 0) != 0) {
        say("landlock_restrict_self failed", strerror(errno)); return -1;
    }
    close(ruleset);
    return 0;
}

static int set_rlimit(const char *spec) {
    static const struct { const char *name; int resource; } names[] = {
        {"nproc", RLIMIT_NPROC}, {"data", RLIMIT_DATA}, {"fsize", RLIMIT_FSIZE},
        {"cpu", RLIMIT_CPU}, {"nofile", RLIMIT_NOFILE},
    };
    const char *eq = strchr(spec, '=');
    if (!eq) return -1;
    char *end;
    errno = 0;
    unsigned long long value = strtoull(eq + 1, &end, 10);
    if (errno || *end || end == eq + 1) return -1;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strlen(names[i].name) == (size_t)(eq - spec) && !strncmp(spec, names[i].name, eq - spec)) {
            struct rlimit lim = { value, value };
            return setrlimit(names[i].resource, &lim);
        }
    return -1;
}

static int seccomp_install(const char *hex) {
    size_t len = strlen(hex);
    if (len == 0 || len % 16) return -1;
    size_t count = len / 16;
    struct sock_filter *prog = calloc(count, sizeof *prog);
    if (!prog) return -1;
    for (size_t i = 0; i < count; i++) {
        unsigned int code, jt, jf, k;
        if (sscanf(hex + 16 * i, "%4x%2x%2x%8x", &code, &jt, &jf, &k) != 4) return -1;
        prog[i] = (struct sock_filter){ (uint16_t)code, (uint8_t)jt, (uint8_t)jf, k };
    }
    struct sock_fprog fprog = { (unsigned short)count, prog };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0);
}

/* ---------------------------------------------------------------- the bridge */

/* No relay here: the accepted socket itself goes to the proxy with one byte 0x00
 * (SCM_RIGHTS); the proxy serves and relays it, so each byte crosses one relay, not two. */
static void hand_over(int client, const char *path) {
    int up = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
    if (up >= 0 && connect(up, (struct sockaddr *)&addr, sizeof addr) == 0) {
        char byte = 0;
        struct iovec iov = { &byte, 1 };
        union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
        memset(&control, 0, sizeof control);
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                              .msg_control = control.buf, .msg_controllen = sizeof control.buf };
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cmsg), &client, sizeof(int));
        sendmsg(up, &msg, MSG_NOSIGNAL);
    }
    if (up >= 0) close(up);
}

static int start_bridge(const char *spec) {
    char *end;
    long port = strtol(spec, &end, 10);
    if (*end != '=' || port <= 0 || port > 65535 || !end[1]) return -1;
    const char *path = end + 1;
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(listener, 64) != 0)
        return -1;
    pid_t child = fork();
    if (child < 0) return -1;
    if (child > 0) { waitpid(child, NULL, 0); close(listener); return 0; }
    if (fork() != 0) _exit(0);  /* detached: ends with the sandbox's pid namespace */
    int null = open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3; fd++) dup2(null, fd);  /* never hold the command's pipes */
    for (;;) {
        int client = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (client < 0) { if (errno == EINTR) continue; _exit(0); }
        hand_over(client, path);
        close(client);
    }
}

/* ---------------------------------------------------------------- main */

static int has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

int main(int argc, char **argv) {
    static char *reads[MAX_PATHS], *writes[MAX_PATHS];
    int nreads = 0, nwrites = 0, no_network = 0, optional = 0, i;
    const char *bpf = NULL, *bridge = NULL;
    if (argc == 2 && !strcmp(argv[1], "--version")) { puts("astrid-launcher 2"); return 0; }
    for (i = 1; i < argc && strcmp(argv[i], "--"); i++) {
        char *a = argv[i];
        if (has_prefix(a, "--read=") && nreads < MAX_PATHS) reads[nreads++] = a + 7;
        else if (has_prefix(a, "--write=") && nwrites < MAX_PATHS) writes[nwrites++] = a + 8;
        else if (has_prefix(a, "--rlimit=")) {
            if (set_rlimit(a + 9) != 0) { say("cannot set the limit", a + 9); return EXIT_FAILURE_SANDBOX; }
        } else if (!strcmp(a, "--no-network")) no_network = 1;
        else if (!strcmp(a, "--landlock-optional")) optional = 1;
        else if (has_prefix(a, "--seccomp-bpf=")) bpf = a + 14;
        else if (has_prefix(a, "--bridge=")) bridge = a + 9;
        else { say("unknown or malformed option", a); return 2; }
    }
    if (i >= argc - 1) { say("usage: astrid-launcher [options] -- COMMAND ...", NULL); return 2; }
    char **command = argv + i + 1;
    if (bridge && start_bridge(bridge) != 0) {
        say("cannot start the bridge to the proxy", strerror(errno));
        return EXIT_FAILURE_SANDBOX;
    }
    if (landlock(reads, nreads, writes, nwrites, no_network, optional) != 0)
        return EXIT_FAILURE_SANDBOX;
    if (bpf && seccomp_install(bpf) != 0) {
        say("seccomp filter not installed, not running the command", strerror(errno));
        return EXIT_FAILURE_SANDBOX;
    }
    unsetenv("PWD");
    if (strchr(command[0], '/')) execv(command[0], command);
    else execvp(command[0], command);
    say("cannot execute", command[0]);
    return errno == ENOENT ? EXIT_NOT_FOUND : EXIT_FAILURE_SANDBOX;
}
