/*
 * The power-loss recorder, loaded into the daemon with LD_PRELOAD by the power-loss cases
 * (tests/reliability_support/power_loss.rs). It changes nothing the daemon does: it writes down
 * what a power cut could still take back, so that the test can take it back after a SIGKILL.
 *
 * - Directory entries. Every create, unlink, rename, link and mkdir under one of PL_TRACK's
 *   folders is logged once it succeeded, with a hard link to any file it takes away (an
 *   unlinked file, a rename's source and a replaced target) kept in PL_STASH, so the test can
 *   put the entry back. Such an operation is durable once every folder it touched was fsynced
 *   after it: `dirsync` is logged before the fsync is called, so an fsync logged after an
 *   operation began after the operation ended.
 * - File data. An fsync or fdatasync of a regular file is logged with its inode: a file whose
 *   inode was never synced comes back empty (Django never fsyncs an upload).
 * - SQLite databases (PL_DBS): their files are left out of the two rules above. Each fsync of
 *   one of a database's files copies the whole set (the database, its -wal or -journal) to a
 *   snapshot in PL_SNAP, which is what the disk holds at that instant; an fsync of the
 *   database's folder takes the last snapshot again without the files now gone (an unlinked
 *   rollback journal, the commit of SQLite's rollback mode). A power cut restores the last
 *   snapshot: the database as of its last fsync.
 *
 * Log lines are tab-separated, one write(2) each on an O_APPEND descriptor:
 *   create PATH | mkdir PATH | rmdir PATH | unlink PATH STASH | link FROM TO
 *   rename FROM TO STASH_OF_FROM STASH_OF_REPLACED_TO_OR_- | dirsync PATH | datasync PATH INODE
 *   snapshot DB FOLDER
 * An fsync is logged twice: `dirsync ID PATH` (or `datasync ID PATH INODE`) before the call,
 * `synced ID` after it succeeded; only a pair counts, so a failed fsync, or one still running
 * on another thread at the kill, makes nothing durable.
 *
 * A recording that cannot be trusted ends the daemon: a log line that cannot be written, or a
 * path that cannot be resolved, aborts it (SIGABRT, which the test does not take for the pause
 * point's kill). The stash's hard links move the ctime of the file they link, as the rename or
 * unlink itself does; one made for a call that then failed is removed again. rustix's `openat2`
 * is a raw system call the recorder never sees: the daemon only opens folders with it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static __thread int busy; /* the shim's own calls are not recorded */
static pthread_mutex_t snapshot_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long sequence;

#define REAL(name, type) static type real_##name; if (!real_##name) real_##name = (type)dlsym(RTLD_NEXT, #name)

typedef int (*open_t)(const char *, int, ...);
typedef int (*openat_t)(int, const char *, int, ...);
typedef int (*path_t)(const char *);
typedef int (*pathat_t)(int, const char *, int);
typedef int (*mkdir_t)(const char *, mode_t);
typedef int (*mkdirat_t)(int, const char *, mode_t);
typedef int (*rename_t)(const char *, const char *);
typedef int (*renameat_t)(int, const char *, int, const char *);
typedef int (*renameat2_t)(int, const char *, int, const char *, unsigned int);
typedef int (*link_t)(const char *, const char *);
typedef int (*linkat_t)(int, const char *, int, const char *, int);
typedef int (*fd_t)(int);

static int log_fd = -1;
/* The environment, read once when the library is loaded: the daemon sets variables of its own
 * later (its proxy settings), and getenv racing setenv is undefined. */
static const char *env_log, *env_stash, *env_snap, *env_track, *env_dbs;

__attribute__((constructor)) static void read_environment(void) {
    env_log = getenv("PL_LOG");
    env_stash = getenv("PL_STASH");
    env_snap = getenv("PL_SNAP");
    env_track = getenv("PL_TRACK");
    env_dbs = getenv("PL_DBS");
}

static void log_line(const char *fmt, ...) {
    if (!env_log) return;
    if (log_fd < 0) {
        REAL(open, open_t);
        log_fd = real_open(env_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (log_fd < 0) abort();
    }
    char line[4 * PATH_MAX + 128];
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, args);
    va_end(args);
    if (n < 0 || n >= (int)sizeof line - 1) abort();
    line[n++] = '\n';
    if (write(log_fd, line, n) != n) abort();
}

/* The absolute path of NAME seen from DIRFD; aborts when it cannot tell (see the top). */
static int resolve(int dirfd, const char *name, char *out) {
    if (!name) return -1;
    if (name[0] == '/') {
        snprintf(out, PATH_MAX, "%s", name);
        return 0;
    }
    char base[PATH_MAX];
    if (dirfd == AT_FDCWD) {
        if (!getcwd(base, sizeof base)) abort();
    } else {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", dirfd);
        ssize_t n = readlink(proc, base, sizeof base - 1);
        if (n < 0) abort();
        base[n] = 0;
    }
    if (strcmp(name, ".") == 0) snprintf(out, PATH_MAX, "%s", base);
    else snprintf(out, PATH_MAX, "%s/%s", base, name);
    return 0;
}

