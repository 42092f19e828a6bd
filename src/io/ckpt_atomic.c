/* Atomic file replacement: write a temporary file next to the target, fsync it, rename it
 * over the target, fsync the directory. A crash or a failed write at any point leaves either
 * the old file or the new one, never a mix. */
#include "dprune/ckpt_file.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What an errno means for someone whose checkpoint was not written. */
static const char *hint(int e) {
    switch (e) {
    case ENOSPC:
        return " (disk full)";
    case EDQUOT:
        return " (disk quota exceeded)";
    case EFBIG:
        return " (file size limit, e.g. ulimit -f)";
    case EACCES:
    case EPERM:
        return " (permission denied)";
    case EROFS:
        return " (read-only file system)";
    case ENOENT:
    case ENOTDIR:
        return " (the directory does not exist)";
    default:
        return "";
    }
}

static dp_status failed(dp_error *err, const char *path, const char *step, int e) {
    return dp_fail(err, DP_ERR_IO,
                   "cannot write %s: %s failed: %s%s; any previous file there is "
                   "left intact",
                   path, step, strerror(e), hint(e));
}

/* With SIGXFSZ's default action a write beyond RLIMIT_FSIZE kills the process; ignored, the
 * write fails with EFBIG and is reported like any other failed write. */
static void ignore_sigxfsz(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGXFSZ, &sa, NULL);
}

static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return errno;
        if (w == 0) return EIO;
        p += w, n -= (size_t)w;
    }
    return 0;
}

/* fsync of the directory makes the rename itself durable. */
static int sync_dir_of(const char *path) {
    char dir[DP_CKPT_MAX_NAME];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = 0;
    else
        *slash = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno;
    int e = fsync(fd) != 0 ? errno : 0;
    close(fd);
    return e == EINVAL ? 0 : e; /* some file systems cannot fsync a directory */
}

dp_status dp_write_file_atomic(const char *path, const dp_iovec *parts, int n_parts,
                               dp_error *err) {
    ignore_sigxfsz();
    char tmp[DP_CKPT_MAX_NAME + 32];
    if (strlen(path) >= DP_CKPT_MAX_NAME)
        return dp_fail(err, DP_ERR_IO, "cannot write %s: path too long", path);
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return failed(err, path, "creating the temporary file", errno);
    int e = 0;
    for (int i = 0; i < n_parts && !e; i++) e = write_all(fd, parts[i].p, parts[i].n);
    const char *step = "write";
    if (!e && fsync(fd) != 0) e = errno, step = "fsync";
    if (close(fd) != 0 && !e) e = errno, step = "close";
    if (!e && rename(tmp, path) != 0) e = errno, step = "rename";
    if (e) {
        unlink(tmp);
        return failed(err, path, step, e);
    }
    e = sync_dir_of(path);
    if (e)
        return dp_fail(err, DP_ERR_IO,
                       "wrote %s but could not fsync its directory: %s; the "
                       "file may not survive a power loss",
                       path, strerror(e));
    return DP_OK;
}
