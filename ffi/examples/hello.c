/* hello.c: the GovFS C API on a running cluster whose ministries run the
 * namespace (govfs cluster up --app meta). Finds the cluster through
 * GOVFS_CLUSTER and GOVFS_KEY_FILE.
 *
 *   cc hello.c $(pkg-config --cflags --libs govfs) -o hello && ./hello
 *
 * Exits 0 when every call answered as expected, 1 otherwise. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "govfs.h"

static int failures = 0;

/* Checks that a call returned `want`; prints the library's message if not. */
static void expect(const char *what, int64_t got, int64_t want) {
    if (got != want) {
        fprintf(stderr, "FAIL %s: got %" PRId64 " want %" PRId64 " (%s)\n", what, got, want,
                govfs_last_error());
        failures++;
    } else {
        printf("ok   %s\n", what);
    }
}

static int32_t print_entry(void *ctx, const char *name, uint64_t ino, uint32_t kind) {
    int *count = ctx;
    (*count)++;
    printf("     %-4s %8" PRIu64 " %s\n", kind == GOVFS_DIR ? "dir" : "file", ino, name);
    return 0;
}

int main(void) {
    uint64_t fs;
    printf("GovFS C API %s\n", govfs_version());
    int rc = govfs_connect(NULL, NULL, &fs);
    if (rc != 0) {
        fprintf(stderr, "connect: %s (%s)\n", strerror(-rc), govfs_last_error());
        return 1;
    }
    expect("mkdir -p /hello/world", govfs_mkdir_all(fs, "/hello/world", 0755), 0);
    govfs_stat_t st;
    expect("create /hello/world/greeting", govfs_create(fs, "/hello/world/greeting", 0644, GOVFS_EXCL, &st), 1);
    expect("create again, exclusive", govfs_create(fs, "/hello/world/greeting", 0644, GOVFS_EXCL, NULL), -EEXIST);
    expect("truncate to 42", govfs_truncate(fs, "/hello/world/greeting", 42), 0);
    expect("stat", govfs_stat(fs, "/hello/world/greeting", &st), 0);
    expect("stat size", (int64_t)st.size, 42);
    expect("stat kind", st.kind, GOVFS_FILE);
    expect("symlink", govfs_symlink(fs, "/hello/world/greeting", "/hello/link"), 0);
    char target[64];
    expect("readlink length", govfs_readlink(fs, "/hello/link", target, sizeof target), 21);
    expect("readlink target", strcmp(target, "/hello/world/greeting"), 0);
    expect("readlink into 4 bytes", govfs_readlink(fs, "/hello/link", target, 4), -ERANGE);
    int count = 0;
    expect("readdir /hello", govfs_readdir(fs, "/hello", print_entry, &count), 2);
    expect("rename", govfs_rename(fs, "/hello/world/greeting", "/hello/world/hi", 0), 0);
    expect("stat the old name", govfs_stat(fs, "/hello/world/greeting", &st), -ENOENT);
    printf("     (the message: %s)\n", govfs_last_error());
    expect("rmdir a non-empty directory", govfs_rmdir(fs, "/hello/world"), -ENOTEMPTY);
    expect("unlink", govfs_unlink(fs, "/hello/world/hi"), 0);
    expect("rmdir", govfs_rmdir(fs, "/hello/world"), 0);
    expect("unlink the symlink", govfs_unlink(fs, "/hello/link"), 0);
    expect("rmdir /hello", govfs_rmdir(fs, "/hello"), 0);

    /* Bad arguments: refused, nothing sent. */
    expect("NULL path", govfs_mkdir(fs, NULL, 0755), -EINVAL);
    expect("NULL stat buffer", govfs_stat(fs, "/hello", NULL), -EINVAL);
    expect("relative path", govfs_mkdir(fs, "not/absolute", 0755), -EINVAL);
    expect("unknown flags", govfs_create(fs, "/hello/x", 0644, 0x80, NULL), -EINVAL);
    expect("NULL callback", govfs_readdir(fs, "/hello", NULL, NULL), -EINVAL);
    expect("a handle never opened", govfs_mkdir(fs + 1000, "/x", 0755), -EBADF);

    expect("disconnect", govfs_disconnect(fs), 0);
    expect("a closed handle", govfs_stat(fs, "/hello", &st), -EBADF);
    expect("disconnect twice", govfs_disconnect(fs), -EBADF);
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("all ok\n");
    return 0;
}