/* Whether PATH is under one of PL_TRACK's colon-separated folders. */
static int tracked(const char *path) {
    const char *list = env_track;
    if (!list) return 0;
    while (*list) {
        const char *end = strchr(list, ':');
        size_t len = end ? (size_t)(end - list) : strlen(list);
        if (len && strncmp(path, list, len) == 0 && (path[len] == '/' || path[len] == 0)) return 1;
        if (!end) break;
        list = end + 1;
    }
    return 0;
}

/* The database of PL_DBS that PATH is a file of (the database, -wal, -journal, -shm), or NULL. */
static const char *database_of(const char *path, char *db) {
    const char *list = env_dbs;
    if (!list) return NULL;
    while (*list) {
        const char *end = strchr(list, ':');
        size_t len = end ? (size_t)(end - list) : strlen(list);
        if (len && strncmp(path, list, len) == 0) {
            const char *rest = path + len;
            if (!*rest || !strcmp(rest, "-wal") || !strcmp(rest, "-journal") || !strcmp(rest, "-shm")) {
                memcpy(db, list, len);
                db[len] = 0;
                return db;
            }
        }
        if (!end) break;
        list = end + 1;
    }
    return NULL;
}

static int recorded(const char *path) {
    char db[PATH_MAX];
    return tracked(path) && !database_of(path, db);
}

static unsigned long next(void) { return __atomic_add_fetch(&sequence, 1, __ATOMIC_SEQ_CST); }

/* A hard link to the file at PATH in the stash, named into OUT; "-" when there is none. */
static void stash(const char *path, char *out) {
    struct stat st;
    const char *dir = env_stash;
    snprintf(out, PATH_MAX, "-");
    if (!dir || lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) return;
    char target[PATH_MAX];
    snprintf(target, sizeof target, "%s/%d.%lu", dir, getpid(), next());
    REAL(link, link_t);
    if (real_link(path, target) == 0) snprintf(out, PATH_MAX, "%s", target);
}

/* Removes a stash link made for a call that failed. */
static void unstash(const char *kept) {
    REAL(unlink, path_t);
    if (strcmp(kept, "-") != 0) real_unlink(kept);
}

static int copy_file(const char *from, const char *to) {
    REAL(open, open_t);
    int in = real_open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0) return errno == ENOENT ? 0 : -1;
    int out = real_open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        close(in);
        return -1;
    }
    char buffer[1 << 16];
    ssize_t n;
    while ((n = read(in, buffer, sizeof buffer)) > 0)
        if (write(out, buffer, n) != n) break;
    close(in);
    close(out);
    return n == 0 ? 0 : -1;
}

static const char *SUFFIXES[] = {"", "-wal", "-journal"};
static char last_snapshot[8][PATH_MAX];
static char last_snapshot_db[8][PATH_MAX];

/* Copies DB's files to a new snapshot folder; with ONLY_DROP, copies the last snapshot instead,
 * leaving out the files that are gone now (the folder was fsynced: removals are durable). */
static void snapshot(const char *db, int only_drop) {
    const char *root = env_snap;
    if (!root) return;
    pthread_mutex_lock(&snapshot_lock);
    int slot = 0;
    while (slot < 8 && last_snapshot_db[slot][0] && strcmp(last_snapshot_db[slot], db)) slot++;
    if (slot == 8) goto done;
    if (only_drop && !last_snapshot[slot][0]) goto done;
    char folder[PATH_MAX];
    const char *name = strrchr(db, '/');
    snprintf(folder, sizeof folder, "%s/%s.%lu", root, name ? name + 1 : db, next());
    REAL(mkdir, mkdir_t);
    if (real_mkdir(folder, 0700) != 0) goto done;
    for (size_t i = 0; i < sizeof SUFFIXES / sizeof *SUFFIXES; i++) {
        char live[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
        snprintf(live, sizeof live, "%s%s", db, SUFFIXES[i]);
        snprintf(to, sizeof to, "%s/db%s", folder, SUFFIXES[i]);
        if (only_drop) {
            if (access(live, F_OK) != 0) continue;
            snprintf(from, sizeof from, "%s/db%s", last_snapshot[slot], SUFFIXES[i]);
        } else {
            snprintf(from, sizeof from, "%s", live);
        }
        copy_file(from, to);
    }
    snprintf(last_snapshot[slot], PATH_MAX, "%s", folder);
    snprintf(last_snapshot_db[slot], PATH_MAX, "%s", db);
    log_line("snapshot\t%s\t%s", db, folder);
done:
    pthread_mutex_unlock(&snapshot_lock);
}

/* Every database of PL_DBS whose folder is PATH. */
static void snapshot_databases_in(const char *path) {
    const char *list = env_dbs;
    if (!list) return;
    while (*list) {
        const char *end = strchr(list, ':');
        size_t len = end ? (size_t)(end - list) : strlen(list);
        char db[PATH_MAX];
        memcpy(db, list, len);
        db[len] = 0;
        const char *slash = strrchr(db, '/');
        if (slash && (size_t)(slash - db) == strlen(path) && strncmp(db, path, slash - db) == 0)
            snapshot(db, 1);
        if (!end) break;
        list = end + 1;
    }
}

/* Logs the fsync about to be made, if it is of a tracked folder or file; its id, or 0. */
static unsigned long before_sync(int fd) {
    char proc[64], path[PATH_MAX];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(proc, path, sizeof path - 1);
    if (n < 0) abort();
    path[n] = 0;
    struct stat st;
    if (fstat(fd, &st) != 0) abort();
    unsigned long id = 0;
    if (S_ISDIR(st.st_mode)) {
        if (tracked(path)) log_line("dirsync\t%lu\t%s", id = next(), path);
    } else if (recorded(path)) {
        log_line("datasync\t%lu\t%s\t%lu", id = next(), path, (unsigned long)st.st_ino);
    }
    return id;
}

static void after_sync(int fd) {
    char proc[64], path[PATH_MAX], db[PATH_MAX];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(proc, path, sizeof path - 1);
    if (n < 0) return;
    path[n] = 0;
    if (database_of(path, db)) {
        /* The first snapshot of a database claims its slot. */
        pthread_mutex_lock(&snapshot_lock);
        int slot = 0;
        while (slot < 8 && last_snapshot_db[slot][0] && strcmp(last_snapshot_db[slot], db)) slot++;
        if (slot < 8 && !last_snapshot_db[slot][0]) snprintf(last_snapshot_db[slot], PATH_MAX, "%s", db);
        pthread_mutex_unlock(&snapshot_lock);
        snapshot(db, 0);
    } else {
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) snapshot_databases_in(path);
    }
}

#define SYNC_HOOK(name)                                  \
    int name(int fd) {                                   \
        REAL(name, fd_t);                                \
        if (busy) return real_##name(fd);                \
        busy = 1;                                        \
        unsigned long id = before_sync(fd);              \
        int result = real_##name(fd);                    \
        if (result == 0) {                               \
            if (id) log_line("synced\t%lu", id);         \
            after_sync(fd);                              \
        }                                                \
        busy = 0;                                        \
        return result;                                   \
    }
SYNC_HOOK(fsync)
SYNC_HOOK(fdatasync)

/* open and friends: a file they create under a tracked folder. */
static int created(int dirfd, const char *name, int flags, int result, int existed) {
    if (result >= 0 && (flags & O_CREAT) && !existed) {
        char path[PATH_MAX];
        if (resolve(dirfd, name, path) == 0 && recorded(path)) log_line("create\t%s", path);
    }
    return result;
}

static int exists_at(int dirfd, const char *name) {
    struct stat st;
    return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

#define OPEN_HOOK(name)                                                          \
    int name(const char *path, int flags, ...) {                                 \
        mode_t mode = 0;                                                         \
        if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) {                                     \
            va_list args;                                                        \
            va_start(args, flags);                                               \
            mode = va_arg(args, mode_t);                                         \
            va_end(args);                                                        \
        }                                                                        \
        REAL(name, open_t);                                                      \
        if (busy || !(flags & O_CREAT)) return real_##name(path, flags, mode);   \
        busy = 1;                                                                \
        int existed = exists_at(AT_FDCWD, path);                                 \
        int result = created(AT_FDCWD, path, flags, real_##name(path, flags, mode), existed); \
        busy = 0;                                                                \
        return result;                                                           \
    }
OPEN_HOOK(open)
OPEN_HOOK(open64)

#define OPENAT_HOOK(name)                                                        \
    int name(int dirfd, const char *path, int flags, ...) {                      \
        mode_t mode = 0;                                                         \
        if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) {                                     \
            va_list args;                                                        \
            va_start(args, flags);                                               \
            mode = va_arg(args, mode_t);                                         \
            va_end(args);                                                        \
        }                                                                        \
        REAL(name, openat_t);                                                    \
        if (busy || !(flags & O_CREAT)) return real_##name(dirfd, path, flags, mode); \
        busy = 1;                                                                \
        int existed = exists_at(dirfd, path);                                    \
        int result = created(dirfd, path, flags, real_##name(dirfd, path, flags, mode), existed); \
        busy = 0;                                                                \
        return result;                                                           \
    }
OPENAT_HOOK(openat)
OPENAT_HOOK(openat64)

static int removal(int dirfd, const char *name, int is_dir, int (*call)(void *), void *arg) {
    char path[PATH_MAX], kept[PATH_MAX];
    if (busy || resolve(dirfd, name, path) != 0 || !recorded(path)) return call(arg);
    busy = 1;
    if (!is_dir) stash(path, kept);
    int result = call(arg);
    int saved = errno;
    if (result == 0) {
        if (is_dir) log_line("rmdir\t%s", path);
        else log_line("unlink\t%s\t%s", path, kept);
    } else if (!is_dir) {
        unstash(kept);
    }
    errno = saved;
    busy = 0;
    return result;
}

struct unlinkat_args { int dirfd; const char *path; int flags; };
static int call_unlinkat(void *a) {
    struct unlinkat_args *args = a;
    REAL(unlinkat, pathat_t);
    return real_unlinkat(args->dirfd, args->path, args->flags);
}
int unlinkat(int dirfd, const char *path, int flags) {
    struct unlinkat_args args = {dirfd, path, flags};
    return removal(dirfd, path, (flags & AT_REMOVEDIR) != 0, call_unlinkat, &args);
}
static int call_unlink(void *a) {
    REAL(unlink, path_t);
    return real_unlink((const char *)a);
}
int unlink(const char *path) { return removal(AT_FDCWD, path, 0, call_unlink, (void *)path); }
static int call_rmdir(void *a) {
    REAL(rmdir, path_t);
    return real_rmdir((const char *)a);
}
int rmdir(const char *path) { return removal(AT_FDCWD, path, 1, call_rmdir, (void *)path); }

static int made_dir(int dirfd, const char *name, int result) {
    char path[PATH_MAX];
    if (result == 0 && resolve(dirfd, name, path) == 0 && recorded(path)) log_line("mkdir\t%s", path);
    return result;
}
int mkdir(const char *path, mode_t mode) {
    REAL(mkdir, mkdir_t);
    if (busy) return real_mkdir(path, mode);
    busy = 1;
    int result = made_dir(AT_FDCWD, path, real_mkdir(path, mode));
    busy = 0;
    return result;
}
int mkdirat(int dirfd, const char *path, mode_t mode) {
    REAL(mkdirat, mkdirat_t);
    if (busy) return real_mkdirat(dirfd, path, mode);
    busy = 1;
    int result = made_dir(dirfd, path, real_mkdirat(dirfd, path, mode));
    busy = 0;
    return result;
}

static int renamed(int from_dir, const char *from, int to_dir, const char *to, unsigned int flags) {
    REAL(renameat2, renameat2_t);
    char source[PATH_MAX], target[PATH_MAX], kept_source[PATH_MAX], kept_target[PATH_MAX];
    if (busy || (flags & RENAME_EXCHANGE) || resolve(from_dir, from, source) != 0 ||
        resolve(to_dir, to, target) != 0 || !(recorded(source) || recorded(target)))
        return real_renameat2(from_dir, from, to_dir, to, flags);
    busy = 1;
    stash(source, kept_source);
    snprintf(kept_target, sizeof kept_target, "-");
    if (!(flags & RENAME_NOREPLACE)) stash(target, kept_target);
    int result = real_renameat2(from_dir, from, to_dir, to, flags);
    int saved = errno;
    if (result == 0) {
        log_line("rename\t%s\t%s\t%s\t%s", source, target, kept_source, kept_target);
    } else {
        unstash(kept_source);
        unstash(kept_target);
    }
    errno = saved;
    busy = 0;
    return result;
}
int renameat2(int from_dir, const char *from, int to_dir, const char *to, unsigned int flags) {
    return renamed(from_dir, from, to_dir, to, flags);
}
int renameat(int from_dir, const char *from, int to_dir, const char *to) {
    return renamed(from_dir, from, to_dir, to, 0);
}
int rename(const char *from, const char *to) { return renamed(AT_FDCWD, from, AT_FDCWD, to, 0); }

int linkat(int from_dir, const char *from, int to_dir, const char *to, int flags) {
    REAL(linkat, linkat_t);
    if (busy) return real_linkat(from_dir, from, to_dir, to, flags);
    busy = 1;
    int result = real_linkat(from_dir, from, to_dir, to, flags);
    char source[PATH_MAX], target[PATH_MAX];
    if (result == 0 && resolve(from_dir, from, source) == 0 && resolve(to_dir, to, target) == 0 &&
        recorded(target))
        log_line("link\t%s\t%s", source, target);
    busy = 0;
    return result;
}
int link(const char *from, const char *to) { return linkat(AT_FDCWD, from, AT_FDCWD, to, 0); }
